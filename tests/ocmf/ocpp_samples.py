"""A realistic Powermeter dataset and signed meter values (real OCMF records and keys) for OCPP tests."""

from __future__ import annotations

from typing import Any

from ocmf_factory import BEGIN_TIME, END_TIME, meter_key, payload, reading, record
from ocpp.messages import Call, _validate_payload

METER_KEY = meter_key("secp256r1", seed=7)
PUBLIC_KEY_HEX = str(METER_KEY.public_key("der-hex"))

# 11 kW three-phase AC charging, as a meter reports it mid-session (EVerest field names).
POWERMETER_AC: dict[str, Any] = {
    "timestamp": "2026-11-23T02:00:00.000Z",
    "meter_id": "SIM0000001",
    "phase_seq_error": False,
    "energy_Wh_import": {"total": 23734.0, "L1": 7911.0, "L2": 7912.5, "L3": 7910.5},
    "energy_Wh_export": {"total": 0.0},
    "power_W": {"total": 11040.3, "L1": 3680.1, "L2": 3679.9, "L3": 3680.3},
    "voltage_V": {"L1": 230.1, "L2": 229.8, "L3": 230.4},
    "current_A": {"L1": 15.99, "L2": 16.01, "L3": 15.97, "N": 0.05},
    "frequency_Hz": {"L1": 50.01, "L2": 50.01, "L3": 50.01},
    "VAR": {"total": 35.2, "L1": 11.7, "L2": 11.8, "L3": 11.7},
}

POWERMETER_DC: dict[str, Any] = {
    "timestamp": "2026-11-23T02:00:00+01:00",
    "energy_Wh_import": {"total": 150000},
    "power_W": {"total": -2500.0},  # feeding back: export power
    "voltage_V": {"DC": 801.2},
    "current_A": {"DC": -3.12},
}

TRANSACTION_RECORD = record(
    payload([reading(BEGIN_TIME, "B", 12.689), reading(END_TIME, "E", 23.734)], PG="T42"), METER_KEY
)
BEGIN_RECORD = record(payload([reading(BEGIN_TIME, "B", 12.689)], PG="T41"), METER_KEY)
END_RECORD = record(payload([reading(END_TIME, "E", 23.734)], PG="T42"), METER_KEY)


def signed_value(ocmf: str, public_key: str | None = PUBLIC_KEY_HEX) -> dict[str, Any]:
    """EVerest's SignedMeterValue for an OCMF record."""
    value = {"signed_meter_data": ocmf, "signing_method": "ECDSA-secp256r1-SHA256", "encoding_method": "OCMF"}
    if public_key is not None:
        value["public_key"] = public_key
    return value


def validate_with_ocpp_library(payload: dict[str, Any], action: str, version: str) -> None:
    """A second opinion: the `ocpp` package's own validation path (raises its own errors)."""
    _validate_payload(Call("1", action, payload), version)
