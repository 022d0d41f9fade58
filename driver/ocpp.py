"""The Powermeter dataset and signed meter values as OCPP 1.6 and 2.0.1 payloads, checked against the schemas.

Inputs are EVerest's JSON form (a Powermeter dict with energy_Wh_import, power_W, ...; a SignedMeterValue
dict with signed_meter_data, signing_method, encoding_method, public_key), that JSON as text, or any object
whose to_json() returns either (driver.types returns text). Every builder validates what it returns with
`validate`, which uses the official JSON schemas bundled in the installed `ocpp` package; a value over an
OCPP field limit (e.g. signedMeterData longer than 2500 characters) is reported, never truncated.
The mapping follows EVerest's OCPP modules; see docs/ocpp.md.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
from jsonschema.validators import validator_for

from driver.errors import OcmfFormatError, OcppError
from driver.ocmf import BEGIN_TX, END_TX, parse

VERSIONS = ("1.6", "2.0.1")
ENCODINGS = ("plain", "base64")  # plain: the OCMF text as EVerest sends it; base64: its UTF-8 bytes in base64


# --------------------------------------------------------------------------------------------------
# Validation against the schemas bundled with the `ocpp` package
# --------------------------------------------------------------------------------------------------

SCHEMA_ROOT = Path(ocpp.__file__).resolve().parent
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def is_rfc3339(value: Any) -> bool:
    """OCPP's date-time: RFC 3339 with a time zone. Non-strings pass (the schema's type check covers them)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(is_rfc3339)  # jsonschema checks date-time only with an extra package


def schema_path(action: str, version: str) -> Path:
    """The schema file of a request: 1.6 names it after the action, 2.0.1 adds "Request"."""
    if version not in VERSIONS:
        raise OcppError(f"OCPP version {version!r} unknown (supported: {', '.join(VERSIONS)})")
    name = action.removesuffix("Request")
    if version == "2.0.1":
        name += "Request"
    path = SCHEMA_ROOT / f"v{version.replace('.', '')}" / "schemas" / f"{name}.json"
    if not path.is_file():
        raise OcppError(f"no OCPP {version} schema for action {action!r} (looked for {path})")
    return path


@cache
def _validator(action: str, version: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_path(action, version).read_text(encoding="utf-8-sig"))
    cls = validator_for(schema)
    return cls(schema, format_checker=_FORMATS)


def _json_path(path: Iterable[Any]) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _describe(error: jsonschema.ValidationError) -> str:
    where = _json_path(error.absolute_path)
    if error.validator == "maxLength" and isinstance(error.instance, str):
        return (
            f"{where}: {len(error.instance)} characters exceed the OCPP limit of {error.validator_value} "
            "(not truncated)"
        )
    if error.validator == "format":
        return f"{where}: {error.instance!r} is not an RFC 3339 date-time with a time zone"
    shown = repr(error.instance)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{where}: {error.message.replace(repr(error.instance), shown)}"


def _spec_rules(payload: Mapping[str, Any], action: str, version: str) -> list[str]:
    """Rules of the OCPP specification text that the JSON schemas leave out (seed 003: evseId >= 0)."""
    name = action.removesuffix("Request")
    problems = []
    if version == "2.0.1" and name == "MeterValues" and isinstance(payload.get("evseId"), int):
        if payload["evseId"] < 0:
            problems.append(
                f"$.evseId: {payload['evseId']} is negative (0 is the main meter, EVSEs count from 1)"
            )
    if version == "1.6" and name == "MeterValues" and isinstance(payload.get("connectorId"), int):
        if payload["connectorId"] < 0:
            problems.append(f"$.connectorId: {payload['connectorId']} is negative (0 is the main meter)")
    return problems


def validate(payload: Any, action: str, version: str) -> None:
    """Raise OcppError listing every violation (with its JSON path) when `payload` breaks the OCPP schema
    of `action` (e.g. "MeterValues", "StopTransaction", "TransactionEvent") in `version` ("1.6", "2.0.1")."""
    data = _as_json(payload, "payload")
    validator = _validator(action.removesuffix("Request"), version)
    problems = [
        _describe(e) for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]
    problems += _spec_rules(data, action, version)
    if problems:
        raise OcppError(f"OCPP {version} {action} payload is invalid:", problems)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def _as_json(obj: Any, what: str) -> dict[str, Any]:
    if hasattr(obj, "to_json") and not isinstance(obj, Mapping):
        obj = obj.to_json()
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise OcppError(f"{what}: not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(obj, Mapping):
        raise OcppError(
            f"{what}: expected a JSON object (dict) or an object with to_json(), got {type(obj).__name__}"
        )
    return dict(obj)


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise OcppError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise OcppError(f"{where}: {value} is not a finite number")
    return value


def _timestamp(powermeter: Mapping[str, Any]) -> str:
    value = powermeter.get("timestamp")
    if not isinstance(value, str) or not is_rfc3339(value):
        raise OcppError(f"powermeter.timestamp: {value!r} is not an RFC 3339 date-time with a time zone")
    return value


def _decimal_text(value: float | int) -> str:
    """OCPP 1.6 SampledValue.value is a string: the number in plain decimal notation, never 1e-07."""
    text = format(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), "f")
    return text[:-2] if text.endswith(".0") else text


# Powermeter field -> (measurand, unit, {EVerest key: OCPP phase or None})
_SUMMED = {"total": None, "L1": "L1", "L2": "L2", "L3": "L3"}
_MEASURANDS: tuple[tuple[str, str, str, dict[str, str | None]], ...] = (
    ("energy_Wh_import", "Energy.Active.Import.Register", "Wh", _SUMMED),
    ("energy_Wh_export", "Energy.Active.Export.Register", "Wh", _SUMMED),
    ("power_W", "Power.Active.Import", "W", _SUMMED),
    ("VAR", "Power.Reactive.Import", "var", _SUMMED),
    ("current_A", "Current.Import", "A", {"DC": None, "L1": "L1", "L2": "L2", "L3": "L3", "N": "N"}),
    ("voltage_V", "Voltage", "V", {"DC": None, "L1": "L1-N", "L2": "L2-N", "L3": "L3-N"}),
    ("frequency_Hz", "Frequency", "Hz", {"L1": "L1", "L2": "L2", "L3": "L3"}),
)
_EXPORT_OF = {"Power.Active.Import": "Power.Active.Export", "Power.Reactive.Import": "Power.Reactive.Export"}


def _readings(powermeter: Mapping[str, Any]) -> list[tuple[str, str, str | None, float | int]]:
    """(measurand, unit, phase, value) for every value present. Negative power is export power."""
    energy = powermeter.get("energy_Wh_import")
    if not isinstance(energy, Mapping) or "total" not in energy:
        raise OcppError("powermeter.energy_Wh_import.total: missing (EVerest requires it)")
    found = []
    for field, measurand, unit, phases in _MEASURANDS:
        group = powermeter.get(field)
        if group is None:
            continue
        if not isinstance(group, Mapping):
            raise OcppError(f"powermeter.{field}: expected an object, got {group!r}")
        for key, phase in phases.items():
            if group.get(key) is None:
                continue
            value = _number(group[key], f"powermeter.{field}.{key}")
            name = measurand
            if value < 0 and measurand in _EXPORT_OF:
                name, value = _EXPORT_OF[measurand], -value
            found.append((name, unit, phase, value))
    return found


def _signed(signed: Any) -> dict[str, Any]:
    data = _as_json(signed, "signed meter value")
    for key in ("signed_meter_data", "signing_method", "encoding_method"):
        if not isinstance(data.get(key), str):
            raise OcppError(f"signed meter value: {key} must be a string, got {data.get(key)!r}")
    if not data["signed_meter_data"]:
        raise OcppError("signed meter value: signed_meter_data is empty")
    if data.get("public_key") is not None and not isinstance(data["public_key"], str):
        raise OcppError(f"signed meter value: public_key must be a string, got {data['public_key']!r}")
    return data


def _encode(text: str, encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise OcppError(f"encoding {encoding!r} unknown (expected one of {', '.join(ENCODINGS)})")
    return text if encoding == "plain" else base64.b64encode(text.encode("utf-8")).decode("ascii")


def signed_reading(signed: Any, context: str) -> tuple[float, str]:
    """The import energy in Wh and the time that an OCMF record itself states for Transaction.Begin (its
    begin reading) or Transaction.End (its end reading): what a signed sampled value is *of*."""
    data = _signed(signed)
    try:
        record = parse(data["signed_meter_data"])
    except OcmfFormatError as exc:
        raise OcppError(f"signed meter value: not a readable OCMF record ({exc})") from None
    wanted = {BEGIN_TX} if context == "Transaction.Begin" else set(END_TX)
    for reading in record.readings:
        if reading.tx in wanted and reading.value_in_base_unit() is not None and reading.time is not None:
            moment = reading.time.isoformat(timespec="milliseconds")
            return float(reading.value_in_base_unit() or 0), moment
    raise OcppError(f"signed meter value: the OCMF record has no energy reading for {context}")


# --------------------------------------------------------------------------------------------------
# OCPP 1.6
# --------------------------------------------------------------------------------------------------


def sampled_values_v16(powermeter: Any, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    """Every value of the dataset as a 1.6 SampledValue (value as a string; Frequency has no 1.6 unit: Hz)."""
    data = _as_json(powermeter, "powermeter")
    values = []
    for measurand, unit, phase, value in _readings(data):
        sampled = {"value": _decimal_text(value), "context": context, "format": "Raw", "measurand": measurand}
        if phase is not None:
            sampled["phase"] = phase
        sampled["location"] = "Outlet"
        if measurand != "Frequency":
            sampled["unit"] = unit
        values.append(sampled)
    return values


def signed_sampled_value_v16(signed: Any, context: str, encoding: str = "plain") -> dict[str, Any]:
    """The OCMF record as a SignedData sampled value, as EVerest's OCPP 1.6 module sends it."""
    data = _signed(signed)
    return {"value": _encode(data["signed_meter_data"], encoding), "context": context, "format": "SignedData"}


def meter_value_v16(
    powermeter: Any | None,
    context: str,
    signed: Any | None = None,
    *,
    timestamp: str | None = None,
    encoding: str = "plain",
) -> dict[str, Any]:
    """One 1.6 MeterValue: the dataset's values and, when given, the signed value, all with `context`."""
    sampled: list[dict[str, Any]] = []
    if powermeter is not None:
        data = _as_json(powermeter, "powermeter")
        timestamp = timestamp or _timestamp(data)
        sampled += sampled_values_v16(data, context)
    if signed is not None:
        timestamp = timestamp or signed_reading(signed, context)[1]
        sampled.append(signed_sampled_value_v16(signed, context, encoding))
    if not sampled or timestamp is None:
        raise OcppError("meter value: needs a powermeter dataset or a signed meter value")
    return {"timestamp": timestamp, "sampledValue": sampled}


def meter_values_request_v16(
    connector_id: int,
    powermeter: Any,
    *,
    context: str = "Sample.Periodic",
    transaction_id: int | None = None,
    signed: Any | None = None,
    encoding: str = "plain",
) -> dict[str, Any]:
    """MeterValues.req (seed 002). connectorId 0 is the main meter."""
    payload: dict[str, Any] = {"connectorId": connector_id}
    if transaction_id is not None:
        payload["transactionId"] = transaction_id
    payload["meterValue"] = [meter_value_v16(powermeter, context, signed, encoding=encoding)]
    validate(payload, "MeterValues", "1.6")
    return payload


def stop_transaction_request_v16(
    transaction_id: int,
    powermeter: Any,
    *,
    signed: Any | None = None,
    start_signed: Any | None = None,
    reason: str | None = None,
    id_tag: str | None = None,
    encoding: str = "plain",
) -> dict[str, Any]:
    """StopTransaction.req: meterStop in Wh from the dataset, transactionData with the end readings and the
    signed value (Transaction.End) and, for meters that sign begin separately, the begin record
    (Transaction.Begin, stamped with the time the record states)."""
    data = _as_json(powermeter, "powermeter")
    readings = _readings(data)
    meter_stop = next(
        value
        for measurand, _, phase, value in readings
        if measurand == "Energy.Active.Import.Register" and phase is None
    )
    payload: dict[str, Any] = {
        "transactionId": transaction_id,
        "meterStop": round(meter_stop),
        "timestamp": _timestamp(data),
    }
    if id_tag is not None:
        payload["idTag"] = id_tag
    if reason is not None:
        payload["reason"] = reason
    transaction_data = []
    if start_signed is not None:
        transaction_data.append(meter_value_v16(None, "Transaction.Begin", start_signed, encoding=encoding))
    transaction_data.append(meter_value_v16(data, "Transaction.End", signed, encoding=encoding))
    payload["transactionData"] = transaction_data
    validate(payload, "StopTransaction", "1.6")
    return payload


# --------------------------------------------------------------------------------------------------
# OCPP 2.0.1
# --------------------------------------------------------------------------------------------------


def signed_meter_value_v201(signed: Any, encoding: str = "plain") -> dict[str, Any]:
    """SignedMeterValueType: the record plain (as EVerest sends it) or base64; publicKey "" when unknown."""
    data = _signed(signed)
    return {
        "signedMeterData": _encode(data["signed_meter_data"], encoding),
        "signingMethod": data["signing_method"],
        "encodingMethod": data["encoding_method"],
        "publicKey": data.get("public_key") or "",
    }


def sampled_values_v201(powermeter: Any, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    """Every value of the dataset as a 2.0.1 SampledValue (value a number, unitOfMeasure.unit)."""
    data = _as_json(powermeter, "powermeter")
    values = []
    for measurand, unit, phase, value in _readings(data):
        sampled: dict[str, Any] = {"value": value, "context": context, "measurand": measurand}
        if phase is not None:
            sampled["phase"] = phase
        sampled["location"] = "Outlet"
        sampled["unitOfMeasure"] = {"unit": unit}
        values.append(sampled)
    return values


def meter_value_v201(
    powermeter: Any | None,
    context: str,
    signed: Any | None = None,
    *,
    encoding: str = "plain",
) -> dict[str, Any]:
    """One 2.0.1 MeterValue. The signed value rides on the Energy.Active.Import.Register total, as in EVerest;
    without a dataset, that sampled value carries the energy and time the OCMF record states."""
    if powermeter is not None:
        data = _as_json(powermeter, "powermeter")
        timestamp = _timestamp(data)
        sampled = sampled_values_v201(data, context)
    else:
        if signed is None:
            raise OcppError("meter value: needs a powermeter dataset or a signed meter value")
        energy, timestamp = signed_reading(signed, context)
        sampled = [
            {
                "value": energy,
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unitOfMeasure": {"unit": "Wh"},
            }
        ]
    if signed is not None:
        total = next(
            s for s in sampled if s["measurand"] == "Energy.Active.Import.Register" and "phase" not in s
        )
        total["signedMeterValue"] = signed_meter_value_v201(signed, encoding)
    return {"timestamp": timestamp, "sampledValue": sampled}


def meter_values_request_v201(
    evse_id: int,
    powermeter: Any,
    *,
    context: str = "Sample.Periodic",
    signed: Any | None = None,
    encoding: str = "plain",
) -> dict[str, Any]:
    """MeterValuesRequest (seed 003): evseId >= 0 (0 the main meter), at least one meterValue."""
    payload = {
        "evseId": evse_id,
        "meterValue": [meter_value_v201(powermeter, context, signed, encoding=encoding)],
    }
    validate(payload, "MeterValues", "2.0.1")
    return payload


def transaction_event_request_v201(
    event_type: str,
    *,
    timestamp: str,
    trigger_reason: str,
    seq_no: int,
    transaction_id: str,
    meter_values: list[dict[str, Any]] | None = None,
    evse_id: int | None = None,
    connector_id: int | None = None,
    stopped_reason: str | None = None,
    offline: bool = False,
) -> dict[str, Any]:
    """TransactionEventRequest; pass meter values made with meter_value_v201 (e.g. Transaction.Begin with the
    start record and Transaction.End with the end record for event_type "Ended")."""
    info: dict[str, Any] = {"transactionId": transaction_id}
    if stopped_reason is not None:
        info["stoppedReason"] = stopped_reason
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": timestamp,
        "triggerReason": trigger_reason,
        "seqNo": seq_no,
        "transactionInfo": info,
    }
    if offline:
        payload["offline"] = True
    if evse_id is not None:
        payload["evse"] = {"id": evse_id} | (
            {"connectorId": connector_id} if connector_id is not None else {}
        )
    if meter_values:
        payload["meterValue"] = meter_values
    validate(payload, "TransactionEvent", "2.0.1")
    return payload


__all__ = [
    "ENCODINGS",
    "VERSIONS",
    "OcppError",
    "is_rfc3339",
    "meter_value_v16",
    "meter_value_v201",
    "meter_values_request_v16",
    "meter_values_request_v201",
    "sampled_values_v16",
    "sampled_values_v201",
    "schema_path",
    "signed_meter_value_v201",
    "signed_reading",
    "signed_sampled_value_v16",
    "stop_transaction_request_v16",
    "transaction_event_request_v201",
    "validate",
]
