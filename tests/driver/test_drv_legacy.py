"""The seed 000 request form and its mapping onto the current one."""

import pytest

from driver.errors import RequestError
from driver.legacy import LegacyTransactionReq, LegacyTransactionStopResponse
from driver.types import (
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    SignedMeterValue,
    TransactionRequestStatus,
    TransactionStopResponse,
)

OLD = {
    "evse_id": "DE*ABC*E1",
    "transaction_id": "legacy-1",
    "client_id": "04A1B2C3",
    "tariff_id": 7,
    "cable_id": 2,
    "user_data": "fleet 12",
}


def test_old_request_maps_onto_the_current_one():
    current = LegacyTransactionReq.from_dict(OLD).to_current()
    assert current.evse_id == "DE*ABC*E1"
    assert current.transaction_id == "legacy-1"
    assert current.identification_data == "04A1B2C3"
    assert current.identification_status is OCMFUserIdentificationStatus.ASSIGNED
    assert current.identification_type is OCMFIdentificationType.UNDEFINED
    assert current.identification_flags == []
    assert current.tariff_text == "tariff_id=7;cable_id=2;user_data=fleet 12"


def test_no_client_id_means_not_assigned():
    current = LegacyTransactionReq.from_dict({**OLD, "client_id": ""}).to_current()
    assert current.identification_status is OCMFUserIdentificationStatus.NOT_ASSIGNED
    assert current.identification_type is OCMFIdentificationType.NONE
    assert current.identification_data is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tariff_id": None}, "tariff_id"),
        ({"tariff_id": "7"}, "tariff_id"),
        ({"cable_id": True}, "cable_id"),
        ({"user_data": None}, "user_data"),
        ({"identification_status": "ASSIGNED"}, "identification_status"),
    ],
)
def test_old_request_that_breaks_its_type_names_the_field(change, field):
    data = {k: v for k, v in {**OLD, **change}.items() if v is not None}
    with pytest.raises(RequestError) as caught:
        LegacyTransactionReq.from_dict(data)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"user_data": "u" * 240}, "user_data"),
        ({"client_id": "c" * 41}, "client_id"),
        ({"transaction_id": ""}, "transaction_id"),
    ],
)
def test_old_request_that_does_not_fit_the_meter_names_the_old_field(change, field):
    with pytest.raises(RequestError) as caught:
        LegacyTransactionReq.from_dict({**OLD, **change}).to_current()
    assert caught.value.field == field


def test_stop_response_carries_the_record_as_ocmf_string_even_when_not_ok():
    record = 'OCMF|{"FV":"1.0"}|{"SD":"00"}'
    current = TransactionStopResponse(
        TransactionRequestStatus.UNEXPECTED_ERROR,
        signed_meter_value=SignedMeterValue(record, "", "OCMF"),
        error="does not verify",
    )
    legacy = LegacyTransactionStopResponse.from_current(current)
    assert legacy.ocmf == record
    assert legacy.to_dict() == {"status": "UNEXPECTED_ERROR", "ocmf": record, "error": "does not verify"}
