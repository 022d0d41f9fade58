"""What the meter measures: a fixed power or an EV charging profile, as piecewise-constant steps.

Power is constant between steps, so energy is integrated exactly between events.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

PhasePower = tuple[float, float, float]


@dataclass(frozen=True)
class LoadStep:
    """Per-phase power (W) held for duration_s simulated seconds (None: for ever)."""

    power_w: PhasePower
    duration_s: float | None


@dataclass(frozen=True)
class LoadProfile:
    """A sequence of load steps; build one with fixed() or ev()."""

    name: str
    steps: tuple[LoadStep, ...]

    @classmethod
    def fixed(cls, power_w: float | PhasePower, phases: int = 3) -> LoadProfile:
        """A constant load: total power split evenly over `phases` phases, or an explicit per-phase tuple."""
        if isinstance(power_w, tuple):
            per_phase = tuple(float(p) for p in power_w)
            if len(per_phase) != 3:
                raise ValueError("per-phase power needs three values (L1, L2, L3)")
        else:
            if phases not in (1, 3):
                raise ValueError(f"phases must be 1 or 3, not {phases}")
            share = float(power_w) / phases
            per_phase = (share, share if phases == 3 else 0.0, share if phases == 3 else 0.0)
        if any(not math.isfinite(p) or p < 0 for p in per_phase):
            raise ValueError(f"load power must be finite and not negative, got {power_w!r}")
        return cls(name="fixed", steps=(LoadStep((per_phase[0], per_phase[1], per_phase[2]), None),))

    @classmethod
    def ev(
        cls,
        max_current_a: float = 16.0,
        phases: int = 3,
        voltage_v: float = 230.0,
        ramp_s: float = 60.0,
        constant_s: float = 3 * 3600.0,
        pause_s: float = 300.0,
        taper_s: float = 1800.0,
        step_s: float = 10.0,
    ) -> LoadProfile:
        """An EV session: ramp up, constant current, a pause, constant again, taper, then idle."""
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, not {phases}")
        if max_current_a < 0 or min(ramp_s, constant_s, pause_s, taper_s) < 0 or step_s <= 0:
            raise ValueError("EV profile currents and durations must not be negative")
        full = max_current_a * voltage_v

        def power(level: float) -> PhasePower:
            p = full * level
            return (p, p if phases == 3 else 0.0, p if phases == 3 else 0.0)

        steps: list[LoadStep] = []
        n_ramp = math.ceil(ramp_s / step_s)
        steps += [LoadStep(power((i + 1) / n_ramp), ramp_s / n_ramp) for i in range(n_ramp)]
        half = constant_s / 2
        steps += [LoadStep(power(1.0), half), LoadStep(power(0.0), pause_s), LoadStep(power(1.0), half)]
        n_taper = math.ceil(taper_s / step_s)
        steps += [
            LoadStep(power(math.exp(-3.0 * (i + 1) / n_taper)), taper_s / n_taper) for i in range(n_taper)
        ]
        steps.append(LoadStep(power(0.0), None))
        return cls(name="ev", steps=tuple(s for s in steps if s.duration_s is None or s.duration_s > 0))

    def __iter__(self) -> Iterator[LoadStep]:
        return iter(self.steps)

    def energy_wh(self, seconds: float) -> float:
        """Energy (all phases) this profile draws in its first `seconds` simulated seconds."""
        total, elapsed = 0.0, 0.0
        for step in self.steps:
            span = seconds - elapsed if step.duration_s is None else min(step.duration_s, seconds - elapsed)
            if span <= 0:
                break
            total += sum(step.power_w) * span / 3600.0
            elapsed += span
        return total
