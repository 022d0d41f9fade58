"""The register map served live: Modbus reads and writes turned into model values and commands.

Independent of pymodbus: read() and write() return words or a Modbus exception code, so the map can be
tested on its own and served by any transport. Addresses are protocol addresses (0-based).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable

from .meter import Measurements, MeterModel
from .ocmf import UNSET, Identification
from .profile import Register
from .transactions import TxError, TxState

FC_READ_HOLDING = 3
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
SUPPORTED_FUNCTIONS = (FC_READ_HOLDING, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE)


class ModbusException(enum.IntEnum):
    """Exception codes the meter answers with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_BUSY = 6


_FORMATS = {"u16": ">H", "s16": ">h", "u32": ">I", "s32": ">i"}
_LIMITS = {
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "s32": (-0x80000000, 0x7FFFFFFF),
}
_RW_LIVE = ("clock_time", "clock_utc_offset", "command")  # rw registers that read back model state


def encode(reg: Register, value: float | int | str | bytes | list[int]) -> list[int]:
    """Words of one register from a value in its unit (numbers are divided by the scale and rounded)."""
    if reg.type in ("string", "bytes"):
        raw = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
        raw = raw[: reg.regs * 2].ljust(reg.regs * 2, b"\0")
        return list(struct.unpack(f">{reg.regs}H", raw))
    values = value if isinstance(value, list) else [value]
    low, high = _LIMITS[reg.type]
    words: list[int] = []
    for v in values:
        number = float(v)  # type: ignore[arg-type]
        raw_int = round(number / reg.scale) if math.isfinite(number) else 0
        raw_int = min(max(raw_int, low), high)
        words.extend(struct.unpack(f">{reg.regs // len(values)}H", struct.pack(_FORMATS[reg.type], raw_int)))
    return words


def decode_int(reg: Register, words: list[int]) -> list[int]:
    """Raw integers of a numeric register from its words (a list: registers may hold several values)."""
    width = 2 if reg.type in ("u32", "s32") else 1
    out = []
    for i in range(0, len(words), width):
        packed = struct.pack(f">{width}H", *words[i : i + width])
        out.append(struct.unpack(_FORMATS[reg.type], packed)[0])
    return out


def decode_bytes(words: list[int]) -> bytes:
    """Bytes of a string register, NUL padding stripped."""
    return struct.pack(f">{len(words)}H", *words).rstrip(b"\0")


class RegisterMap:
    """One meter's registers as seen over Modbus. A new map (RAM cleared) is made at every power-up."""

    def __init__(self, model: MeterModel) -> None:
        self.model = model
        self.profile = model.profile
        self._at: dict[int, Register] = {}
        for reg in self.profile.registers:
            for address in range(reg.address, reg.end):
                self._at[address] = reg
        self._image: dict[str, list[int]] = {}
        for reg in self.profile.registers:
            if reg.writable:
                fill = UNSET if reg.unset is not None else 0
                self._image[reg.name] = [fill] * reg.regs if reg.type in _FORMATS else [0] * reg.regs
        self._snapshot: Measurements | None = None
        self._sources = self._value_sources()

    # ---- Modbus operations ----------------------------------------------------------------------------
    def read(self, address: int, count: int) -> list[int] | ModbusException:
        """FC03: count words from address, or the exception to answer."""
        regs = self._covered(address, count)
        if regs is None:
            return ModbusException.ILLEGAL_ADDRESS
        if self.model.engine.busy and any(r.name == "result_buffer" for r in regs):
            return ModbusException.DEVICE_BUSY
        if any(r.name.startswith("energy_") for r in regs):
            self.model.persist_if_ahead()
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
        regs = self._covered(address, len(values))
        if regs is None or any(not r.writable for r in regs):
            return ModbusException.ILLEGAL_ADDRESS
        if any(not 0 <= v <= 0xFFFF for v in values):
            return ModbusException.ILLEGAL_VALUE
        written = {address + i: v for i, v in enumerate(values)}
        for reg in regs:
            problem = self._check(reg, written, function_code)
            if problem is not None:
                return problem
        for reg in regs:
            image = self._image[reg.name]
            for i in range(reg.regs):
                if reg.address + i in written:
                    image[i] = written[reg.address + i]
        for reg in regs:
            self._apply(reg)
        return None

    # ---- internals ------------------------------------------------------------------------------------
    def _covered(self, address: int, count: int) -> list[Register] | None:
        regs: list[Register] = []
        for a in range(address, address + count):
            reg = self._at.get(a)
            if reg is None:
                return None
            if not regs or regs[-1] is not reg:
                regs.append(reg)
        return regs

    def _check(self, reg: Register, written: dict[int, int], function_code: int) -> ModbusException | None:
        if reg.name == "clock_time" and (
            function_code != FC_WRITE_MULTIPLE or not all(a in written for a in range(reg.address, reg.end))
        ):
            return ModbusException.ILLEGAL_VALUE  # the clock is set by both words in one FC16
        if reg.name == "command" and self.model.engine.busy:
            return ModbusException.DEVICE_BUSY
        if reg.type not in _FORMATS or (reg.min is None and reg.max is None):
            return None
        words = [
            written.get(a, w) for a, w in zip(range(reg.address, reg.end), self._image[reg.name], strict=True)
        ]
        for value in decode_int(reg, words):
            if reg.unset is not None and value == reg.unset:
                continue
            if (reg.min is not None and value < reg.min) or (reg.max is not None and value > reg.max):
                return ModbusException.ILLEGAL_VALUE
        return None

    def _apply(self, reg: Register) -> None:
        model = self.model
        if reg.name == "clock_time":
            model.set_clock(decode_int(reg, self._image[reg.name])[0])
        elif reg.name == "clock_utc_offset":
            model.utc_offset_min = decode_int(reg, self._image[reg.name])[0]
        elif reg.name == "command":
            command = self._image[reg.name][0]
            tx_id = self._text("transaction_id")
            ident = self.identification()
            if tx_id is None or ident is None:  # a text field that is not printable ASCII
                model.engine.refuse(command, TxError.INVALID_IDENTIFICATION)
                return
            model.command(command, tx_id, ident)

    def _text(self, name: str) -> str | None:
        if name not in self._image:
            return ""
        raw = decode_bytes(self._image[name])
        if any(b < 0x20 or b > 0x7E for b in raw):
            return None
        return raw.decode("ascii")

    def identification(self) -> Identification | None:
        """The identification data as written, or None when a text field is not printable ASCII."""
        texts = [self._text(n) for n in ("identification_data", "tariff_text", "evse_id")]
        if any(t is None for t in texts):
            return None

        def one(name: str, default: int) -> int:
            return self._image[name][0] if name in self._image else default

        flags = tuple(f for f in self._image.get("identification_flags", []) if f != UNSET)
        return Identification(
            status=one("identification_status", 0),
            level=one("identification_level", UNSET),
            flags=flags,
            type=one("identification_type", 0),
            data=texts[0] or "",
            tariff_text=texts[1] or "",
            evse_id=texts[2] or "",
        )

    def _measurements(self) -> Measurements:
        """One snapshot a read: every register of a block read comes from the same instant, as on a real
        meter, and the snapshot is computed once instead of once a register."""
        if self._snapshot is None:
            self._snapshot = self.model.measurements()
        return self._snapshot

    def _words(self, reg: Register) -> list[int]:
        if reg.writable and reg.name not in _RW_LIVE:
            return list(self._image[reg.name])
        source = self._sources.get(reg.name)
        return encode(reg, source() if source is not None else 0)

    def _value_sources(self) -> dict[str, Callable[[], float | int | str | bytes | list[int]]]:
        m = self.model
        p = self.profile
        eng = m.engine

        def meas(attr: str, index: int | None = None) -> Callable[[], float]:
            def get() -> float:
                value = getattr(self._measurements(), attr)
                return value[index] if index is not None else value

            return get

        def result_bytes() -> bytes:
            return b"" if eng.result is None or eng.busy else eng.result.ocmf.encode("ascii")

        def status_flags() -> int:
            flags = 0 if m.clock_synchronised else 1
            flags |= 2 if m.grid.phase_order == "ccw" else 0
            flags |= 4 if eng.state == TxState.ACTIVE_AFTER_POWER_FAILURE else 0
            flags |= 8 if eng.last_error else 0
            return flags

        def stop_time(which: str) -> float:
            earliest = eng.min_stop_sim_s()
            if which == "min" and earliest is not None:
                return m.utc_at(earliest)
            return 0

        sources: dict[str, Callable[[], float | int | str | bytes | list[int]]] = {
            "serial_number": lambda: m.serial,
            "vendor": lambda: p.vendor,
            "model": lambda: p.model,
            "firmware": lambda: p.firmware,
            "capabilities": lambda: p.capabilities,
            "map_version": lambda: p.map_version,
            "current_n": meas("neutral_current_a"),
            "power_total": lambda: math.fsum(m.power_w),
            "reactive_power_total": lambda: math.fsum(self._measurements().reactive_var),
            "apparent_power_total": lambda: math.fsum(self._measurements().apparent_va),
            "frequency": meas("frequency_hz"),
            "energy_import_total": lambda: m.energy_register() * 0.1,
            "energy_export_total": lambda: 0,
            "voltage_l1_l2": meas("line_voltages_v", 0),
            "voltage_l2_l3": meas("line_voltages_v", 1),
            "voltage_l3_l1": meas("line_voltages_v", 2),
            "phase_sequence": lambda: 0 if m.grid.phase_order == "cw" else 1,
            "status_flags": status_flags,
            "transaction_state": lambda: int(eng.state),
            "last_error": lambda: int(eng.last_error),
            "boot_count": lambda: m.boot_count % 0x10000,
            "pagination": lambda: eng.pagination,
            "uptime": lambda: int(m.uptime_s),
            "clock_time": lambda: int(m.clock_utc()),
            "clock_utc_offset": lambda: m.utc_offset_min,
            "clock_synchronised": lambda: int(m.clock_synchronised),
            "open_transaction_id": lambda: eng.open.id if eng.open else "",
            "command": lambda: eng.last_command,
            "command_status": lambda: int(eng.command_status),
            "result_length": lambda: len(result_bytes()),
            "result_pagination": lambda: (
                eng.result.transaction.pagination if eng.result and not eng.busy else 0
            ),
            "min_stop_time": lambda: int(stop_time("min")),
            "max_stop_time": lambda: 0,
            "result_buffer": result_bytes,
            "public_key_length": lambda: len(m.public_key_der),
            "public_key_curve": lambda: p.curve,
            "public_key": lambda: m.public_key_der,
        }
        for i, phase in enumerate(("l1", "l2", "l3")):
            sources[f"voltage_{phase}"] = meas("voltages_v", i)
            sources[f"current_{phase}"] = meas("currents_a", i)
            sources[f"power_{phase}"] = meas("power_w", i)
            sources[f"reactive_power_{phase}"] = meas("reactive_var", i)
            sources[f"apparent_power_{phase}"] = meas("apparent_va", i)
            sources[f"power_factor_{phase}"] = meas("power_factor", i)
            sources[f"energy_import_{phase}"] = self._phase_energy(i)
        return sources

    def _phase_energy(self, index: int) -> Callable[[], float]:
        def get() -> float:
            return self.model.energy_registers()[index + 1] * 0.1

        return get
