"""The Eastron SDM630 protocol against the simulated SDM630: readings only, NOT_SUPPORTED transactions."""

import pytest
from drv_support import SimMeter, request_for

from driver.types import TransactionRequestStatus

MODEL = "eastron-sdm630"


@pytest.fixture
def sdm630():
    meter = SimMeter(profile=MODEL, speed=60.0)
    yield meter
    meter.close()


def test_auto_names_the_sdm630(sdm630, make_driver):
    drv = make_driver(sdm630.path, model="auto")
    assert drv.model == MODEL
    assert drv.model_found.startswith("Eastron SDM630, serial ")
    assert drv.public_key_ocmf is None


def test_readings_are_float32_ground_truth(sdm630, make_driver):
    sdm630.control.set_load(power_w=7400)
    drv = make_driver(sdm630.path, model=MODEL)
    before = sdm630.status()
    reading = drv.read_powermeter()
    after = sdm630.status()
    assert before["energy_wh"] - 10 <= reading.energy_Wh_import.total <= after["energy_wh"] + 10
    assert abs(reading.power_W.total - after["power_w"]) <= 0.01 * after["power_w"] + 1
    assert reading.phase_seq_error is None  # the meter has no phase-sequence register


def test_start_and_stop_answer_not_supported_naming_why(sdm630, make_driver):
    drv = make_driver(sdm630.path, model=MODEL)
    started = drv.start_transaction(request_for("sdm-tx"))
    assert started.status is TransactionRequestStatus.NOT_SUPPORTED
    assert "no Eichrecht transaction registers" in started.error
    for transaction_id in ("sdm-tx", ""):
        stopped = drv.stop_transaction(transaction_id)
        assert stopped.status is TransactionRequestStatus.NOT_SUPPORTED and stopped.error
