"""Eastron SDM630 (docs/meters/eastron-sdm630.md): measurements only, float32 high word first, no
transactions. Its energy counters are kWh with the display's 0.01 kWh resolution."""

from __future__ import annotations

from typing import ClassVar

from ..registers import RegisterMap, constant, energy_counter
from .base import MeterProtocol, Source, measurement_sources

METER_CODE = 0x0070
SERIAL_BASE = 63_000_000


class Sdm630Protocol(MeterProtocol):
    """Readings and identity; nothing to command."""

    name: ClassVar[str] = "sdm630"

    def value_sources(self, regmap: RegisterMap) -> dict[str, Source]:
        m = self.meter
        per_kwh = 1000.0

        def phase_kwh(index: int) -> Source:
            return energy_counter(  # type: ignore[no-any-return]
                lambda: m.energy_registers()[index + 1] * self.profile.energy_resolution_wh / per_kwh)

        sources = measurement_sources(regmap)
        sources.update({
            "energy_import_total": energy_counter(
                lambda: m.energy_register() * self.profile.energy_resolution_wh / per_kwh),
            "energy_export_total": constant(lambda: 0.0),
            "energy_export_l1": constant(lambda: 0.0),
            "energy_export_l2": constant(lambda: 0.0),
            "energy_export_l3": constant(lambda: 0.0),
            "modbus_address": lambda: float(m.unit),
            "serial_number": lambda: SERIAL_BASE + m.unit,
            "meter_code": lambda: METER_CODE,
        })
        for i, phase in enumerate(("l1", "l2", "l3")):
            sources[f"energy_import_{phase}"] = phase_kwh(i)
        return sources
