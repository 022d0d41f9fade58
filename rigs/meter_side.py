"""The meter end of a rig: a meter-sim subprocess on a pty, or a physical meter's serial device.

Either way the result is a device path the driver (or the link proxy) opens; the rest of the rig
does not care which it is. The simulated meter also gives a ControlClient: fault control and
ground truth from the meter side.
"""

from __future__ import annotations

import os
from pathlib import Path

from rigs.errors import RigError, RigPortError
from rigs.spec import MeterSpec
from simulator import ControlClient, LaunchError, MeterSimProcess


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


class SimulatedMeter:
    """A meter-sim subprocess serving a pty, with its state dir and control socket in `workdir`."""

    def __init__(self, meter: MeterSpec, workdir: Path) -> None:
        self.spec = meter
        self.workdir = workdir
        self._process = MeterSimProcess(workdir, speed=meter.speed, seed=meter.seed, profile=meter.profile,
                                        unit=meter.unit, start_timeout=meter.start_timeout)
        self.log_path = self._process.log_path
        self.control: ControlClient | None = None
        self.path: str | None = None

    def start(self) -> str:
        """Start meter-sim; return the driver-side device path it prints as its first stdout line."""
        try:
            self.path = self._process.start()
        except LaunchError as exc:
            raise RigError(str(exc)) from None
        self.control = self._process.control
        return self.path

    def close(self) -> None:
        """Stop meter-sim (SIGTERM, then SIGKILL if it hangs) and close its log."""
        self._process.close()
        self.control = None


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
