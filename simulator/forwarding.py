"""The forwarding core shared by meter-sim's RS-485 transceiver bridge and LinkProxy.

A thread copies bytes both ways between two file descriptors with poll() (no sleeps). On the way it can
drop everything (a cut cable, a meter without power), flip bits at a seeded rate, add latency, and hold a
frame back until its bytes would have crossed a real RS-485 wire (half duplex, frames apart by t3.5:
3.5 characters, the spec's 1.75 ms above 19200 baud).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import random
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

TO_METER = "to_meter"
TO_DRIVER = "to_driver"
ByteCallback = Callable[[str, bytes, float], None]
SPIN_S = 0.0005
"""The last stretch before a due frame is waited in a yielding loop rather than a sleep (see _until)."""
DeliveryHook = Callable[[str, bytes], bytes]
"""hook(direction, data) -> the bytes to deliver instead (a prefix, nothing, or bytes held back before)."""


@dataclass(frozen=True)
class FrameTiming:
    """Serial line settings that give each character its time on the wire."""

    baudrate: int
    bytesize: int = 8
    parity: str = "E"
    stopbits: float = 1

    character_gaps: bool = False  # 3.5 characters between frames at every speed, not the spec's 1.75 ms

    @property
    def char_s(self) -> float:
        """Seconds one character takes: start bit, data bits, parity bit, stop bits."""
        return (1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits) / self.baudrate

    @property
    def gap_s(self) -> float:
        """The silence between frames (t3.5): 3.5 characters up to 19200 baud; above it the fixed 1.75 ms
        that Modbus over Serial Line v1.02 (2.5.1.1) gives, unless `character_gaps` asks for 3.5
        characters there too (a stricter wire than the spec's)."""
        return frame_gap_s(self.baudrate, self.char_s, self.character_gaps)


SPEC_GAP_ABOVE_19200_S = 0.00175


def frame_gap_s(baudrate: int, char_s: float, character_gaps: bool = False) -> float:
    """t3.5 at `baudrate` (see FrameTiming.gap_s)."""
    if baudrate > 19200 and not character_gaps:
        return SPEC_GAP_ABOVE_19200_S
    return 3.5 * char_s


def check_frame_timing(baudrate: int, bytesize: int, parity: str, stopbits: float,
                       character_gaps: bool = False) -> FrameTiming:
    """A FrameTiming, or ValueError naming the bad setting."""
    if not isinstance(baudrate, int) or baudrate <= 0:
        raise ValueError(f"baudrate must be a positive integer, not {baudrate!r}")
    if bytesize not in (5, 6, 7, 8):
        raise ValueError(f"bytesize must be 5..8, not {bytesize!r}")
    if parity not in ("N", "E", "O"):
        raise ValueError(f"parity must be 'N', 'E' or 'O', not {parity!r}")
    if stopbits not in (1, 1.5, 2):
        raise ValueError(f"stopbits must be 1, 1.5 or 2, not {stopbits!r}")
    return FrameTiming(baudrate, bytesize, parity, stopbits, character_gaps)


class Forwarder:
    """Copies bytes between `meter_fd` and `driver_fd` in a background thread."""

    def __init__(self, meter_fd: int, driver_fd: int, name: str = "forwarder") -> None:
        self._fds = {TO_DRIVER: (meter_fd, driver_fd), TO_METER: (driver_fd, meter_fd)}
        self._lock = threading.Lock()
        self._blocked: set[str] = set()
        self._delay_s = 0.0
        self._corruption = 0.0
        self._rng = random.Random(0)
        self._timing: FrameTiming | None = None
        self._callbacks: list[ByteCallback] = []
        self._hook: DeliveryHook | None = None
        self._queue: list[tuple[float, int, str, bytes]] = []
        self._seq = itertools.count()
        self._wire_free = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.dropped = {TO_METER: 0, TO_DRIVER: 0}
        self.forwarded = {TO_METER: 0, TO_DRIVER: 0}
        self.corrupted = 0

    # ---- configuration (any thread) -------------------------------------------------------------------
    def block(self, reason: str) -> None:
        """Drop every byte both ways until unblock(reason) (reasons stack: "cut", "power", ...)."""
        with self._lock:
            self._blocked.add(reason)
        self._wake()

    def unblock(self, reason: str) -> None:
        """Lift one reason for dropping bytes."""
        with self._lock:
            self._blocked.discard(reason)
        self._wake()

    @property
    def blocked(self) -> frozenset[str]:
        """The reasons bytes are being dropped now."""
        with self._lock:
            return frozenset(self._blocked)

    def set_delay(self, seconds: float) -> None:
        """Latency added to every chunk, both ways."""
        if not seconds >= 0:
            raise ValueError(f"delay must be >= 0 seconds, not {seconds!r}")
        with self._lock:
            self._delay_s = float(seconds)
        self._wake()

    def set_corruption(self, rate: float, seed: int = 0) -> None:
        """Flip one random bit in a byte with probability `rate` (0 turns it off); seeded."""
        if not 0 <= rate <= 1:
            raise ValueError(f"corruption rate must be between 0 and 1, not {rate!r}")
        with self._lock:
            self._corruption = float(rate)
            self._rng = random.Random(seed)

    def set_frame_timing(self, timing: FrameTiming | None) -> None:
        """Emulate wire timing (None: as fast as a pty)."""
        with self._lock:
            self._timing = timing
        self._wake()

    def on_bytes(self, callback: ByteCallback) -> None:
        """Call callback(direction, data, monotonic_time) for every chunk delivered; the time is when the
        chunk finished crossing the (emulated) wire, so a wire log shows wire timing even under load."""
        with self._lock:
            self._callbacks.append(callback)

    def before_delivery(self, hook: DeliveryHook | None) -> None:
        """Run hook(direction, data) on the forwarding thread just before a chunk is written; it returns
        the bytes to write instead. A fault campaign cuts a frame after byte k with it, and blocks the
        forwarder from inside the hook (what it returned is still written, nothing after). None removes it."""
        with self._lock:
            self._hook = hook

    # ---- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the forwarding thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and release the wake pipe (the fds belong to the caller)."""
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # ---- the thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        poller = select.poll()
        sources = {self._fds[TO_DRIVER][0]: TO_DRIVER, self._fds[TO_METER][0]: TO_METER}
        for fd in sources:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            timeout_ms = None
            if self._queue:
                due = self._queue[0][0]
                remaining = due - time.monotonic()
                if remaining > SPIN_S + 0.001:
                    timeout_ms = int((remaining - SPIN_S) * 1000)  # rounded down: wake early, never late
                else:
                    self._until(due, remaining)
                    timeout_ms = 0
            for fd, events in poller.poll(timeout_ms):
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                elif events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    if not self._receive(fd, sources[fd]):
                        poller.unregister(fd)
            self._deliver_due()

    @staticmethod
    def _until(due: float, remaining: float) -> None:
        """Be at `due` on time: sleep to SPIN_S before it (a sleep wakes up to a few tenths of a ms late),
        then yield the CPU in a loop until it (a frame at 115200 baud is due to the tenth of a ms)."""
        if remaining > SPIN_S:
            time.sleep(remaining - SPIN_S)
        while time.monotonic() < due:
            time.sleep(0)  # releases the GIL and the CPU at each turn

    def _receive(self, fd: int, direction: str) -> bool:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return True
        except OSError:
            return False  # the port went away; stop polling it
        if not data:
            return False
        now = time.monotonic()
        with self._lock:
            if self._blocked:
                self.dropped[direction] += len(data)
                return True
            data = self._corrupt(data)
            due = now
            if self._timing is not None:
                gap = self._timing.gap_s
                start = max(now, self._wire_free + gap) if self._wire_free else now
                due = start + len(data) * self._timing.char_s
                self._wire_free = due
            due += self._delay_s
        heapq.heappush(self._queue, (due, next(self._seq), direction, data))
        return True

    def _corrupt(self, data: bytes) -> bytes:
        if self._corruption <= 0:
            return data
        out = bytearray(data)
        for i in range(len(out)):
            if self._rng.random() < self._corruption:
                out[i] ^= 1 << self._rng.randrange(8)
                self.corrupted += 1
        return bytes(out)

    def _deliver_due(self) -> None:
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            due, _, direction, data = heapq.heappop(self._queue)
            with self._lock:
                blocked = bool(self._blocked)
                callbacks = list(self._callbacks)
                hook = self._hook
            if blocked:
                self.dropped[direction] += len(data)
                continue
            if hook is not None:
                data = hook(direction, data)
                if not data:
                    continue
            written = self._write(self._fds[direction][1], data)
            self.forwarded[direction] += written
            self.dropped[direction] += len(data) - written
            if written:
                for callback in callbacks:  # stamped with the emulated wire time, not the thread's lateness
                    with contextlib.suppress(Exception):  # a broken wire log must not stop the wire
                        callback(direction, data[:written], due)

    @staticmethod
    def _write(fd: int, data: bytes) -> int:
        try:
            return os.write(fd, data)
        except OSError:
            return 0  # nobody reads the far end, or it went away: the bytes are lost, as on a wire
