"""The base of a meter model's transaction protocol: what runtime, status and the register map need.

A protocol object lives for one power-up of one meter (MeterModel builds it); its non-volatile part goes
through to_json()/restore() into the meter's state file, which MeterModel writes atomically. The
register map calls the register hooks; runtime.py only uses busy/finish_signing, so faults, power and
the clock stay model-independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..ocmf import UNSET
from ..profile import Register
from ..registers import ModbusException, RegisterMap, Value, limits_problem, measured

if TYPE_CHECKING:
    from ..meter import MeterModel

Source = Callable[[], Value]


class MeterProtocol:
    """One meter model's command state machine and register semantics."""

    name: ClassVar[str] = ""
    live_registers: ClassVar[frozenset[str]] = frozenset()  # rw registers that read back model state

    def __init__(self, meter: MeterModel) -> None:
        self.meter = meter
        self.profile = meter.profile

    # ---- non-volatile state and boot ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The protocol's part of the state file."""
        return {}

    def restore(self, stored: dict[str, Any]) -> None:
        """Rebuild from the state file at power-up (before boot())."""

    def boot(self) -> None:
        """Power-up work once the state is restored: sign what a power cut left unsigned."""

    # ---- what runtime and status need -----------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while the meter signs (runtime ends it after the profile's signing_delay_s)."""
        return False

    def finish_signing(self) -> None:
        """End the busy period: sign what waits."""

    @property
    def transaction_state(self) -> int:
        """0 idle, nonzero while a transaction is open."""
        return 0

    @property
    def open_transaction_id(self) -> str:
        """The id of the open transaction ("" when idle)."""
        return ""

    @property
    def pagination(self) -> int:
        """The last pagination number used."""
        return 0

    def closed_transactions(self) -> list[dict[str, Any]]:
        """Ground truth of the records the meter keeps: transaction_id, pagination, begin_wh, end_wh,
        begin_register, end_register (counter units) and ocmf (the record a driver passes on)."""
        return []

    # ---- register hooks -------------------------------------------------------------------------------
    def initial_words(self, reg: Register) -> list[int]:
        """RAM content of a read-write register at power-up."""
        numeric = reg.type not in ("string", "bytes")
        fill = UNSET if reg.unset is not None and numeric else 0
        return [fill] * reg.regs

    def value_sources(self, regmap: RegisterMap) -> dict[str, Source]:
        """What each register not served from RAM reads (in its unit); a register without one reads 0."""
        return {}

    def guard_read(self, regmap: RegisterMap, regs: list[Register]) -> ModbusException | None:
        """An exception for a read that must be refused now (e.g. busy), else None. Serving an energy
        register persists the energy first, on every model: a restart never shows less than was served."""
        if any(r.name.startswith("energy_") for r in regs):
            self.meter.persist_if_ahead()
        return None

    def check_write(
        self, regmap: RegisterMap, reg: Register, written: dict[int, int], function_code: int
    ) -> ModbusException | None:
        """An exception for a write that must be refused before anything is stored, else None."""
        return limits_problem(reg, regmap.merged(reg, written))

    def apply(self, regmap: RegisterMap, reg: Register, written: dict[int, int]) -> ModbusException | None:
        """Run what a stored write triggers; an exception to answer, else None."""
        return None


def measurement_sources(regmap: RegisterMap) -> dict[str, Source]:
    """The measurements every model serves, in SI units, by the names the profiles give them (voltage_l1,
    current_l1, current_n, power_l1, power_total, reactive_power_l1, apparent_power_l1, power_factor_l1,
    frequency, voltage_l1_l2, ...). Energy counters are each model's own: their units differ."""

    def meas(attr: str, index: int | None = None) -> Source:
        def get() -> float:
            value = getattr(regmap.measurements(), attr)
            return value[index] if index is not None else value  # type: ignore[no-any-return]

        return measured(get)  # type: ignore[no-any-return]

    def total(attr: str) -> Source:
        return measured(lambda: math.fsum(getattr(regmap.measurements(), attr)))  # type: ignore[no-any-return]

    sources: dict[str, Source] = {
        "current_n": meas("neutral_current_a"),
        "power_total": total("power_w"),
        "reactive_power_total": total("reactive_var"),
        "apparent_power_total": total("apparent_va"),
        "frequency": meas("frequency_hz"),
        "voltage_l1_l2": meas("line_voltages_v", 0),
        "voltage_l2_l3": meas("line_voltages_v", 1),
        "voltage_l3_l1": meas("line_voltages_v", 2),
    }
    for i, phase in enumerate(("l1", "l2", "l3")):
        sources[f"voltage_{phase}"] = meas("voltages_v", i)
        sources[f"current_{phase}"] = meas("currents_a", i)
        sources[f"power_{phase}"] = meas("power_w", i)
        sources[f"reactive_power_{phase}"] = meas("reactive_var", i)
        sources[f"apparent_power_{phase}"] = meas("apparent_va", i)
        sources[f"power_factor_{phase}"] = meas("power_factor", i)
    return sources
