"""meter-sim's RS-485 transceiver without a thread: the server reads and writes the pty master itself.

With --pty, meter-sim used to serve a pty of its own and copy every byte through a Forwarder thread to the
pty the driver opens: two extra pty writes and a thread hand-over per frame, for faults nobody may ask for.
Here pymodbus opens the driver pty's master through a pyserial URL (meterpty://FD), and the transceiver
applies on the way in and out what the bridge applied: every byte dropped both ways while a reason blocks
it ("power", "link"), one bit flipped at a seeded rate. Frame timing and latency stay LinkProxy's (a proxy
between driver and meter-sim) and the campaign's wire (meter-sim --port).
"""

from __future__ import annotations

import os
import random
import threading

import serial
from serial.serialposix import Serial as PosixSerial

from .forwarding import TO_DRIVER, TO_METER

SCHEME = "meterpty"
_BY_FD: dict[int, Transceiver] = {}
_lock = threading.Lock()
if "simulator" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("simulator")  # finds simulator/protocol_meterpty.py


class Transceiver:
    """Block reasons and corruption for the pty master `fd`; `url` is what the server opens."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.url = f"{SCHEME}://{fd}"
        self._lock = threading.Lock()
        self._blocked: set[str] = set()
        self._corruption = 0.0
        self._rng = random.Random(0)
        self.dropped = {TO_METER: 0, TO_DRIVER: 0}
        self.forwarded = {TO_METER: 0, TO_DRIVER: 0}
        self.corrupted = 0
        with _lock:
            _BY_FD[fd] = self

    # ---- the interface MeterSim uses of its bridge ----------------------------------------------------
    def block(self, reason: str) -> None:
        """Drop every byte both ways until unblock(reason) (reasons stack)."""
        with self._lock:
            self._blocked.add(reason)

    def unblock(self, reason: str) -> None:
        """Lift one reason for dropping bytes."""
        with self._lock:
            self._blocked.discard(reason)

    @property
    def blocked(self) -> frozenset[str]:
        """The reasons bytes are being dropped now."""
        with self._lock:
            return frozenset(self._blocked)

    def set_corruption(self, rate: float, seed: int = 0) -> None:
        """Flip one random bit in a byte with probability `rate` (0 turns it off); seeded."""
        if not 0 <= rate <= 1:
            raise ValueError(f"corruption rate must be between 0 and 1, not {rate!r}")
        with self._lock:
            self._corruption = float(rate)
            self._rng = random.Random(seed)

    def start(self) -> None:
        """Nothing to start (no thread): kept so the bridge and the transceiver are used alike."""

    def close(self) -> None:
        """Forget the fd (the pty belongs to the caller)."""
        with _lock:
            if _BY_FD.get(self.fd) is self:
                del _BY_FD[self.fd]

    # ---- on the way -----------------------------------------------------------------------------------
    def passing(self, direction: str, data: bytes) -> bytes:
        """What of `data` crosses the transceiver now: nothing while blocked, else the bytes corrupted."""
        if not data:
            return data
        with self._lock:
            if self._blocked:
                self.dropped[direction] += len(data)
                return b""
            if self._corruption > 0:
                out = bytearray(data)
                for i in range(len(out)):
                    if self._rng.random() < self._corruption:
                        out[i] ^= 1 << self._rng.randrange(8)
                        self.corrupted += 1
                data = bytes(out)
            self.forwarded[direction] += len(data)
        return data

    def lost(self, direction: str, count: int) -> None:
        """Bytes that crossed but found no room at the far end."""
        with self._lock:
            self.forwarded[direction] -= count
            self.dropped[direction] += count


def transceiver_for(url: str) -> Transceiver:
    """The transceiver a meterpty:// URL names; SerialException for an unknown one."""
    try:
        fd = int(url.split("://", 1)[1])
        with _lock:
            return _BY_FD[fd]
    except (IndexError, ValueError, KeyError):
        raise serial.SerialException(f"{url}: no meter-sim transceiver on that descriptor") from None


class Serial(PosixSerial):
    """pyserial's port on a pty master meter-sim owns: no termios (the driver's side is raw), reads and
    writes straight on a duplicate of the fd, through the transceiver."""

    def open(self) -> None:
        """Take a duplicate of the transceiver's fd (closing the port leaves the pty to its owner)."""
        if self.is_open:
            raise serial.SerialException("Port is already open.")
        self._transceiver = transceiver_for(str(self.portstr))
        self.fd = os.dup(self._transceiver.fd)
        os.set_blocking(self.fd, False)
        self.pipe_abort_read_r, self.pipe_abort_read_w = os.pipe()
        self.pipe_abort_write_r, self.pipe_abort_write_w = os.pipe()
        self.is_open = True

    def from_url(self, url: str) -> str:
        """The URL itself is the port name."""
        return url

    def _reconfigure_port(self, force_update: bool = False) -> None:
        """A pty master has no line settings of its own."""

    def read(self, size: int = 1) -> bytes:
        """What is there (up to size, never waiting), after the transceiver."""
        try:
            data = os.read(self.fd, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise serial.SerialException(f"read failed: {exc}") from None
        return self._transceiver.passing(TO_METER, data)

    def write(self, data: bytes) -> int:
        """Write what crosses the transceiver. The whole chunk counts as written: bytes the far end has no
        room for are lost, as on a wire (and as the bridge lost them), rather than retried for ever."""
        out = self._transceiver.passing(TO_DRIVER, bytes(data))
        if out:
            try:
                written = os.write(self.fd, out)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                raise serial.SerialException(f"write failed: {exc}") from None
            if written < len(out):
                self._transceiver.lost(TO_DRIVER, len(out) - written)
        return len(data)
