"""Helpers for the driver's integration tests: a meter-sim subprocess on a pty, polling waits, requests."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driver import TransactionReq

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


def meter_sim_command() -> list[str]:
    beside = Path(sys.executable).with_name("meter-sim")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("meter-sim")
    return [found] if found else [sys.executable, "-m", "simulator.cli"]


class SimMeter:
    """A meter-sim subprocess: `.path` is its driver-side pty, `.control` its ControlClient."""

    def __init__(self, profile: str = "reference", speed: float = 1.0, seed: int = 7, unit: int = 1) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="drv-"))  # short: a unix socket path has 108 bytes
        self.socket = str(self.workdir / "control.sock")
        self.log = open(self.workdir / "meter-sim.log", "ab")
        self.command = [
            *meter_sim_command(),
            *("--pty", "--speed", str(speed), "--state-dir", str(self.workdir / "state")),
            *("--control", self.socket, "--profile", profile, "--seed", str(seed), "--unit", str(unit)),
        ]
        self._spawn()

    def _spawn(self) -> None:
        from simulator import ControlClient

        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL
        )
        try:
            self.path = self._first_line()
            self.control = ControlClient(self.socket)
            wait_for(self._control_answers, SIM_START_TIMEOUT, "the meter-sim control socket")
        except BaseException:
            self.close()
            raise

    def lose_power(self) -> None:
        """SIGKILL and restart on the same state dir: a meter that lost its power. `.path` changes."""
        self.process.kill()
        self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        Path(self.socket).unlink(missing_ok=True)
        self._spawn()

    def _first_line(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + SIM_START_TIMEOUT
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail("meter-sim printed no device path")
                if selector.select(remaining):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    if not chunk:
                        pytest.fail(
                            f"meter-sim exited: {(self.workdir / 'meter-sim.log').read_text()[-500:]}"
                        )
                    buffer += chunk
        return buffer.split(b"\n", 1)[0].decode().strip()

    def _control_answers(self) -> bool:
        try:
            self.control.status()
        except Exception:
            return False
        return True

    def status(self) -> dict[str, Any]:
        return self.control.status()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        close = getattr(getattr(self, "control", None), "close", None)
        if close is not None:
            close()
        self.log.close()
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
