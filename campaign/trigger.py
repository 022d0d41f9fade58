"""Where a fault fires: after byte k of the n-th request of a kind, or of its answer.

`Triggers` is a before-delivery hook of the simulator's Forwarder (simulator/forwarding.py): it sees
every chunk just before it is written, cuts the stream into Modbus RTU frames by their length (the
driver sends one request and waits for its answer, so "the answer to the n-th request of kind K" is the
first frame back after it), names each request's kind with the meter protocol's own description of its
requests (driver/protocol.py `requests`), and at an armed point lets exactly `cut_after` bytes of the
frame through, then hands the fault over and has the wire blocked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from rigs.frames import RequestKind, parse_request, request_length
from simulator.forwarding import TO_DRIVER, TO_METER

# The request kinds a fault can be attached to (the meter protocol tells them apart): only the command
# path, never the publisher's reads, so the n-th occurrence of a kind does not depend on thread timing.
FRAME_KINDS = ("start", "stop", "clear", "fetch", "ident", "txid", "state", "record")
PHASES = ("request", "answer")


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


class Triggers:
    """Armed triggers and the frame bookkeeping; call it as a Forwarder's before-delivery hook.

    `arm(trigger, fire)`: fire() runs once, on the forwarding thread, after exactly `cut_after` bytes of
    the frame went through; then `on_cut()` blocks the wire until the fault is healed and `reset()` is
    called. fire() must be quick: it hands the fault to another thread.
    """

    def __init__(self, kind_of: RequestKind, on_cut: Callable[[], None]) -> None:
        self._kind_of = kind_of
        self._on_cut = on_cut
        self._lock = threading.Lock()
        self._armed: list[tuple[Trigger, Callable[[], None]]] = []
        self._counts: dict[str, int] = {}
        self._pending: tuple[str | None, int] = (None, 0)  # the last request's kind, while its answer is due
        self._buffers = {TO_METER: b"", TO_DRIVER: b""}
        self._cut = False
        self.frames = {TO_METER: 0, TO_DRIVER: 0}

    def arm(self, trigger: Trigger, fire: Callable[[], None]) -> None:
        """Fire once at trigger (counting from the last reset_counts())."""
        with self._lock:
            self._armed.append((trigger, fire))

    def disarm_all(self) -> list[Trigger]:
        """Remove every trigger that has not fired; returns them."""
        with self._lock:
            left, self._armed = [t for t, _ in self._armed], []
        return left

    def reset_counts(self) -> None:
        """Count occurrences from zero again (a new schedule)."""
        with self._lock:
            self._counts = {}
            self._pending = (None, 0)

    def reset(self) -> None:
        """Forget partial frames (the wire was cut and is whole again)."""
        with self._lock:
            self._buffers = {TO_METER: b"", TO_DRIVER: b""}
            self._cut = False

    def __call__(self, direction: str, data: bytes) -> bytes:
        """The hook: the whole frames (or unknown bytes) to deliver now; a partial frame waits."""
        fire: Callable[[], None] | None = None
        out = b""
        with self._lock:
            if self._cut:
                return b""
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
                self.frames[direction] += 1
                fire, cut = self._match(direction, frame)
                out += frame[:cut]
                if fire is not None:
                    self._cut, buffer = True, b""
                    break
            self._buffers[direction] = buffer
        if fire is not None:
            self._on_cut()  # blocks the forwarder: `out` is still written, nothing after it
            fire()
        return out

    def _match(self, direction: str, frame: bytes) -> tuple[Callable[[], None] | None, int]:
        """The trigger due at this frame, if any, and how many of its bytes get through."""
        if direction == TO_METER:
            parsed = parse_request(frame)
            kind = None if parsed is None else self._kind_of(*parsed)
            occurrence = 0
            if kind is not None:
                occurrence = self._counts[kind] = self._counts.get(kind, 0) + 1
            self._pending = (kind, occurrence)
            phase = "request"
        else:
            (kind, occurrence), self._pending = self._pending, (None, 0)
            phase = "answer"
        for entry in self._armed:
            trigger, callback = entry
            if (trigger.kind, trigger.occurrence, trigger.phase) == (kind, occurrence, phase):
                self._armed.remove(entry)
                return callback, min(trigger.cut_after, len(frame))
        return None, len(frame)
