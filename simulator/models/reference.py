"""The reference meter's protocol (docs/meters/reference.md): identification registers, a command
register (start, stop, clear all, fetch), a result buffer with the whole OCMF record, status flags.

The state machine itself is transactions.TransactionEngine; this module ties it to the registers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..ocmf import UNSET, Identification, Reading, RecordData, build_payload, format_tm, sign_record
from ..profile import Register
from ..registers import (
    FC_WRITE_MULTIPLE,
    ModbusException,
    RegisterMap,
    constant,
    decode_bytes,
    decode_int,
    energy_counter,
    measured,
)
from ..transactions import Command, Transaction, TransactionEngine, TxError, TxState
from .base import MeterProtocol, Source, measurement_sources


class ReferenceProtocol(MeterProtocol):
    """meter.protocol = "reference" (also the plain meter, which has no transaction block)."""

    name = "reference"
    live_registers: ClassVar[frozenset[str]] = frozenset({"clock_time", "clock_utc_offset", "command"})

    def __init__(self, meter: Any) -> None:
        super().__init__(meter)
        p = self.profile
        self.engine = TransactionEngine(
            meter.persist, self._sign, p.records_kept, p.min_duration_s,
            sign_begin=self._sign_begin if p.separate_begin_end else None, max_duration_s=p.max_duration_s,
        )

    # ---- non-volatile state ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The engine's part of the state file."""
        return self.engine.to_json()

    def restore(self, stored: dict[str, Any]) -> None:
        """An open transaction becomes active after power failure."""
        self.engine.restore(stored)

    def boot(self) -> None:
        """A record left unsigned by a power cut is signed at boot."""
        self.engine.finish_signing()

    # ---- runtime and status ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a closed transaction waits for its signature."""
        return self.engine.busy

    def finish_signing(self) -> None:
        """Sign and put the record in the result buffer."""
        self.engine.finish_signing()

    @property
    def transaction_state(self) -> int:
        """transaction_state register."""
        return int(self.engine.state)

    @property
    def open_transaction_id(self) -> str:
        """The id the driver gave at start."""
        return self.engine.open.id if self.engine.open else ""

    @property
    def pagination(self) -> int:
        """pagination register."""
        return self.engine.pagination

    def closed_transactions(self) -> list[dict[str, Any]]:
        """The kept records with their readings (0.1 Wh registers)."""
        return [
            {
                "transaction_id": r.transaction.id,
                "pagination": r.transaction.pagination,
                "begin_wh": r.transaction.begin.energy_wh,
                "end_wh": r.transaction.end.energy_wh if r.transaction.end else None,
                "begin_register": r.transaction.begin.energy_register,
                "end_register": r.transaction.end.energy_register if r.transaction.end else None,
                "ocmf": r.ocmf,
                **({"begin_ocmf": r.transaction.begin_record, "pagination": r.transaction.end_pagination,
                    "begin_pagination": r.transaction.pagination} if r.transaction.begin_record else {}),
            }
            for r in self.engine.records
        ]

    # ---- commands -------------------------------------------------------------------------------------
    def command(self, command: int, tx_id: str = "", ident: Identification | None = None) -> TxError:
        """Run a transaction command as a write of the command register does."""
        m, eng = self.meter, self.engine
        if eng.busy:
            return eng.refuse(command, TxError.NOT_READY)
        now = m.env.now
        if command == Command.START:
            ident = ident or Identification()
            if not self.record_fits(ident):
                return eng.refuse(command, TxError.INVALID_IDENTIFICATION)
            return eng.start(tx_id, ident, m.reading(), now)
        if command == Command.STOP:
            return eng.stop(tx_id, m.reading(), now)
        if command == Command.CLEAR_ALL:
            return eng.clear_all(m.reading())
        if command == Command.FETCH:
            return eng.fetch(tx_id)
        if command == Command.FETCH_BEGIN:
            return eng.fetch_begin(tx_id)
        raise ValueError(f"unknown command {command}")

    def record_fits(self, ident: Identification) -> bool:
        """True when a record with this identification fits the result buffer whatever the readings."""
        if not self.profile.has("result_buffer"):
            return True
        p, m = self.profile, self.meter
        widest = Reading(0xFFFFFFFF, 0.0, format_tm(0.0, -720, True))
        data = RecordData(0xFFFFFFFF, p.vendor, p.model, m.serial, p.firmware, ident, widest, widest)
        worst = sign_record(build_payload(data), m.key, p.curve, worst_case=True)
        return len(worst) <= p.register("result_buffer").regs * 2

    def _sign(self, tx: Transaction) -> str:
        """The end record: both readings, or the end reading alone (its own pagination) when signed apart."""
        assert tx.end is not None
        p, m = self.profile, self.meter
        if tx.end_pagination:
            data = RecordData(tx.end_pagination, p.vendor, p.model, m.serial, p.firmware, tx.identification,
                              None, tx.end)
        else:
            data = RecordData(
                tx.pagination, p.vendor, p.model, m.serial, p.firmware, tx.identification, tx.begin, tx.end
            )
        return sign_record(build_payload(data), m.key, p.curve)

    def _sign_begin(self, tx: Transaction) -> str:
        """The begin record of a meter that signs begin and end apart: the begin reading alone."""
        p, m = self.profile, self.meter
        data = RecordData(tx.pagination, p.vendor, p.model, m.serial, p.firmware, tx.identification,
                          tx.begin, None)
        return sign_record(build_payload(data), m.key, p.curve)

    # ---- register hooks -------------------------------------------------------------------------------
    def guard_read(self, regmap: RegisterMap, regs: list[Register]) -> ModbusException | None:
        """The result buffer is busy while signing; serving energy persists it first."""
        if self.engine.busy and any(r.name == "result_buffer" for r in regs):
            return ModbusException.DEVICE_BUSY
        return super().guard_read(regmap, regs)

    def check_write(
        self, regmap: RegisterMap, reg: Register, written: dict[int, int], function_code: int
    ) -> ModbusException | None:
        """The clock takes both words in one FC16; command writes are busy while signing."""
        if reg.name == "clock_time" and (
            function_code != FC_WRITE_MULTIPLE or not all(a in written for a in range(reg.address, reg.end))
        ):
            return ModbusException.ILLEGAL_VALUE
        if reg.name == "command" and self.engine.busy:
            return ModbusException.DEVICE_BUSY
        return super().check_write(regmap, reg, written, function_code)

    def apply(self, regmap: RegisterMap, reg: Register, written: dict[int, int]) -> ModbusException | None:
        """Set the clock, the offset, or run a command."""
        m = self.meter
        if reg.name == "clock_time":
            m.set_clock(decode_int(reg, regmap.image[reg.name])[0])
        elif reg.name == "clock_utc_offset":
            m.utc_offset_min = decode_int(reg, regmap.image[reg.name])[0]
        elif reg.name == "command":
            command = regmap.image[reg.name][0]
            tx_id = self._text(regmap, "transaction_id")
            ident = self.identification(regmap)
            if tx_id is None or ident is None:  # a text field that is not printable ASCII
                self.engine.refuse(command, TxError.INVALID_IDENTIFICATION)
                return None
            self.command(command, tx_id, ident)
        return None

    def _text(self, regmap: RegisterMap, name: str) -> str | None:
        if name not in regmap.image:
            return ""
        raw = decode_bytes(regmap.image[name])
        if any(b < 0x20 or b > 0x7E for b in raw):
            return None
        return raw.decode("ascii")

    def identification(self, regmap: RegisterMap) -> Identification | None:
        """The identification data as written, or None when a text field is not printable ASCII."""
        texts = [self._text(regmap, n) for n in ("identification_data", "tariff_text", "evse_id")]
        if any(t is None for t in texts):
            return None
        image = regmap.image

        def one(name: str, default: int) -> int:
            return image[name][0] if name in image else default

        flags = tuple(f for f in image.get("identification_flags", []) if f != UNSET)
        return Identification(
            status=one("identification_status", 0),
            level=one("identification_level", UNSET),
            flags=flags,
            type=one("identification_type", 0),
            data=texts[0] or "",
            tariff_text=texts[1] or "",
            evse_id=texts[2] or "",
        )

    def value_sources(self, regmap: RegisterMap) -> dict[str, Source]:
        """Every read-only register of docs/meters/reference.md."""
        m = self.meter
        p = self.profile
        eng = self.engine

        def result_bytes() -> bytes:
            return b"" if eng.result is None or eng.busy else eng.result.ocmf.encode("ascii")

        def status_flags() -> int:
            flags = 0 if m.clock_synchronised else 1
            flags |= 2 if m.grid.phase_order == "ccw" else 0
            flags |= 4 if eng.state == TxState.ACTIVE_AFTER_POWER_FAILURE else 0
            flags |= 8 if eng.last_error else 0
            return flags

        def stop_time(which: str) -> float:
            limit = eng.min_stop_sim_s() if which == "min" else eng.max_stop_sim_s()
            return 0 if limit is None else m.utc_at(limit)

        def phase_energy(index: int) -> Source:
            def get() -> float:
                return m.energy_registers()[index + 1] * 0.1  # type: ignore[no-any-return]

            return energy_counter(get)  # type: ignore[no-any-return]

        sources: dict[str, Source] = {
            "serial_number": lambda: m.serial,
            "vendor": lambda: p.vendor,
            "model": lambda: p.model,
            "firmware": lambda: p.firmware,
            "capabilities": lambda: p.capabilities,
            "map_version": lambda: p.map_version,
            "energy_import_total": energy_counter(lambda: m.energy_register() * 0.1),
            "energy_export_total": constant(lambda: 0),
            "phase_sequence": measured(lambda: 0 if m.grid.phase_order == "cw" else 1),
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
            "max_stop_time": lambda: int(stop_time("max")),
            "result_buffer": result_bytes,
            "public_key_length": lambda: len(m.public_key_der),
            "public_key_curve": lambda: p.curve,
            "public_key": lambda: m.public_key_der,
        }
        for i, phase in enumerate(("l1", "l2", "l3")):
            sources[f"energy_import_{phase}"] = phase_energy(i)
        return {**measurement_sources(regmap), **sources}
