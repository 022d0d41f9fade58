"""EVerest powermeter types: field names, JSON round trips, and refusal of requests that break the type."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driver.errors import RequestError
from driver.types import (
    Current,
    Energy,
    Frequency,
    OCMFIdentificationFlags,
    OCMFIdentificationLevel,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    Power,
    Powermeter,
    ReactivePower,
    SignedMeterValue,
    TransactionReq,
    TransactionRequestStatus,
    TransactionStartResponse,
    TransactionStopResponse,
    Voltage,
)

GOOD = {
    "evse_id": "DE*ABC*E1234",
    "transaction_id": "2f1b6c4e-1a2b-4c3d-9e8f-0123456789ab",
    "identification_status": "ASSIGNED",
    "identification_level": "TRUSTED",
    "identification_flags": ["RFID_PLAIN", "OCPP_AUTH"],
    "identification_type": "ISO14443",
    "identification_data": "04A1B2C3D4E5F6",
    "tariff_text": "0.39 EUR/kWh",
}


def test_enums_have_everest_members_in_table_order():
    assert [m.value for m in OCMFIdentificationLevel][:3] == ["NONE", "HEARSAY", "TRUSTED"]
    assert len(OCMFIdentificationLevel) == 10
    assert len(OCMFIdentificationFlags) == 17
    assert list(OCMFIdentificationFlags)[16] == "PLMN_SMS"
    assert len(OCMFIdentificationType) == 18
    assert list(OCMFIdentificationType)[17] == "KEY_CODE"
    assert set(OCMFUserIdentificationStatus) == {"ASSIGNED", "NOT_ASSIGNED"}
    assert set(TransactionRequestStatus) == {"OK", "NOT_SUPPORTED", "UNEXPECTED_ERROR"}


def test_transaction_req_round_trip_keeps_everest_json():
    req = TransactionReq.from_dict(GOOD)
    assert req.identification_flags == [OCMFIdentificationFlags.RFID_PLAIN, OCMFIdentificationFlags.OCPP_AUTH]
    assert json.loads(req.to_json()) == GOOD
    assert TransactionReq.from_json(req.to_json()) == req


def test_optional_fields_are_left_out_of_json():
    data = {
        k: v
        for k, v in GOOD.items()
        if k not in ("identification_level", "identification_data", "tariff_text")
    }
    req = TransactionReq.from_dict(data)
    assert req.identification_level is None
    assert set(req.to_dict()) == set(data)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"transaction_id": None}, "transaction_id"),
        ({"evse_id": None}, "evse_id"),
        ({"identification_status": None}, "identification_status"),
        ({"identification_flags": None}, "identification_flags"),
        ({"identification_type": None}, "identification_type"),
        ({"identification_status": "MAYBE"}, "identification_status"),
        ({"identification_level": "SUPREME"}, "identification_level"),
        ({"identification_type": "PASSPORT"}, "identification_type"),
        ({"identification_flags": ["RFID_PLAIN", "NFC"]}, "identification_flags[1]"),
        ({"identification_flags": "RFID_PLAIN"}, "identification_flags"),
        (
            {"identification_flags": ["RFID_NONE", "OCPP_NONE", "ISO15118_NONE", "PLMN_NONE", "RFID_PLAIN"]},
            "identification_flags",
        ),
        ({"tariff_text": "x" * 251}, "tariff_text"),
        ({"identification_data": "A" * 41}, "identification_data"),
        ({"transaction_id": ""}, "transaction_id"),
        ({"transaction_id": "t" * 41}, "transaction_id"),
        ({"evse_id": "E" * 41}, "evse_id"),
        ({"evse_id": 17}, "evse_id"),
        ({"tariff_text": "Tarif grün"}, "tariff_text"),
        ({"client_id": "old field"}, "client_id"),
    ],
)
def test_a_request_that_breaks_the_type_names_the_field(change, field):
    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(RequestError) as caught:
        TransactionReq.from_dict(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ":")


def test_limits_are_inclusive():
    req = TransactionReq.from_dict(
        {
            **GOOD,
            "tariff_text": "t" * 250,
            "identification_data": "d" * 40,
            "transaction_id": "i" * 40,
            "evse_id": "e" * 40,
            "identification_flags": ["RFID_NONE", "OCPP_NONE", "ISO15118_NONE", "PLMN_NONE"],
        }
    )
    assert len(req.tariff_text) == 250


def test_validate_catches_a_request_built_in_code():
    req = TransactionReq.from_dict(GOOD)
    req.identification_flags = [OCMFIdentificationFlags.RFID_NONE] * 5
    with pytest.raises(RequestError, match="identification_flags"):
        req.validate()
    req = TransactionReq.from_dict(GOOD)
    req.identification_type = "ISO14443"  # a plain string, not the enum
    with pytest.raises(RequestError, match="identification_type"):
        req.validate()


def test_bad_json_text_is_named():
    with pytest.raises(RequestError, match="TransactionReq: not valid JSON"):
        TransactionReq.from_json("{nope")
    with pytest.raises(RequestError, match="expected a JSON object"):
        TransactionReq.from_json("[1, 2]")


def test_stop_response_with_both_signed_values_round_trips():
    smv = SignedMeterValue("OCMF|{}|{}", "", "OCMF", public_key="3059AB", timestamp="2026-01-01T00:00:00Z")
    response = TransactionStopResponse(
        TransactionRequestStatus.OK, start_signed_meter_value=smv, signed_meter_value=smv
    )
    data = json.loads(response.to_json())
    assert data["status"] == "OK"
    assert data["signed_meter_value"] == {
        "signed_meter_data": "OCMF|{}|{}",
        "signing_method": "",
        "encoding_method": "OCMF",
        "public_key": "3059AB",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    assert "error" not in data
    assert TransactionStopResponse.from_json(response.to_json()) == response


def test_start_response_round_trips_with_optional_signed_value():
    response = TransactionStartResponse(
        TransactionRequestStatus.OK,
        transaction_min_stop_time="2026-01-01T00:00:00Z",
        signed_meter_value=SignedMeterValue("OCMF|{}|{}", "", "OCMF"),
    )
    assert TransactionStartResponse.from_json(response.to_json()) == response
    with pytest.raises(RequestError, match="status"):
        TransactionStartResponse.from_dict({"status": "MAYBE"})


def test_powermeter_has_every_unit_and_round_trips():
    dataset = Powermeter(
        timestamp="2026-11-23T01:00:00Z",
        energy_Wh_import=Energy(total=1234.5, L1=400.0, L2=400.0, L3=434.5),
        meter_id="SIM0001",
        phase_seq_error=False,
        energy_Wh_export=Energy(total=0.0),
        power_W=Power(total=11000.0, L1=3666.7, L2=3666.7, L3=3666.6),
        voltage_V=Voltage(DC=None, L1=230.1, L2=229.9, L3=230.0),
        VAR=ReactivePower(total=10.0, L1=3.0, L2=3.0, L3=4.0),
        current_A=Current(L1=16.0, L2=16.0, L3=16.0, N=0.1),
        frequency_Hz=Frequency(L1=50.0),
    )
    data = json.loads(dataset.to_json())
    assert data["energy_Wh_import"] == {"total": 1234.5, "L1": 400.0, "L2": 400.0, "L3": 434.5}
    assert data["voltage_V"] == {"L1": 230.1, "L2": 229.9, "L3": 230.0}
    assert data["current_A"]["N"] == 0.1
    assert Powermeter.from_json(dataset.to_json()) == dataset
    with pytest.raises(RequestError, match="energy_Wh_import"):
        Powermeter.from_dict({"timestamp": "x"})
    with pytest.raises(RequestError, match=r"voltage_V\.L4"):
        Powermeter.from_dict({"timestamp": "x", "energy_Wh_import": {"total": 1}, "voltage_V": {"L4": 1}})


ascii_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    evse_id=ascii_text,
    transaction_id=ascii_text.filter(bool),
    flags=st.lists(st.sampled_from(list(OCMFIdentificationFlags)), max_size=4),
    kind=st.sampled_from(list(OCMFIdentificationType)),
    level=st.none() | st.sampled_from(list(OCMFIdentificationLevel)),
    data=st.none() | ascii_text,
)
def test_every_valid_request_round_trips(evse_id, transaction_id, flags, kind, level, data):
    req = TransactionReq(
        evse_id, transaction_id, OCMFUserIdentificationStatus.ASSIGNED, flags, kind, level, data
    )
    req.validate()
    assert TransactionReq.from_json(req.to_json()) == req
