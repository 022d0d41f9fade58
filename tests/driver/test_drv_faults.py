"""The driver under faults against a real meter-sim: link loss, lost answers, reboot, busy, noise, plain."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from drv_support import RebootBefore, SimMeter, request_for, wait_for

from driver import CommunicationError, ErrorType, MeterExceptionError, TransactionRequestStatus, ocmf
from driver.protocols.reference_map import (
    CMD_START,
    CMD_STOP,
    COMMAND,
    RESULT_BUFFER,
    TRANSACTION_ID,
    encode_string,
)

OK = TransactionRequestStatus.OK
UNEXPECTED = TransactionRequestStatus.UNEXPECTED_ERROR
COMM = ErrorType.COMMUNICATION_FAULT


class ErrorLog:
    """Collects ErrorEvents from the driver's callback thread."""

    def __init__(self) -> None:
        self.events = []
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        with self._lock:
            self.events.append(event)

    def seen(self, kind, raised: bool) -> bool:
        with self._lock:
            return any(e.type is kind and e.raised is raised for e in self.events)


def test_link_loss_is_noticed_reported_cleared_and_the_session_still_gets_its_record(
    fresh_sim, proxy_to, make_driver
):
    """R-RECONNECT and R-FAULT."""
    link = proxy_to(fresh_sim)
    drv = make_driver(link.path, publish_interval=0.1)
    errors = ErrorLog()
    drv.subscribe_errors(errors)
    assert drv.start_transaction(request_for("drv-link-1")).status is OK
    cut_at = time.monotonic()
    link.cut()
    wait_for(lambda: errors.seen(COMM, True), 5, "CommunicationFault raised")
    noticed = time.monotonic() - cut_at
    bound = 0.1 + 0.3 * (0 + 1) + 2.0  # publish_interval + timeout x (retries + 1) + scheduling slack
    assert noticed <= bound, f"link loss noticed after {noticed:.2f} s, bound {bound:.2f} s"
    assert [e.type for e in drv.active_errors] == [COMM]
    link.restore()
    wait_for(lambda: errors.seen(COMM, False), 5, "CommunicationFault cleared")
    assert drv.active_errors == []
    response = drv.stop_transaction("drv-link-1")
    assert response.status is OK, response.error
    assert ocmf.verify(response.signed_meter_value.signed_meter_data, drv.public_key_ocmf).valid


def test_stop_while_the_link_is_down_fails_in_bounded_time_then_succeeds(fresh_sim, proxy_to, make_driver):
    link = proxy_to(fresh_sim)
    drv = make_driver(link.path, command_timeout=1.0)
    assert drv.start_transaction(request_for("drv-down-1")).status is OK
    link.cut()
    asked = time.monotonic()
    response = drv.stop_transaction("drv-down-1")
    took = time.monotonic() - asked
    assert response.status is UNEXPECTED
    assert "not reachable for 1 s" in response.error
    assert response.signed_meter_value is None
    assert 1.0 <= took <= 1.0 + 0.3 + 2.5, f"stop gave up after {took:.2f} s"
    assert fresh_sim.status()["open_transaction_id"] == "drv-down-1"  # nothing happened to the meter
    link.restore()
    response = drv.stop_transaction("drv-down-1")
    assert response.status is OK, response.error
    assert ocmf.verify(response.signed_meter_value.signed_meter_data, drv.public_key_ocmf).valid


def test_a_start_whose_answer_was_lost_but_the_meter_executed_is_ok(fresh_sim, proxy_to, make_driver):
    link = proxy_to(fresh_sim)
    start_frame = bytes([1, 0x06, COMMAND >> 8, COMMAND & 0xFF, 0x00, 0x01])
    cut_done = threading.Event()

    def cut_after_start(direction: str, data: bytes, _: float) -> None:
        if direction == "to_meter" and data.startswith(start_frame) and not cut_done.is_set():
            link.cut()  # the start reached the meter; its answer will not reach the driver
            cut_done.set()

    drv = make_driver(link.path, command_timeout=10.0)
    link.on_bytes(cut_after_start)
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(r=drv.start_transaction(request_for("drv-lost-1")))
    )
    thread.start()
    wait_for(cut_done.is_set, 5, "the start command on the wire")
    wait_for(lambda: fresh_sim.status()["open_transaction_id"] == "drv-lost-1", 5, "the meter to start")
    wait_for(lambda: link.stats["dropped"]["to_driver"] > 0, 5, "the meter's answer to be lost")
    link.restore()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert outcome["r"].status is OK, outcome["r"].error
    assert drv.stop_transaction("drv-lost-1").status is OK


def test_a_stop_whose_answer_was_lost_returns_the_one_record_the_meter_made(fresh_sim, proxy_to, make_driver):
    link = proxy_to(fresh_sim)
    stop_frame = bytes([1, 0x06, COMMAND >> 8, COMMAND & 0xFF, 0x00, 0x02])
    cut_done = threading.Event()

    def cut_after_stop(direction: str, data: bytes, _: float) -> None:
        if direction == "to_meter" and data.startswith(stop_frame) and not cut_done.is_set():
            link.cut()
            cut_done.set()

    drv = make_driver(link.path, command_timeout=10.0)
    assert drv.start_transaction(request_for("drv-lost-2")).status is OK
    link.on_bytes(cut_after_stop)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(r=drv.stop_transaction("drv-lost-2")))
    thread.start()
    wait_for(cut_done.is_set, 5, "the stop command on the wire")
    wait_for(lambda: fresh_sim.status()["transaction_state"] == 0, 5, "the meter to close the transaction")
    wait_for(lambda: link.stats["dropped"]["to_driver"] > 0, 5, "the meter's answer to be lost")
    link.restore()
    thread.join(timeout=15)
    assert not thread.is_alive()
    response = outcome["r"]
    assert response.status is OK, response.error
    records = [t for t in fresh_sim.status()["closed_transactions"] if t["transaction_id"] == "drv-lost-2"]
    assert len(records) == 1
    assert response.signed_meter_value.signed_meter_data == records[0]["ocmf"]


def test_a_meter_reboot_is_detected_the_clock_set_and_the_open_transaction_stopped(fresh_sim, make_driver):
    drv = make_driver(fresh_sim.path, publish_interval=0.1)
    errors = ErrorLog()
    drv.subscribe_errors(errors)
    assert drv.start_transaction(request_for("drv-boot-1")).status is OK
    boots = fresh_sim.status()["boot_count"]
    fresh_sim.control.power_off()
    wait_for(lambda: errors.seen(COMM, True), 5, "CommunicationFault while the meter is off")
    fresh_sim.control.power_on()
    wait_for(lambda: drv.reboots_seen == 1, 15, "the driver to notice the reboot")
    wait_for(lambda: errors.seen(COMM, False), 5, "CommunicationFault cleared")
    status = wait_for(lambda: (s := fresh_sim.status())["clock_synchronised"] and s, 5, "the clock set again")
    before = time.time()
    clock = fresh_sim.status()["clock_utc"]
    # set at a whole-second boundary: within a few ms of the host (the simulated clock's lag)
    assert before - 0.05 <= clock <= time.time() + 0.05
    assert status["boot_count"] == boots + 1
    assert status["open_transaction_id"] == "drv-boot-1"
    response = drv.stop_transaction("drv-boot-1")
    assert response.status is OK, response.error
    assert ocmf.verify(response.signed_meter_value.signed_meter_data, drv.public_key_ocmf).valid


def test_busy_while_signing_is_waited_out(fresh_sim, proxy_to, make_driver):
    """A stop issued behind the driver's back keeps the meter signing; the driver's command waits."""
    link = proxy_to(fresh_sim)
    answers: list[bytes] = []
    link.on_bytes(lambda direction, data, _: answers.append(data) if direction == "to_driver" else None)
    drv = make_driver(link.path)
    assert drv.start_transaction(request_for("drv-busy-1")).status is OK
    # The stop goes out on the driver's own link, as a second master on the bus would send it.
    drv._link.write(TRANSACTION_ID, encode_string("drv-busy-1", 20))
    drv._link.write(COMMAND, [2])  # the meter is now busy signing
    response = drv.stop_transaction("")
    assert response.status is OK, response.error
    busy_answers = [a for a in answers if len(a) >= 3 and a[1] & 0x80 and a[2] == 0x06]
    assert busy_answers, "the meter never answered busy: the test did not test anything"
    assert fresh_sim.status()["transaction_state"] == 0


def test_garbled_frames_cost_retries_not_a_crash(fresh_sim, proxy_to, make_driver):
    link = proxy_to(fresh_sim)
    drv = make_driver(link.path, retries=3, timeout=0.2)
    link.set_corruption(0.002, seed=11)
    good = 0
    for _ in range(15):
        try:
            dataset = drv.read_powermeter()
        except Exception as exc:
            assert type(exc).__module__ == "driver.errors", repr(exc)
        else:
            good += 1
            assert dataset.energy_Wh_import.total >= 0
    assert link.stats["corrupted"] > 0, "no byte was corrupted: the test did not test anything"
    assert good >= 10
    link.set_corruption(0)
    assert drv.start_transaction(request_for("drv-noise-1")).status is OK
    assert drv.stop_transaction("drv-noise-1").status is OK


@pytest.fixture
def plain_sim():
    meter = SimMeter(profile="plain")
    yield meter
    meter.close()


def test_a_meter_without_transactions_answers_not_supported(plain_sim, make_driver):
    drv = make_driver(plain_sim.path)
    started = drv.start_transaction(request_for("drv-plain-1"))
    assert started.status is TransactionRequestStatus.NOT_SUPPORTED
    assert "capabilities bit 0 clear" in started.error
    assert drv.stop_transaction("drv-plain-1").status is TransactionRequestStatus.NOT_SUPPORTED
    assert drv.stop_transaction("").status is TransactionRequestStatus.NOT_SUPPORTED
    assert drv.public_key_ocmf is None
    assert drv.read_powermeter().energy_Wh_import.total >= 0
    assert drv.active_errors == []


def test_after_a_whole_system_power_failure_the_new_driver_closes_the_transaction(fresh_sim, make_driver):
    """R-RECOVER and R-INTEGRITY: meter and driver both lose power; EvseManager's boot sequence follows."""
    before = make_driver(fresh_sim.path)
    assert before.start_transaction(request_for("drv-pf-1")).status is OK
    before.close()
    fresh_sim.lose_power()
    after = make_driver(fresh_sim.path)
    response = after.stop_transaction("drv-pf-1")
    assert response.status is OK, response.error
    record = response.signed_meter_value.signed_meter_data
    assert ocmf.verify(record, after.public_key_ocmf).valid
    truth = next(t for t in fresh_sim.status()["closed_transactions"] if t["transaction_id"] == "drv-pf-1")
    assert record == truth["ocmf"]
    readings = ocmf.parse(record).readings
    assert [round(float(r.value) * 10000) for r in readings] == [
        truth["begin_register"],
        truth["end_register"],
    ]
    assert after.stop_transaction("").status is OK
    assert fresh_sim.status()["transaction_state"] == 0


def test_a_meter_imposed_minimum_duration_is_reported_and_enforced(tmp_path, make_driver):
    from simulator.profiles import __file__ as profiles_init

    reference = Path(profiles_init).with_name("reference.toml").read_text()
    assert "min_duration_s = 0" in reference
    profile = tmp_path / "slow-stop.toml"
    profile.write_text(reference.replace("min_duration_s = 0", "min_duration_s = 3600", 1))
    meter = SimMeter(profile=str(profile))
    try:
        drv = make_driver(meter.path)
        started = drv.start_transaction(request_for("drv-min-1"))
        assert started.status is OK, started.error
        assert started.transaction_min_stop_time is not None
        clock = meter.status()["clock_utc"]
        earliest = datetime.strptime(started.transaction_min_stop_time, "%Y-%m-%dT%H:%M:%SZ")
        assert 3500 <= earliest.replace(tzinfo=UTC).timestamp() - clock <= 3700
        early = drv.stop_transaction("drv-min-1")
        assert early.status is UNEXPECTED
        assert "minimum transaction duration not reached" in early.error
        assert drv.stop_transaction("").status is OK
    finally:
        drv.close()
        meter.close()


def test_the_unit_id_addresses_the_meter(make_driver):
    meter = SimMeter(unit=5)
    try:
        right = make_driver(meter.path, unit=5)
        assert right.read_powermeter().meter_id == meter.status()["serial"]
        right.close()
        wrong = make_driver(meter.path, unit=1)
        with pytest.raises(CommunicationError, match="no answer from unit 1"):
            wrong.read_powermeter()
        assert [e.type for e in wrong.active_errors] == [COMM]
        wrong.close()
    finally:
        meter.close()


def test_a_meter_busy_past_the_budget_is_a_clear_error_and_the_stop_works_later(fresh_sim, make_driver):
    drv = make_driver(fresh_sim.path, busy_timeout=0.05)
    assert drv.start_transaction(request_for("drv-busy-2")).status is OK
    drv._link.write(TRANSACTION_ID, encode_string("drv-busy-2", 20))  # a second master's stop:
    drv._link.write(COMMAND, [2])  # the meter signs for 0.2 s, longer than the driver will wait
    response = drv.stop_transaction("")
    assert response.status is UNEXPECTED
    assert "stayed busy for 0.05 s" in response.error
    wait_for(lambda: not fresh_sim.status()["signing"], 5, "the meter to finish signing")
    later = drv.stop_transaction("drv-busy-2")  # the repeated stop returns the stored record
    assert later.status is OK, later.error
    assert ocmf.verify(later.signed_meter_value.signed_meter_data, drv.public_key_ocmf).valid


def test_a_record_that_does_not_verify_is_reported_and_passed_on_unchanged(fresh_sim, make_driver):
    """The meter's key register is taken to hold another key: its records then fail the signature check."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    drv = make_driver(fresh_sim.path)
    other = ec.derive_private_key(12345, ec.SECP256R1()).public_key()
    drv.protocol._public_key = other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert drv.start_transaction(request_for("drv-bad-sig")).status is OK
    response = drv.stop_transaction("drv-bad-sig")
    assert response.status is UNEXPECTED
    assert "does not verify" in response.error
    assert "signature" in response.error
    truth = next(t for t in fresh_sim.status()["closed_transactions"] if t["transaction_id"] == "drv-bad-sig")
    assert response.signed_meter_value.signed_meter_data == truth["ocmf"]


def test_without_the_verifier_records_pass_with_a_vendor_warning(fresh_sim, make_driver, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "driver.ocmf", None)  # import driver.ocmf now raises ImportError
    drv = make_driver(fresh_sim.path)
    assert drv.start_transaction(request_for("drv-no-verifier")).status is OK
    response = drv.stop_transaction("drv-no-verifier")
    assert response.status is OK, response.error
    warnings = [e for e in drv.active_errors if e.type is ErrorType.VENDOR_WARNING]
    assert len(warnings) == 1
    assert "unverified" in warnings[0].message


def test_a_meter_that_refuses_measurement_reads_raises_vendor_error(tmp_path, make_driver):
    """A profile without the phase_sequence register: the 60-register measurement read gets exception 02."""
    from simulator.profiles import __file__ as profiles_init

    reference = Path(profiles_init).with_name("reference.toml").read_text()
    entry = '[[register]]\nname = "phase_sequence"\n'
    start = reference.index(entry)
    end = reference.index("[[register]]", start + len(entry))
    profile = tmp_path / "no-phase-sequence.toml"
    profile.write_text(reference[:start] + reference[end:])
    meter = SimMeter(profile=str(profile))
    try:
        drv = make_driver(meter.path, publish_interval=0.05)
        errors = ErrorLog()
        drv.subscribe_errors(errors)
        wait_for(lambda: errors.seen(ErrorType.VENDOR_ERROR, True), 5, "VendorError raised")
        assert COMM not in [e.type for e in drv.active_errors]
        with pytest.raises(MeterExceptionError, match="exception 02"):
            drv.read_powermeter()
        assert drv.start_transaction(request_for("drv-vendor-1")).status is OK
        assert drv.stop_transaction("drv-vendor-1").status is OK
    finally:
        drv.close()
        meter.close()


def test_a_meter_signing_begin_and_end_apart_gives_both_records_with_consecutive_pagination(make_driver):
    """reference-sr: the start's begin record (T<n>) comes back in the start answer and, fetched again from
    the meter (command 5), as the stop's start_signed_meter_value, also for a driver that did not start it."""
    meter = SimMeter(profile="reference-sr", speed=60.0)
    try:
        drv = make_driver(meter.path)
        started = drv.start_transaction(request_for("drv-sep-1"))
        assert started.status is OK, started.error
        begin = started.signed_meter_value.signed_meter_data
        assert [r.tx for r in ocmf.parse(begin).readings] == ["B"]
        assert started.transaction_min_stop_time and started.transaction_max_stop_time
        drv.close()
        fresh = make_driver(meter.path)  # knows nothing of the start
        stopped = fresh.stop_transaction("drv-sep-1")  # waits out the minimum duration, then stops
        assert stopped.status is OK, stopped.error
        assert stopped.start_signed_meter_value.signed_meter_data == begin
        end = stopped.signed_meter_value.signed_meter_data
        assert ocmf.parse(begin).pagination == "T1" and ocmf.parse(end).pagination == "T2"
        assert ocmf.verify_pair(begin, end, fresh.public_key_ocmf).valid
        truth = [t for t in meter.status()["closed_transactions"] if t["transaction_id"] == "drv-sep-1"]
        assert truth[0]["begin_ocmf"] == begin and truth[0]["ocmf"] == end
    finally:
        meter.close()


def test_a_record_read_torn_by_a_reboot_is_fetched_again(fresh_sim, make_driver):
    drv = make_driver(fresh_sim.path)
    assert drv.start_transaction(request_for("drv-torn-1")).status is OK
    torn = RebootBefore(drv.protocol.link, fresh_sim, "read", RESULT_BUFFER)
    drv.protocol.link = torn
    response = drv.stop_transaction("drv-torn-1")
    assert torn.cuts == 1
    assert response.status is OK, response.error
    records = [t for t in fresh_sim.status()["closed_transactions"] if t["transaction_id"] == "drv-torn-1"]
    assert response.signed_meter_value.signed_meter_data == records[0]["ocmf"]


@pytest.mark.parametrize("command", ["start", "stop"])
def test_a_reboot_between_the_id_and_the_command_runs_the_command_again(fresh_sim, make_driver, command):
    drv = make_driver(fresh_sim.path)
    if command == "stop":
        assert drv.start_transaction(request_for("drv-rb-1")).status is OK
    code = CMD_START if command == "start" else CMD_STOP
    cut = RebootBefore(drv.protocol.link, fresh_sim, "write", COMMAND, [code])
    drv.protocol.link = cut
    if command == "start":
        response = drv.start_transaction(request_for("drv-rb-1"))
    else:
        response = drv.stop_transaction("drv-rb-1")
    assert cut.cuts == 1
    assert response.status is OK, response.error
    status = fresh_sim.status()
    if command == "start":
        assert status["open_transaction_id"] == "drv-rb-1"
    else:
        records = [t for t in status["closed_transactions"] if t["transaction_id"] == "drv-rb-1"]
        assert response.signed_meter_value.signed_meter_data == records[0]["ocmf"]


def test_a_begin_record_read_torn_by_a_reboot_is_fetched_again(make_driver):
    """A meter that signs begin and end apart (reference-sr): a power loss between the start and the read
    of its begin record leaves the buffer blank; the start answers the begin record fetched again."""
    meter = SimMeter(profile="reference-sr", speed=60.0)
    try:
        drv = make_driver(meter.path, model="reference-sr")
        torn = RebootBefore(drv.protocol.link, meter, "read", RESULT_BUFFER)
        drv.protocol.link = torn
        started = drv.start_transaction(request_for("drv-torn-b"))
        assert torn.cuts == 1
        assert started.status is OK, started.error
        begin = started.signed_meter_value.signed_meter_data
        assert ocmf.verify(begin, drv.public_key_ocmf).valid
        drv.protocol.link = torn._link
        assert drv.stop_transaction("drv-torn-b").status is OK
        truth = [t for t in meter.status()["closed_transactions"] if t["transaction_id"] == "drv-torn-b"]
        assert begin == truth[0]["begin_ocmf"]
    finally:
        meter.close()
