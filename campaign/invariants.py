"""The promises a schedule must keep, checked against the meter's ground truth (ControlClient.status()).

Kept free of processes and ports so each check can be shown to fail on its own (tests/campaign). What a
model does on a power loss comes from its protocol's features, never from its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


def registers_per_kwh(truth: dict[str, Any]) -> Decimal:
    """How many steps of the meter's energy register make the kWh of OCMF RV (10000 for 0.1 Wh)."""
    return Decimal(1000) / Decimal(str(truth["energy_resolution_wh"]))


@dataclass
class TxTrace:
    """One session's transaction as the runner saw it: the ground-truth energy register just before and
    just after the call that took the begin (end) reading brackets that reading."""

    transaction_id: str
    begin_low: int
    begin_high: int | None = None
    end_low: int | None = None
    end_high: int | None = None
    notes: list[str] = field(default_factory=list)
    power_lost: bool = False
    """A power loss (power, kill, system) hit while the transaction was open or being started."""
    start_failed: str | None = None
    """The start's status and error when it was answered other than OK."""

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass
class Observation:
    """Everything a schedule produced on the EvseManager side."""

    pagination_before: int
    public_key: str
    traces: list[TxTrace] = field(default_factory=list)
    received: list[tuple[str, str, Any]] = field(default_factory=list)
    """(which call, the id it was for, the TransactionStopResponse)."""
    begins: list[tuple[str, str, str]] = field(default_factory=list)
    """(which call, the id it was for, a begin record it carried): a meter that signs begin and end apart."""
    last_id: str | None = None
    failures: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    errors: list[tuple[str, bool]] = field(default_factory=list)
    """(error type, raised) events of the driver instance alive at the end, in order."""
    stopped_on_error: int = 0
    """Sessions EvseManager stopped on a CommunicationFault (fail_on_powermeter_errors)."""
    delivered_before: set[str] = field(default_factory=set)
    """Records EvseManager got in earlier schedules on the same rig: one answered again (byte for byte)
    is a repeat of a record already delivered, not a new one (counted in `repeated`)."""
    repeated: int = 0


def record_of(response: Any) -> str | None:
    """The OCMF text of a stop response, None when there is none."""
    signed = getattr(response, "signed_meter_value", None)
    return None if signed is None else signed.signed_meter_data


SEPARATE_BEGIN_END = "separate_begin_end"
"""A model feature: begin and end are signed as two records (T<n> and T<n+1>), each with one reading."""
ENDS_ON_POWER_LOSS = "ends_on_power_loss"
"""A model feature (driver/protocol.py): a power loss ends the running transaction at that instant."""


def check(obs: Observation, truth: dict[str, Any], features: frozenset[str] = frozenset(),
          faults: str = "") -> list[str]:
    """Every broken promise, one line each; empty when the schedule kept them all.

    Lines start with the kind: lost, duplicated, crash, invalid, energy, pagination, open, fault, failed;
    `faults` (the schedule's faults) ends each line, so it names the fault as well as what broke.
    `features` are the model's: with ends_on_power_loss a power loss during a start may end that
    transaction at once (the start then answers not OK, rightly) and its end reading precedes the stop.
    """
    problems = _check(obs, truth, features)
    return [f"{p} [faults: {faults}]" if faults else p for p in problems]


def _check(obs: Observation, truth: dict[str, Any], features: frozenset[str]) -> list[str]:
    from driver import ocmf

    ended_by_loss = ENDS_ON_POWER_LOSS in features
    apart = SEPARATE_BEGIN_END in features
    problems: list[str] = [f"crash: {c}" for c in obs.crashes]
    problems += [f"failed: {f}" for f in obs.failures]
    ours = {t.transaction_id: t for t in obs.traces}
    signed_by_meter = [c for c in truth.get("closed_transactions", []) if c["transaction_id"] in ours]
    closed = {c["transaction_id"]: c for c in signed_by_meter}
    if len(closed) != len(signed_by_meter):
        problems.append(
            f"duplicated: the meter closed {len(signed_by_meter)} transactions for {len(closed)} session ids"
        )
    if truth.get("open_transaction_id") or truth.get("transaction_state", 0) != 0:
        problems.append(
            f"open: transaction {truth.get('open_transaction_id')!r} still open in the meter "
            f"(state {truth.get('transaction_state')})"
        )
    if truth.get("signing"):
        problems.append("open: the meter is still signing at the end of the schedule")

    by_record = {c["ocmf"]: c["transaction_id"] for c in signed_by_meter}
    delivered: dict[str, set[str]] = {tx_id: set() for tx_id in ours}
    for call, asked_id, response in obs.received:
        status = str(getattr(getattr(response, "status", None), "value", getattr(response, "status", None)))
        text = record_of(response)
        if text is None:
            if status == "OK" and call == "stop":
                problems.append(f"failed: {call} of {asked_id} answered OK without a signed value")
            elif status != "OK" and call == "stop":
                problems.append(
                    f"failed: {call} of {asked_id} answered {status}: {getattr(response, 'error', '')}"
                )
            continue
        tx_id = by_record.get(text)
        if tx_id is None and text in obs.delivered_before:
            obs.repeated += 1  # e.g. stop("") answering an unconfirmed record delivered before
            continue
        if tx_id is None:
            problems.append(
                f"invalid: {call} of {asked_id!r} returned a record the meter never signed "
                f"for this schedule: {text[:80]}..."
            )
            continue
        if status != "OK":
            problems.append(
                f"failed: {call} of {asked_id!r} returned the record of {tx_id} with status {status}"
            )
        if asked_id and asked_id != tx_id:
            problems.append(f"duplicated: {call} of {asked_id!r} returned the record of {tx_id}")
        delivered[tx_id].add(text)

    by_begin = {c.get("begin_ocmf"): c["transaction_id"] for c in signed_by_meter if c.get("begin_ocmf")}
    begins: dict[str, set[str]] = {}
    for call, asked_id, text in obs.begins if apart else []:
        tx_id = by_begin.get(text)
        if tx_id is None:
            problems.append(f"invalid: {call} of {asked_id!r} carried a begin record the meter never signed "
                            f"for this schedule: {text[:80]}...")
        elif asked_id and asked_id != tx_id:
            problems.append(f"duplicated: {call} of {asked_id!r} carried the begin record of {tx_id}")
        else:
            begins.setdefault(tx_id, set()).add(text)

    for tx_id, trace in ours.items():
        meter_tx = closed.get(tx_id)
        texts = delivered[tx_id]
        if trace.start_failed is not None and not (
            ended_by_loss and trace.power_lost and meter_tx is not None and texts
        ):
            # only a meter that ends a transaction on a power loss may answer a start with one that no
            # longer runs; even then its record must have been delivered
            problems.append(f"failed: start of {tx_id} answered {trace.start_failed}")
        if meter_tx is None:
            if texts:
                problems.append(f"invalid: {tx_id} has a record but the meter has no such closed transaction")
            continue  # never reached the meter (start lost with the whole system): nothing to lose
        if not texts:
            problems.append(
                f"lost: transaction {tx_id} (pagination {meter_tx['pagination']}) was signed by "
                "the meter but EvseManager never received its record"
            )
            continue
        if len(texts) > 1:
            problems.append(f"duplicated: transaction {tx_id} delivered {len(texts)} different records")
        if apart:
            problems += _check_apart(tx_id, next(iter(texts)), begins.get(tx_id, set()), meter_tx, trace,
                                     obs.public_key, ocmf, registers_per_kwh(truth))
            continue
        problems += _check_record(tx_id, next(iter(texts)), meter_tx, trace, obs.public_key, ocmf,
                                  registers_per_kwh(truth), ended_by_loss and trace.power_lost)

    paginations = sorted(c["pagination"] for c in signed_by_meter)
    if apart:  # each transaction counts twice: its begin record, then its end record
        paginations = sorted(paginations + [c["begin_pagination"] for c in signed_by_meter])
    expected = list(range(obs.pagination_before + 1, int(truth.get("pagination", 0)) + 1))
    if paginations != expected:
        problems.append(
            f"pagination: this schedule's transactions have numbers {paginations}, "
            f"the meter counted {expected} (gap or repeat)"
        )

    raised = sum(1 for kind, up in obs.errors if kind == "CommunicationFault" and up)
    cleared = sum(1 for kind, up in obs.errors if kind == "CommunicationFault" and not up)
    if raised != cleared:
        problems.append(
            f"fault: CommunicationFault raised {raised} times, cleared {cleared} times "
            "after the meter came back"
        )
    return problems


def _check_apart(
    tx_id: str, end_text: str, begin_texts: set[str], meter_tx: dict[str, Any], trace: TxTrace,
    public_key: str, ocmf: Any, per_kwh: Decimal,
) -> list[str]:
    """A transaction signed as two records: the begin record delivered (with the start or the stop), each
    verifying, with one reading each, their energy the ground truth's and inside the bracket around the
    command that took it, their pagination the meter's."""
    if not begin_texts:
        return [f"lost: the begin record of {tx_id} (pagination {meter_tx['begin_pagination']}) was signed "
                "by the meter but EvseManager never received it"]
    problems = []
    if len(begin_texts) > 1:
        problems.append(f"duplicated: transaction {tx_id} delivered {len(begin_texts)} begin records")
    for name, text, pagination, register, low, high in (
        ("begin", next(iter(begin_texts)), meter_tx["begin_pagination"], meter_tx["begin_register"],
         trace.begin_low, trace.begin_high),
        ("end", end_text, meter_tx["pagination"], meter_tx["end_register"], trace.end_low, trace.end_high),
    ):
        result = ocmf.verify(text, public_key)
        if not result.valid:
            failures = "; ".join(result.failures)
            problems.append(f"invalid: {name} record of {tx_id} does not verify: {failures}")
        readings = [r for r in result.record.readings if r.value is not None]
        if len(readings) != 1:
            problems.append(f"invalid: {name} record of {tx_id} has {len(readings)} readings, needs one")
            continue
        value = int(readings[0].value * per_kwh)
        if value != register:
            problems.append(f"energy: {name} record of {tx_id} says {value}, the ground truth {register}")
        if low is None or high is None or not low <= value <= high:
            problems.append(f"energy: {name} reading of {tx_id} is {value}, outside the ground truth "
                            f"{low}..{high} around the command that took it")
        if result.record.pagination != f"T{pagination}":
            problems.append(f"pagination: {name} record of {tx_id} has PG {result.record.pagination}, "
                            f"the meter T{pagination}")
    return problems


def _check_record(
    tx_id: str, text: str, meter_tx: dict[str, Any], trace: TxTrace, public_key: str, ocmf: Any,
    per_kwh: Decimal, ended_at_loss: bool = False,
) -> list[str]:
    problems: list[str] = []
    result = ocmf.verify(text, public_key)
    if not result.valid:
        problems.append(f"invalid: record of {tx_id} does not verify: {'; '.join(result.failures)}")
    readings = [r for r in result.record.readings if r.value is not None]
    if len(readings) < 2:
        return [*problems, f"invalid: record of {tx_id} has {len(readings)} readings, needs begin and end"]
    begin = int(readings[0].value * per_kwh)
    end = int(readings[-1].value * per_kwh)
    if (begin, end) != (meter_tx["begin_register"], meter_tx["end_register"]):
        problems.append(
            f"energy: record of {tx_id} says {begin}..{end}, the meter's ground truth "
            f"{meter_tx['begin_register']}..{meter_tx['end_register']} (register steps)"
        )
    if result.record.pagination != f"T{meter_tx['pagination']}":
        problems.append(
            f"pagination: record of {tx_id} has PG {result.record.pagination}, "
            f"the meter T{meter_tx['pagination']}"
        )
    # a transaction a power loss ended was ended at that instant, at any time since it began
    end_low = trace.begin_low if ended_at_loss else trace.end_low
    for name, value, low, high in (
        ("begin", begin, trace.begin_low, trace.begin_high),
        ("end", end, end_low, trace.end_high),
    ):
        if low is None or high is None or not low <= value <= high:
            problems.append(
                f"energy: {name} reading of {tx_id} is {value}, outside the ground truth "
                f"{low}..{high} around the command that took it"
            )
    return problems
