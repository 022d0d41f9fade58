"""The campaign's cable: a byte forwarder between the driver's pty and meter-sim's pty that fires faults
at exact points in the Modbus RTU traffic.

Why not LinkProxy: a fault "after byte k of the n-th stop command" has to split a frame, which a
callback run after delivery cannot do, and a meter-sim killed and restarted serves a new pty path,
while the driver must keep its own port. This wire keeps the driver's pty for good and re-attaches
to whichever meter-sim pty is current.

Frames are cut out of the stream by their RTU length (the driver sends one request and waits for its
answer), so "the answer to the n-th request of kind K" is the first frame back after that request.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rigs.frames import RequestKind, parse_request, request_length
from simulator.ptys import PtyPair

TO_METER = "to_meter"
TO_DRIVER = "to_driver"

# The request kinds a fault can be attached to (the meter protocol tells them apart): only the command
# path, never the publisher's reads, so the n-th occurrence of a kind does not depend on thread timing.
FRAME_KINDS = ("start", "stop", "clear", "fetch", "ident", "txid", "state", "record")


def answer_length(buffer: bytes) -> int | None:
    """Length of the RTU answer at the start of buffer; None while too short to tell, 0 if unknown."""
    if len(buffer) < 2:
        return None
    fc = buffer[1]
    if fc & 0x80:
        return 5
    if fc in (0x03, 0x04):
        return None if len(buffer) < 3 else 5 + buffer[2]
    if fc in (0x06, 0x10):
        return 8
    return 0


@dataclass(frozen=True)
class Trigger:
    """Where a fault fires: after `cut_after` bytes of the `occurrence`-th request of `kind`
    (phase "request") or of the answer to it (phase "answer")."""

    kind: str
    occurrence: int
    phase: str
    cut_after: int


class FaultWire:
    """Forwards bytes between a pty it owns (the driver's port, `.path`) and the current meter port.

    `arm(trigger, fire)` registers a callback run (on the wire thread, once) at the trigger point, after
    exactly `cut_after` bytes of the frame went through; the wire drops everything from then until
    `release()`. fire() must be quick: it hands the fault to another thread.
    """

    def __init__(self, kind_of: RequestKind) -> None:
        self._kind_of = kind_of  # the meter protocol's own description of its requests
        self._driver = PtyPair()
        self.path = self._driver.path
        self._lock = threading.Lock()
        self._meter_fd: int | None = None
        self._blocked = False
        self._armed: list[tuple[Trigger, Callable[[], None]]] = []
        self._counts: dict[str, int] = {}
        self._pending_answer: str | None = None  # kind of the last request, while its answer is due
        self._pending_occurrence = 0
        self._buffers = {TO_METER: b"", TO_DRIVER: b""}
        self.frames = {TO_METER: 0, TO_DRIVER: 0}
        self.dropped = 0
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="campaign-wire", daemon=True)
        self._thread.start()

    # ---- control (any thread) -------------------------------------------------------------------------
    def attach(self, meter_path: str) -> None:
        """Connect to a meter's pty (after a meter-sim start or restart)."""
        fd = os.open(meter_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        with self._lock:
            old, self._meter_fd = self._meter_fd, fd
            self._buffers = {TO_METER: b"", TO_DRIVER: b""}
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old)
        self._wake()

    def detach(self) -> None:
        """Forget the meter port (its process is gone)."""
        with self._lock:
            old, self._meter_fd = self._meter_fd, None
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old)
        self._wake()

    def arm(self, trigger: Trigger, fire: Callable[[], None]) -> None:
        """Fire once at trigger (counting from now on)."""
        with self._lock:
            self._armed.append((trigger, fire))

    def disarm_all(self) -> list[Trigger]:
        """Remove every trigger that has not fired; returns them."""
        with self._lock:
            left, self._armed = [t for t, _ in self._armed], []
        return left

    def reset_counts(self) -> None:
        """Start counting occurrences from zero (a new schedule)."""
        with self._lock:
            self._counts = {}
            self._pending_answer = None

    def block(self) -> None:
        """Drop every byte both ways until release()."""
        with self._lock:
            self._blocked = True
            self._buffers = {TO_METER: b"", TO_DRIVER: b""}

    def release(self) -> None:
        """Forward again after a fault."""
        with self._lock:
            self._blocked = False
            self._buffers = {TO_METER: b"", TO_DRIVER: b""}

    @property
    def blocked(self) -> bool:
        """True while a fault holds the wire."""
        with self._lock:
            return self._blocked

    def close(self) -> None:
        """Stop the thread and close every descriptor (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake()
        self._thread.join(timeout=5)
        self.detach()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._driver.close()

    def __enter__(self) -> FaultWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # ---- the thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                meter_fd = self._meter_fd
            fds = [self._driver.master, self._wake_r] + ([meter_fd] if meter_fd is not None else [])
            try:
                readable, _, _ = select.select(fds, [], [], 1.0)
            except (OSError, ValueError):
                continue  # the meter fd was closed under us by detach(); take the new one
            for fd in readable:
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    if fd == meter_fd:
                        self._forget_meter(meter_fd)
                    continue
                if not data:
                    continue
                if fd == self._driver.master:
                    self._take(TO_METER, data)
                elif fd == meter_fd:
                    self._take(TO_DRIVER, data)

    def _forget_meter(self, fd: int) -> None:
        """The meter pty went away (meter-sim was killed): stop polling it until attach()."""
        with self._lock:
            if self._meter_fd == fd:
                self._meter_fd = None
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _take(self, direction: str, data: bytes) -> None:
        """Add bytes to the direction's buffer and pass on every whole frame (or garbage) in it."""
        with self._lock:
            if self._blocked:
                self.dropped += len(data)
                return
            buffer = self._buffers[direction] + data
        measure = request_length if direction == TO_METER else answer_length
        while buffer:
            length = measure(buffer)
            if length is None:
                break  # wait for the rest of the frame
            if length == 0:
                length = len(buffer)  # not a frame we know: pass it on as it is
            if length > len(buffer):
                break
            frame, buffer = buffer[:length], buffer[length:]
            if not self._pass_frame(direction, frame):
                buffer = b""
                break
        with self._lock:
            if not self._blocked:
                self._buffers[direction] = buffer

    def _pass_frame(self, direction: str, frame: bytes) -> bool:
        """Forward one frame, firing a trigger inside it if one is due; False once the wire is blocked."""
        fire: Callable[[], None] | None = None
        cut = len(frame)
        with self._lock:
            if self._blocked:
                return False
            if direction == TO_METER:
                parsed = parse_request(frame)
                kind = None if parsed is None else self._kind_of(*parsed)
                occurrence = 0
                if kind is not None:
                    occurrence = self._counts[kind] = self._counts.get(kind, 0) + 1
                self._pending_answer, self._pending_occurrence = kind, occurrence
                phase = "request"
            else:
                kind, occurrence = self._pending_answer, self._pending_occurrence
                self._pending_answer = None
                phase = "answer"
            for entry in self._armed:
                trigger, callback = entry
                if (trigger.kind, trigger.occurrence, trigger.phase) == (kind, occurrence, phase):
                    self._armed.remove(entry)
                    fire, cut = callback, min(trigger.cut_after, len(frame))
                    break
            out_fd = self._meter_fd if direction == TO_METER else self._driver.master
        if out_fd is not None and cut > 0:
            with contextlib.suppress(OSError):
                os.write(out_fd, frame[:cut])
        self.frames[direction] += 1
        if fire is None:
            return True
        self.block()
        fire()
        return False
