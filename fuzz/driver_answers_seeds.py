"""Seeds for fuzz/driver_answers.py's protocol layer: what a simulated meter really answers.

Each protocol runs probe, identify and a whole transaction against meter-sim's register map of its
model (in-process, no Modbus, no signing or boot delay); every answer is written down in the target's
input encoding, so the fuzzer starts from answers that get each protocol through all its paths.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator

from driver.codec import registers_to_bytes
from driver.errors import MeterExceptionError
from fuzz.driver_answers import MODELS, OPERATIONS, Services, run_operation
from simulator.profile import load_model
from simulator.registers import ModbusException
from simulator.runtime import LoadSpec, MeterSim

ANSWERED = 0xFF  # a kind byte >= 12: the meter answers
SCRIPT = ("read_dataset", "open_transaction", "start", "read_dataset", "stop", "fetch", "close_all")


class RecordingLink:
    """A RegisterLink on a simulated meter's register map that writes down each answer as input bytes."""

    def __init__(self, sim: MeterSim) -> None:
        self.sim = sim
        self.record = bytearray()

    def _map(self) -> object:
        self.sim.sync()
        regmap = self.sim.register_map(1)
        assert regmap is not None
        return regmap

    def _read(self, address: int, count: int, fc: int) -> list[int]:
        result = self._map().read(address, count, fc)  # type: ignore[attr-defined]
        if isinstance(result, ModbusException):
            self.record.append(int(result) - 1)
            raise MeterExceptionError(int(result), f"exception {int(result)}")
        self.record.append(ANSWERED)
        self.record += registers_to_bytes(result)
        return list(result)

    def read_holding(self, address: int, count: int) -> list[int]:
        return self._read(address, count, 3)

    def read_input(self, address: int, count: int) -> list[int]:
        return self._read(address, count, 4)

    def write(self, address: int, values: list[int]) -> None:
        self._write(address, values, 6 if len(values) == 1 else 16)

    def write_multiple(self, address: int, values: list[int]) -> None:
        self._write(address, values, 16)

    def _write(self, address: int, values: list[int], fc: int) -> None:
        outcome = self._map().write(address, values, fc)  # type: ignore[attr-defined]
        if outcome is not None:
            self.record.append(int(outcome) - 1)
            raise MeterExceptionError(int(outcome), f"exception {int(outcome)}")
        self.record.append(ANSWERED)


def _session(index: int, model: str, directory: str) -> bytes:
    profile = load_model(model)
    profile = dataclasses.replace(profile, signing_delay_s=0.0, boot_delay_s=0.0)
    sim = MeterSim(profile, [1], directory, seed=1, load=LoadSpec(power_w=11000.0))
    link = RecordingLink(sim)
    from driver.protocols import PROTOCOLS

    cls = PROTOCOLS[model]
    try:
        cls.probe(link)
        protocol = cls(link, Services(model))  # type: ignore[arg-type]
        protocol.identify()
        for operation in SCRIPT:
            link.record.append(OPERATIONS.index(operation))
            run_operation(protocol, operation)
    finally:
        sim.power_off()
    return bytes([index]) + bytes(link.record)


def protocol_seeds() -> Iterator[bytes]:
    """One recorded session a model, and its first part alone (probe and identify only)."""
    directory = tempfile.mkdtemp(prefix="fuzz-seeds-")
    try:
        for index, model in enumerate(MODELS):
            yield _session(index, model, f"{directory}/{model}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
