"""Verify every record of an input, pair separately signed begin and end records, and give the verdicts.

Each record gets the two verdicts of `driver.ocmf.Verification`: authentic (the signature holds over the
payload bytes as received) and billable (authentic and every value check passed). Records of one meter
(MS, else GS) that sign a transaction's begin (TX B, no end reading) and its end (an end reading, no TX
B) separately are paired by pagination: a begin record with the next end record of the same meter, unless
another begin record comes first. The pair gets `verify_pair` and the pagination check across it: every
T number from the begin record's to the end record's must be in the input (records between them, e.g. TX
C readings, count), else a record was removed or not delivered and the pair is not billable.
The exit status (`BatchResult.exit_code`): 2 malformed, else 1 not authentic, else 3 not billable, else 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from driver.errors import OcmfFormatError
from driver.ocmf import (
    BEGIN_TX,
    END_TX,
    OcmfRecord,
    Verification,
    pagination_number,
    parse,
    verify,
    verify_pair,
)
from driver.ocmf_files import InputFile, SignedValue

EXIT_OK = 0  # every record and transaction authentic and billable
EXIT_NOT_AUTHENTIC = 1  # at least one signature does not hold
EXIT_MALFORMED = 2  # the input, a record in it or a key cannot be read (or a usage error)
EXIT_NOT_BILLABLE = 3  # every signature holds, but at least one record or transaction is not billable

KEY_FROM_COMMAND_LINE, KEY_FROM_INPUT = "command line", "input"
_Keys = dict[int, str | bytes]  # record number -> the key that verified it


@dataclass(frozen=True)
class RecordOutcome:
    """One signed value of the input: its verification, or why it could not be verified."""

    number: int  # 1-based position among the input's values
    value: SignedValue
    result: Verification | None  # None when `problem` is set
    problem: str | None = None  # malformed record or key, no key, not OCMF: why there is no result
    key_from: str | None = None  # KEY_FROM_COMMAND_LINE or KEY_FROM_INPUT
    notes: tuple[str, ...] = ()  # the result's notes and what pairing found (e.g. no end record)

    @property
    def authentic(self) -> bool | None:
        return None if self.result is None else self.result.authentic

    @property
    def billable(self) -> bool | None:
        return None if self.result is None else self.result.billable


@dataclass(frozen=True)
class TransactionOutcome:
    """A transaction signed as a begin and an end record, found in the input and verified as a pair."""

    begin: int  # record numbers (RecordOutcome.number)
    end: int
    between: tuple[int, ...]  # records of the same meter with PG between them (e.g. TX C)
    result: Verification

    @property
    def authentic(self) -> bool:
        return self.result.authentic

    @property
    def billable(self) -> bool:
        return self.result.billable


@dataclass(frozen=True)
class BatchResult:
    input: InputFile
    records: tuple[RecordOutcome, ...]
    transactions: tuple[TransactionOutcome, ...]

    @property
    def malformed(self) -> bool:
        return any(r.problem is not None for r in self.records)

    @property
    def authentic(self) -> bool:
        return not self.malformed and all(
            r.authentic for r in (*self.records, *self.transactions) if r.authentic is not None
        )

    @property
    def billable(self) -> bool:
        return self.authentic and all(r.billable for r in (*self.records, *self.transactions))

    @property
    def exit_code(self) -> int:
        if self.malformed:
            return EXIT_MALFORMED
        if not self.authentic:
            return EXIT_NOT_AUTHENTIC
        return EXIT_OK if self.billable else EXIT_NOT_BILLABLE


def _is_begin_record(record: OcmfRecord) -> bool:
    return any(r.tx == BEGIN_TX for r in record.readings) and not any(r.tx in END_TX for r in record.readings)


def _is_end_record(record: OcmfRecord) -> bool:
    return any(r.tx in END_TX for r in record.readings) and not any(r.tx == BEGIN_TX for r in record.readings)


def _verify_value(
    number: int, value: SignedValue, public_key: str | bytes | None, transaction: bool | None
) -> tuple[RecordOutcome, str | bytes | None]:
    if value.problem is not None or value.record is None:
        return RecordOutcome(number, value, None, value.problem or "holds no OCMF record"), None
    key, key_from = (
        (public_key, KEY_FROM_COMMAND_LINE) if public_key is not None else (value.public_key, KEY_FROM_INPUT)
    )
    try:
        record = parse(value.record)
        if key is None:
            return RecordOutcome(
                number, value, None, "no public key: the input gives none for this record (use --public-key)"
            ), None
        result = verify(record, key, transaction=transaction)
    except OcmfFormatError as exc:
        return RecordOutcome(number, value, None, str(exc), key_from), None
    return RecordOutcome(number, value, result, None, key_from, result.notes), key


def pagination_gap_failures(begin: OcmfRecord, end: OcmfRecord, present: set[int]) -> list[str]:
    """The T numbers from the begin record's to the end record's that are not in `present`."""
    first, last = pagination_number(begin), pagination_number(end)
    if first is None or last is None or last <= first:
        return []  # no T numbers, or out of order: pair_failures says so
    missing = [n for n in range(first + 1, last) if n not in present]
    if not missing:
        return []
    shown = ", ".join(f"T{n}" for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
    return [
        f"pagination: {shown} missing between begin record {begin.pagination} and end record "
        f"{end.pagination}: a record was removed or not delivered"
    ]


def _duplicate_failures(outcomes: list[RecordOutcome]) -> dict[int, list[str]]:
    """Two different records of one meter with the same PG: at most one of them can be the meter's."""
    seen: dict[tuple[str | None, str], RecordOutcome] = {}
    found: dict[int, list[str]] = {}
    for outcome in outcomes:
        if outcome.result is None or outcome.result.record.pagination is None:
            continue
        record = outcome.result.record
        key = (record.meter_serial, record.pagination.strip())
        other = seen.setdefault(key, outcome)
        if other is not outcome and other.result is not None and other.result.record.text != record.text:
            message = (
                f"pagination: records {other.number} and {outcome.number} of meter {record.meter_serial} "
                f"both have PG {record.pagination}"
            )
            found.setdefault(other.number, []).append(message)
            found.setdefault(outcome.number, []).append(message)
    return found


def _with_failures(result: Verification, extra: list[str]) -> Verification:
    if not extra:
        return result
    failures = [*result.failures, *extra]
    return dataclasses.replace(result, failures=failures, valid=not failures)


def _pair(
    outcomes: list[RecordOutcome],
    keys: _Keys,
    begin: int,
    end: int,
    between: tuple[int, ...],
) -> TransactionOutcome:
    first, last = outcomes[begin - 1].result, outcomes[end - 1].result
    assert first is not None and last is not None
    result = verify_pair(first.record, last.record, keys[begin], end_public_key=keys[end])
    present = {
        n
        for i in (begin, *between, end)
        if (r := outcomes[i - 1].result) is not None and (n := pagination_number(r.record)) is not None
    }
    gap = pagination_gap_failures(first.record, last.record, present)
    return TransactionOutcome(begin, end, between, _with_failures(result, gap))


def verify_input(
    source: InputFile,
    public_key: str | bytes | None = None,
    *,
    transaction: bool | None = None,
    pair: tuple[int, int] | None = None,
) -> BatchResult:
    """Verify every value of `source`; `public_key` (the command line's) overrides the keys in the input.

    `transaction` is passed to `verify` for each record; False also turns pairing off. `pair` names two
    record numbers (begin, end) to verify as one transaction instead of pairing by pagination.
    """
    outcomes: list[RecordOutcome] = []
    keys: _Keys = {}
    for number, value in enumerate(source.values, start=1):
        outcome, key = _verify_value(number, value, public_key, False if pair else transaction)
        outcomes.append(outcome)
        if key is not None:
            keys[number] = key
    for number, extra in _duplicate_failures(outcomes).items():
        outcome = outcomes[number - 1]
        assert outcome.result is not None
        outcomes[number - 1] = dataclasses.replace(outcome, result=_with_failures(outcome.result, extra))
    transactions: list[TransactionOutcome] = []
    if pair is not None:
        if all(outcomes[n - 1].result is not None for n in pair):
            transactions.append(_pair(outcomes, keys, pair[0], pair[1], ()))
    elif transaction is not False:
        transactions = _pair_by_pagination(outcomes, keys)
    return BatchResult(source, tuple(outcomes), tuple(transactions))


def _pair_by_pagination(outcomes: list[RecordOutcome], keys: _Keys) -> list[TransactionOutcome]:
    by_meter: dict[str | None, list[tuple[int, int]]] = {}  # meter -> [(T number, record number)]
    for outcome in outcomes:
        if outcome.result is None:
            continue
        number = pagination_number(outcome.result.record)
        if number is not None:
            by_meter.setdefault(outcome.result.record.meter_serial, []).append((number, outcome.number))
    transactions: list[TransactionOutcome] = []
    paired: set[int] = set()
    for records in by_meter.values():
        records.sort()
        for position, (_, begin) in enumerate(records):
            begin_result = outcomes[begin - 1].result
            if begin_result is None or not _is_begin_record(begin_result.record):
                continue
            between: list[int] = []
            for _, later in records[position + 1 :]:
                later_result = outcomes[later - 1].result
                assert later_result is not None
                if _is_begin_record(later_result.record):
                    break
                if _is_end_record(later_result.record):
                    transactions.append(_pair(outcomes, keys, begin, later, tuple(between)))
                    paired.update((begin, later))
                    break
                if later_result.record.text != begin_result.record.text:
                    between.append(later)
    for index, outcome in enumerate(outcomes):
        if outcome.result is None or outcome.number in paired:
            continue
        record = outcome.result.record
        note = None
        if _is_begin_record(record):
            note = "pairing: no end record of this transaction in the input (verified as a single reading)"
        elif _is_end_record(record):
            note = "pairing: no begin record of this transaction in the input (verified as a single reading)"
        if note is not None:
            outcomes[index] = dataclasses.replace(outcome, notes=(*outcome.notes, note))
    transactions.sort(key=lambda t: t.begin)
    return transactions


__all__ = [
    "EXIT_MALFORMED",
    "EXIT_NOT_AUTHENTIC",
    "EXIT_NOT_BILLABLE",
    "EXIT_OK",
    "BatchResult",
    "RecordOutcome",
    "TransactionOutcome",
    "pagination_gap_failures",
    "verify_input",
]
