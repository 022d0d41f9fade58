"""The base of a meter model's transaction protocol: what runtime, status and the register map need.

A protocol object lives for one power-up of one meter (MeterModel builds it); its non-volatile part goes
through to_json()/restore() into the meter's state file, which MeterModel writes atomically. The
register map calls the register hooks; runtime.py only uses busy/finish_signing, so faults, power and
the clock stay model-independent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..ocmf import UNSET
from ..profile import Register
from ..registers import ModbusException, RegisterMap, Value, limits_problem

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
        """An exception for a read that must be refused now (e.g. busy), else None."""
        return None

    def check_write(
        self, regmap: RegisterMap, reg: Register, written: dict[int, int], function_code: int
    ) -> ModbusException | None:
        """An exception for a write that must be refused before anything is stored, else None."""
        return limits_problem(reg, regmap.merged(reg, written))

    def apply(self, regmap: RegisterMap, reg: Register, written: dict[int, int]) -> ModbusException | None:
        """Run what a stored write triggers; an exception to answer, else None."""
        return None
