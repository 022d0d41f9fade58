"""Steps of the faults the rig injects (link, power, the whole system) and what the driver raises.

Any sequence that makes sense works: power lost twice in a row, a link cut while the meter has no
power, a boot after either. The rig's switches are idempotent; these steps only name them.
"""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from rigs import Rig, status_name

from .context import Context, evse, wait_until
from .session import stop_answered_signed


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
def system_power_off(rig: Rig) -> None:
    """The charger goes down with the meter: the driver and EvseManager lose everything in memory but
    EvseManager's persistent store (the last transaction id)."""
    rig.stop_driver()
    rig.power_off()


@when("the whole system's power returns")
def system_power_on(rig: Rig) -> None:
    rig.power_on()


@when("the charger boots with the last transaction id")
def boots_with_last_id(rig: Rig, ctx: Context) -> None:
    """EvseManager's boot: stop_transaction(the id it stored), then stop_transaction("")."""
    manager = rig.start_driver() if rig.evse is None else rig.evse
    last_id = manager.last_transaction_id
    assert last_id, "EvseManager stored no transaction id: no session was started"
    ctx.boot = manager.boot(last_id)
    ctx.stop_response = ctx.boot.stop_last


@when("the charger boots without a last transaction id")
def boots_without_last_id(rig: Rig, ctx: Context) -> None:
    manager = rig.start_driver() if rig.evse is None else rig.evse
    ctx.boot = manager.boot(None)


@then(parsers.parse('stop of the last transaction id is answered "{status}" with a signed meter value'))
def boot_stop_last(ctx: Context, status: str) -> None:
    assert ctx.boot is not None and ctx.boot.stop_last is not None, "no stop(last id) was made"
    ctx.stop_response = ctx.boot.stop_last
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
    session = ctx.session
    assert session is not None, "no session was started"
    wait_until(lambda: session.stop_reason == "PowermeterError",
               "EvseManager stopped the session on the powermeter error")


@then("the stopped session receives its signed meter value")
def stopped_session_signed(ctx: Context) -> None:
    session = ctx.session
    assert session is not None, "no session was started"
    wait_until(lambda: session.closed, "the stopped session got its signed meter value")
    ctx.stop_response = session.stop_response
    stop_answered_signed(ctx, "OK")
