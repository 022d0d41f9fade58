"""The driver against a real meter-sim over a pty: readings, start/stop, records, recovery, threads."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from drv_support import request_for, wait_for

from driver import ErrorType, TransactionRequestStatus, ocmf
from driver.legacy import LegacyDriver

OK = TransactionRequestStatus.OK
UNEXPECTED = TransactionRequestStatus.UNEXPECTED_ERROR


def _epoch(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _closed_record(sim, transaction_id: str) -> str:
    for record in sim.status()["closed_transactions"]:
        if record["transaction_id"] == transaction_id:
            return record["ocmf"]
    raise AssertionError(f"the meter has no record of {transaction_id!r}")


@pytest.fixture
def driver(sim, make_driver):
    """A driver on the module's meter; the meter is left with nothing pending afterwards."""
    drv = make_driver(sim.path)
    yield drv
    assert drv.stop_transaction("").status is OK


def test_reading_matches_the_meter(sim, driver):
    before = sim.status()
    dataset = driver.read_powermeter()
    after = sim.status()
    energy = dataset.energy_Wh_import.total
    assert before["energy_register"] * 0.1 - 1e-6 <= energy <= after["energy_register"] * 0.1 + 1e-6
    stamp = datetime.strptime(dataset.timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert int(_epoch(before["clock_utc"])) - 1 <= stamp <= _epoch(after["clock_utc"]) + 1
    assert dataset.meter_id == before["serial"]
    assert dataset.phase_seq_error is False
    assert dataset.voltage_V.L1 == pytest.approx(before["voltages_v"][0], abs=5.0)  # noise, not scale
    assert dataset.frequency_Hz.L1 == pytest.approx(before["frequency_hz"], abs=0.1)


def test_public_key_is_the_meters_der_in_upper_hex(driver):
    key = driver.public_key_ocmf
    assert key == key.upper()
    public = load_der_public_key(bytes.fromhex(key))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"


def test_start_then_stop_returns_the_meters_record_which_verifies(sim, driver):
    req = request_for("drv-happy-1")
    started = driver.start_transaction(req)
    assert started.status is OK, started.error
    assert sim.status()["open_transaction_id"] == "drv-happy-1"
    stopped = driver.stop_transaction("drv-happy-1")
    assert stopped.status is OK, stopped.error
    signed = stopped.signed_meter_value
    assert (signed.encoding_method, signed.signing_method, signed.public_key) == (
        "OCMF",
        "",
        driver.public_key_ocmf,
    )
    assert signed.signed_meter_data == _closed_record(sim, "drv-happy-1")  # byte for byte the meter's
    verification = ocmf.verify(signed.signed_meter_data, signed.public_key)
    assert verification.valid, verification.failures
    payload = json.loads(signed.signed_meter_data.split("|")[1])
    assert payload["ID"] == req.identification_data
    assert payload["TT"] == req.tariff_text
    assert payload["CI"] == req.evse_id
    assert payload["IS"] is True
    assert payload["IL"] == "TRUSTED"
    assert payload["IF"] == ["RFID_PLAIN", "OCPP_AUTH"]
    assert payload["IT"] == "ISO14443"
    assert [reading["TX"] for reading in payload["RD"]] == ["B", "E"]


def test_a_repeated_stop_returns_the_same_record(driver):
    assert driver.start_transaction(request_for("drv-repeat-1")).status is OK
    first = driver.stop_transaction("drv-repeat-1")
    second = driver.stop_transaction("drv-repeat-1")
    assert first.status is OK and second.status is OK, (first.error, second.error)
    assert second.signed_meter_value.signed_meter_data == first.signed_meter_value.signed_meter_data


def test_stop_of_an_unknown_id_is_a_clear_error(driver):
    response = driver.stop_transaction("never-started-42")
    assert response.status is UNEXPECTED
    assert "unknown transaction id" in response.error
    assert "never-started-42" in response.error
    assert response.signed_meter_value is None


def test_start_while_another_is_open_is_refused_and_the_same_id_is_ok(driver):
    assert driver.start_transaction(request_for("drv-open-1")).status is OK
    again = driver.start_transaction(request_for("drv-open-1"))
    assert again.status is OK, again.error
    other = driver.start_transaction(request_for("drv-open-2"))
    assert other.status is UNEXPECTED
    assert "'drv-open-1' is still active" in other.error
    assert driver.stop_transaction("drv-open-1").status is OK


def test_stop_empty_clears_everything_and_returns_the_open_record(sim, driver):
    assert driver.start_transaction(request_for("drv-clear-1")).status is OK
    response = driver.stop_transaction("")
    assert response.status is OK, response.error
    assert response.signed_meter_value.signed_meter_data == _closed_record(sim, "drv-clear-1")
    status = sim.status()
    assert status["transaction_state"] == 0
    assert status["open_transaction_id"] == ""
    nothing = driver.stop_transaction("")
    assert nothing.status is OK
    assert nothing.signed_meter_value is None


def test_a_new_driver_stops_the_transaction_an_old_one_started(sim, make_driver):
    """R-RECOVER: the driver keeps nothing a restart would lose; the meter has it."""
    first = make_driver(sim.path)
    assert first.start_transaction(request_for("drv-recover-1")).status is OK
    first.close()
    second = make_driver(sim.path)
    response = second.stop_transaction("drv-recover-1")
    assert response.status is OK, response.error
    assert ocmf.verify(response.signed_meter_value.signed_meter_data, second.public_key_ocmf).valid
    assert second.stop_transaction("").status is OK
    assert sim.status()["transaction_state"] == 0


def test_a_request_that_breaks_the_type_writes_nothing(sim, proxy_to, make_driver):
    link = proxy_to(sim)
    writes: list[bytes] = []

    def log_writes(direction: str, data: bytes, _: float) -> None:
        if direction == "to_meter" and len(data) > 1 and data[1] in (0x06, 0x10):
            writes.append(data)

    drv = make_driver(link.path)
    drv.read_powermeter()  # everything at open (clock, key) is done before we start watching
    link.on_bytes(log_writes)
    bad = request_for("drv-bad-1").to_dict()
    bad["identification_flags"] = ["RFID_NONE", "OCPP_NONE", "ISO15118_NONE", "PLMN_NONE", "RFID_PLAIN"]
    response = drv.start_transaction(bad)
    assert response.status is UNEXPECTED
    assert "identification_flags" in response.error
    bad = request_for("drv-bad-2").to_dict() | {"tariff_text": "x" * 251}
    assert "tariff_text" in drv.start_transaction(bad).error
    drv.read_powermeter()  # the wire is in use, so an unwanted write would have shown up by now
    assert writes == []
    assert sim.status()["transaction_state"] == 0


def test_publisher_and_commands_share_the_link(sim, make_driver):
    drv = make_driver(sim.path, publish_interval=0.01)
    published = []
    errors = []
    drv.subscribe_powermeter(published.append)
    drv.subscribe_errors(errors.append)
    results = []

    def reader() -> None:
        for _ in range(30):
            results.append(drv.read_powermeter().energy_Wh_import.total)

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(3):
        assert drv.start_transaction(request_for(f"drv-thread-{n}")).status is OK
        stopped = drv.stop_transaction(f"drv-thread-{n}")
        assert stopped.status is OK, stopped.error
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(results) == 30
    assert results == sorted(results)  # energy never goes backwards
    wait_for(lambda: len(published) >= 5, 5, "five published datasets")
    assert [e for e in errors if e.type is ErrorType.COMMUNICATION_FAULT] == []


def test_the_legacy_interface_gets_a_record_with_the_old_fields(sim, driver):
    legacy = LegacyDriver(driver)
    old = {
        "evse_id": "DE*MHL*E0001*2",
        "transaction_id": "drv-legacy-1",
        "client_id": "04DEADBEEF",
        "tariff_id": 3,
        "cable_id": 1,
        "user_data": "fleet 7",
    }
    assert legacy.start_transaction(old).status is OK
    stopped = legacy.stop_transaction("drv-legacy-1")
    assert stopped.status is OK, stopped.error
    assert stopped.ocmf == _closed_record(sim, "drv-legacy-1")
    payload = json.loads(stopped.ocmf.split("|")[1])
    assert payload["ID"] == "04DEADBEEF"
    assert payload["TT"] == "tariff_id=3;cable_id=1;user_data=fleet 7"
    assert ocmf.verify(stopped.ocmf, driver.public_key_ocmf).valid


def test_counter_clockwise_rotation_is_a_phase_sequence_error(sim, driver):
    sim.control.set_phase_order("ccw")
    try:
        assert driver.read_powermeter().phase_seq_error is True
    finally:
        sim.control.set_phase_order("cw")
    assert driver.read_powermeter().phase_seq_error is False
