"""The register map served live: Modbus reads and writes turned into model values and commands.

Independent of pymodbus: read() and write() return words or a Modbus exception code, so the map can be
tested on its own and served by any transport. Addresses are protocol addresses (0-based). The map knows
the tables (holding for FC03/06/16, input for FC04), addresses, access and types of the profile; what a
register means and what a write triggers is the model's protocol (simulator/models/).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .codec import (
    EXPONENT_TYPES,
    INTEGER_TYPES,
    TEXT_TYPES,
    WIDTHS,
    encode_number,
    encode_text,
    number_encoder,
)
from .codec import decode_int as _decode_int
from .codec import decode_text as _decode_text
from .profile import Register

if TYPE_CHECKING:
    from .meter import Measurements, MeterModel

FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
SUPPORTED_FUNCTIONS = (FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE)
Value = float | int | str | bytes | list[int]


class ModbusException(enum.IntEnum):
    """Exception codes the meter answers with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_BUSY = 6


def encode(reg: Register, value: Value) -> list[int]:
    """Words of one register from a value in its unit (numbers are divided by the scale and rounded,
    saturated; a list fills a register that holds several values)."""
    if reg.type in TEXT_TYPES:
        raw = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
        return encode_text(raw, reg.regs, reg.pad)
    values = value if isinstance(value, list) else [value]
    words: list[int] = []
    for v in values:
        words.extend(
            encode_number(reg.type, float(v), reg.scale, reg.exp or 0, reg.word_order)  # type: ignore[arg-type]
        )
    return words


def encoder(reg: Register) -> Callable[[Value], list[int]]:
    """encode(reg, value) for one register with the type dispatch done once (same words): a number goes
    straight to its precompiled struct formats, a list or text through encode()."""
    if reg.type in TEXT_TYPES:
        return lambda value: encode(reg, value)
    number = number_encoder(reg.type, reg.scale, reg.exp or 0, reg.word_order)  # type: ignore[arg-type]

    def one(value: Value) -> list[int]:
        if isinstance(value, list):
            return encode(reg, value)
        return number(float(value))  # type: ignore[arg-type]

    return one


MEASURED, ENERGY, CONSTANT = "measurements", "energy", "constant"


def measured(source: Any) -> Any:
    """Mark a value source as a function of MeterModel.measurement_key() alone (a measurement): the
    register map then keeps its words until the measured state changes instead of encoding them again
    at every read. Clocks, uptime and transaction state move on their own and must not be marked."""
    source.depends = MEASURED
    return source


def energy_counter(source: Any) -> Any:
    """Mark a value source as a function of MeterModel.energy_registers() alone (an energy counter in
    the model's resolution): kept while no counter moved."""
    source.depends = ENERGY
    return source


def constant(source: Any) -> Any:
    """Mark a value source that never changes during a power-up (an export counter at 0, an exponent)."""
    source.depends = CONSTANT
    return source


def decode_int(reg: Register, words: list[int]) -> list[int]:
    """Raw integers of an integer register from its words (a list: registers may hold several values)."""
    width = WIDTHS[reg.type]
    return [_decode_int(reg.type, words[i : i + width], reg.word_order) for i in range(0, len(words), width)]


def decode_bytes(words: list[int], pad: str = "nul") -> bytes:
    """Bytes of a string register, padding stripped."""
    return _decode_text(words, pad)


def limits_problem(reg: Register, words: list[int]) -> ModbusException | None:
    """Exception 03 when an integer register would hold a value outside its min/max (unset is allowed)."""
    if reg.type not in INTEGER_TYPES or (reg.min is None and reg.max is None):
        return None
    for value in decode_int(reg, words):
        if reg.unset is not None and value == reg.unset:
            continue
        if (reg.min is not None and value < reg.min) or (reg.max is not None and value > reg.max):
            return ModbusException.ILLEGAL_VALUE
    return None


def _unnamed(address: int) -> Register:
    """A read-only register of a filled span that the profile does not name: it reads 0."""
    return Register(name="", address=address, type="u16", regs=1, access="r", table="input")


@dataclass
class _Plan:
    """The registers one (table, address, count) read covers; when each of them is a measurement, an
    energy counter or a constant, the reply's words and the key they were computed for."""

    regs: list[Register]
    first: int
    cacheable: bool
    energy: bool
    key: object = None
    words: list[int] = field(default_factory=list)


class RegisterMap:
    """One meter's registers as seen over Modbus. A new map (RAM cleared) is made at every power-up.

    `image` holds what was written to read-write registers (the meter's RAM); the protocol decides what
    a register reads and what a write does."""

    def __init__(self, model: MeterModel) -> None:
        self.model = model
        self.profile = model.profile
        self.protocol = model.protocol
        self._at: dict[str, dict[int, Register]] = {"holding": {}, "input": {}}
        for reg in self.profile.registers:
            for address in range(reg.address, reg.end):
                self._at[reg.table][address] = reg
        for start, end in self.profile.fill_input:
            for address in range(start, end):
                self._at["input"].setdefault(address, _unnamed(address))
        self.image: dict[str, list[int]] = {}
        for reg in self.profile.registers:
            if reg.writable:
                self.image[reg.name] = self.protocol.initial_words(reg)
        self._snapshot: Measurements | None = None
        self._snapshot_key: tuple[object, ...] | None = None
        self._live = self.protocol.live_registers
        self._sources = self.protocol.value_sources(self)
        self._encoders = {reg.name: encoder(reg) for reg in self.profile.registers}
        self._encoders.setdefault("", encoder(_unnamed(0)))  # filled spans: unnamed u16 words read 0
        self._from_image = {r.name for r in self.profile.registers if r.writable and r.name not in self._live}
        self._depends = {n: getattr(source, "depends", None) for n, source in self._sources.items()
                         if n not in self._from_image}
        self._depends[""] = CONSTANT  # unnamed words of a filled span read 0
        self._measured = {n for n, d in self._depends.items() if d == MEASURED}
        self._measured_words: dict[str, list[int]] = {}
        self._plans: dict[tuple[str, int, int], _Plan | None] = {}

    # ---- Modbus operations ----------------------------------------------------------------------------
    def read(
        self, address: int, count: int, function_code: int = FC_READ_HOLDING
    ) -> list[int] | ModbusException:
        """FC03 (holding) or FC04 (input): count words from address, or the exception to answer."""
        table = "input" if function_code == FC_READ_INPUT else "holding"
        where = (table, address, count)
        try:
            plan = self._plans[where]
        except KeyError:  # the profile never changes: which registers a read covers is worked out once
            plan = self._plans[where] = self._plan(table, address, count)
        if plan is None:
            return ModbusException.ILLEGAL_ADDRESS
        problem = self.protocol.guard_read(self, plan.regs)
        if problem is not None:
            return problem
        key = self._check_snapshot()  # a new read, a new instant: the snapshot and cached words stay only if
        if plan.cacheable:  # nothing they derive from moved since the last read
            key = (key, self.model.energy_registers()) if plan.energy else key
            if plan.key == key:
                return list(plan.words)
        words: list[int] = []
        for reg in plan.regs:
            words += self._words(reg)
        words = words[plan.first : plan.first + count]
        if plan.cacheable:
            plan.key, plan.words = key, words
            return list(words)
        return words

    def write(
        self, address: int, values: list[int], function_code: int = FC_WRITE_MULTIPLE
    ) -> ModbusException | None:
        """FC06/FC16: store values, run what they trigger; None on success, else the exception to answer."""
        regs = self._covered(self.profile.write_table, address, len(values))
        if regs is None or any(not r.writable for r in regs):
            return ModbusException.ILLEGAL_ADDRESS
        if any(not 0 <= v <= 0xFFFF for v in values):
            return ModbusException.ILLEGAL_VALUE
        written = {address + i: v for i, v in enumerate(values)}
        for reg in regs:
            problem = self.protocol.check_write(self, reg, written, function_code)
            if problem is not None:
                return problem
        for reg in regs:
            image = self.image[reg.name]
            for i in range(reg.regs):
                if reg.address + i in written:
                    image[i] = written[reg.address + i]
        for reg in regs:
            problem = self.protocol.apply(self, reg, written)
            if problem is not None:
                return problem
        return None

    def merged(self, reg: Register, written: dict[int, int]) -> list[int]:
        """The words reg would hold after this write (written words over the image)."""
        return [
            written.get(a, w) for a, w in zip(range(reg.address, reg.end), self.image[reg.name], strict=True)
        ]

    def measurements(self) -> Measurements:
        """One snapshot a read: every register of a block read comes from the same instant, as on a real
        meter, and the snapshot is computed once instead of once a register."""
        self._check_snapshot()
        if self._snapshot is None:
            self._snapshot = self.model.measurements()
        return self._snapshot

    def _check_snapshot(self) -> tuple[object, ...]:
        """Drop the snapshot and the measured registers' words when the measured state moved (a simpy
        event: grid noise, a load step; a rewiring): values are recomputed from the same model state."""
        key = self.model.measurement_key()
        if key != self._snapshot_key:
            self._snapshot_key = key
            self._snapshot = None
            self._measured_words.clear()
        return key

    def _plan(self, table: str, address: int, count: int) -> _Plan | None:
        regs = self._covered(table, address, count)
        if regs is None:
            return None
        depends = {self._depends.get(r.name) for r in regs}
        cacheable = depends <= {MEASURED, ENERGY, CONSTANT}
        return _Plan(regs, address - regs[0].address, cacheable, ENERGY in depends)

    # ---- internals ------------------------------------------------------------------------------------
    def _covered(self, table: str, address: int, count: int) -> list[Register] | None:
        at = self._at[table]
        regs: list[Register] = []
        for a in range(address, address + count):
            reg = at.get(a)
            if reg is None:
                return None
            if not regs or regs[-1] is not reg:
                regs.append(reg)
        return regs

    def _words(self, reg: Register) -> list[int]:
        name = reg.name
        if name in self._from_image:
            return list(self.image[name])
        if name in self._measured:
            words = self._measured_words.get(name)
            if words is None:
                words = self._measured_words[name] = self._encoders[name](self._sources[name]())
            return words  # the caller copies it into the reply
        source = self._sources.get(name)
        return self._encoders[name](source() if source is not None else 0)


__all__ = [
    "EXPONENT_TYPES",
    "FC_READ_HOLDING",
    "FC_READ_INPUT",
    "FC_WRITE_MULTIPLE",
    "FC_WRITE_SINGLE",
    "SUPPORTED_FUNCTIONS",
    "ModbusException",
    "RegisterMap",
    "constant",
    "decode_bytes",
    "decode_int",
    "encode",
    "encoder",
    "energy_counter",
    "limits_problem",
    "measured",
]
