"""OCPP 1.6: MeterValues.req and StopTransaction.req from the Powermeter dataset and signed OCMF values."""

from __future__ import annotations

import base64
import copy
import math

import pytest
from ocpp_samples import (
    BEGIN_RECORD,
    END_RECORD,
    POWERMETER_AC,
    POWERMETER_DC,
    PUBLIC_KEY_HEX,
    TRANSACTION_RECORD,
    signed_value,
    validate_with_ocpp_library,
)

from driver.errors import DriverError
from driver.ocmf import verify
from driver.ocpp import (
    OcppError,
    meter_values_request_v16,
    schema_path,
    stop_transaction_request_v16,
    validate,
)


def sampled(payload, measurand, phase=None):
    values = payload["meterValue"][0]["sampledValue"]
    return next(v for v in values if v.get("measurand") == measurand and v.get("phase") == phase)


def test_schemas_come_from_the_installed_ocpp_package():
    path = schema_path("MeterValues", "1.6")
    assert path.name == "MeterValues.json" and path.is_file() and "ocpp" in path.parts
    assert schema_path("StopTransaction", "1.6").name == "StopTransaction.json"


def test_meter_values_from_a_three_phase_dataset():
    payload = meter_values_request_v16(1, POWERMETER_AC, transaction_id=42)
    validate_with_ocpp_library(payload, "MeterValues", "1.6")
    assert payload["connectorId"] == 1 and payload["transactionId"] == 42
    assert payload["meterValue"][0]["timestamp"] == POWERMETER_AC["timestamp"]
    energy = sampled(payload, "Energy.Active.Import.Register")
    assert energy == {
        "value": "23734",
        "context": "Sample.Periodic",
        "format": "Raw",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unit": "Wh",
    }
    assert sampled(payload, "Energy.Active.Import.Register", "L2")["value"] == "7912.5"
    assert sampled(payload, "Voltage", "L3-N")["value"] == "230.4"
    assert sampled(payload, "Current.Import", "N")["value"] == "0.05"
    assert sampled(payload, "Power.Reactive.Import")["unit"] == "var"
    assert "unit" not in sampled(payload, "Frequency", "L1")  # 1.6 has no Hz: Frequency is Hz by definition
    assert all(isinstance(v["value"], str) for v in payload["meterValue"][0]["sampledValue"])
    assert len(payload["meterValue"][0]["sampledValue"]) == 4 + 1 + 4 + 4 + 3 + 4 + 3


def test_dc_dataset_and_export_power():
    payload = meter_values_request_v16(0, POWERMETER_DC)
    assert sampled(payload, "Power.Active.Export")["value"] == "2500"
    assert sampled(payload, "Voltage")["value"] == "801.2"
    assert sampled(payload, "Current.Import")["value"] == "-3.12"


def test_small_and_large_numbers_are_plain_decimal_strings():
    data = copy.deepcopy(POWERMETER_DC)
    data["energy_Wh_import"]["total"] = 1e-7
    data["power_W"]["total"] = 1.5e16
    payload = meter_values_request_v16(0, data)
    assert sampled(payload, "Energy.Active.Import.Register")["value"] == "0.0000001"
    assert sampled(payload, "Power.Active.Import")["value"] == "15000000000000000"


@pytest.mark.parametrize("context", ["Transaction.Begin", "Transaction.End"])
def test_signed_value_in_meter_values(context):
    record = BEGIN_RECORD if context == "Transaction.Begin" else END_RECORD
    payload = meter_values_request_v16(
        1, POWERMETER_AC, context=context, transaction_id=7, signed=signed_value(record)
    )
    validate_with_ocpp_library(payload, "MeterValues", "1.6")
    signed = payload["meterValue"][0]["sampledValue"][-1]
    assert signed == {"value": record, "context": context, "format": "SignedData"}
    assert verify(signed["value"], PUBLIC_KEY_HEX).valid  # carried byte for byte


def test_stop_transaction_with_begin_and_end_records():
    payload = stop_transaction_request_v16(
        42,
        POWERMETER_AC,
        signed=signed_value(END_RECORD),
        start_signed=signed_value(BEGIN_RECORD),
        reason="EVDisconnected",
        id_tag="0A1B2C3D",
    )
    validate_with_ocpp_library(payload, "StopTransaction", "1.6")
    assert payload["meterStop"] == 23734 and payload["reason"] == "EVDisconnected"
    begin, end = payload["transactionData"]
    assert begin["timestamp"] == "2026-11-23T01:00:00.000+00:00"  # the time the begin record states
    assert begin["sampledValue"] == [
        {"value": BEGIN_RECORD, "context": "Transaction.Begin", "format": "SignedData"}
    ]
    assert end["timestamp"] == POWERMETER_AC["timestamp"]
    assert end["sampledValue"][-1] == {
        "value": END_RECORD,
        "context": "Transaction.End",
        "format": "SignedData",
    }
    assert {v["context"] for v in end["sampledValue"]} == {"Transaction.End"}


def test_stop_transaction_with_one_record_holding_begin_and_end():
    payload = stop_transaction_request_v16(9, POWERMETER_AC, signed=signed_value(TRANSACTION_RECORD))
    (end,) = payload["transactionData"]
    assert verify(end["sampledValue"][-1]["value"], PUBLIC_KEY_HEX).transaction_checked


def test_base64_option():
    payload = meter_values_request_v16(
        1, POWERMETER_AC, context="Transaction.End", signed=signed_value(END_RECORD), encoding="base64"
    )
    value = payload["meterValue"][0]["sampledValue"][-1]["value"]
    assert base64.b64decode(value).decode() == END_RECORD


def test_id_tag_over_the_limit_is_reported_not_truncated():
    with pytest.raises(OcppError) as caught:
        stop_transaction_request_v16(1, POWERMETER_AC, id_tag="X" * 21)
    assert "$.idTag: 21 characters exceed the OCPP limit of 20 (not truncated)" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("energy_Wh_import"), "powermeter.energy_Wh_import.total: missing"),
        (lambda d: d["energy_Wh_import"].pop("total"), "powermeter.energy_Wh_import.total: missing"),
        (lambda d: d["power_W"].update(L1=math.nan), "powermeter.power_W.L1: nan is not a finite number"),
        (lambda d: d["voltage_V"].update(L2="230"), "powermeter.voltage_V.L2: expected a number"),
        (lambda d: d.update(current_A=[1, 2]), "powermeter.current_A: expected an object"),
        (
            lambda d: d.update(timestamp="02:00 today"),
            "powermeter.timestamp: '02:00 today' is not an RFC 3339",
        ),
        (
            lambda d: d.update(timestamp="2026-11-23T02:00:00"),
            "powermeter.timestamp: '2026-11-23T02:00:00' is not an RFC 3339 date-time with a time zone",
        ),
    ],
)
def test_bad_powermeter_data_names_the_field(change, message):
    data = copy.deepcopy(POWERMETER_AC)
    change(data)
    with pytest.raises(OcppError) as caught:
        meter_values_request_v16(1, data)
    assert str(caught.value).startswith(message)


def test_bad_signed_value_names_the_field():
    with pytest.raises(OcppError, match="signed meter value: encoding_method must be a string"):
        meter_values_request_v16(
            1, POWERMETER_AC, signed={"signed_meter_data": END_RECORD, "signing_method": ""}
        )
    with pytest.raises(OcppError, match="expected a JSON object"):
        meter_values_request_v16(1, 42)


def test_objects_with_to_json_are_accepted():
    class Powermeter:
        def to_json(self):
            return POWERMETER_AC

    assert meter_values_request_v16(1, Powermeter()) == meter_values_request_v16(1, POWERMETER_AC)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (
            lambda p: p["meterValue"][0]["sampledValue"][0].update(value=23734),
            "$.meterValue[0].sampledValue[0].value",
        ),
        (lambda p: p["meterValue"][0]["sampledValue"][0].update(measurand="Energy"), "is not one of"),
        (lambda p: p["meterValue"][0].update(timestamp="yesterday"), "'yesterday' is not an RFC 3339"),
        (lambda p: p.pop("connectorId"), "'connectorId' is a required property"),
        (lambda p: p.update(connectorId=-1), "$.connectorId: -1 is negative"),
        (lambda p: p["meterValue"][0].update(extra=1), "Additional properties are not allowed"),
    ],
)
def test_validate_names_each_violation(mutate, where):
    payload = meter_values_request_v16(1, POWERMETER_AC)
    mutate(payload)
    with pytest.raises(OcppError) as caught:
        validate(payload, "MeterValues", "1.6")
    assert where in str(caught.value)
    assert isinstance(caught.value, DriverError)


def test_validate_refuses_unknown_versions_and_actions():
    with pytest.raises(OcppError, match=r"OCPP version '1\.5' unknown"):
        validate({}, "MeterValues", "1.5")
    with pytest.raises(OcppError, match=r"no OCPP 1\.6 schema for action 'FlyToTheMoon'"):
        validate({}, "FlyToTheMoon", "1.6")
