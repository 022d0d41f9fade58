"""A campaign's totals: schedules, faults by kind and by where they hit, transactions, what broke."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from campaign.runner import ScheduleResult


@dataclass
class Summary:
    """Totals over a campaign."""

    schedules: int = 0
    failed: int = 0
    transactions: int = 0
    lost: int = 0
    duplicated: int = 0
    crashes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    points: Counter[str] = field(default_factory=Counter)
    faults_unfired: int = 0
    stopped_on_error: int = 0
    while_signing: int = 0
    repeated: int = 0
    seconds: float = 0.0
    durations: list[float] = field(default_factory=list)
    """Wall seconds of each schedule on its rig."""
    failures: list[ScheduleResult] = field(default_factory=list)

    def add(self, result: ScheduleResult) -> None:
        self.schedules += 1
        self.transactions += result.transactions
        self.lost += result.lost
        self.duplicated += result.duplicated
        self.crashes += result.crashes
        self.faults.update(result.faults_fired)
        self.points.update(result.points_fired)
        self.faults_unfired += result.faults_unfired
        self.stopped_on_error += result.stopped_on_error
        self.while_signing += result.while_signing
        self.repeated += result.repeated
        self.durations.append(result.seconds)
        if not result.ok:
            self.failed += 1
            self.failures.append(result)

    @property
    def median_s(self) -> float:
        """Median wall seconds a schedule took on its rig."""
        ordered = sorted(self.durations)
        if not ordered:
            return 0.0
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    def progress(self, total: int, elapsed: float) -> str:
        """One progress line."""
        return (f"[{self.schedules}/{total}] {elapsed:6.0f} s  tx {self.transactions}  "
                f"faults {sum(self.faults.values())}  lost {self.lost}  dup {self.duplicated}  "
                f"crashes {self.crashes}  failed {self.failed}")

    def text(self) -> str:
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"schedules run: {self.schedules} (failed {self.failed}) in {self.seconds:.0f} s; "
            f"median {self.median_s:.2f} s a schedule on its rig\n"
            f"faults injected: {sum(self.faults.values())} ({by_kind}); armed but not reached: "
            f"{self.faults_unfired}; power losses while the meter signed: {self.while_signing}\n"
            f"fault points: {', '.join(f'{k} {v}' for k, v in sorted(self.points.items())) or 'none'}\n"
            f"transactions: {self.transactions}; stopped by EvseManager on a CommunicationFault: "
            f"{self.stopped_on_error}; lost: {self.lost}; duplicated: {self.duplicated}; "
            f"crashes: {self.crashes}; records of earlier schedules answered again (unconfirmed in "
            f"the meter): {self.repeated}"
        )

    def to_json(self) -> dict[str, object]:
        """The figures as JSON (--json)."""
        return {
            "schedules": self.schedules, "failed": self.failed, "transactions": self.transactions,
            "lost": self.lost, "duplicated": self.duplicated, "crashes": self.crashes,
            "faults": dict(self.faults), "points": dict(self.points), "faults_unfired": self.faults_unfired,
            "stopped_on_error": self.stopped_on_error, "while_signing": self.while_signing,
            "repeated": self.repeated, "seconds": round(self.seconds, 1), "median_s": round(self.median_s, 3),
        }


def failure_json(result: ScheduleResult) -> str:
    """The replayable report of one failing schedule."""
    return json.dumps({"schedule": result.schedule.to_json(), "violations": result.violations,
                       "log": result.log}, indent=1)
