"""What the steps share: the scenario's context, waiting on a condition, and the records it got back.

A step module of a vendor's imports from here (and from the other step modules) to build its own steps
on the same context.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from driver.types import TransactionReq
from rigs import BootResult, EvseManager, Rig, Session

TIMEOUT = 15.0
"""Seconds any single condition may take to come true on the virtual rig."""

ID_SEPARATOR = "<=>"
"""A tariff text may carry the transaction id after this separator (meter-hil's Iskra and EM580 drivers
put it there, as EVerest's EM580 driver does, so the meter knows which transaction it runs)."""


@dataclass
class Context:
    """What one scenario has done so far: each field is set by the step whose words say so."""

    request: TransactionReq | None = None
    session: Session | None = None
    start_response: Any = None
    stop_response: Any = None
    boot: BootResult | None = None
    transaction_id: str | None = None  # the transaction the last session started
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


def evse(rig: Rig) -> EvseManager:
    """The running EvseManager; fails the step when the charger is down (the whole system lost power)."""
    assert rig.evse is not None, "the charger is not running (no driver): boot it first"
    return rig.evse


def signed_record(ctx: Context) -> str:
    """The OCMF record of the last stop answer."""
    response = ctx.stop_response
    assert response is not None, "no stop was made"
    assert response.signed_meter_value is not None, f"the stop gave no signed meter value: {response}"
    return response.signed_meter_value.signed_meter_data


def begin_record(ctx: Context) -> str | None:
    """The begin record the stop returned apart (start_signed_meter_value), None when there is none."""
    begin = ctx.stop_response.start_signed_meter_value if ctx.stop_response is not None else None
    return None if begin is None else begin.signed_meter_data


def started_transaction(ctx: Context) -> str:
    """The id of the transaction the scenario's last session started."""
    assert ctx.transaction_id, "no session was started"
    return ctx.transaction_id


def closed_records(rig: Rig, transaction_id: str) -> list[dict[str, Any]]:
    """The meter's ground truth: the records it closed for `transaction_id`."""
    return [t for t in rig.ground_truth()["closed_transactions"] if t["transaction_id"] == transaction_id]
