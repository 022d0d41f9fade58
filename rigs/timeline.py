"""A scenario's timeline: what happened when, as the rig and EvseManager saw it.

Four kinds of event, each stamped with time.monotonic() when it happened:

- ``reading``: a Powermeter the driver published (power total in W, energy import total in Wh);
- ``command``: a call EvseManager made (start/stop, the transaction id, the answer's status);
- ``fault``: something the rig did to the meter, the link or the driver (power off/on, link cut/restored,
  noise, phase order, load, driver stopped/started);
- ``error``: an error the driver raised or cleared (its type and message).

The Rig owns one Timeline and hands it to every EvseManager it builds; the conformance report stores it
with the scenario's result (summary.json, `to_json` with the scenario's start as origin). Appending is
thread-safe: readings and errors arrive on the driver's thread, faults on the proxy's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

KINDS = ("reading", "command", "fault", "error")
MAX_READINGS = 5000
"""Readings kept a scenario (at 4 a second, 20 minutes); later ones are counted, not kept."""


@dataclass(frozen=True)
class Event:
    """One entry: when (monotonic seconds), what kind, and its fields."""

    at: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _status(response: Any) -> str:
    status = getattr(response, "status", None)
    return str(getattr(status, "value", status))


class Timeline:
    """Events of one scenario, in the order they were recorded."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.origin: float = clock()
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self.readings_dropped = 0
        self._reading_count = 0

    def now(self) -> float:
        return float(self._clock())

    def add(self, kind: str, at: float | None = None, **data: Any) -> None:
        """Append an event of `kind` (one of KINDS) at `at` (monotonic; now when None)."""
        if kind not in KINDS:
            raise ValueError(f"timeline event kind {kind!r}: not one of {', '.join(KINDS)}")
        stamp = self.now() if at is None else float(at)
        with self._lock:
            if kind == "reading":
                if self._reading_count >= MAX_READINGS:
                    self.readings_dropped += 1
                    return
                self._reading_count += 1
            self._events.append(Event(stamp, kind, data))

    # --- what the rig and EvseManager record ------------------------------------------------------

    def reading(self, powermeter: Any, at: float | None = None) -> None:
        """A published Powermeter: its power total (W) and energy import total (Wh)."""
        power = getattr(getattr(powermeter, "power_W", None), "total", None)
        energy = getattr(getattr(powermeter, "energy_Wh_import", None), "total", None)
        self.add("reading", at, power_w=_number(power), energy_wh=_number(energy))

    def command(self, name: str, transaction_id: str, response: Any, started: float,
                reason: str = "") -> None:
        """A call EvseManager made (`name` start or stop), begun at `started`, and the answer's status."""
        fields: dict[str, Any] = {"name": name, "transaction_id": transaction_id,
                                  "status": _status(response), "duration_s": round(self.now() - started, 6)}
        error = getattr(response, "error", None)
        if error:
            fields["error"] = str(error)
        if reason:
            fields["reason"] = reason
        self.add("command", started, **fields)

    def fault(self, name: str, **detail: Any) -> None:
        """Something the rig injected: power_off, link_down, link_noise (rate=...), load (power_w=...)."""
        self.add("fault", None, name=name, **detail)

    def error(self, event: Any, at: float | None = None) -> None:
        """An error the driver raised or cleared (an ErrorEvent: type, raised, message)."""
        kind = getattr(event, "type", "?")
        self.add("error", at, type=str(getattr(kind, "value", kind)),
                 raised=bool(getattr(event, "raised", True)),
                 message=str(getattr(event, "message", "") or ""))

    # --- reading it back -------------------------------------------------------------------------

    def events(self) -> list[Event]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.at)

    def to_json(self, origin: float | None = None) -> dict[str, Any]:
        """The events with `t` in seconds since `origin` (monotonic; the timeline's creation when None),
        each kind in a list of its own, for summary.json."""
        zero = self.origin if origin is None else origin
        out: dict[str, Any] = {kind + "s": [] for kind in KINDS}
        for event in self.events():
            out[event.kind + "s"].append({"t": round(event.at - zero, 4), **event.data})
        out["readings_dropped"] = self.readings_dropped
        return out
