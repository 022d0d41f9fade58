"""The three-phase grid a meter sees: nominal voltage and frequency with seeded noise, and phase order."""

from __future__ import annotations

import cmath
import math
import random
from collections.abc import Generator
from typing import Any

import simpy

from .profile import GridSettings

PHASE_ORDERS = ("cw", "ccw")


class Grid:
    """Voltages and frequency, refreshed with Gaussian noise by a simpy process.

    Clockwise (L1-L2-L3) puts L2 at -120 degrees and L3 at +120 degrees; counter-clockwise swaps them.
    """

    def __init__(
        self,
        env: simpy.Environment,
        settings: GridSettings,
        rng: random.Random,
        phase_order: str = "cw",
    ) -> None:
        self.env = env
        self.settings = settings
        self.rng = rng
        self.phase_order = check_phase_order(phase_order)
        self.voltages_v: list[float] = [settings.nominal_voltage_v] * 3
        self.frequency_hz: float = settings.nominal_frequency_hz
        self._refresh()
        env.process(self._noise())

    def set_phase_order(self, order: str) -> None:
        """Rewire the phases: "cw" or "ccw"."""
        self.phase_order = check_phase_order(order)

    def angles_rad(self) -> tuple[float, float, float]:
        """Phase angles of L1, L2, L3."""
        step = 2 * math.pi / 3
        if self.phase_order == "cw":
            return (0.0, -step, step)
        return (0.0, step, -step)

    def phasors(self) -> list[complex]:
        """Voltage phasors of L1, L2, L3."""
        return [cmath.rect(v, a) for v, a in zip(self.voltages_v, self.angles_rad(), strict=True)]

    def line_voltages_v(self) -> tuple[float, float, float]:
        """L1-L2, L2-L3, L3-L1 voltages."""
        p = self.phasors()
        return (abs(p[0] - p[1]), abs(p[1] - p[2]), abs(p[2] - p[0]))

    def _refresh(self) -> None:
        s = self.settings
        self.voltages_v = [s.nominal_voltage_v + self.rng.gauss(0.0, s.voltage_noise_v) for _ in range(3)]
        self.frequency_hz = s.nominal_frequency_hz + self.rng.gauss(0.0, s.frequency_noise_hz)

    def _noise(self) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(self.settings.noise_interval_s)
            self._refresh()


def check_phase_order(order: str) -> str:
    """Return order if it is "cw" or "ccw", else raise ValueError naming the choices."""
    if order not in PHASE_ORDERS:
        raise ValueError(f"phase order must be 'cw' or 'ccw', not {order!r}")
    return order
