"""Steps of the charger and the session: boot, identification, load, start, stop and their answers.

Each step calls EvseManager (rigs/evse_manager.py) as EVerest's does, so every command is on the
scenario's timeline, and each assertion checks exactly what the step's words say.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from typing import Any

from pytest_bdd import given, parsers, then, when

from driver import ocmf
from driver.types import (
    OCMFIdentificationFlags,
    OCMFIdentificationLevel,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    TransactionReq,
)
from rigs import Rig, status_name

from .context import TIMEOUT, Context, evse, signed_record, wait_until


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
@when(parsers.parse("the EV draws {watts:d} W"))
def ev_draws(rig: Rig, watts: int) -> None:
    rig.set_load(float(watts))


@when("a session starts")
def session_starts(rig: Rig, ctx: Context, fake: Any) -> None:
    """A new session with the identification given; a second session gets a new transaction id."""
    assert ctx.request is not None, "no identification given"
    if ctx.transaction_id == ctx.request.transaction_id:
        ctx.request = dataclasses.replace(ctx.request, transaction_id=fake.transaction_uuid())
    ctx.session = evse(rig).start_session(ctx.request)
    ctx.start_response = ctx.session.start_response
    ctx.stop_response = None
    ctx.transaction_id = ctx.request.transaction_id


@when(parsers.re(r'a session starts with (?P<name>\w+) set to "(?P<value>[^"]*)"'))
def session_starts_with(rig: Rig, ctx: Context, fake: Any, name: str, value: str) -> None:
    assert ctx.request is not None, "no identification given"
    assert name in {f.name for f in dataclasses.fields(TransactionReq)}, f"TransactionReq has no field {name}"
    ctx.request = dataclasses.replace(ctx.request, **{name: value})
    session_starts(rig, ctx, fake)


@when("the session is stopped")
def session_stopped(rig: Rig, ctx: Context) -> None:
    assert ctx.session is not None, "no session was started"
    ctx.stop_response = evse(rig).stop_session(ctx.session)


@when("EvseManager repeats the stop")
def stop_repeated(rig: Rig, ctx: Context) -> None:
    session_stopped(rig, ctx)


@when("a stop is requested for an unknown transaction id")
def stop_unknown(rig: Rig, ctx: Context, fake: Any) -> None:
    ctx.stop_response = evse(rig).stop_transaction(fake.transaction_uuid(), "unknown id")


@then(parsers.parse('the start is answered "{status}"'))
def start_answered(ctx: Context, status: str) -> None:
    assert status_name(ctx.start_response) == status, f"start answered {ctx.start_response}"


@then(parsers.parse('the start is answered "{status}" with an error message'))
def start_answered_error(ctx: Context, status: str) -> None:
    assert status_name(ctx.start_response) == status, f"start answered {ctx.start_response}"
    assert ctx.start_response.error, "no error message"


@then(parsers.parse('the start is answered "{status}" with a signed begin record'))
def start_answered_begin(ctx: Context, status: str) -> None:
    assert status_name(ctx.start_response) == status, f"start answered {ctx.start_response}"
    begin = ctx.start_response.signed_meter_value
    assert begin is not None, "the start gave no signed meter value"
    readings = [r.tx for r in ocmf.parse(begin.signed_meter_data).readings]
    assert readings == ["B"], f"the start's record holds readings {readings}, not one begin reading"


@then(parsers.parse('the start is refused naming "{name}"'))
def start_refused(ctx: Context, name: str) -> None:
    response = ctx.start_response
    assert status_name(response) != "OK", f"an invalid {name} was accepted: {response}"
    assert response.error and name in response.error, f"the error does not name {name}: {response.error!r}"


@then("the start answer gives a minimum and a maximum stop time")
def start_stop_times(ctx: Context) -> None:
    response = ctx.start_response
    assert response.transaction_min_stop_time, f"no transaction_min_stop_time: {response}"
    assert response.transaction_max_stop_time, f"no transaction_max_stop_time: {response}"
    earliest = datetime.fromisoformat(response.transaction_min_stop_time)
    latest = datetime.fromisoformat(response.transaction_max_stop_time)
    assert earliest < latest, f"minimum stop time {earliest} is not before the maximum {latest}"


@when("the meter takes a stop of the transaction")
def meter_takes_stop(ctx: Context) -> None:
    """Wait for the start answer's minimum stop time, when it gives one (a meter with a minimum duration
    refuses an earlier stop); at once otherwise."""
    assert ctx.start_response is not None, "no session was started"
    earliest_text = ctx.start_response.transaction_min_stop_time
    if earliest_text:
        earliest = datetime.fromisoformat(earliest_text).timestamp()
        wait_until(lambda: time.time() >= earliest + 0.5, "the minimum stop time has passed",
                   timeout=max(TIMEOUT, earliest + 1 - time.time()))


@then("the transaction ended no earlier than the minimum stop time")
def ended_after_minimum(ctx: Context) -> None:
    """The end reading's time (whole seconds, the meter's clock) is not before the start answer's
    transaction_min_stop_time: a stop asked earlier is carried out once the meter takes it."""
    earliest = datetime.fromisoformat(ctx.start_response.transaction_min_stop_time)
    end = next(r for r in ocmf.parse(signed_record(ctx)).readings if r.tx == "E")
    assert end.time is not None, f"the end reading has no time: {end.time_text!r}"
    ended = end.time.replace(microsecond=0)
    assert ended >= earliest, f"the transaction ended at {ended}, before its minimum stop time {earliest}"


@then("the stop answer carries the begin record of the start")
def stop_carries_begin(ctx: Context) -> None:
    assert ctx.stop_response is not None, "no stop was made"
    begin = ctx.stop_response.start_signed_meter_value
    assert begin is not None, "the stop gave no start_signed_meter_value"
    started = ctx.start_response.signed_meter_value
    assert started is not None and begin.signed_meter_data == started.signed_meter_data, (
        "the stop's start_signed_meter_value is not the begin record the start returned")


@then(parsers.parse('the stop is answered "{status}" with a signed meter value'))
def stop_answered_signed(ctx: Context, status: str) -> None:
    assert status_name(ctx.stop_response) == status, f"stop answered {ctx.stop_response}"
    assert signed_record(ctx).startswith("OCMF|"), "the signed meter value is not an OCMF record"


@then(parsers.parse('the stop is answered "{status}" with an error message'))
def stop_answered_error(ctx: Context, status: str) -> None:
    assert ctx.stop_response is not None, "no stop was made"
    assert status_name(ctx.stop_response) == status, f"stop answered {ctx.stop_response}"
    assert ctx.stop_response.error, "no error message"
    assert ctx.stop_response.signed_meter_value is None, "a failed stop carries a signed value"


@then(parsers.parse('the stop is not answered "{status}"'))
def stop_not_answered(ctx: Context, status: str) -> None:
    assert ctx.stop_response is not None, "no stop was made"
    assert status_name(ctx.stop_response) != status, f"stop answered {ctx.stop_response}"
