"""OCPP 2.0.1: MeterValuesRequest and TransactionEvent with signedMeterValue, against the official schemas."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from ocmf_factory import BEGIN_TIME, END_TIME, payload, reading, record
from ocpp_samples import (
    BEGIN_RECORD,
    END_RECORD,
    METER_KEY,
    POWERMETER_AC,
    POWERMETER_DC,
    PUBLIC_KEY_HEX,
    TRANSACTION_RECORD,
    signed_value,
    validate_with_ocpp_library,
)

from driver.ocmf import verify
from driver.ocpp import (
    OcppError,
    meter_value_v201,
    meter_values_request_v201,
    schema_path,
    transaction_event_request_v201,
    validate,
)

SIGNED_LIMIT = 2500  # SignedMeterValueType.signedMeterData maxLength in the 2.0.1 schema


def energy_total(meter_value):
    return next(
        v
        for v in meter_value["sampledValue"]
        if v["measurand"] == "Energy.Active.Import.Register" and "phase" not in v
    )


def long_record(readings: int) -> str:
    """A genuinely signed record with many readings (a meter writing one per tariff slot)."""
    rows = [reading(BEGIN_TIME, "B", 1.0)]
    rows += [reading(END_TIME, "T", 1.0 + i / 10) for i in range(readings - 2)]
    rows.append(reading(END_TIME, "E", 9.0))
    return record(payload(rows), METER_KEY)


def test_schemas_come_from_the_installed_ocpp_package():
    assert schema_path("MeterValues", "2.0.1").name == "MeterValuesRequest.json"
    assert schema_path("TransactionEventRequest", "2.0.1").name == "TransactionEventRequest.json"


def test_meter_values_request_from_a_three_phase_dataset():
    request = meter_values_request_v201(1, POWERMETER_AC)
    validate_with_ocpp_library(request, "MeterValues", "2.0.1")
    (meter_value,) = request["meterValue"]
    total = energy_total(meter_value)
    assert total == {
        "value": 23734.0,
        "context": "Sample.Periodic",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unitOfMeasure": {"unit": "Wh"},
    }
    frequency = [v for v in meter_value["sampledValue"] if v["measurand"] == "Frequency"]
    assert [v["unitOfMeasure"]["unit"] for v in frequency] == ["Hz"] * 3
    assert {v["phase"] for v in meter_value["sampledValue"] if v["measurand"] == "Voltage"} == {
        "L1-N",
        "L2-N",
        "L3-N",
    }


def test_main_meter_is_evse_zero_and_dc_values_have_no_phase():
    request = meter_values_request_v201(0, POWERMETER_DC)
    assert request["evseId"] == 0
    measurands = {v["measurand"]: v for v in request["meterValue"][0]["sampledValue"]}
    assert measurands["Power.Active.Export"]["value"] == 2500.0
    assert "phase" not in measurands["Voltage"]


def test_signed_meter_value_is_plain_ocmf_as_everest_sends_it():
    request = meter_values_request_v201(
        1, POWERMETER_AC, context="Transaction.End", signed=signed_value(END_RECORD)
    )
    validate_with_ocpp_library(request, "MeterValues", "2.0.1")
    signed = energy_total(request["meterValue"][0])["signedMeterValue"]
    assert signed == {
        "signedMeterData": END_RECORD,
        "signingMethod": "ECDSA-secp256r1-SHA256",
        "encodingMethod": "OCMF",
        "publicKey": PUBLIC_KEY_HEX,
    }
    assert verify(signed["signedMeterData"], signed["publicKey"]).valid
    others = [v for v in request["meterValue"][0]["sampledValue"] if "signedMeterValue" in v]
    assert len(others) == 1  # only the energy total carries it


def test_base64_option_and_missing_public_key():
    request = meter_values_request_v201(
        1,
        POWERMETER_AC,
        context="Transaction.End",
        signed=signed_value(END_RECORD, public_key=None),
        encoding="base64",
    )
    signed = energy_total(request["meterValue"][0])["signedMeterValue"]
    assert base64.b64decode(signed["signedMeterData"]).decode() == END_RECORD
    assert signed["publicKey"] == ""


def test_a_record_over_the_limit_is_reported_not_truncated():
    text = long_record(40)
    assert len(text) > SIGNED_LIMIT and verify(text, PUBLIC_KEY_HEX).valid
    with pytest.raises(OcppError) as caught:
        meter_values_request_v201(1, POWERMETER_AC, context="Transaction.End", signed=signed_value(text))
    message = str(caught.value)
    assert (
        f"signedMeterValue.signedMeterData: {len(text)} characters exceed the OCPP limit of 2500" in message
    )
    assert "(not truncated)" in message


def test_base64_can_push_a_record_over_the_limit():
    text = long_record(17)
    assert len(text) <= SIGNED_LIMIT < len(base64.b64encode(text.encode()))
    meter_values_request_v201(1, POWERMETER_AC, context="Transaction.End", signed=signed_value(text))
    with pytest.raises(OcppError, match="characters exceed the OCPP limit of 2500"):
        meter_values_request_v201(
            1, POWERMETER_AC, context="Transaction.End", signed=signed_value(text), encoding="base64"
        )


def test_signing_method_over_its_limit():
    value = signed_value(END_RECORD) | {"signing_method": "ECDSA-" + "x" * 60}
    with pytest.raises(OcppError, match="signingMethod: 66 characters exceed the OCPP limit of 50"):
        meter_values_request_v201(1, POWERMETER_AC, signed=value)


def test_transaction_ended_with_separately_signed_begin_and_end():
    begin = meter_value_v201(None, "Transaction.Begin", signed_value(BEGIN_RECORD))
    end = meter_value_v201(POWERMETER_AC, "Transaction.End", signed_value(END_RECORD))
    event = transaction_event_request_v201(
        "Ended",
        timestamp="2026-11-23T02:00:01Z",
        trigger_reason="EVDeparted",
        seq_no=12,
        transaction_id="6f1c1c5e-3f7e-4f0e-9d43-0c9d2b7c1a11",
        meter_values=[begin, end],
        evse_id=1,
        connector_id=1,
        stopped_reason="EVDisconnected",
    )
    validate_with_ocpp_library(event, "TransactionEvent", "2.0.1")
    begin_value = energy_total(event["meterValue"][0])
    assert begin_value["value"] == 12689.0  # the begin reading the record states, in Wh
    assert event["meterValue"][0]["timestamp"] == "2026-11-23T01:00:00.000+00:00"
    assert begin_value["signedMeterValue"]["signedMeterData"] == BEGIN_RECORD
    assert energy_total(event["meterValue"][1])["signedMeterValue"]["signedMeterData"] == END_RECORD
    assert event["transactionInfo"]["stoppedReason"] == "EVDisconnected"


def test_transaction_started_and_updated_events():
    started = transaction_event_request_v201(
        "Started",
        timestamp="2026-11-23T01:00:00Z",
        trigger_reason="Authorized",
        seq_no=0,
        transaction_id="tx-1",
        meter_values=[meter_value_v201(None, "Transaction.Begin", signed_value(BEGIN_RECORD))],
        evse_id=1,
    )
    updated = transaction_event_request_v201(
        "Updated",
        timestamp="2026-11-23T01:30:00Z",
        trigger_reason="MeterValuePeriodic",
        seq_no=1,
        transaction_id="tx-1",
        meter_values=[meter_value_v201(POWERMETER_AC, "Sample.Periodic")],
    )
    for event in (started, updated):
        validate_with_ocpp_library(event, "TransactionEvent", "2.0.1")


def test_a_record_holding_begin_and_end_rides_on_transaction_end():
    end = meter_value_v201(None, "Transaction.End", signed_value(TRANSACTION_RECORD))
    assert energy_total(end)["value"] == 23734.0 and end["timestamp"] == "2026-11-23T02:00:00.000+00:00"


def test_a_signed_value_that_is_not_ocmf_needs_a_dataset():
    foreign = {"signed_meter_data": "AQIDBA==", "signing_method": "", "encoding_method": "EDL"}
    with pytest.raises(OcppError, match="not a readable OCMF record"):
        meter_value_v201(None, "Transaction.End", foreign)
    end = meter_value_v201(POWERMETER_AC, "Transaction.End", foreign)  # with a dataset it is carried as is
    assert energy_total(end)["signedMeterValue"]["encodingMethod"] == "EDL"


def test_transaction_id_over_its_limit():
    with pytest.raises(OcppError, match=r"\$\.transactionInfo\.transactionId: 37 characters exceed"):
        transaction_event_request_v201(
            "Updated",
            timestamp="2026-11-23T01:30:00Z",
            trigger_reason="Trigger",
            seq_no=3,
            transaction_id="x" * 37,
        )


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda p: p.update(evseId=-1), "$.evseId: -1 is negative"),
        (lambda p: p.update(meterValue=[]), "$.meterValue: [] should be non-empty"),
        (
            lambda p: p["meterValue"][0].update(sampledValue=[]),
            "$.meterValue[0].sampledValue: [] should be non-empty",
        ),
        (lambda p: p["meterValue"][0]["sampledValue"][0].update(value="1"), "is not of type 'number'"),
        (lambda p: p["meterValue"][0]["sampledValue"][0].update(phase="L4"), "is not one of"),
        (lambda p: p["meterValue"][0].update(timestamp="2026-11-23"), "is not an RFC 3339 date-time"),
    ],
)
def test_validate_names_each_violation(mutate, where):
    request = meter_values_request_v201(1, POWERMETER_AC)
    mutate(request)
    with pytest.raises(OcppError) as caught:
        validate(request, "MeterValues", "2.0.1")
    assert where in str(caught.value)


def test_every_violation_is_listed():
    request = copy.deepcopy(meter_values_request_v201(1, POWERMETER_AC))
    request["evseId"] = "one"
    request["meterValue"][0]["sampledValue"][2]["unitOfMeasure"]["unit"] = "W" * 21
    with pytest.raises(OcppError) as caught:
        validate(request, "MeterValuesRequest", "2.0.1")
    assert len(caught.value.problems) == 2
    assert "$.evseId: 'one' is not of type 'integer'" in caught.value.problems


def test_objects_whose_to_json_returns_json_text_are_accepted():
    """driver.types' to_json() returns EVerest JSON text; dicts and text are both accepted."""

    class AsText:
        def __init__(self, data):
            self.data = data

        def to_json(self):
            return json.dumps(self.data)

    by_text = meter_values_request_v201(
        1, AsText(POWERMETER_AC), context="Transaction.End", signed=AsText(signed_value(END_RECORD))
    )
    by_dict = meter_values_request_v201(
        1, POWERMETER_AC, context="Transaction.End", signed=signed_value(END_RECORD)
    )
    assert by_text == by_dict
    with pytest.raises(OcppError, match="powermeter: not JSON"):
        meter_values_request_v201(1, "{broken")
