"""The Carlo Gavazzi EM580 protocol against the simulated EM580 (meter-sim --model carlo-gavazzi-em580).

Beyond EVerest's CarloGavazzi_EM580: a start never answers OK without starting, the READY record of a
power loss is returned by stop(last id), device-state bits are raised as VendorError and cleared."""

import pytest
from drv_support import AnswerLost, RebootBefore, SimMeter, request_for, wait_for

from driver import ErrorType, ocmf
from driver.protocol import CommandFailed
from driver.protocols.em580 import flag_slots
from driver.types import OCMFIdentificationFlags, TransactionRequestStatus

OK = TransactionRequestStatus.OK
UNEXPECTED = TransactionRequestStatus.UNEXPECTED_ERROR
MODEL = "carlo-gavazzi-em580"


@pytest.fixture
def em580():
    meter = SimMeter(profile=MODEL, speed=60.0)
    yield meter
    meter.close()


def em580_driver(make_driver, meter, **overrides):
    return make_driver(meter.path, model=MODEL, **overrides)


def closed(meter, transaction_id):
    return [t for t in meter.status()["closed_transactions"] if t["transaction_id"] == transaction_id]


def test_flags_go_one_family_a_slot():
    flags = [OCMFIdentificationFlags.RFID_PLAIN, OCMFIdentificationFlags.OCPP_AUTH]
    assert flag_slots(flags) == [1, 2, 0xFFFF, 0xFFFF]
    assert flag_slots([OCMFIdentificationFlags.PLMN_SMS]) == [0xFFFF, 0xFFFF, 0xFFFF, 2]
    with pytest.raises(CommandFailed, match="identification_flags"):
        flag_slots([OCMFIdentificationFlags.RFID_PLAIN, OCMFIdentificationFlags.RFID_PSK])


def test_auto_names_the_em580_and_its_key_is_brainpool(em580, make_driver):
    drv = make_driver(em580.path, model="auto")
    assert drv.model == MODEL
    assert drv.model_found.startswith("Carlo Gavazzi EM580, serial ")
    key = drv.public_key_ocmf
    assert key and key.startswith("305A3014")  # SPKI of a 256-bit brainpool key


def test_readings_are_the_meters_ground_truth(em580, make_driver):
    em580.control.set_load(power_w=11000)
    drv = em580_driver(make_driver, em580)
    before = em580.status()
    reading = drv.read_powermeter()
    after = em580.status()
    assert before["energy_wh"] - 1 <= reading.energy_Wh_import.total <= after["energy_wh"] + 1
    assert abs(reading.power_W.total - after["power_w"]) <= 0.01 * after["power_w"] + 1
    assert reading.phase_seq_error is False
    assert reading.meter_id.endswith(".2025")


def test_a_session_gives_the_meters_record_with_the_transaction_id_in_tt(em580, make_driver):
    drv = em580_driver(make_driver, em580)
    assert drv.start_transaction(request_for("em-tx-1")).status is OK
    stopped = drv.stop_transaction("em-tx-1")
    assert stopped.status is OK, stopped.error
    record = stopped.signed_meter_value.signed_meter_data
    assert record == closed(em580, "em-tx-1")[0]["ocmf"]
    assert ocmf.verify(record, drv.public_key_ocmf, transaction=True).valid
    payload = ocmf.parse(record).payload
    assert payload["TT"] == "0.39 EUR/kWh<=>em-tx-1"
    assert payload["IF"] == ["RFID_PLAIN", "OCPP_AUTH"] and payload["IL"] == "TRUSTED"
    again = drv.stop_transaction("em-tx-1")  # repeated: the same record, never a second one
    assert again.status is OK and again.signed_meter_value.signed_meter_data == record


def test_a_start_never_answers_ok_without_starting(em580, make_driver):
    drv = em580_driver(make_driver, em580)
    assert drv.start_transaction(request_for("em-tx-a")).status is OK
    refused = drv.start_transaction(request_for("em-tx-b"))
    assert refused.status is UNEXPECTED and "'em-tx-a' still runs" in refused.error
    wrong = drv.stop_transaction("em-tx-b")
    assert wrong.status is UNEXPECTED and "'em-tx-a'" in wrong.error
    cleared = drv.stop_transaction("")
    assert cleared.status is OK and cleared.signed_meter_value is not None
    assert em580.status()["transaction_state"] == 0


def test_the_ready_record_of_a_power_loss_is_returned_by_stop_of_its_id(em580, make_driver):
    drv = em580_driver(make_driver, em580)
    assert drv.start_transaction(request_for("em-tx-pl")).status is OK
    drv.close()
    em580.lose_power()
    fresh = em580_driver(make_driver, em580)
    other = fresh.stop_transaction("em-tx-other")
    assert other.status is UNEXPECTED and "mismatch" in other.error
    stopped = fresh.stop_transaction("em-tx-pl")
    assert stopped.status is OK, stopped.error
    assert stopped.signed_meter_value.signed_meter_data == closed(em580, "em-tx-pl")[0]["ocmf"]
    assert fresh.stop_transaction("").status is OK


def test_device_state_bits_raise_a_vendor_error_that_clears(em580, make_driver):
    drv = em580_driver(make_driver, em580, publish_interval=0.1)
    events = []
    drv.subscribe_errors(events.append)
    em580.control.set_device_state(1 << 12)
    wait_for(lambda: any(e.type is ErrorType.VENDOR_ERROR and e.raised for e in events), 10,
             "VendorError raised for the device state")
    raised = next(e for e in events if e.type is ErrorType.VENDOR_ERROR)
    assert "EVCS module internal fault" in raised.message
    em580.control.set_device_state(0)
    wait_for(lambda: any(e.type is ErrorType.VENDOR_ERROR and not e.raised for e in events), 10,
             "VendorError cleared")


def test_a_confirmation_repeated_after_its_answer_was_lost_is_not_a_failure(em580, make_driver):
    drv = em580_driver(make_driver, em580)
    assert drv.start_transaction(request_for("em-confirm-1")).status is OK
    assert drv.stop_transaction("em-confirm-1").status is OK
    from driver.protocols.em580 import NOT_READY, OCMF_STATE

    lost = AnswerLost(drv.protocol.link, OCMF_STATE, [NOT_READY])
    drv.protocol.link = lost
    started = drv.start_transaction(request_for("em-confirm-2"))  # confirms the first record first
    assert lost.repeats == 1
    assert started.status is OK, started.error
    assert em580.status()["open_transaction_id"] == "em-confirm-2"


def test_a_record_stays_in_the_meter_until_the_next_start_so_a_rebooted_charger_gets_it(em580, make_driver):
    """A charger that dies after its driver read the record, before EvseManager got it: the meter still
    holds it (READY), and the booting charger's stop(last id) answers it (a campaign finding)."""
    first = em580_driver(make_driver, em580)
    assert first.start_transaction(request_for("em-keep-1")).status is OK
    answered = first.stop_transaction("em-keep-1")
    assert answered.status is OK, answered.error
    first.close()  # the charger lost its power before passing the answer on
    booted = em580_driver(make_driver, em580)
    again = booted.stop_transaction("em-keep-1")
    assert again.status is OK, again.error
    record = closed(em580, "em-keep-1")[0]["ocmf"]
    first_record = answered.signed_meter_value.signed_meter_data
    assert again.signed_meter_value.signed_meter_data == first_record == record
    assert booted.stop_transaction("").status is OK
    assert booted.start_transaction(request_for("em-keep-2")).status is OK  # confirms em-keep-1 away
    assert booted.stop_transaction("em-keep-2").status is OK


@pytest.mark.parametrize("command", ["start", "stop"])
def test_a_reboot_just_before_the_command_sets_the_clock_and_commands_again(em580, make_driver, command):
    from driver.protocols import em580 as protocol

    drv = em580_driver(make_driver, em580)
    if command == "stop":
        assert drv.start_transaction(request_for("em-rb-1")).status is OK
    cut = RebootBefore(drv.protocol.link, em580, "write", protocol.COMMAND,
                       [protocol.CMD_BEGIN if command == "start" else protocol.CMD_END])
    drv.protocol.link = cut
    if command == "start":
        answer = drv.start_transaction(request_for("em-rb-1"))
        assert answer.status is OK, answer.error
        assert em580.status()["open_transaction_id"] == "em-rb-1"
    else:
        # the power loss ended the transaction (ends_on_power_loss): the stop answers its READY record
        answer = drv.stop_transaction("em-rb-1")
        assert answer.status is OK, answer.error
        assert answer.signed_meter_value.signed_meter_data == closed(em580, "em-rb-1")[0]["ocmf"]
    assert cut.cuts == 1


class _StaleChunkOnce:
    """The protocol's link, where the first read of the OCMF file gets a late answer for one chunk (the
    first chunk twice), as a slow meter on a loaded bus gave a campaign."""

    def __init__(self, link):
        self._link = link
        self.stale = 0

    def __getattr__(self, name):
        return getattr(self._link, name)

    def read_input(self, address, count):
        from driver.protocols.em580 import OCMF_FILE

        words = self._link.read_input(address, count)
        if self.stale == 0 and address == OCMF_FILE and count > 125:
            self.stale += 1
            return words[:125] + words[:125] + words[250:count]
        return words


def test_a_malformed_ocmf_file_read_is_read_again(em580, make_driver):
    drv = em580_driver(make_driver, em580)
    assert drv.start_transaction(request_for("em-stale-1")).status is OK
    stale = _StaleChunkOnce(drv.protocol.link)
    drv.protocol.link = stale
    stopped = drv.stop_transaction("em-stale-1")
    assert stale.stale == 1
    assert stopped.status is OK, stopped.error
    assert stopped.signed_meter_value.signed_meter_data == closed(em580, "em-stale-1")[0]["ocmf"]
