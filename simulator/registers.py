"""The register map served live: Modbus reads and writes turned into model values and commands.

Independent of pymodbus: read() and write() return words or a Modbus exception code, so the map can be
tested on its own and served by any transport. Addresses are protocol addresses (0-based). The map knows
the tables (holding for FC03/06/16, input for FC04), addresses, access and types of the profile; what a
register means and what a write triggers is the model's protocol (simulator/models/).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from .codec import EXPONENT_TYPES, INTEGER_TYPES, TEXT_TYPES, WIDTHS, encode_number, encode_text
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
        self._live = self.protocol.live_registers
        self._sources = self.protocol.value_sources(self)

    # ---- Modbus operations ----------------------------------------------------------------------------
    def read(
        self, address: int, count: int, function_code: int = FC_READ_HOLDING
    ) -> list[int] | ModbusException:
        """FC03 (holding) or FC04 (input): count words from address, or the exception to answer."""
        table = "input" if function_code == FC_READ_INPUT else "holding"
        regs = self._covered(table, address, count)
        if regs is None:
            return ModbusException.ILLEGAL_ADDRESS
        problem = self.protocol.guard_read(self, regs)
        if problem is not None:
            return problem
        self._snapshot = None  # a new read, a new instant
        words: dict[int, int] = {}
        for reg in regs:
            for i, word in enumerate(self._words(reg)):
                words[reg.address + i] = word
        return [words[a] for a in range(address, address + count)]

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
        if self._snapshot is None:
            self._snapshot = self.model.measurements()
        return self._snapshot

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
        if reg.writable and reg.name not in self._live:
            return list(self.image[reg.name])
        source = self._sources.get(reg.name)
        return encode(reg, source() if source is not None else 0)


__all__ = [
    "EXPONENT_TYPES",
    "FC_READ_HOLDING",
    "FC_READ_INPUT",
    "FC_WRITE_MULTIPLE",
    "FC_WRITE_SINGLE",
    "SUPPORTED_FUNCTIONS",
    "ModbusException",
    "RegisterMap",
    "decode_bytes",
    "decode_int",
    "encode",
    "limits_problem",
]
