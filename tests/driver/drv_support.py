"""Helpers for the driver's integration tests: a meter-sim subprocess on a pty, polling waits, requests."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driver import TransactionReq
from simulator import MeterSimProcess

SIM_START_TIMEOUT = 20.0


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll condition until it returns something truthy; fail the test naming what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class SimMeter:
    """A meter-sim subprocess: `.path` is its driver-side pty, `.control` its ControlClient."""

    def __init__(self, profile: str = "reference", speed: float = 1.0, seed: int = 7, unit: int = 1) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="drv-"))  # short: a unix socket path has 108 bytes
        self.process = MeterSimProcess(self.workdir, speed=speed, seed=seed, profile=profile, unit=unit,
                                       start_timeout=SIM_START_TIMEOUT)
        self.control = self.process.control
        try:
            self.path = self.process.start()
        except BaseException:
            self.close()
            raise

    def lose_power(self) -> None:
        """SIGKILL and restart on the same state dir: a meter that lost its power. `.path` changes."""
        self.process.kill()
        self.path = self.process.start()

    def status(self) -> dict[str, Any]:
        return self.control.status()

    def close(self) -> None:
        self.process.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def request_for(transaction_id: str, **changes: Any) -> TransactionReq:
    data: dict[str, Any] = {
        "evse_id": "DE*MHL*E0001*1",
        "transaction_id": transaction_id,
        "identification_status": "ASSIGNED",
        "identification_level": "TRUSTED",
        "identification_flags": ["RFID_PLAIN", "OCPP_AUTH"],
        "identification_type": "ISO14443",
        "identification_data": "04A1B2C3D4E5F6",
        "tariff_text": "0.39 EUR/kWh",
    }
    data.update(changes)
    return TransactionReq.from_dict(data)


class RebootBefore:
    """The protocol's link, with the meter power-cycled just before one request reaches it (the first
    `operation` at `address`, with `values` if given): what the driver wrote or read before is from the
    meter before the power loss, what comes after from the rebooted one. Campaign findings: a record
    read torn (its length before, its bytes after: blank), a command after its identification was lost."""

    def __init__(self, link, meter, operation, address, values=None):
        self._link, self._meter = link, meter
        self._target = (operation, address, values)
        self.cuts = 0

    def __getattr__(self, name):
        return getattr(self._link, name)

    def _maybe_cut(self, operation, address, values):
        if self.cuts == 0 and self._target in ((operation, address, values), (operation, address, None)):
            self.cuts += 1
            self._meter.control.power_off()
            self._meter.control.power_on()
            wait_for(lambda: (s := self._meter.status()).get("power") == "on" and "energy_register" in s,
                     10, "the meter to boot")

    def read_holding(self, address, count):
        self._maybe_cut("read", address, None)
        return self._link.read_holding(address, count)

    def read_input(self, address, count):
        self._maybe_cut("read", address, None)
        return self._link.read_input(address, count)

    def write(self, address, values):
        self._maybe_cut("write", address, list(values))
        return self._link.write(address, values)

    def write_multiple(self, address, values):
        self._maybe_cut("write", address, list(values))
        return self._link.write_multiple(address, values)


class AnswerLost:
    """The protocol's link, where the answer to one write (at `address`, with `values`) is lost and the
    link layer writes it again, as pymodbus repeats an unanswered request: the real meter's answer to
    the repeat (an exception, if it refuses it) is what the driver sees. `before_repeat` runs between."""

    def __init__(self, link, address, values, before_repeat=None):
        self._link, self._target, self._before = link, (address, list(values)), before_repeat
        self.repeats = 0

    def __getattr__(self, name):
        return getattr(self._link, name)

    def _write(self, operation, address, values):
        operation(address, values)
        if self.repeats == 0 and (address, list(values)) == self._target:
            self.repeats += 1
            if self._before is not None:
                self._before()
            operation(address, values)

    def write(self, address, values):
        self._write(self._link.write, address, values)

    def write_multiple(self, address, values):
        self._write(self._link.write_multiple, address, values)


class MisreadOnce:
    """The protocol's link, where the first read at `address` gets `words` instead: a late answer to
    another request of the same shape taken for its answer (RTU answers carry no request id)."""

    def __init__(self, link, address, words):
        self._link, self._address, self._words = link, address, list(words)
        self.misreads = 0

    def __getattr__(self, name):
        return getattr(self._link, name)

    def read_holding(self, address, count):
        if self.misreads == 0 and address == self._address and count == len(self._words):
            self.misreads += 1
            return list(self._words)
        return self._link.read_holding(address, count)
