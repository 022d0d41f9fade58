"""LinkProxy: a cable between two serial ports that can be cut, slowed, made noisy or given wire timing.

Used by the rig and by benches with physical meters: the meter side is a device path or a pyserial URL
(rfc2217://, socket://: a meter behind ser2net, through url_port.UrlPort), the driver side a new pty
(its path is `.path`) or another port.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import serial

from .errors import PortError
from .forwarding import ByteCallback, Forwarder, check_frame_timing
from .ptys import PtyPair
from .url_port import UrlPort, is_url

CUT = "cut"


def open_serial(
    port: str, baudrate: int = 19200, parity: str = "E", stopbits: float = 1, bytesize: int = 8
) -> serial.SerialBase:
    """Open a pyserial URL or path raw and non-blocking; PortError names the port when that fails.

    A pty has no parity and Linux refuses PARENB on one, so a pty is always opened with parity N.
    """
    if is_pty(port):
        parity = "N"
    try:
        handle = serial.serial_for_url(
            port, baudrate=baudrate, parity=parity, stopbits=stopbits, bytesize=bytesize, timeout=0
        )
    except (serial.SerialException, ValueError, OSError) as exc:
        raise PortError(f"cannot open serial port {port!r}: {exc}") from None
    try:
        fd = handle.fileno()
    except (AttributeError, NotImplementedError, OSError, serial.SerialException):
        handle.close()
        raise PortError(
            f"serial port {port!r} has no file descriptor; LinkProxy needs a device or pty"
        ) from None
    os.set_blocking(fd, False)
    return handle


def is_pty(port: str) -> bool:
    """True when port is a pseudo-terminal slave (/dev/pts/N)."""
    return os.path.realpath(port).startswith("/dev/pts/")


class LinkProxy:
    """A cable: bytes flow between `meter_port` and the driver side, through the shared forwarding core."""

    def __init__(
        self,
        meter_port: str,
        driver_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "E",
        stopbits: float = 1,
        bytesize: int = 8,
    ) -> None:
        # A meter behind ser2net (rfc2217://, socket://) reaches the forwarding core through UrlPort.
        self._meter: serial.SerialBase | UrlPort = (
            UrlPort(meter_port, baudrate, parity, stopbits, bytesize) if is_url(meter_port)
            else open_serial(meter_port, baudrate, parity, stopbits, bytesize)
        )
        self._driver_serial: serial.SerialBase | None = None
        self._pty: PtyPair | None = None
        try:
            if driver_port is None:
                self._pty = PtyPair()
                driver_fd, self.path = self._pty.master, self._pty.path
            else:
                self._driver_serial = open_serial(driver_port, baudrate, parity, stopbits, bytesize)
                driver_fd, self.path = self._driver_serial.fileno(), driver_port
        except PortError:
            self._meter.close()
            raise
        self._forwarder = Forwarder(self._meter.fileno(), driver_fd, name=f"LinkProxy({meter_port})")
        self._started = False
        self._closed = False

    def start(self) -> LinkProxy:
        """Start forwarding (idempotent)."""
        if not self._started:
            self._started = True
            self._forwarder.start()
        return self

    def cut(self) -> None:
        """Drop every byte both ways, including bytes in flight."""
        self._forwarder.block(CUT)

    def restore(self) -> None:
        """Reconnect after cut()."""
        self._forwarder.unblock(CUT)

    @property
    def is_cut(self) -> bool:
        """True while the cable is cut."""
        return CUT in self._forwarder.blocked

    def set_delay(self, seconds: float) -> None:
        """Latency added to every chunk, both ways."""
        self._forwarder.set_delay(seconds)

    def set_corruption(self, rate: float, seed: int = 0) -> None:
        """Flip one bit in a byte with probability rate (seeded); 0 turns it off."""
        self._forwarder.set_corruption(rate, seed)

    def set_frame_timing(
        self, baudrate: int | None, bytesize: int = 8, parity: str = "E", stopbits: float = 1,
        character_gaps: bool = False,
    ) -> None:
        """Emulate RS-485 wire timing at baudrate; None forwards as fast as a pty. Frames are apart by
        t3.5: 3.5 characters, or the spec's 1.75 ms above 19200 baud (character_gaps: 3.5 there too)."""
        timing = None if baudrate is None else check_frame_timing(baudrate, bytesize, parity, stopbits,
                                                                  character_gaps)
        self._forwarder.set_frame_timing(timing)

    def on_bytes(self, callback: ByteCallback) -> None:
        """callback(direction, data, monotonic_time) for each chunk delivered ("to_meter"/"to_driver")."""
        self._forwarder.on_bytes(callback)

    @property
    def stats(self) -> dict[str, Any]:
        """Bytes forwarded, dropped and corrupted so far."""
        f = self._forwarder
        return {"forwarded": dict(f.forwarded), "dropped": dict(f.dropped), "corrupted": f.corrupted}

    def close(self) -> None:
        """Stop forwarding and close both sides (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._forwarder.close()
        for handle in (self._meter, self._driver_serial):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        if self._pty is not None:
            self._pty.close()

    def __enter__(self) -> LinkProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
