"""EVerest powermeter types (seed 001) as dataclasses, with EVerest's field names and JSON form.

Optional fields that are None are left out of the JSON, as EVerest leaves them out. `from_dict`
checks the shape of what it is given and raises RequestError naming the offending field, so a bad
request is refused before anything reaches the meter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self, TypeVar

from driver.errors import RequestError

E = TypeVar("E", bound=StrEnum)

MAX_IDENTIFICATION_FLAGS = 4
MAX_IDENTIFICATION_DATA = 40
MAX_TARIFF_TEXT = 250
MAX_EVSE_ID = 40
MAX_TRANSACTION_ID = 40


class TransactionRequestStatus(StrEnum):
    """Status of a transaction start or stop request."""

    OK = "OK"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    UNEXPECTED_ERROR = "UNEXPECTED_ERROR"


class OCMFUserIdentificationStatus(StrEnum):
    """OCMF `IS`: general status of the user assignment."""

    ASSIGNED = "ASSIGNED"
    NOT_ASSIGNED = "NOT_ASSIGNED"


class OCMFIdentificationLevel(StrEnum):
    """OCMF `IL`; member order is the meter's table index order."""

    NONE = "NONE"
    HEARSAY = "HEARSAY"
    TRUSTED = "TRUSTED"
    VERIFIED = "VERIFIED"
    CERTIFIED = "CERTIFIED"
    SECURE = "SECURE"
    MISMATCH = "MISMATCH"
    INVALID = "INVALID"
    OUTDATED = "OUTDATED"
    UNKNOWN = "UNKNOWN"


class OCMFIdentificationFlags(StrEnum):
    """OCMF `IF`; member order is the meter's table index order."""

    RFID_NONE = "RFID_NONE"
    RFID_PLAIN = "RFID_PLAIN"
    RFID_RELATED = "RFID_RELATED"
    RFID_PSK = "RFID_PSK"
    OCPP_NONE = "OCPP_NONE"
    OCPP_RS = "OCPP_RS"
    OCPP_AUTH = "OCPP_AUTH"
    OCPP_RS_TLS = "OCPP_RS_TLS"
    OCPP_AUTH_TLS = "OCPP_AUTH_TLS"
    OCPP_CACHE = "OCPP_CACHE"
    OCPP_WHITELIST = "OCPP_WHITELIST"
    OCPP_CERTIFIED = "OCPP_CERTIFIED"
    ISO15118_NONE = "ISO15118_NONE"
    ISO15118_PNC = "ISO15118_PNC"
    PLMN_NONE = "PLMN_NONE"
    PLMN_RING = "PLMN_RING"
    PLMN_SMS = "PLMN_SMS"


class OCMFIdentificationType(StrEnum):
    """OCMF `IT`; member order is the meter's table index order."""

    NONE = "NONE"
    DENIED = "DENIED"
    UNDEFINED = "UNDEFINED"
    ISO14443 = "ISO14443"
    ISO15693 = "ISO15693"
    EMAID = "EMAID"
    EVCCID = "EVCCID"
    EVCOID = "EVCOID"
    ISO7812 = "ISO7812"
    CARD_TXN_NR = "CARD_TXN_NR"
    CENTRAL = "CENTRAL"
    CENTRAL_1 = "CENTRAL_1"
    CENTRAL_2 = "CENTRAL_2"
    LOCAL = "LOCAL"
    LOCAL_1 = "LOCAL_1"
    LOCAL_2 = "LOCAL_2"
    PHONE_NUMBER = "PHONE_NUMBER"
    KEY_CODE = "KEY_CODE"


# --- generic (de)serialisation helpers -------------------------------------------------------


def _to_plain(value: Any) -> Any:
    """Turn dataclasses, enums and lists into JSON-ready values, leaving out None fields."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_plain(getattr(value, f.name))
            for f in fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, list):
        return [_to_plain(item) for item in value]
    return value


def _require_mapping(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RequestError(where, f"expected a JSON object, got {type(data).__name__}")
    return data


def _reject_unknown(data: dict[str, Any], cls: type, where: str) -> None:
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise RequestError(_path(where, key), "unknown field")


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _get_str(data: dict[str, Any], name: str, where: str, *, required: bool) -> str | None:
    if name not in data or data[name] is None:
        if required:
            raise RequestError(_path(where, name), "required field is missing")
        return None
    value = data[name]
    if not isinstance(value, str):
        raise RequestError(_path(where, name), f"expected a string, got {type(value).__name__}")
    return value


def _get_number(data: dict[str, Any], name: str, where: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(_path(where, name), f"expected a number, got {type(value).__name__}")
    return float(value)


def _get_enum(enum_cls: type[E], value: Any, where: str) -> E:
    if not isinstance(value, str):
        raise RequestError(where, f"expected a string, got {type(value).__name__}")
    try:
        return enum_cls(value)
    except ValueError:
        raise RequestError(
            where, f"unknown {enum_cls.__name__} value {value!r} (allowed: {', '.join(enum_cls)})"
        ) from None


class _Json:
    """Mixin: to_dict / to_json / from_json for the dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        """The EVerest JSON object as a dict, None fields left out."""
        return _to_plain(self)

    def to_json(self) -> str:
        """The EVerest JSON text."""
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        raise NotImplementedError  # each dataclass below defines it

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Parse EVerest JSON text; RequestError names what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestError(cls.__name__, f"not valid JSON ({exc.msg} at position {exc.pos})") from None
        return cls.from_dict(data)


# --- units -------------------------------------------------------------------------------------


class _Numbers(_Json):
    """A unit object whose fields are all optional numbers."""

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        data = _require_mapping(data, where or cls.__name__)
        _reject_unknown(data, cls, where)
        return cls(**{f.name: _get_number(data, f.name, where) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass
class _PhaseValues(_Numbers):
    """A total and per-phase values (EVerest units Energy, Power, ReactivePower)."""

    total: float | None = None
    L1: float | None = None
    L2: float | None = None
    L3: float | None = None


class Energy(_PhaseValues):
    """Energy in Wh: total and L1..L3."""


class Power(_PhaseValues):
    """Active power in W: total and L1..L3; negative is export."""


class ReactivePower(_PhaseValues):
    """Reactive power in var: total and L1..L3."""


@dataclass
class Voltage(_Numbers):
    """Voltage in V: DC and L1..L3."""

    DC: float | None = None
    L1: float | None = None
    L2: float | None = None
    L3: float | None = None


@dataclass
class Current(_Numbers):
    """Current in A: DC, L1..L3 and neutral."""

    DC: float | None = None
    L1: float | None = None
    L2: float | None = None
    L3: float | None = None
    N: float | None = None


@dataclass
class Frequency(_Numbers):
    """Grid frequency in Hz per phase."""

    L1: float | None = None
    L2: float | None = None
    L3: float | None = None


@dataclass
class SignedMeterValue(_Json):
    """A signed value as EVerest carries it (units_signed.SignedMeterValue)."""

    signed_meter_data: str
    signing_method: str
    encoding_method: str
    public_key: str | None = None
    timestamp: str | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        data = _require_mapping(data, where or cls.__name__)
        _reject_unknown(data, cls, where)
        return cls(
            signed_meter_data=_get_str(data, "signed_meter_data", where, required=True) or "",
            signing_method=_get_str(data, "signing_method", where, required=True) or "",
            encoding_method=_get_str(data, "encoding_method", where, required=True) or "",
            public_key=_get_str(data, "public_key", where, required=False),
            timestamp=_get_str(data, "timestamp", where, required=False),
        )


# --- transactions -------------------------------------------------------------------------------


@dataclass
class TransactionReq(_Json):
    """Input of start_transaction: the OCMF identification the meter puts into the signed record."""

    evse_id: str
    transaction_id: str
    identification_status: OCMFUserIdentificationStatus
    identification_flags: list[OCMFIdentificationFlags]
    identification_type: OCMFIdentificationType
    identification_level: OCMFIdentificationLevel | None = None
    identification_data: str | None = None
    tariff_text: str | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        """Build from EVerest JSON, checking every field; RequestError names the first bad one."""
        data = _require_mapping(data, where or "TransactionReq")
        _reject_unknown(data, cls, where)
        for name in ("identification_status", "identification_flags", "identification_type"):
            if data.get(name) is None:
                raise RequestError(_path(where, name), "required field is missing")
        flags = data["identification_flags"]
        if not isinstance(flags, list):
            raise RequestError(
                _path(where, "identification_flags"), f"expected an array, got {type(flags).__name__}"
            )
        level = data.get("identification_level")
        req = cls(
            evse_id=_get_str(data, "evse_id", where, required=True) or "",
            transaction_id=_get_str(data, "transaction_id", where, required=True) or "",
            identification_status=_get_enum(
                OCMFUserIdentificationStatus,
                data["identification_status"],
                _path(where, "identification_status"),
            ),
            identification_flags=[
                _get_enum(OCMFIdentificationFlags, flag, _path(where, f"identification_flags[{i}]"))
                for i, flag in enumerate(flags)
            ],
            identification_type=_get_enum(
                OCMFIdentificationType, data["identification_type"], _path(where, "identification_type")
            ),
            identification_level=None
            if level is None
            else _get_enum(OCMFIdentificationLevel, level, _path(where, "identification_level")),
            identification_data=_get_str(data, "identification_data", where, required=False),
            tariff_text=_get_str(data, "tariff_text", where, required=False),
        )
        req.validate()
        return req

    def validate(self) -> None:
        """Check types, enums and lengths (also of a request built in code); RequestError names the field."""
        check_meter_text("evse_id", self.evse_id, MAX_EVSE_ID)
        check_meter_text("transaction_id", self.transaction_id, MAX_TRANSACTION_ID)
        if not self.transaction_id:
            raise RequestError("transaction_id", "must not be empty")
        _check_member("identification_status", self.identification_status, OCMFUserIdentificationStatus)
        _check_member("identification_type", self.identification_type, OCMFIdentificationType)
        if self.identification_level is not None:
            _check_member("identification_level", self.identification_level, OCMFIdentificationLevel)
        if not isinstance(self.identification_flags, list):
            raise RequestError("identification_flags", "expected a list")
        if len(self.identification_flags) > MAX_IDENTIFICATION_FLAGS:
            raise RequestError(
                "identification_flags",
                f"{len(self.identification_flags)} flags given, at most {MAX_IDENTIFICATION_FLAGS} allowed",
            )
        for i, flag in enumerate(self.identification_flags):
            _check_member(f"identification_flags[{i}]", flag, OCMFIdentificationFlags)
        if self.identification_data is not None:
            check_meter_text("identification_data", self.identification_data, MAX_IDENTIFICATION_DATA)
        if self.tariff_text is not None:
            check_meter_text("tariff_text", self.tariff_text, MAX_TARIFF_TEXT)


def rfc3339(seconds: int | float) -> str:
    """UTC seconds since 1970 as an RFC 3339 timestamp (Powermeter.timestamp, the stop-time limits)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_meter_text(name: str, value: Any, max_length: int) -> None:
    """A string the meter can store: printable ASCII, at most max_length characters."""
    if not isinstance(value, str):
        raise RequestError(name, f"expected a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise RequestError(name, f"{len(value)} characters, at most {max_length} allowed")
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None:
        raise RequestError(name, f"character {bad!r} cannot be stored in the meter (printable ASCII only)")


def _check_member(name: str, value: Any, enum_cls: type[StrEnum]) -> None:
    if not isinstance(value, enum_cls):
        _get_enum(enum_cls, value, name)  # raises with the allowed values when unknown
        raise RequestError(name, f"expected {enum_cls.__name__}, got the plain string {value!r}")


@dataclass
class TransactionStartResponse(_Json):
    """Result of start_transaction; signed_meter_value only for meters that sign the begin separately."""

    status: TransactionRequestStatus
    error: str | None = None
    transaction_min_stop_time: str | None = None
    transaction_max_stop_time: str | None = None
    signed_meter_value: SignedMeterValue | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        data = _require_mapping(data, where or cls.__name__)
        _reject_unknown(data, cls, where)
        smv = data.get("signed_meter_value")
        return cls(
            status=_get_enum(TransactionRequestStatus, data.get("status"), _path(where, "status")),
            error=_get_str(data, "error", where, required=False),
            transaction_min_stop_time=_get_str(data, "transaction_min_stop_time", where, required=False),
            transaction_max_stop_time=_get_str(data, "transaction_max_stop_time", where, required=False),
            signed_meter_value=None
            if smv is None
            else SignedMeterValue.from_dict(smv, _path(where, "signed_meter_value")),
        )


@dataclass
class TransactionStopResponse(_Json):
    """Result of stop_transaction: the meter's signed record(s), or an error."""

    status: TransactionRequestStatus
    start_signed_meter_value: SignedMeterValue | None = None
    signed_meter_value: SignedMeterValue | None = None
    error: str | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        data = _require_mapping(data, where or cls.__name__)
        _reject_unknown(data, cls, where)
        start = data.get("start_signed_meter_value")
        end = data.get("signed_meter_value")
        return cls(
            status=_get_enum(TransactionRequestStatus, data.get("status"), _path(where, "status")),
            start_signed_meter_value=None
            if start is None
            else SignedMeterValue.from_dict(start, _path(where, "start_signed_meter_value")),
            signed_meter_value=None
            if end is None
            else SignedMeterValue.from_dict(end, _path(where, "signed_meter_value")),
            error=_get_str(data, "error", where, required=False),
        )


# --- the live dataset ---------------------------------------------------------------------------


@dataclass
class Powermeter(_Json):
    """The measured dataset the driver publishes (EVerest powermeter.Powermeter)."""

    timestamp: str
    energy_Wh_import: Energy
    meter_id: str | None = None
    phase_seq_error: bool | None = None
    energy_Wh_export: Energy | None = None
    power_W: Power | None = None
    voltage_V: Voltage | None = None
    VAR: ReactivePower | None = None
    current_A: Current | None = None
    frequency_Hz: Frequency | None = None
    signed_meter_value: SignedMeterValue | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        data = _require_mapping(data, where or cls.__name__)
        _reject_unknown(data, cls, where)
        if "energy_Wh_import" not in data:
            raise RequestError(_path(where, "energy_Wh_import"), "required field is missing")
        phase = data.get("phase_seq_error")
        if phase is not None and not isinstance(phase, bool):
            raise RequestError(_path(where, "phase_seq_error"), "expected a boolean")

        def unit(cls_: type[_Json], name: str) -> Any:
            value = data.get(name)
            return None if value is None else cls_.from_dict(value, _path(where, name))

        return cls(
            timestamp=_get_str(data, "timestamp", where, required=True) or "",
            energy_Wh_import=Energy.from_dict(data["energy_Wh_import"], _path(where, "energy_Wh_import")),
            meter_id=_get_str(data, "meter_id", where, required=False),
            phase_seq_error=phase,
            energy_Wh_export=unit(Energy, "energy_Wh_export"),
            power_W=unit(Power, "power_W"),
            voltage_V=unit(Voltage, "voltage_V"),
            VAR=unit(ReactivePower, "VAR"),
            current_A=unit(Current, "current_A"),
            frequency_Hz=unit(Frequency, "frequency_Hz"),
            signed_meter_value=unit(SignedMeterValue, "signed_meter_value"),
        )


__all__ = [
    "Current",
    "Energy",
    "Frequency",
    "OCMFIdentificationFlags",
    "OCMFIdentificationLevel",
    "OCMFIdentificationType",
    "OCMFUserIdentificationStatus",
    "Power",
    "Powermeter",
    "ReactivePower",
    "SignedMeterValue",
    "TransactionReq",
    "TransactionRequestStatus",
    "TransactionStartResponse",
    "TransactionStopResponse",
    "Voltage",
]
