"""Iskra WM3M4C's protocol (docs/meters/iskra-wm3m4c.md): the charging state machine driven by ASCII
commands ('B' begin, 'r' end) in the high byte of 7051, the metadata JSON the driver writes at 7100,
the signed dataset at 7612 and its DER signature at 8188, the signature status at 7052.

The meter knows no transaction id: the ground truth names a transaction by the text after the last
"<=>" of its TT, else "T<n>". The open transaction, its metadata, a dataset waiting for its signature and
the last signed dataset are non-volatile (written before the command is acknowledged); the signature
status, the time status and the LCD are RAM.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import MetadataError
from ..ocmf import Reading, format_tm
from ..profile import Register
from ..registers import ModbusException, RegisterMap, constant, decode_int, energy_counter, measured
from .base import MeterProtocol, Source

KEY_ORDER = (
    "FV",
    "GI",
    "GS",
    "GV",
    "PG",
    "MV",
    "MM",
    "MS",
    "MF",
    "IS",
    "IL",
    "IF",
    "IT",
    "ID",
    "TT",
    "CT",
    "CI",
    "RD",
)
_KEY_TYPES: dict[str, type] = {"IS": bool, "IF": list, "RD": list}
COMMAND_BEGIN = 0x4200  # 'B' in the high byte
COMMAND_END = 0x7200  # 'r' in the high byte
ID_SEPARATOR = "<=>"
WIDEST_COUNTER = 0x7FFFFFFF


class ChargingState(enum.IntEnum):
    """Register 7000."""

    IDLE = 0
    ACTIVE = 1
    ACTIVE_AFTER_POWER_FAILURE = 2
    ACTIVE_AFTER_RESET = 3


class SignatureStatus(enum.IntEnum):
    """Register 7052 (the codes the simulated meter uses; the page lists them all)."""

    NOT_INITIALIZED = 0
    IDLE = 1
    IN_PROGRESS = 2
    SIGNATURE_OK = 15
    INVALID_DATE_TIME = 128
    INVALID_COMMAND = 130
    INVALID_STATE = 131
    INVALID_MESSAGE_FORMAT = 252
    INVALID_MESSAGE_SIZE = 253


def parse_metadata(raw: bytes) -> dict[str, Any]:
    """The metadata object, checked as the meter does: ASCII JSON without whitespace, keys known, in
    KEY_ORDER, each of its JSON type, FV present. MetadataError(status 252) names what is wrong."""
    bad = SignatureStatus.INVALID_MESSAGE_FORMAT
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MetadataError("metadata: not ASCII", bad) from None
    _no_whitespace(text)
    try:
        pairs = json.loads(text, object_pairs_hook=lambda items: items)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"metadata: not JSON ({exc.msg} at {exc.pos})", bad) from None
    if not isinstance(pairs, list):
        raise MetadataError("metadata: not a JSON object", bad)
    position = -1
    for key, value in pairs:
        if key not in KEY_ORDER:
            raise MetadataError(f"metadata: unknown key {key!r}", bad)
        if KEY_ORDER.index(key) <= position:
            raise MetadataError(f"metadata: key {key!r} out of order (or repeated)", bad)
        position = KEY_ORDER.index(key)
        kind = _KEY_TYPES.get(key, str)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise MetadataError(f"metadata: {key} must be a JSON {kind.__name__}", bad)
        if key == "IF" and not all(isinstance(flag, str) for flag in value):
            raise MetadataError("metadata: IF must be a list of strings", bad)
    meta = dict(pairs)
    if "FV" not in meta:
        raise MetadataError("metadata: FV is missing", bad)
    return meta


def _no_whitespace(text: str) -> None:
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char.isspace():
            raise MetadataError(
                f"metadata: whitespace at byte {index}", SignatureStatus.INVALID_MESSAGE_FORMAT
            )


def transaction_id(meta: dict[str, Any], pagination: int) -> str:
    """The id the ground truth gives a transaction: after the last "<=>" of TT, else T<n>."""
    tariff = meta.get("TT", "")
    if ID_SEPARATOR in tariff and tariff.rsplit(ID_SEPARATOR, 1)[1]:
        return str(tariff.rsplit(ID_SEPARATOR, 1)[1])
    return f"T{pagination}"


def reading_json(reading: Reading, tx: str) -> dict[str, Any]:
    """One entry of RD: RV in kWh with two decimals from the 10 Wh counter."""
    return {
        "TM": reading.tm,
        "TX": tx,
        "RV": round(reading.energy_register / 100, 2),
        "RI": "1-b:1.8.0",
        "RU": "kWh",
        "RT": "AC",
        "EF": "" if reading.tm.endswith(" S") else "t",
        "ST": "G",
    }


def ocmf_record(dataset: str, signature: bytes) -> str:
    """The record a driver passes on: no SA, so ECDSA-secp256r1-SHA256 applies."""
    return f'OCMF|{dataset}|{{"SD":"{signature.hex().upper()}"}}'


class IskraProtocol(MeterProtocol):
    """meter.protocol = "iskra"."""

    name = "iskra"
    live_registers: ClassVar[frozenset[str]] = frozenset({"command", "utc_offset", "utc_time", "time_status"})

    def __init__(self, meter: Any) -> None:
        super().__init__(meter)
        self.counter = 0  # pagination counter
        self.open: dict[str, Any] | None = None
        self.pending: dict[str, Any] | None = None  # a dataset waiting for its signature
        self.result: dict[str, str] | None = None  # the last signed dataset and its signature (hex)
        self.records: list[dict[str, Any]] = []
        self.signature_status = SignatureStatus.NOT_INITIALIZED
        self.time_status = 0
        self.last_command = 0

    # ---- non-volatile state ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Pagination, the open transaction and its metadata, what waits for a signature, the last
        signed dataset, the closed transactions."""
        return {
            "pagination": self.counter,
            "open": self.open,
            "pending": self.pending,
            "result": self.result,
            "records": self.records,
        }

    def restore(self, stored: dict[str, Any]) -> None:
        """An open transaction becomes active after power failure."""
        self.counter = int(stored["pagination"])
        self.open = stored["open"]
        self.pending = stored["pending"]
        self.result = stored["result"]
        self.records = list(stored["records"])
        if self.open is not None:
            self.open = {**self.open, "interrupted": True}

    def boot(self) -> None:
        """A dataset left unsigned by a power cut is signed now; the status stays 0."""
        self._sign_pending()

    # ---- runtime and status ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Signature status 2 (InProgress)."""
        return self.pending is not None

    def finish_signing(self) -> None:
        """Sign the waiting dataset; the status becomes 15."""
        if self.pending is not None:
            self._sign_pending()
            self.signature_status = SignatureStatus.SIGNATURE_OK

    @property
    def transaction_state(self) -> int:
        """Register 7000."""
        if self.open is None:
            return ChargingState.IDLE
        return ChargingState.ACTIVE_AFTER_POWER_FAILURE if self.open["interrupted"] else ChargingState.ACTIVE

    @property
    def open_transaction_id(self) -> str:
        """From the TT of the metadata given at 'B'."""
        return str(self.open["id"]) if self.open else ""

    @property
    def pagination(self) -> int:
        """The pagination counter (PG is T<n>)."""
        return self.counter

    def closed_transactions(self) -> list[dict[str, Any]]:
        """Signed end datasets, with 10 Wh counter values as begin/end registers."""
        return [dict(r) for r in self.records]

    # ---- commands -------------------------------------------------------------------------------------
    def _refuse(self, status: SignatureStatus) -> ModbusException:
        self.signature_status = status
        return ModbusException.ILLEGAL_VALUE

    def _command(self, regmap: RegisterMap, value: int) -> ModbusException | None:
        self.last_command = value
        if value not in (COMMAND_BEGIN, COMMAND_END):
            return self._refuse(SignatureStatus.INVALID_COMMAND)
        begin = value == COMMAND_BEGIN
        if (self.open is None) == (not begin):
            return self._refuse(SignatureStatus.INVALID_STATE)
        if self.time_status == 0:
            return self._refuse(SignatureStatus.INVALID_DATE_TIME)
        try:
            meta = self._metadata(regmap)
        except MetadataError as exc:
            return self._refuse(SignatureStatus(exc.status))
        m = self.meter
        reading = self._reading()
        if begin:
            self.counter += 1
            self.open = {
                "id": transaction_id(meta, self.counter),
                "pagination": self.counter,
                "metadata": self._metadata_raw(regmap).decode("ascii"),
                "begin": reading.to_json(),
                "begin_sim_s": m.env.now,
                "interrupted": False,
            }
            dataset = self._dataset(meta, self.counter, [reading_json(reading, "B")])
            self.pending = {"kind": "B", "dataset": dataset, "record": None}
        else:
            assert self.open is not None
            opened, begin_reading = self.open, Reading.from_json(self.open["begin"])
            n = int(opened["pagination"])
            rd = [reading_json(begin_reading, "B"), reading_json(reading, "E")]
            record = {
                "transaction_id": transaction_id(meta, n),
                "pagination": n,
                "begin_wh": begin_reading.energy_wh,
                "end_wh": reading.energy_wh,
                "begin_register": begin_reading.energy_register,
                "end_register": reading.energy_register,
            }
            self.open = None
            self.pending = {"kind": "E", "dataset": self._dataset(meta, n, rd), "record": record}
        self.result = None
        self.signature_status = SignatureStatus.IN_PROGRESS
        m.persist()  # before the write is acknowledged
        return None

    def _metadata_raw(self, regmap: RegisterMap) -> bytes:
        length = regmap.image["metadata_length"][0]
        words = regmap.image["metadata"]
        return b"".join(w.to_bytes(2, "big") for w in words)[:length]

    def _metadata(self, regmap: RegisterMap) -> dict[str, Any]:
        length = regmap.image["metadata_length"][0]
        size = self.profile.register("signed_dataset").regs * 2
        if length > self.profile.register("metadata").regs * 2:
            raise MetadataError("metadata: longer than its registers", SignatureStatus.INVALID_MESSAGE_SIZE)
        meta = parse_metadata(self._metadata_raw(regmap))
        widest = Reading(WIDEST_COUNTER, 0.0, format_tm(0.0, -720, False))
        rd = [reading_json(widest, "B"), reading_json(widest, "E")]
        if len(self._dataset(meta, WIDEST_COUNTER, rd)) > size:
            raise MetadataError("metadata: the dataset would not fit", SignatureStatus.INVALID_MESSAGE_SIZE)
        return meta

    def _reading(self) -> Reading:
        m = self.meter
        wh = m.energy_wh()
        tm = format_tm(math.floor(m.clock_utc()), m.utc_offset_min, m.clock_synchronised)
        return Reading(m.energy_register(wh), wh, tm)

    def _dataset(self, meta: dict[str, Any], pagination: int, rd: list[dict[str, Any]]) -> str:
        p = self.profile
        filled = {**meta, "PG": f"T{pagination}", "MV": p.vendor, "MM": p.model, "MS": self.meter.serial}
        filled.update({"MF": p.firmware, "RD": rd})
        ordered = {key: filled[key] for key in KEY_ORDER if key in filled}
        return json.dumps(ordered, separators=(",", ":"), ensure_ascii=True)

    def _sign_pending(self) -> None:
        if self.pending is None:
            return
        dataset = str(self.pending["dataset"])
        signature = self.meter.key.sign(dataset.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        self.result = {"dataset": dataset, "signature": signature.hex()}
        if self.pending["record"] is not None:
            self.records.append({**self.pending["record"], "ocmf": ocmf_record(dataset, signature)})
            self.records = self.records[-self.profile.records_kept :]
        self.pending = None
        self.meter.persist()

    # ---- register hooks -------------------------------------------------------------------------------
    def initial_words(self, reg: Register) -> list[int]:
        """After a power-up the metadata registers still hold the open transaction's metadata."""
        if self.open is not None and reg.name in ("metadata", "metadata_length"):
            raw = str(self.open["metadata"]).encode("ascii")
            if reg.name == "metadata_length":
                return [len(raw)]
            padded = raw.ljust(reg.regs * 2, b"\0")
            return [int.from_bytes(padded[i : i + 2], "big") for i in range(0, reg.regs * 2, 2)]
        return super().initial_words(reg)

    def check_write(
        self, regmap: RegisterMap, reg: Register, written: dict[int, int], function_code: int
    ) -> ModbusException | None:
        """While the meter signs, command and metadata writes are busy (06)."""
        if self.busy and reg.name in ("command", "metadata"):
            return ModbusException.DEVICE_BUSY
        return super().check_write(regmap, reg, written, function_code)

    def apply(self, regmap: RegisterMap, reg: Register, written: dict[int, int]) -> ModbusException | None:
        """The clock takes the time when its low word is written; 7071 says whether it is synchronised."""
        m = self.meter
        words = regmap.image[reg.name]
        if reg.name == "utc_time" and reg.address + 1 in written:
            m.set_clock((words[0] << 16) | words[1], synchronised=False)
        elif reg.name == "utc_offset":
            m.utc_offset_min = decode_int(reg, words)[0]
        elif reg.name == "time_status":
            self.time_status = words[0]
            m.clock_synchronised = words[0] != 0
        elif reg.name == "command":
            return self._command(regmap, words[0])
        return None

    def value_sources(self, regmap: RegisterMap) -> dict[str, Source]:
        """Every read-only or live register of docs/meters/iskra-wm3m4c.md."""
        m, p = self.meter, self.profile
        exponent = round(math.log10(p.energy_resolution_wh))

        def meas(attr: str, index: int) -> Source:
            return measured(lambda: getattr(regmap.measurements(), attr)[index])  # type: ignore[no-any-return]

        def result(field: str) -> bytes:
            if self.busy or self.result is None:
                return b""
            value = self.result[field]
            return value.encode("ascii") if field == "dataset" else bytes.fromhex(value)

        numbers = m.key.public_key().public_numbers()
        raw_key = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        sources: dict[str, Source] = {
            "model": lambda: p.model,
            "serial_number": lambda: m.serial,
            "frequency": measured(lambda: regmap.measurements().frequency_hz),
            "power_total": measured(lambda: math.fsum(regmap.measurements().power_w)),
            "reactive_power_total": measured(lambda: math.fsum(regmap.measurements().reactive_var)),
            "phase_sequence": measured(lambda: 0 if m.grid.phase_order == "cw" else 1),
            "energy_import_exponent": constant(lambda: exponent),
            "energy_export_exponent": constant(lambda: exponent),
            "energy_import_counter": energy_counter(lambda: m.energy_register()),
            "energy_export_counter": constant(lambda: 0),
            "charging_state": lambda: self.transaction_state,
            "command": lambda: self.last_command,
            "signature_status": lambda: int(self.signature_status),
            "utc_offset": lambda: m.utc_offset_min,
            "utc_time": lambda: int(m.clock_utc()),
            "time_status": lambda: self.time_status,
            "dataset_length": lambda: len(result("dataset")),
            "signature_length": lambda: len(result("signature")),
            "signed_dataset": lambda: result("dataset"),
            "signature": lambda: result("signature"),
            "public_key": lambda: raw_key,
        }
        for i, phase in enumerate(("l1", "l2", "l3")):
            sources[f"voltage_{phase}"] = meas("voltages_v", i)
            sources[f"current_{phase}"] = meas("currents_a", i)
            sources[f"power_{phase}"] = meas("power_w", i)
            sources[f"reactive_power_{phase}"] = meas("reactive_var", i)
        return sources
