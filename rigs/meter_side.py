"""The meter end of a rig: a meter-sim subprocess on a pty, or a physical meter's serial device.

Either way the result is a device path the driver (or the link proxy) opens; the rest of the rig
does not care which it is. The simulated meter also gives a ControlClient: fault control and
ground truth from the meter side.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from rigs.errors import RigError, RigPortError
from rigs.spec import MeterSpec


def check_port(meter: MeterSpec) -> None:
    """Check a physical meter's device exists and can be opened, so a missing one fails at once and clearly.

    The device is opened without touching its line settings: those are the driver's (or the proxy's)
    business, and a pty standing in for a meter refuses some of them."""
    assert meter.port is not None
    if "://" in meter.port:
        return  # a pyserial URL (socket://, rfc2217://): nothing on this machine to check
    if not os.path.exists(meter.port):
        raise RigPortError(f"meter.port {meter.port}: no such device on this machine "
                           "(is the RS-485 adapter plugged in? set meter.port in the rig file)")
    try:
        fd = os.open(meter.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise RigPortError(f"meter.port {meter.port}: cannot open: {exc.strerror}") from None
    os.close(fd)


def _meter_sim_command() -> list[str]:
    """meter-sim from the same environment as this Python (the venv), else from PATH."""
    beside = Path(sys.executable).with_name("meter-sim")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("meter-sim")
    if found:
        return [found]
    return [sys.executable, "-m", "simulator.cli"]


class SimulatedMeter:
    """A meter-sim subprocess serving a pty, with its state dir and control socket in `workdir`."""

    def __init__(self, meter: MeterSpec, workdir: Path) -> None:
        self.spec = meter
        self.workdir = workdir
        self.state_dir = workdir / "state"
        # A unix socket path must stay short (108 bytes); the workdir can be deep under pytest's tmp.
        self.socket_path = str(workdir / "control.sock")
        self.log_path = workdir / "meter-sim.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.path: str | None = None
        self.control: Any = None
        self._log: IO[bytes] | None = None
        self._drain: threading.Thread | None = None

    def start(self) -> str:
        """Start meter-sim; return the driver-side device path it prints as its first stdout line."""
        from simulator import ControlClient

        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [*_meter_sim_command(), "--pty", "--speed", str(self.spec.speed),
                   "--state-dir", str(self.state_dir), "--control", self.socket_path,
                   "--seed", str(self.spec.seed), "--profile", self.spec.profile,
                   "--unit", str(self.spec.unit)]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log,
                                        stdin=subprocess.DEVNULL)
        assert self.process.stdout is not None
        self.path = self._first_line(self.process.stdout, self.spec.start_timeout)
        self._drain = threading.Thread(target=self._copy_rest, args=(self.process.stdout,), daemon=True,
                                       name="meter-sim-stdout")
        self._drain.start()
        self.control = ControlClient(self.socket_path)
        self._wait_for_control(self.spec.start_timeout)
        return self.path

    def _first_line(self, stream: IO[bytes], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RigError(f"meter-sim printed no device path within {timeout:.0f} s "
                                   f"(see {self.log_path})")
                if not selector.select(remaining):
                    continue
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    code = self.process.wait(timeout=5) if self.process else None
                    raise RigError(f"meter-sim exited (code {code}) before printing its device path: "
                                   f"{self._log_tail()}")
                buffer += chunk
        line, _, rest = buffer.partition(b"\n")
        if rest and self._log is not None:
            self._log.write(rest)
        path = line.decode(errors="replace").strip()
        if not path:
            raise RigError(f"meter-sim printed an empty first line (see {self.log_path})")
        return path

    def _copy_rest(self, stream: IO[bytes]) -> None:
        """Keep reading stdout so meter-sim never blocks on a full pipe."""
        try:
            while chunk := os.read(stream.fileno(), 4096):
                if self._log is not None and not self._log.closed:
                    self._log.write(chunk)
        except (OSError, ValueError):
            return

    def _wait_for_control(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.control.status()
                return
            except Exception as exc:  # the socket may not be listening yet
                last = exc
                time.sleep(0.05)
        raise RigError(f"meter-sim control socket {self.socket_path} did not answer: {last}")

    def _log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"

    def close(self) -> None:
        """Ask meter-sim to stop, then terminate and reap it; close the log."""
        if self.control is not None:
            close = getattr(self.control, "close", None)
            if close is not None:
                close()
            self.control = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self._drain is not None:
            self._drain.join(timeout=5)
            self._drain = None
        if self._log is not None:
            self._log.close()
            self._log = None


class PhysicalMeter:
    """A real meter on a serial device; nothing to start, only a port to check."""

    def __init__(self, meter: MeterSpec) -> None:
        self.spec = meter
        self.control = None
        self.path: str | None = None

    def start(self) -> str:
        check_port(self.spec)
        assert self.spec.port is not None
        self.path = self.spec.port
        return self.path

    def close(self) -> None:
        """Nothing to release: the driver or the proxy owns the open port."""
