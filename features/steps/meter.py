"""Steps reading the meter's ground truth (what the simulated meter itself holds)."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from rigs import Rig

from .context import Context, started_transaction, wait_until


@then("the meter has the transaction open")
def meter_has_open(rig: Rig, ctx: Context) -> None:
    transaction_id = started_transaction(ctx)
    truth = rig.ground_truth()
    assert truth["open_transaction_id"] == transaction_id, f"meter has {truth['open_transaction_id']!r} open"
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
