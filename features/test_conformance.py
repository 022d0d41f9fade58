"""Step definitions of the conformance suite, and `scenarios()` over every .feature file in features/.

Steps are generic (parameters are parsed), so a new .feature file dropped into features/ runs with
them. They call rig operations and never ask what kind of rig this is. Every check against the meter
uses the rig's ground truth (the meter side), never the driver's own account. Waits are polls with a
deadline.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import ocpp as ocpp_package
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from driver import ocmf
from driver import ocpp as driver_ocpp
from driver.types import (
    OCMFIdentificationFlags,
    OCMFIdentificationLevel,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    TransactionReq,
)
from rigs import BootResult, Rig, Session, status_name

scenarios(".")

TIMEOUT = 15.0  # seconds any single condition may take to come true on the virtual rig
# A tariff text may carry the transaction id after this separator (meter-hil's Iskra and EM580 drivers
# put it there, as EVerest's EM580 driver does, so the meter knows which transaction it runs).
ID_SEPARATOR = "<=>"


@dataclass
class Context:
    """What one scenario has done so far."""

    request: TransactionReq | None = None
    session: Session | None = None
    start_response: Any = None
    stop_response: Any = None
    boot: BootResult | None = None
    last_transaction_id: str | None = None
    readings_from: int = 0
    readings: list[tuple[float, Any]] = field(default_factory=list)
    ocpp: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@pytest.fixture
def ctx() -> Context:
    return Context()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll `condition` until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(0.05)


def evse(rig: Rig):
    assert rig.evse is not None, "the rig has no running driver"
    return rig.evse


def signed_record(ctx: Context) -> str:
    response = ctx.stop_response
    assert response is not None, "no stop was made"
    assert response.signed_meter_value is not None, f"the stop gave no signed meter value: {response}"
    return response.signed_meter_value.signed_meter_data


def begin_record(ctx: Context) -> str | None:
    """The begin record the stop returned apart (start_signed_meter_value), None when there is none."""
    begin = ctx.stop_response.start_signed_meter_value if ctx.stop_response is not None else None
    return None if begin is None else begin.signed_meter_data


def closed_record(rig: Rig, transaction_id: str) -> list[dict[str, Any]]:
    return [t for t in rig.ground_truth()["closed_transactions"] if t["transaction_id"] == transaction_id]


# --- the charger and the session --------------------------------------------------------------------


@given("the charger has booted")
def charger_booted(rig: Rig, ctx: Context) -> None:
    """EvseManager's start-up with no transaction remembered: stop_transaction("") only. Booting works
    when stop("") is answered: OK, or NOT_SUPPORTED from a meter without transactions (what stop("")
    must answer on a meter with transactions is the R-RECOVER scenarios' business)."""
    ctx.boot = evse(rig).boot(None)
    assert status_name(ctx.boot.clear_pending) in ("OK", "NOT_SUPPORTED"), (
        f"stop(\"\") at boot: {ctx.boot.clear_pending}")


@given("EvseManager stops sessions on powermeter errors")
def fail_on_errors(rig: Rig) -> None:
    evse(rig).fail_on_powermeter_errors = True


@given("EvseManager does not stop sessions on powermeter errors")
def no_fail_on_errors(rig: Rig) -> None:
    evse(rig).fail_on_powermeter_errors = False


@given(parsers.parse('an identification of type "{kind}"'))
def identification(ctx: Context, fake: Any, kind: str) -> None:
    ctx.request = TransactionReq(
        evse_id=fake.evse_id(),
        transaction_id=fake.transaction_uuid(),
        identification_status=OCMFUserIdentificationStatus.ASSIGNED,
        identification_flags=[OCMFIdentificationFlags.RFID_PLAIN, OCMFIdentificationFlags.OCPP_AUTH],
        identification_type=OCMFIdentificationType(kind),
        identification_level=OCMFIdentificationLevel.TRUSTED,
        identification_data=fake.identification_data(kind),
    )


@given(parsers.parse('an identification of type "{kind}" with a tariff text'))
def identification_with_tariff(ctx: Context, fake: Any, kind: str) -> None:
    identification(ctx, fake, kind)
    assert ctx.request is not None
    ctx.request.tariff_text = fake.tariff_text()


@given(parsers.parse("the EV draws {watts:d} W"))
def ev_draws(rig: Rig, watts: int) -> None:
    rig.set_load(float(watts))


@when("a session starts")
def session_starts(rig: Rig, ctx: Context) -> None:
    assert ctx.request is not None, "no identification given"
    ctx.session = evse(rig).start_session(ctx.request)
    ctx.start_response = ctx.session.start_response
    ctx.last_transaction_id = ctx.request.transaction_id


@when(parsers.re(r'a session starts with (?P<name>\w+) set to "(?P<value>[^"]*)"'))
def session_starts_with(rig: Rig, ctx: Context, name: str, value: str) -> None:
    assert ctx.request is not None, "no identification given"
    assert name in {f.name for f in dataclasses.fields(TransactionReq)}, f"TransactionReq has no field {name}"
    ctx.request = dataclasses.replace(ctx.request, **{name: value})
    session_starts(rig, ctx)


@when("the session is stopped")
def session_stopped(rig: Rig, ctx: Context) -> None:
    assert ctx.session is not None, "no session was started"
    ctx.stop_response = evse(rig).stop_session(ctx.session)


@when("EvseManager repeats the stop")
def stop_repeated(rig: Rig, ctx: Context) -> None:
    session_stopped(rig, ctx)


@when("a stop is requested for an unknown transaction id")
def stop_unknown(rig: Rig, ctx: Context, fake: Any) -> None:
    ctx.stop_response = evse(rig).driver.stop_transaction(fake.transaction_uuid())


@then(parsers.parse('the start is answered "{status}"'))
def start_answered(ctx: Context, status: str) -> None:
    assert status_name(ctx.start_response) == status, f"start answered {ctx.start_response}"


@then(parsers.parse('the start is answered "{status}" with an error message'))
def start_answered_error(ctx: Context, status: str) -> None:
    assert status_name(ctx.start_response) == status, f"start answered {ctx.start_response}"
    assert ctx.start_response.error, "no error message"


@then(parsers.parse('the start is answered "{status}" with a signed begin record'))
def start_answered_begin(rig: Rig, ctx: Context, status: str) -> None:
    assert status_name(ctx.start_response) == status, f"start answered {ctx.start_response}"
    begin = ctx.start_response.signed_meter_value
    assert begin is not None, "the start gave no signed meter value"
    readings = [r.tx for r in ocmf.parse(begin.signed_meter_data).readings]
    assert readings == ["B"], f"the start's record holds readings {readings}, not one begin reading"


@then("the start answer gives a minimum and a maximum stop time")
def start_stop_times(ctx: Context) -> None:
    response = ctx.start_response
    assert response.transaction_min_stop_time, f"no transaction_min_stop_time: {response}"
    assert response.transaction_max_stop_time, f"no transaction_max_stop_time: {response}"
    earliest = datetime.fromisoformat(response.transaction_min_stop_time)
    latest = datetime.fromisoformat(response.transaction_max_stop_time)
    assert earliest < latest, f"minimum stop time {earliest} is not before the maximum {latest}"


@when("the minimum stop time has passed")
def minimum_stop_time_passed(ctx: Context) -> None:
    earliest = datetime.fromisoformat(ctx.start_response.transaction_min_stop_time).timestamp()
    wait_until(lambda: time.time() >= earliest + 1, "the minimum stop time has passed",
               timeout=max(TIMEOUT, earliest + 2 - time.time()))


@then("the stop answer carries the begin record of the start")
def stop_carries_begin(ctx: Context) -> None:
    begin = ctx.stop_response.start_signed_meter_value
    assert begin is not None, "the stop gave no start_signed_meter_value"
    started = ctx.start_response.signed_meter_value
    assert started is not None and begin.signed_meter_data == started.signed_meter_data, (
        "the stop's start_signed_meter_value is not the begin record the start returned")


@then(parsers.parse('the start is refused naming "{name}"'))
def start_refused(ctx: Context, name: str) -> None:
    response = ctx.start_response
    assert status_name(response) != "OK", f"an invalid {name} was accepted: {response}"
    assert response.error and name in response.error, f"the error does not name {name}: {response.error!r}"


@then(parsers.parse('the stop is answered "{status}" with a signed meter value'))
def stop_answered_signed(ctx: Context, status: str) -> None:
    assert status_name(ctx.stop_response) == status, f"stop answered {ctx.stop_response}"
    assert signed_record(ctx).startswith("OCMF|"), "the signed meter value is not an OCMF record"


@then(parsers.parse('the stop is answered "{status}" with an error message'))
def stop_answered_error(ctx: Context, status: str) -> None:
    assert status_name(ctx.stop_response) == status, f"stop answered {ctx.stop_response}"
    assert ctx.stop_response.error, "no error message"
    assert ctx.stop_response.signed_meter_value is None, "a failed stop carries a signed value"


@then(parsers.parse('the stop is not answered "{status}"'))
def stop_not_answered(ctx: Context, status: str) -> None:
    assert status_name(ctx.stop_response) != status, f"stop answered {ctx.stop_response}"


# --- the signed value ------------------------------------------------------------------------------


@then("the signed meter value verifies against the meter's public key")
def record_verifies(rig: Rig, ctx: Context) -> None:
    """The record the stop returned; with a begin record signed apart, the pair (both signatures,
    consecutive pagination, begin before end)."""
    key = evse(rig).driver.public_key_ocmf
    assert key, "the driver has no OCMF public key"
    begin = begin_record(ctx)
    if begin is None:
        result = ocmf.verify(signed_record(ctx), key, transaction=True)
    else:
        result = ocmf.verify_pair(begin, signed_record(ctx), key)
    assert result.valid, f"the OCMF record does not verify: {result.failures}"


@then("the signed meter value holds the identification data sent")
def record_holds_identification(ctx: Context) -> None:
    assert ctx.request is not None
    payload = ocmf.parse(signed_record(ctx)).payload
    sent = ctx.request
    assert payload.get("ID") == sent.identification_data, (
        f"ID {payload.get('ID')!r} != {sent.identification_data!r}")
    assert payload.get("IT") == sent.identification_type.value, f"IT {payload.get('IT')!r}"
    assert payload.get("IS") is (sent.identification_status.value == "ASSIGNED"), f"IS {payload.get('IS')!r}"
    assert sent.identification_level is not None
    assert payload.get("IL") == sent.identification_level.value, f"IL {payload.get('IL')!r}"
    assert payload.get("IF") == [f.value for f in sent.identification_flags], f"IF {payload.get('IF')!r}"
    assert payload.get("CI") == sent.evse_id, f"CI {payload.get('CI')!r} != {sent.evse_id!r}"
    with_id = f"{sent.tariff_text or ''}{ID_SEPARATOR}{sent.transaction_id}"
    if sent.tariff_text is not None:
        assert payload.get("TT") in (sent.tariff_text, with_id), (
            f"TT {payload.get('TT')!r} is neither {sent.tariff_text!r} nor {with_id!r}")
    else:
        assert payload.get("TT") in (None, with_id), f"TT {payload.get('TT')!r} but no tariff text was sent"


@then("its begin and end energy agree with the meter's ground truth")
def record_agrees_with_ground_truth(rig: Rig, ctx: Context) -> None:
    assert ctx.last_transaction_id is not None
    records = [ocmf.parse(signed_record(ctx))]
    begin_apart = begin_record(ctx)
    if begin_apart is not None:
        records.insert(0, ocmf.parse(begin_apart))
    truth = closed_record(rig, ctx.last_transaction_id)
    assert len(truth) == 1, f"the meter holds {len(truth)} closed records for {ctx.last_transaction_id}"
    values = {r.tx: r.value for record in records for r in record.readings}
    assert set(values) >= {"B", "E"}, f"the record lacks a begin or end reading: {sorted(values, key=str)}"
    begin, end = values["B"], values["E"]
    assert begin is not None and end is not None
    # The meter's counter: OCMF RV (kWh) x 1000 / resolution is the register value, exactly.
    resolution = Decimal(str(rig.ground_truth()["energy_resolution_wh"]))
    per_kwh = Decimal(1000) / resolution
    assert begin * per_kwh == truth[0]["begin_register"], (
        f"begin {begin} kWh != meter's begin register {truth[0]['begin_register']} ({resolution} Wh)")
    assert end * per_kwh == truth[0]["end_register"], (
        f"end {end} kWh != meter's end register {truth[0]['end_register']} ({resolution} Wh)")
    assert abs(float(end) * 1000 - truth[0]["end_wh"]) < float(resolution), (
        "end reading differs from the meter's energy by more than its resolution")
    # The driver passes the meter's record on unchanged (it never creates or alters a signed value).
    assert signed_record(ctx) == truth[0]["ocmf"], "the driver's record differs from the one the meter signed"
    if begin_apart is not None:
        assert begin_apart == truth[0].get("begin_ocmf"), "the driver's begin record differs from the meter's"


@then("the meter signed exactly one record for the transaction")
def one_record(rig: Rig, ctx: Context) -> None:
    assert ctx.last_transaction_id is not None
    records = closed_record(rig, ctx.last_transaction_id)
    assert len(records) == 1, f"{len(records)} records for {ctx.last_transaction_id}"


# --- the meter's ground truth ------------------------------------------------------------------


@then("the meter has the transaction open")
def meter_has_open(rig: Rig, ctx: Context) -> None:
    assert ctx.request is not None
    truth = rig.ground_truth()
    assert truth["open_transaction_id"] == ctx.request.transaction_id, (
        f"meter has {truth['open_transaction_id']!r} open")
    assert truth["transaction_state"] != 0, "the meter is idle"


@then("the meter has no transaction open")
def meter_has_none_open(rig: Rig) -> None:
    def idle() -> bool:
        truth = rig.ground_truth()
        return truth["open_transaction_id"] == "" and truth["transaction_state"] == 0

    wait_until(idle, "the meter has no transaction open")


@when(parsers.parse("the meter counts {wh:d} Wh more"))
def meter_counts(rig: Rig, wh: int) -> None:
    start = rig.ground_truth()["energy_wh"]
    wait_until(lambda: rig.ground_truth()["energy_wh"] >= start + wh, f"the meter counted {wh} Wh more")


# --- link, power and errors --------------------------------------------------------------------


@when("the link is cut")
def link_cut(rig: Rig) -> None:
    rig.link_down()


@when("the link is restored")
def link_restored(rig: Rig) -> None:
    rig.link_up()


@when(parsers.parse("the link corrupts {per_mille:d} in 1000 bytes"))
def link_noise(rig: Rig, per_mille: int) -> None:
    rig.set_link_noise(per_mille / 1000, seed=per_mille)


@when("the link is clean again")
def link_clean(rig: Rig) -> None:
    rig.set_link_noise(0.0, seed=0)


@then("the link corrupted some bytes")
def link_corrupted_some(rig: Rig) -> None:
    assert rig.link_bytes_corrupted() > 0, "the noise never hit a byte: the scenario tested nothing"


@when("the link is cut as soon as the stop command reaches the meter")
def link_cut_on_stop(rig: Rig) -> None:
    rig.cut_link_on_stop_command()


@then("the link was cut after the stop command reached the meter")
def armed_cut_happened(rig: Rig) -> None:
    assert rig.armed_cut_happened(), "no stop command crossed the link, so the link was never cut"


@when("the meter loses power")
def meter_power_off(rig: Rig) -> None:
    rig.power_off()


@when("the meter's power returns")
def meter_power_on(rig: Rig) -> None:
    rig.power_on()


@when("the whole system loses power")
def system_power_off(rig: Rig, ctx: Context) -> None:
    """The charger goes down with the meter: the driver and EvseManager lose everything in memory."""
    ctx.last_transaction_id = evse(rig).last_transaction_id or ctx.last_transaction_id
    rig.stop_driver()
    rig.power_off()


@when("the whole system's power returns")
def system_power_on(rig: Rig) -> None:
    rig.power_on()


@when("the charger boots with the last transaction id")
def boots_with_last_id(rig: Rig, ctx: Context) -> None:
    assert ctx.last_transaction_id, "no transaction id was remembered"
    manager = rig.start_driver() if rig.evse is None else rig.evse
    ctx.boot = manager.boot(ctx.last_transaction_id)
    ctx.stop_response = ctx.boot.stop_last


@when("the charger boots without a last transaction id")
def boots_without_last_id(rig: Rig, ctx: Context) -> None:
    manager = rig.start_driver() if rig.evse is None else rig.evse
    ctx.boot = manager.boot(None)


@then(parsers.parse('stop of the last transaction id is answered "{status}" with a signed meter value'))
def boot_stop_last(ctx: Context, status: str) -> None:
    assert ctx.boot is not None and ctx.boot.stop_last is not None, "no stop(last id) was made"
    stop_answered_signed(ctx, status)


@then(parsers.parse('stop("") is answered "{status}"'))
def boot_clear(ctx: Context, status: str) -> None:
    assert ctx.boot is not None, "the charger did not boot"
    assert status_name(ctx.boot.clear_pending) == status, f"stop(\"\") answered {ctx.boot.clear_pending}"


@then(parsers.parse('the driver raises "{error}"'))
def driver_raises(rig: Rig, error: str) -> None:
    wait_until(lambda: error in evse(rig).active_errors(), f"the driver raised {error}")


@then(parsers.parse('the driver clears "{error}"'))
def driver_clears(rig: Rig, error: str) -> None:
    wait_until(lambda: error not in evse(rig).active_errors(), f"the driver cleared {error}")


@then("EvseManager has stopped the session because of the powermeter error")
def session_stopped_on_error(ctx: Context) -> None:
    assert ctx.session is not None
    wait_until(lambda: ctx.session is not None and ctx.session.stop_reason == "PowermeterError",
               "EvseManager stopped the session on the powermeter error")


@then("the stopped session receives its signed meter value")
def stopped_session_signed(ctx: Context) -> None:
    session = ctx.session
    assert session is not None
    wait_until(lambda: session.closed, "the stopped session got its signed meter value")
    ctx.stop_response = session.stop_response
    stop_answered_signed(ctx, "OK")


# --- live readings ---------------------------------------------------------------------------------


@when(parsers.parse("the driver has published {count:d} readings"))
def published_readings(rig: Rig, ctx: Context, count: int) -> None:
    manager = evse(rig)
    ctx.readings_from = len(manager.readings())
    interval = manager.driver.publish_interval
    wait_until(lambda: len(manager.readings()) >= ctx.readings_from + count,
               f"the driver published {count} readings", timeout=count * interval * 4 + 5)
    ctx.readings = manager.readings()[ctx.readings_from:ctx.readings_from + count]


@then("the readings arrived at the configured interval")
def readings_at_interval(rig: Rig, ctx: Context) -> None:
    interval = float(evse(rig).driver.publish_interval)
    times = [t for t, _ in ctx.readings]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps, "fewer than two readings"
    mean = sum(gaps) / len(gaps)
    # The publisher waits `interval` after each read, so the period is the interval plus a read time.
    assert 0.8 * interval <= mean <= 1.5 * interval + 0.1, (
        f"mean interval {mean:.3f} s, configured {interval} s")
    assert max(gaps) <= 3 * interval + 0.2, f"a gap of {max(gaps):.3f} s (configured {interval} s)"


@then("every reading has a timestamp, energy and the meter id")
def readings_complete(ctx: Context) -> None:
    for _, reading in ctx.readings:
        assert reading.timestamp, f"no timestamp: {reading}"
        assert reading.energy_Wh_import is not None and reading.energy_Wh_import.total is not None
        assert reading.meter_id, f"no meter_id: {reading}"


@then("the imported energy never went backwards")
def energy_monotonic(ctx: Context) -> None:
    values = [reading.energy_Wh_import.total for _, reading in ctx.readings]
    for before, after in itertools.pairwise(values):
        assert after >= before, f"energy went backwards: {before} -> {after}"
    assert values[-1] > values[0], f"energy did not grow under load: {values[0]} -> {values[-1]}"


@then("the readings show power drawn on the phases")
def readings_show_power(ctx: Context) -> None:
    _, last = ctx.readings[-1]
    assert last.power_W is not None and (last.power_W.total or 0) > 0, f"power: {last.power_W}"
    assert last.voltage_V is not None and last.voltage_V.L1, f"voltage: {last.voltage_V}"
    assert last.current_A is not None and last.current_A.L1, f"current: {last.current_A}"


@then("the last reading agrees with the meter's ground truth")
def reading_agrees_with_ground_truth(rig: Rig, ctx: Context) -> None:
    """Catches a wrong scale or word order in the driver's decoding: the meter side knows the truth.

    The energy is bracketed, which holds at any speed factor: ground truth before, a reading whose
    Modbus read began after it (the second one to arrive: the publisher reads one at a time), and
    ground truth after that reading arrived."""
    manager = evse(rig)
    before = rig.ground_truth()
    seen = len(manager.readings())
    wait_until(lambda: len(manager.readings()) >= seen + 2, "two more readings")
    _, reading = manager.readings()[seen + 1]
    truth = rig.ground_truth()
    energy = reading.energy_Wh_import.total
    resolution_wh = truth["energy_resolution_wh"]
    assert before["energy_wh"] - resolution_wh <= energy <= truth["energy_wh"] + resolution_wh, (
        f"published energy {energy} Wh, the meter counted {before['energy_wh']:.3f} Wh before the read "
        f"and {truth['energy_wh']:.3f} Wh after it")
    assert reading.power_W is not None and reading.power_W.total is not None
    assert abs(reading.power_W.total - truth["power_w"]) <= 0.02 * truth["power_w"] + 1, (
        f"published power {reading.power_W.total} W, the meter draws {truth['power_w']:.1f} W")
    phases = (reading.power_W.L1, reading.power_W.L2, reading.power_W.L3)
    for published, real in zip(phases, truth["power_phases_w"], strict=True):
        assert published is not None and abs(published - real) <= 0.02 * real + 1, (
            f"per-phase power {phases}, the meter's {truth['power_phases_w']}")
    volts = (reading.voltage_V.L1, reading.voltage_V.L2, reading.voltage_V.L3) if reading.voltage_V else ()
    assert len(volts) == 3 and all(v is not None for v in volts), f"voltages missing: {reading.voltage_V}"
    for published, real in zip(volts, truth["voltages_v"], strict=True):
        assert abs(published - real) <= 0.01 * real, f"voltages {volts}, the meter's {truth['voltages_v']}"


@when(parsers.parse('the phase order becomes "{order}"'))
def phase_order(rig: Rig, ctx: Context, order: str) -> None:
    rig.set_phase_order(order)
    ctx.readings_from = len(evse(rig).readings())


@then(parsers.parse("a reading shows phase_seq_error {value}"))
def reading_phase_error(rig: Rig, ctx: Context, value: str) -> None:
    expected = {"true": True, "false": False}[value]
    manager = evse(rig)
    wait_until(lambda: any(r.phase_seq_error is expected for _, r in manager.readings()[ctx.readings_from:]),
               f"a reading shows phase_seq_error {value}")


@then("the record the meter stored verifies against the driver's OCMF public key")
def stored_record_verifies(rig: Rig, ctx: Context) -> None:
    assert ctx.last_transaction_id is not None
    truth = closed_record(rig, ctx.last_transaction_id)
    assert len(truth) == 1, f"the meter holds {len(truth)} records for the transaction"
    key = evse(rig).driver.public_key_ocmf
    assert key, "the driver reports no OCMF public key"
    result = ocmf.verify(truth[0]["ocmf"], key, transaction=True)
    assert result.valid, f"the meter's own record does not verify with the driver's key: {result.failures}"


# --- OCPP mapping ------------------------------------------------------------------------------------
# The payloads come from driver.ocpp; they are checked here again against the schemas bundled in the
# `ocpp` package, independently of the driver's own validation.

OCPP_SCHEMAS = Path(ocpp_package.__file__).parent
OCPP_16_TRANSACTION_ID = 1  # OCPP 1.6 numbers transactions itself (the CSMS gives the number)
EVSE_ID = 1


def schema_errors(payload: dict[str, Any], version: str, name: str) -> list[str]:
    schema_file = OCPP_SCHEMAS / f"v{version}" / "schemas" / f"{name}.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8-sig"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def last_reading(ctx: Context) -> Any:
    assert ctx.readings, "no readings were published"
    return ctx.readings[-1][1]


@then("the OCPP 1.6 MeterValues.req for the transaction is valid against its schema")
def ocpp16_valid(ctx: Context) -> None:
    signed = ctx.stop_response.signed_meter_value
    periodic = driver_ocpp.meter_values_request_v16(EVSE_ID, last_reading(ctx), context="Sample.Periodic",
                                                    transaction_id=OCPP_16_TRANSACTION_ID)
    end = driver_ocpp.meter_values_request_v16(EVSE_ID, last_reading(ctx), context="Transaction.End",
                                               transaction_id=OCPP_16_TRANSACTION_ID, signed=signed)
    stop = driver_ocpp.stop_transaction_request_v16(OCPP_16_TRANSACTION_ID, last_reading(ctx), signed=signed)
    for payload, name in ((periodic, "MeterValues"), (end, "MeterValues"), (stop, "StopTransaction")):
        errors = schema_errors(payload, "16", name)
        assert not errors, f"OCPP 1.6 {name}: {errors}"
    ctx.ocpp["1.6"] = [end, stop]


@then("the OCPP 2.0.1 MeterValuesRequest for the transaction is valid against its schema")
def ocpp201_valid(ctx: Context) -> None:
    assert ctx.request is not None
    signed = ctx.stop_response.signed_meter_value
    periodic = driver_ocpp.meter_values_request_v201(EVSE_ID, last_reading(ctx), context="Sample.Periodic")
    end = driver_ocpp.meter_values_request_v201(EVSE_ID, last_reading(ctx), context="Transaction.End",
                                                signed=signed)
    ended = driver_ocpp.transaction_event_request_v201(
        "Ended", timestamp=last_reading(ctx).timestamp, trigger_reason="StopAuthorized", seq_no=2,
        transaction_id=ctx.request.transaction_id, evse_id=EVSE_ID, stopped_reason="Local",
        meter_values=[driver_ocpp.meter_value_v201(last_reading(ctx), "Transaction.End", signed)])
    for payload, name in ((periodic, "MeterValuesRequest"), (end, "MeterValuesRequest"),
                          (ended, "TransactionEventRequest")):
        errors = schema_errors(payload, "201", name)
        assert not errors, f"OCPP 2.0.1 {name}: {errors}"
    ctx.ocpp["2.0.1"] = [end, ended]


@then("the OCPP payloads carry the signed meter value unchanged")
def ocpp_carries_record(ctx: Context) -> None:
    record = signed_record(ctx)
    for version in ("1.6", "2.0.1"):
        for payload in ctx.ocpp[version]:
            text = json.dumps(payload)
            assert json.dumps(record)[1:-1] in text, f"OCPP {version}: signed record missing"
    end_16 = ctx.ocpp["1.6"][0]["meterValue"][0]["sampledValue"]
    signed_16 = [s for s in end_16 if s.get("format") == "SignedData"]
    assert [s["value"] for s in signed_16] == [record], "OCPP 1.6: SignedData value is not the record"
    end_201 = ctx.ocpp["2.0.1"][0]["meterValue"][0]["sampledValue"]
    signed_201 = [s["signedMeterValue"] for s in end_201 if "signedMeterValue" in s]
    assert [s["signedMeterData"] for s in signed_201] == [record], "OCPP 2.0.1: signedMeterData differs"
