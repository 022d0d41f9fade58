"""Campaign schedules: charging sessions plus faults fired at exact points of the Modbus traffic.

A schedule is data (JSON) so that a failing one can be printed, saved and replayed as a test. Schedules
are generated from a seed alone: schedule i of a campaign with seed S is generate(S, i), whatever else ran
(and, when given, the request kinds the meter's protocol has, so no fault is aimed at a kind it never sends).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from campaign.trigger import FRAME_KINDS, PHASES, Trigger
from rigs.errors import RigError

FAULT_KINDS = ("link", "power", "kill", "system")
"""link: the cable is cut; power: meter-sim's power switch; kill: SIGKILL of meter-sim and a restart on
its state dir (power lost at an arbitrary instant of the process); system: the whole charger loses power
(meter-sim killed, the driver instance abandoned, a new one boots with EvseManager's stop(last id),
then stop(""))."""

CHARGE = "charge"
"""A trigger kind of its own: while the n-th session charges (at half its energy), no command running;
with fail_on_powermeter_errors the CommunicationFault it causes makes EvseManager stop the session."""
TRIGGER_KINDS = (*FRAME_KINDS, CHARGE)
POWER_LOSSES = ("power", "kill", "system")
"""The fault kinds after which the meter boots (its power was lost)."""
MAX_SESSIONS = 4
MAX_DURATION_S = 3.0
FAULT_SECONDS = (0.05, 0.8, 0.3)
"""How long faults last (wall s) unless told: the shortest, the longest link cut, the longest power loss.
Drawn uniformly, so a fault may heal within the driver's repeats or outlast them."""
# Typical request and answer lengths of each kind on the wire, to pick a byte inside the frame (the wire
# clamps cut_after to the frame's real length: a longer value lets the whole frame through).
_REQUEST_BYTES = {
    "start": 8,
    "stop": 8,
    "clear": 8,
    "fetch": 8,
    "ident": 249,
    "txid": 49,
    "state": 8,
    "record": 8,
}
_ANSWER_BYTES = {
    "start": 8,
    "stop": 8,
    "clear": 8,
    "fetch": 8,
    "ident": 8,
    "txid": 8,
    "state": 63,
    "record": 255,
}
# Where faults are aimed: the command path, weighted towards stop and the read-back of the record.
_KIND_WEIGHTS = {
    "start": 3,
    "stop": 4,
    "ident": 1,
    "txid": 2,
    "state": 2,
    "record": 3,
    "clear": 1,
    "fetch": 1,
    CHARGE: 2,
}
_FAULT_WEIGHTS = {"link": 4, "power": 3, "kill": 2, "system": 2}


class ScheduleError(RigError, ValueError):
    """A schedule file or JSON object is malformed; the message names the field."""


@dataclass(frozen=True)
class SessionPlan:
    """One charging session: the load while it runs, the energy charged before the stop (0.1 Wh units)."""

    power_w: float
    charge_register: int


@dataclass(frozen=True)
class FaultPlan:
    """One fault: what fails, where in the traffic, and for how long (wall seconds)."""

    kind: str
    trigger: Trigger
    duration_s: float


@dataclass(frozen=True)
class Schedule:
    """Sessions run one after the other, with faults armed for the whole schedule."""

    seed: int
    index: int
    sessions: tuple[SessionPlan, ...]
    faults: tuple[FaultPlan, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (replay with from_json)."""
        return asdict(self)

    def describe_faults(self) -> str:
        """The faults in one line, for a failure message."""
        return "; ".join(
            f"{f.kind} {f.duration_s:g} s at {f.trigger.kind} #{f.trigger.occurrence} "
            + ("(while charging)" if f.trigger.kind == CHARGE
               else f"{f.trigger.phase} after byte {f.trigger.cut_after}")
            for f in self.faults
        ) or "no faults"

    def dumps(self) -> str:
        """One line of JSON."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        """Check every field; ScheduleError names the first wrong one."""
        obj = _mapping(data, "schedule", {"seed", "index", "sessions", "faults"})
        seed = _int(obj, "seed", "schedule", 0, 2**63)
        index = _int(obj, "index", "schedule", 0, 2**31)
        sessions = _list(obj, "sessions", "schedule", 1, MAX_SESSIONS)
        faults = _list(obj, "faults", "schedule", 0, 16)
        plans = []
        for i, raw in enumerate(sessions):
            where = f"sessions[{i}]"
            s = _mapping(raw, where, {"power_w", "charge_register"})
            plans.append(
                SessionPlan(
                    _number(s, "power_w", where, 0, 50_000), _int(s, "charge_register", where, 0, 1_000_000)
                )
            )
        fault_plans = []
        for i, raw in enumerate(faults):
            where = f"faults[{i}]"
            f = _mapping(raw, where, {"kind", "trigger", "duration_s"})
            kind = _choice(f, "kind", where, FAULT_KINDS)
            t = _mapping(f.get("trigger"), f"{where}.trigger", {"kind", "occurrence", "phase", "cut_after"})
            trigger = Trigger(
                _choice(t, "kind", f"{where}.trigger", TRIGGER_KINDS),
                _int(t, "occurrence", f"{where}.trigger", 1, 1000),
                _choice(t, "phase", f"{where}.trigger", PHASES),
                _int(t, "cut_after", f"{where}.trigger", 0, 1000),
            )
            fault_plans.append(FaultPlan(kind, trigger, _number(f, "duration_s", where, 0, MAX_DURATION_S)))
        return cls(seed, index, tuple(plans), tuple(fault_plans))

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        """Read a schedule file (the JSON a failing campaign prints)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScheduleError(f"{path}: cannot read the schedule: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScheduleError(f"{path}: not JSON: {exc}") from None
        if isinstance(data, dict) and "schedule" in data:
            data = data["schedule"]  # a failure report: the schedule is inside
        try:
            return cls.from_json(data)
        except ScheduleError as exc:
            raise ScheduleError(f"{path}: {exc}") from None


def generate(seed: int, index: int, kinds: tuple[str, ...] | None = None,
             fault_seconds: tuple[float, float, float] = FAULT_SECONDS) -> Schedule:
    """Schedule `index` of the campaign with `seed`: 1-3 sessions, 1-3 faults at random points of the
    request kinds `kinds` (default: every kind; a model's protocol has fewer, e.g. the Iskra no txid).
    `fault_seconds` (shortest, longest link cut, longest power loss) scales only the durations: the same
    seed and index give the same sessions and fault points whatever it is."""
    shortest, longest_link, longest_power = fault_seconds
    weights = {k: w for k, w in _KIND_WEIGHTS.items() if kinds is None or k in kinds or k == CHARGE}
    if kinds is not None and not set(kinds) & set(FRAME_KINDS):
        raise ScheduleError(f"no fault point among the request kinds {kinds!r} (known: {FRAME_KINDS})")
    rng = random.Random(f"meter-hil-campaign:{seed}:{index}")
    sessions = tuple(
        SessionPlan(power_w=float(rng.choice((11_000, 22_000, 44_000))), charge_register=rng.randint(1, 200))
        for _ in range(rng.randint(1, 3))
    )
    faults = []
    for _ in range(rng.randint(1, 3)):
        fault = rng.choices(list(_FAULT_WEIGHTS), weights=list(_FAULT_WEIGHTS.values()))[0]
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        phase = rng.choice(PHASES)
        if kind == CHARGE:
            phase, cut_after = "request", 0
        elif phase == "request":
            # a whole request delivered and the fault at once would race the meter; stop one byte short
            cut_after = rng.randrange(_REQUEST_BYTES[kind])
            if fault in ("kill", "system") and rng.random() < 0.3:
                # the whole request, then SIGKILL while the meter works on it (maybe mid-NVRAM write):
                # a real power loss at an arbitrary instant; which side of the write it lands on is luck
                cut_after = _REQUEST_BYTES[kind]
        else:
            cut_after = rng.randint(0, _ANSWER_BYTES[kind])
        most = len(sessions) * (3 if kind == "record" else 1)
        occurrence = rng.randint(1, max(1, most))
        duration = round(rng.uniform(shortest, longest_link if fault == "link" else longest_power), 3)
        faults.append(FaultPlan(fault, Trigger(kind, occurrence, phase, cut_after), duration))
    return Schedule(seed, index, sessions, tuple(faults))


# ---- checking JSON ------------------------------------------------------------------------------------
def _mapping(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScheduleError(f"{where}: expected a JSON object, got {type(value).__name__}")
    extra = set(value) - allowed
    if extra:
        raise ScheduleError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
    missing = allowed - set(value)
    if missing:
        raise ScheduleError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
    return value


def _int(obj: dict[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScheduleError(f"{where}.{key}: expected an integer in {low}..{high}, got {value!r}")
    return value


def _number(obj: dict[str, Any], key: str, where: str, low: float, high: float) -> float:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ScheduleError(f"{where}.{key}: expected a number in {low:g}..{high:g}, got {value!r}")
    return float(value)


def _list(obj: dict[str, Any], key: str, where: str, low: int, high: int) -> list[Any]:
    value = obj[key]
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise ScheduleError(f"{where}.{key}: expected a list of {low}..{high} entries, got {value!r}")
    return value


def _choice(obj: dict[str, Any], key: str, where: str, choices: tuple[str, ...]) -> str:
    value = obj.get(key)
    if value not in choices:
        raise ScheduleError(f"{where}.{key}: expected one of {', '.join(choices)}, got {value!r}")
    return str(value)
