"""Steps about the signed value: it verifies, holds what was sent, and is the meter's own record.

Every check against the meter uses the rig's ground truth (the meter side), never the driver's account.
"""

from __future__ import annotations

from decimal import Decimal

from pytest_bdd import then

from driver import ocmf
from rigs import Rig

from .context import (
    ID_SEPARATOR,
    Context,
    begin_record,
    closed_records,
    evse,
    signed_record,
    started_transaction,
)


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
    assert ctx.request is not None, "no identification given"
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
    transaction_id = started_transaction(ctx)
    records = [ocmf.parse(signed_record(ctx))]
    begin_apart = begin_record(ctx)
    if begin_apart is not None:
        records.insert(0, ocmf.parse(begin_apart))
    truth = closed_records(rig, transaction_id)
    assert len(truth) == 1, f"the meter holds {len(truth)} closed records for {transaction_id}"
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
    transaction_id = started_transaction(ctx)
    records = closed_records(rig, transaction_id)
    assert len(records) == 1, f"{len(records)} records for {transaction_id}"


@then("the record the meter stored verifies against the driver's OCMF public key")
def stored_record_verifies(rig: Rig, ctx: Context) -> None:
    transaction_id = started_transaction(ctx)
    truth = closed_records(rig, transaction_id)
    assert len(truth) == 1, f"the meter holds {len(truth)} records for the transaction"
    key = evse(rig).driver.public_key_ocmf
    assert key, "the driver reports no OCMF public key"
    if truth[0].get("begin_ocmf"):  # begin and end signed apart: the pair
        result = ocmf.verify_pair(truth[0]["begin_ocmf"], truth[0]["ocmf"], key)
    else:
        result = ocmf.verify(truth[0]["ocmf"], key, transaction=True)
    assert result.valid, f"the meter's own record does not verify with the driver's key: {result.failures}"
