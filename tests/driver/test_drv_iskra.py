"""The Iskra WM3M4C protocol against the simulated Iskra meter (meter-sim --model iskra-wm3m4c) on a pty.

What meter-hil's driver does beyond EVerest's RsIskraMeter is held here: the transaction id is honoured,
the identification goes into the metadata, a repeated stop returns the same record, a power loss is
recovered, and every record is the meter's byte for byte."""

import json

import pytest
from drv_support import AnswerLost, MisreadOnce, RebootBefore, SimMeter, request_for, wait_for

from driver import ocmf
from driver.types import TransactionRequestStatus

OK = TransactionRequestStatus.OK
UNEXPECTED = TransactionRequestStatus.UNEXPECTED_ERROR
MODEL = "iskra-wm3m4c"


@pytest.fixture
def iskra():
    meter = SimMeter(profile=MODEL, speed=60.0, unit=33)
    yield meter
    meter.close()


def iskra_driver(make_driver, meter, **overrides):
    return make_driver(meter.path, model=MODEL, unit=33, **overrides)


def closed(meter, transaction_id):
    return [t for t in meter.status()["closed_transactions"] if t["transaction_id"] == transaction_id]


def test_auto_names_the_iskra_model(iskra, make_driver):
    drv = make_driver(iskra.path, model="auto", unit=33)
    assert drv.meter_identity().model == "WM3M4C"
    assert drv.model == MODEL
    assert drv.model_found == "Iskra WM3M4C, serial W4100033"
    assert drv.public_key_ocmf.startswith("3059301306072A8648CE3D020106082A8648CE3D03010703420004")


def test_readings_are_the_meters_ground_truth(iskra, make_driver):
    iskra.control.set_load(power_w=11000)
    drv = iskra_driver(make_driver, iskra)
    before = iskra.status()
    reading = drv.read_powermeter()
    after = iskra.status()
    assert before["energy_wh"] - 10 <= reading.energy_Wh_import.total <= after["energy_wh"] + 10
    assert abs(reading.power_W.total - after["power_w"]) <= 0.01 * after["power_w"] + 1
    for published, real in zip((reading.voltage_V.L1, reading.voltage_V.L2, reading.voltage_V.L3),
                               after["voltages_v"], strict=True):
        assert abs(published - real) <= 0.01 * real
    assert reading.current_A.L1 > 0 and reading.phase_seq_error is False
    assert reading.meter_id == "W4100033"


def test_a_session_gives_the_meters_own_record_with_the_identification(iskra, make_driver):
    drv = iskra_driver(make_driver, iskra)
    request = request_for("iskra-tx-1")
    assert drv.start_transaction(request).status is OK
    assert iskra.status()["open_transaction_id"] == "iskra-tx-1"
    stopped = drv.stop_transaction("iskra-tx-1")
    assert stopped.status is OK, stopped.error
    record = stopped.signed_meter_value.signed_meter_data
    truth = closed(iskra, "iskra-tx-1")
    assert len(truth) == 1 and record == truth[0]["ocmf"]
    assert ocmf.verify(record, drv.public_key_ocmf, transaction=True).valid
    payload = ocmf.parse(record).payload
    assert (payload["ID"], payload["IT"], payload["IL"], payload["CI"]) == (
        "04A1B2C3D4E5F6", "ISO14443", "TRUSTED", "DE*MHL*E0001*1")
    assert payload["IF"] == ["RFID_PLAIN", "OCPP_AUTH"]
    assert payload["TT"] == "0.39 EUR/kWh<=>iskra-tx-1"
    assert [r.tx for r in ocmf.parse(record).readings] == ["B", "E"]
    # A stop repeated after a lost answer gets the same record, never a second one.
    again = drv.stop_transaction("iskra-tx-1")
    assert again.status is OK and again.signed_meter_value.signed_meter_data == record
    assert len(closed(iskra, "iskra-tx-1")) == 1


def test_the_transaction_id_is_honoured(iskra, make_driver):
    drv = iskra_driver(make_driver, iskra)
    assert drv.start_transaction(request_for("iskra-tx-a")).status is OK
    other = drv.start_transaction(request_for("iskra-tx-b"))
    assert other.status is UNEXPECTED and "'iskra-tx-a' is still active" in other.error
    wrong = drv.stop_transaction("iskra-tx-b")
    assert wrong.status is UNEXPECTED and "runs transaction 'iskra-tx-a', not 'iskra-tx-b'" in wrong.error
    assert iskra.status()["open_transaction_id"] == "iskra-tx-a"
    cleared = drv.stop_transaction("")
    assert cleared.status is OK and cleared.signed_meter_value is not None
    assert cleared.signed_meter_value.signed_meter_data == closed(iskra, "iskra-tx-a")[0]["ocmf"]
    assert iskra.status()["transaction_state"] == 0
    assert drv.stop_transaction("").status is OK  # nothing pending: OK without a record


def test_a_tariff_text_leaving_no_room_for_the_id_is_refused_naming_it(iskra, make_driver):
    drv = iskra_driver(make_driver, iskra)
    response = drv.start_transaction(request_for("iskra-tx-long", tariff_text="x" * 240))
    assert response.status is UNEXPECTED and "tariff_text" in response.error
    assert iskra.status()["transaction_state"] == 0


def test_a_power_loss_mid_session_is_recovered_by_a_new_driver(iskra, make_driver):
    drv = iskra_driver(make_driver, iskra)
    assert drv.start_transaction(request_for("iskra-tx-pl")).status is OK
    drv.close()
    iskra.lose_power()  # SIGKILL and restart: state 2, time status 0
    assert iskra.status()["transaction_state"] == 2
    fresh = iskra_driver(make_driver, iskra)
    stopped = fresh.stop_transaction("iskra-tx-pl")
    assert stopped.status is OK, stopped.error
    record = stopped.signed_meter_value.signed_meter_data
    assert record == closed(iskra, "iskra-tx-pl")[0]["ocmf"]
    assert ocmf.verify(record, fresh.public_key_ocmf, transaction=True).valid
    end = ocmf.parse(record).readings[-1]
    assert end.tx == "E" and json.loads(record.split("|")[1])["RD"][-1]["TM"].endswith(" S")


def test_the_driver_sets_the_clock_after_a_power_up(iskra, make_driver):
    drv = iskra_driver(make_driver, iskra)
    drv.read_powermeter()
    iskra.control.power_off()
    iskra.control.power_on()
    wait_for(lambda: _reads(drv), 10, "the meter to answer after its power-up")
    assert drv.reboots_seen == 1
    assert iskra.status()["clock_synchronised"] is True


def _reads(drv):
    try:
        drv.read_powermeter()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("command", ["start", "stop"])
def test_a_reboot_just_before_the_command_sets_the_clock_and_commands_again(iskra, make_driver, command):
    from driver.protocols import iskra as protocol

    drv = iskra_driver(make_driver, iskra)
    if command == "stop":
        assert drv.start_transaction(request_for("iskra-tx-rb")).status is OK
    cut = RebootBefore(drv.protocol.link, iskra, "write", protocol.COMMAND,
                       [protocol.CMD_BEGIN if command == "start" else protocol.CMD_END])
    drv.protocol.link = cut
    if command == "start":
        answer = drv.start_transaction(request_for("iskra-tx-rb"))
    else:
        answer = drv.stop_transaction("iskra-tx-rb")
    assert cut.cuts == 1
    assert answer.status is OK, answer.error
    assert iskra.status()["clock_synchronised"] is True
    if command == "stop":
        record = answer.signed_meter_value.signed_meter_data
        assert record == closed(iskra, "iskra-tx-rb")[0]["ocmf"]
    else:
        assert iskra.status()["transaction_state"] == 1


def test_an_end_repeated_after_its_answer_was_lost_gives_the_record(iskra, make_driver):
    """The 'r' answer is lost, the link layer repeats it once the meter has signed: the meter refuses the
    repeat (invalid state), and the stop still answers the record (a campaign finding)."""
    from driver.protocols import iskra as protocol

    drv = iskra_driver(make_driver, iskra)
    assert drv.start_transaction(request_for("iskra-tx-lost-r")).status is OK
    signed = lambda: wait_for(lambda: not iskra.status()["signing"], 10, "the signature")  # noqa: E731
    lost = AnswerLost(drv.protocol.link, protocol.COMMAND, [protocol.CMD_END], before_repeat=signed)
    drv.protocol.link = lost
    stopped = drv.stop_transaction("iskra-tx-lost-r")
    assert lost.repeats == 1
    assert stopped.status is OK, stopped.error
    assert stopped.signed_meter_value.signed_meter_data == closed(iskra, "iskra-tx-lost-r")[0]["ocmf"]


@pytest.mark.parametrize(("command", "state"), [("start", 1), ("start", 180), ("stop", 0), ("stop", 180)])
def test_a_late_answer_taken_for_the_state_does_not_refuse_the_command(iskra, make_driver, command, state):
    """Finding 15: the charging state read got a late answer to another one-register read (a state
    poll's 1 or 0, a metadata length of 180; before the link waited for owed answers). The start
    refused "transaction '(without an id)' is still active", the stop lost its record. Now the misread
    is seen (a state read again disagrees, or no such state) and the command is repeated."""
    from driver.protocols import iskra as protocol

    drv = iskra_driver(make_driver, iskra)
    assert drv.start_transaction(request_for("iskra-tx-before")).status is OK
    assert drv.stop_transaction("iskra-tx-before").status is OK
    if command == "stop":
        assert drv.start_transaction(request_for("iskra-tx-late")).status is OK
    misread = MisreadOnce(drv.protocol.link, protocol.CHARGING_STATE, [state])
    drv.protocol.link = misread
    if command == "start":
        answer = drv.start_transaction(request_for("iskra-tx-late"))
        assert misread.misreads == 1
        assert answer.status is OK, answer.error
        assert iskra.status()["transaction_state"] == 1
    else:
        answer = drv.stop_transaction("iskra-tx-late")
        assert misread.misreads == 1
        assert answer.status is OK, answer.error
        assert answer.signed_meter_value.signed_meter_data == closed(iskra, "iskra-tx-late")[0]["ocmf"]
