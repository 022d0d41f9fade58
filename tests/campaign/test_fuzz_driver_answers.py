"""Fuzzing the driver with corrupted answers from a small scripted responder on a pty.

The responder is a plain energy meter (map version 1, no transactions) whose answers can be given a
flipped bit, cut short, sent from the wrong unit id or with the wrong function code, replaced by an
exception or by silence. The driver must raise only its own errors, never hand back data from a bad
answer, report CommunicationFault through the publisher and clear it once good answers come back.
"""

from __future__ import annotations

import collections
import os
import random
import select
import threading
import time
from collections.abc import Iterator

import pytest

from driver import DriverConfig, PowermeterDriver
from driver.errors import CommunicationError, DriverError, MeterExceptionError
from rigs.frames import crc16
from simulator.ptys import PtyPair

UNIT = 1
SEED = 424242
MODES = ("flip", "truncate", "wrong_unit", "wrong_fc", "exception:4", "exception:6", "silence", "garbage")
# wrong_fc found here: the driver took an FC04 answer to its FC03 request as the registers it asked for
# (fixed in driver/modbus_link.py, ModbusLink._execute; see docs/reliability.md).
VOLTAGE_L1 = 23012  # 230.12 V, the value a good answer carries


def frame(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


class Responder:
    """A scripted meter on a pty: answers each request with the next mode in `script` ("ok" when empty)."""

    def __init__(self, seed: int) -> None:
        self.pty = PtyPair()
        self.path = self.pty.path
        self.rng = random.Random(seed)
        self.script: collections.deque[str] = collections.deque()
        self.registers = collections.defaultdict(int, {0x001D: 1, 0x0100: 0, 0x0101: VOLTAGE_L1})
        self.answered: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-meter", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pty.close()

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.pty.master], [], [], 0.05)
            if not ready:
                buffer = b""  # a silent line ends a frame, as the 3.5-character gap does
                continue
            try:
                buffer += os.read(self.pty.master, 4096)
            except OSError:
                continue
            need = 9 + buffer[6] if len(buffer) >= 7 and buffer[1] == 0x10 else 8
            if len(buffer) < need:
                continue
            request, buffer = buffer[:need], buffer[need:]
            mode = self.script.popleft() if self.script else "ok"
            self.answered[mode] += 1
            answer = self._answer(request, mode)
            if answer:
                os.write(self.pty.master, answer)

    def _good(self, request: bytes) -> bytes:
        fc, address = request[1], int.from_bytes(request[2:4], "big")
        count = int.from_bytes(request[4:6], "big")
        if fc == 0x03:
            data = b"".join(self.registers[a].to_bytes(2, "big") for a in range(address, address + count))
            return frame(bytes([UNIT, 0x03, len(data)]) + data)
        return frame(request[:6])  # FC06 and FC16 answers echo address and value/count

    def _answer(self, request: bytes, mode: str) -> bytes:
        good = self._good(request)
        if mode == "ok":
            return good
        if mode == "flip":
            bad = bytearray(good)
            bad[self.rng.randrange(len(bad))] ^= 1 << self.rng.randrange(8)
            return bytes(bad)
        if mode == "truncate":
            return good[: self.rng.randrange(1, len(good))]
        if mode == "wrong_unit":
            return frame(bytes([UNIT + 1]) + good[1:-2])
        if mode == "wrong_fc":  # an FC04 (input registers) answer: other data, same layout
            return frame(bytes([UNIT, 0x04, good[2]]) + b"\x7f" * good[2]) if request[1] == 0x03 else good
        if mode.startswith("exception:"):
            return frame(bytes([UNIT, request[1] | 0x80, int(mode.split(":")[1])]))
        if mode == "garbage":
            return self.rng.randbytes(self.rng.randint(1, 40))
        return b""  # silence


@pytest.fixture
def responder() -> Iterator[Responder]:
    meter = Responder(SEED)
    yield meter
    meter.close()


def driver_for(responder: Responder, publish_interval: float = 0.0) -> PowermeterDriver:
    return PowermeterDriver(DriverConfig(port=responder.path, timeout=0.15, retries=0,
                                         publish_interval=publish_interval, backoff_initial=0.05,
                                         backoff_max=0.2))


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_answer_is_an_error_and_the_next_good_one_works(responder, mode):
    with driver_for(responder) as meter:
        assert meter.read_powermeter().voltage_V.L1 == pytest.approx(230.12)
        responder.script.append(mode)
        with pytest.raises(DriverError) as info:
            meter.read_powermeter()
        expected = MeterExceptionError if mode.startswith("exception") else CommunicationError
        assert isinstance(info.value, expected), f"{mode}: {type(info.value).__name__}: {info.value}"
        assert str(info.value)  # says what went wrong
        assert meter.read_powermeter().voltage_V.L1 == pytest.approx(230.12)  # recovered at once
    assert responder.answered[mode] == 1


def test_a_random_storm_of_bad_answers_never_escapes_as_anything_but_driver_errors(responder):
    rng = random.Random(SEED)
    outcomes: collections.Counter[str] = collections.Counter()
    with driver_for(responder) as meter:
        for _ in range(60):
            responder.script.clear()
            responder.script.extend(rng.choice((*MODES, "ok", "ok", "ok", "ok")) for _ in range(3))
            try:
                reading = meter.read_powermeter()
            except DriverError as exc:
                outcomes[type(exc).__name__] += 1
            else:
                outcomes["ok"] += 1
                assert reading.voltage_V.L1 == pytest.approx(230.12)  # never data from a bad answer
        responder.script.clear()
        assert meter.read_powermeter().voltage_V.L1 == pytest.approx(230.12)
    # which reads come through depends on how pymodbus resynchronises after garbage: only the kinds are fixed
    assert outcomes["CommunicationError"] and outcomes["MeterExceptionError"], outcomes


def test_the_publisher_raises_communication_fault_and_clears_it(responder):
    events = []
    with driver_for(responder, publish_interval=0.05) as meter:
        meter.subscribe_errors(events.append)
        responder.script.extend(["silence", "truncate", "flip", "wrong_unit", "garbage"] * 4)
        deadline = time.monotonic() + 10
        while not any(e.type == "CommunicationFault" and e.raised for e in events):
            assert time.monotonic() < deadline, "no CommunicationFault raised"
            time.sleep(0.01)
        while not any(e.type == "CommunicationFault" and not e.raised for e in events):
            assert time.monotonic() < deadline, "CommunicationFault never cleared"
            time.sleep(0.01)
        assert "CommunicationFault" not in {e.type for e in meter.active_errors}
