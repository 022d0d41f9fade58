"""Carlo Gavazzi EM580 (docs/meters/carlo-gavazzi-em580.md): one register space read with FC04 and
written with FC16, words least significant first, the identification written register by register, a
command in the low byte of 0x7040, and an OCMF state machine that holds the whole signed record until
the driver confirms it. Signs on brainpoolP256r1 or brainpoolP384r1 (the profile's curve)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..ocmf import Reading, format_tm, signature_algorithm
from ..profile import Register
from ..registers import (
    ModbusException,
    RegisterMap,
    constant,
    decode_bytes,
    decode_int,
    energy_counter,
    measured,
)
from .base import MeterProtocol, Source, measurement_sources

NOT_READY, RUNNING, READY, CORRUPTED = 0, 1, 2, 3
CMD_BEGIN, CMD_END, CMD_ABORT = ord("B"), ord("E"), ord("A")
PRODUCTION_YEAR = 2025
LEVELS = ("NONE", "HEARSAY", "TRUSTED", "VERIFIED", "CERTIFIED", "SECURE", "MISMATCH", "INVALID",
          "OUTDATED", "UNKNOWN")
FLAG_FAMILIES = (
    ("RFID_NONE", "RFID_PLAIN", "RFID_RELATED", "RFID_PSK"),
    ("OCPP_NONE", "OCPP_RS", "OCPP_AUTH", "OCPP_RS_TLS", "OCPP_AUTH_TLS", "OCPP_CACHE", "OCPP_WHITELIST",
     "OCPP_CERTIFIED"),
    ("ISO15118_NONE", "ISO15118_PNC"),
    ("PLMN_NONE", "PLMN_RING", "PLMN_SMS"),
)
TYPES = {0: "NONE", 1: "DENIED", 2: "UNDEFINED", 10: "ISO14443", 11: "ISO15693", 20: "EMAID", 21: "EVCCID",
         30: "EVCOID", 40: "ISO7812", 50: "CARD_TXN_NR", 60: "CENTRAL", 61: "CENTRAL_1", 62: "CENTRAL_2",
         70: "LOCAL", 71: "LOCAL_1", 72: "LOCAL_2", 80: "PHONE_NUMBER", 90: "KEY_CODE"}
NOT_GIVEN = 0xFFFF
LOSS = '{"LN":"CABLE_LOSS","LI": 0,"LR": 0,"LU": "mOhm"}'  # with the spaces the device writes
ID_SEPARATOR = "<=>"


@dataclass(frozen=True)
class Transaction:
    """An open or closed transaction: what the meter took at 'B', and its end."""

    pagination: int
    metadata: dict[str, Any]
    begin: Reading
    end: Reading | None = None
    end_tx: str = "E"
    ocmf: str = ""

    @property
    def transaction_id(self) -> str:
        """The id the driver put after the last <=> of TT, else T<n>."""
        tt = str(self.metadata.get("TT", ""))
        return tt.rpartition(ID_SEPARATOR)[2] if ID_SEPARATOR in tt else f"T{self.pagination}"

    def to_json(self) -> dict[str, Any]:
        return {"pagination": self.pagination, "metadata": self.metadata, "begin": self.begin.to_json(),
                "end": None if self.end is None else self.end.to_json(), "end_tx": self.end_tx,
                "ocmf": self.ocmf}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Transaction:
        end = None if d["end"] is None else Reading.from_json(d["end"])
        return cls(int(d["pagination"]), dict(d["metadata"]), Reading.from_json(d["begin"]), end,
                   str(d["end_tx"]), str(d["ocmf"]))


class Em580Protocol(MeterProtocol):
    """meter.protocol = "em580"."""

    name: ClassVar[str] = "em580"
    live_registers: ClassVar[frozenset[str]] = frozenset({"ocmf_state", "command"})

    def __init__(self, meter: Any) -> None:
        super().__init__(meter)
        self.pagination_counter = 0
        self.open: Transaction | None = None
        self.unsigned: Transaction | None = None
        self.file = ""  # the READY record, "" when none
        self.file_pagination = 0
        self.records: list[Transaction] = []
        self.last_command = 0

    # ---- non-volatile state ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"pagination": self.pagination_counter,
                "open": None if self.open is None else self.open.to_json(),
                "unsigned": None if self.unsigned is None else self.unsigned.to_json(),
                "file": self.file, "file_pagination": self.file_pagination,
                "records": [r.to_json() for r in self.records]}

    def restore(self, stored: dict[str, Any]) -> None:
        self.pagination_counter = int(stored["pagination"])
        self.open = None if stored["open"] is None else Transaction.from_json(stored["open"])
        self.unsigned = None if stored["unsigned"] is None else Transaction.from_json(stored["unsigned"])
        self.file = str(stored["file"])
        self.file_pagination = int(stored["file_pagination"])
        self.records = [Transaction.from_json(r) for r in stored["records"]]

    def boot(self) -> None:
        """A transaction the power loss interrupted ends at the instant of the loss (the energy the meter
        kept, the time its clock had, synchronised then); what waits is signed now: READY."""
        if self.open is not None:
            m = self.meter
            wh = m.energy_wh()
            end = Reading(m.energy_register(wh), wh, format_tm(m.clock_utc(), m.utc_offset_min, True))
            self.unsigned, self.open = replace(self.open, end=end), None
        self.finish_signing()

    # ---- runtime and status ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.unsigned is not None

    def finish_signing(self) -> None:
        if self.unsigned is None:
            return
        tx = replace(self.unsigned, ocmf=self._sign(self.unsigned))
        self.records = [*self.records, tx][-self.profile.records_kept :]
        self.file, self.file_pagination, self.unsigned = tx.ocmf, tx.pagination, None
        self.meter.persist()

    @property
    def state(self) -> int:
        if self.open is not None or self.unsigned is not None:
            return RUNNING
        return READY if self.file else NOT_READY

    @property
    def transaction_state(self) -> int:
        """1 while a transaction runs or is being signed; 0 idle (a READY record waits, closed)."""
        return 1 if self.state == RUNNING else 0

    @property
    def open_transaction_id(self) -> str:
        tx = self.open or self.unsigned
        return tx.transaction_id if tx is not None else ""

    @property
    def pagination(self) -> int:
        return self.pagination_counter

    def closed_transactions(self) -> list[dict[str, Any]]:
        return [{"transaction_id": t.transaction_id, "pagination": t.pagination,
                 "begin_wh": t.begin.energy_wh, "end_wh": t.end.energy_wh if t.end else None,
                 "begin_register": t.begin.energy_register,
                 "end_register": t.end.energy_register if t.end else None, "ocmf": t.ocmf}
                for t in self.records]

    # ---- the record -----------------------------------------------------------------------------------
    def _payload(self, tx: Transaction) -> str:
        p, m = self.profile, self.meter
        head: dict[str, Any] = {"FV": "1.2", "GI": "", "GS": "", "GV": "", "PG": f"T{tx.pagination}",
                                "MV": p.vendor, "MM": p.model, "MS": m.serial, "MF": p.firmware}
        head.update(tx.metadata)
        readings = [_reading(tx.begin, "B")] + ([_reading(tx.end, tx.end_tx)] if tx.end else [])
        text = json.dumps(head, separators=(",", ":"), ensure_ascii=True)
        return f'{text[:-1]},"LC":{LOSS},"RD":{json.dumps(readings, separators=(",", ":"))}}}'

    def _sign(self, tx: Transaction) -> str:
        payload = self._payload(tx)
        signature = self.meter.key.sign(payload.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        section = json.dumps({"SD": signature.hex().upper(), "SA": signature_algorithm(self.profile.curve)},
                             separators=(",", ":"))
        return f"OCMF|{payload}|{section}"

    def _metadata(self, regmap: RegisterMap) -> dict[str, Any]:
        """What 'B' takes from the identification registers and the tariff text, as OCMF fields."""
        image = regmap.image

        def text(name: str) -> str:
            return decode_bytes(image[name]).split(b"\x00", 1)[0].decode("ascii", "replace")

        flags = [FLAG_FAMILIES[slot][value] for slot, value in enumerate(image["identification_flags"])
                 if value != NOT_GIVEN and value < len(FLAG_FAMILIES[slot])]
        metadata: dict[str, Any] = {"IS": image["identification_status"][0] == 1}
        level = image["identification_level"][0]
        if level < len(LEVELS):
            metadata["IL"] = LEVELS[level]
        metadata["IF"] = flags
        metadata["IT"] = TYPES.get(image["identification_type"][0], "UNDEFINED")
        metadata["ID"] = text("identification_data")
        metadata["TT"] = text("tariff_text")
        metadata["CT"] = "CBIDC" if image["charge_point_id_type"][0] == 1 else "EVSEID"
        metadata["CI"] = text("charge_point_id")
        return metadata

    # ---- register hooks -------------------------------------------------------------------------------
    def initial_words(self, reg: Register) -> list[int]:
        if reg.name in ("identification_level", "identification_flags"):
            return [NOT_GIVEN] * reg.regs
        return super().initial_words(reg)

    def value_sources(self, regmap: RegisterMap) -> dict[str, Source]:
        m, p = self.meter, self.profile
        key_bytes = 48 if p.curve == "brainpoolP384r1" else 32
        raw_key = m.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint) + b"\x00"
        sources = measurement_sources(regmap)
        sources.update({
            "phase_sequence": measured(lambda: -1 if m.grid.phase_order == "ccw" else 1),
            "firmware_measure": lambda: _firmware_word(p.firmware),
            "firmware_comm": lambda: _firmware_word(p.firmware),
            "energy_import_total": energy_counter(lambda: float(m.energy_register())),
            "energy_export_total": constant(lambda: 0.0),
            "signed_snapshot": lambda: self._snapshot(key_bytes),
            "signature_type": lambda: 1 if p.curve == "brainpoolP384r1" else 0,
            "public_key_raw": lambda: raw_key,
            "public_key_der": lambda: m.public_key_der,
            "serial_number": lambda: m.serial,
            "production_year": lambda: PRODUCTION_YEAR,
            "device_state": lambda: m.device_state,
            "time_sync_status": lambda: int(m.clock_synchronised),
            "ocmf_state": lambda: self.state,
            "ocmf_size": lambda: math.ceil(len(self.file) / 2),
            "ocmf_transaction": lambda: self.file_pagination if self.file else 0,
            "ocmf_file": lambda: self.file.encode("ascii"),
            "command": lambda: self.last_command,
        })
        return sources

    def _snapshot(self, key_bytes: int) -> bytes:
        """61 words: energy (u64 Wh, LSW first), UTC seconds (u64, LSW first), serial; then raw r||s."""
        m = self.meter

        def u64_low_first(value: int) -> bytes:
            return b"".join(((value >> (16 * i)) & 0xFFFF).to_bytes(2, "big") for i in range(4))

        data = (u64_low_first(m.energy_register()) + u64_low_first(int(m.clock_utc()))
                + m.serial.encode("ascii")[:14].ljust(14, b"\x00")).ljust(122, b"\x00")
        r, s = decode_dss_signature(m.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return data + r.to_bytes(key_bytes, "big") + s.to_bytes(key_bytes, "big")

    def check_write(
        self, regmap: RegisterMap, reg: Register, written: dict[int, int], function_code: int
    ) -> ModbusException | None:
        if reg.name == "command":
            if self.busy:
                return ModbusException.DEVICE_BUSY
            command = written.get(reg.address, 0) & 0xFF
            if command == CMD_BEGIN:
                ok = self.state == NOT_READY and self.meter.clock_synchronised
            else:
                ok = command in (CMD_END, CMD_ABORT) and self.open is not None
            return None if ok else ModbusException.ILLEGAL_VALUE
        if reg.name == "ocmf_state":
            ok = written.get(reg.address) == NOT_READY and self.state == READY
            return None if ok else ModbusException.ILLEGAL_VALUE
        return super().check_write(regmap, reg, written, function_code)

    def apply(self, regmap: RegisterMap, reg: Register, written: dict[int, int]) -> ModbusException | None:
        m = self.meter
        if reg.name == "utc_time" and all(a in written for a in range(reg.address, reg.end)):
            m.set_clock(decode_int(reg, regmap.image[reg.name])[0])
        elif reg.name == "utc_offset":
            m.utc_offset_min = decode_int(reg, regmap.image[reg.name])[0]
        elif reg.name == "ocmf_state":
            self.file, self.file_pagination = "", 0
            m.persist()
        elif reg.name == "command":
            command = regmap.image[reg.name][0] & 0xFF
            self.last_command = regmap.image[reg.name][0]
            if command == CMD_BEGIN:
                self.pagination_counter += 1
                self.open = Transaction(self.pagination_counter, self._metadata(regmap), m.reading())
            else:
                assert self.open is not None
                end_tx = "A" if command == CMD_ABORT else "E"
                self.unsigned, self.open = replace(self.open, end=m.reading(), end_tx=end_tx), None
            m.persist()  # the reading is in non-volatile memory before the write is answered
        return None


def _reading(r: Reading, tx: str) -> dict[str, Any]:
    return {"TM": r.tm, "TX": tx, "RV": round(r.energy_register / 1000, 3), "RI": "1-b:1.8.0", "RU": "kWh",
            "RT": "AC", "RM": "", "ST": "G"}


def _firmware_word(firmware: str) -> int:
    """"1.2.3" as the EM580 codes it: high byte major (bits 7-4) and minor (3-0), low byte revision."""
    major, minor, revision = ([int(x) for x in firmware.split(".")] + [0, 0, 0])[:3]
    return (major & 0xF) << 12 | (minor & 0xF) << 8 | (revision & 0xFF)

