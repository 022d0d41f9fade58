"""The two verdicts: authentic (the signature holds) and billable (the values are usable for billing)."""

from __future__ import annotations

import pytest
from ocmf_factory import BEGIN_TIME, END_TIME, meter_key, payload, reading, record, transaction_readings
from ocmf_inputs import line_file

from driver.ocmf import verify, verify_pair
from driver.ocmf_batch import EXIT_NOT_AUTHENTIC, EXIT_NOT_BILLABLE, EXIT_OK, verify_input
from driver.ocmf_files import read_input

KEY = meter_key("secp256r1", seed=3)
PUBLIC = str(KEY.public_key())


def genuine(**reading_fields) -> str:
    readings = [reading(BEGIN_TIME, "B", 1.234), reading(END_TIME, "E", 12.5, **reading_fields)]
    return record(payload(readings), KEY)


def test_genuine_and_billable():
    result = verify(genuine(), PUBLIC)
    assert result.authentic and result.billable and result.valid
    assert result.failures == [] and result.billing_failures == []


@pytest.mark.parametrize(
    ("fields", "check"),
    [({"ST": "E"}, "status"), ({"EF": "t"}, "error-flag"), ({"TX": "X"}, "exception")],
    ids=["ST-E", "EF-t", "TX-X"],
)
def test_genuine_with_an_error_is_authentic_but_not_billable(fields, check):
    result = verify(genuine(**fields), PUBLIC)
    assert result.authentic and not result.billable and not result.valid
    assert check in result.failed_checks and "signature" not in result.failed_checks
    assert result.billing_failures == result.failures


def test_tampered_payload_is_not_authentic_and_so_not_billable():
    result = verify(genuine().replace('"RV":12.5', '"RV":13.5'), PUBLIC)
    assert not result.authentic and not result.billable
    assert result.failed_checks == {"signature"} and result.billing_failures == []


def test_notes_fail_nothing():
    informative = record(
        payload([reading(BEGIN_TIME[:-1] + "I", "B", 1.0), reading(END_TIME, "A", 2.0)]), KEY
    )
    result = verify(informative, PUBLIC)
    assert result.authentic and result.billable
    assert [n.split(":", 1)[0] for n in result.notes] == ["time", "abort"]
    assert "reading 1 time status I (informative)" in result.notes[0]


def begin_end(begin_pg: str, end_pg: str) -> tuple[str, str]:
    begin = record(payload([reading(BEGIN_TIME, "B", 1.0)], PG=begin_pg), KEY)
    end = record(payload([reading(END_TIME, "E", 2.0)], PG=end_pg), KEY)
    return begin, end


def test_verify_pair_has_both_verdicts():
    result = verify_pair(*begin_end("T10", "T11"), PUBLIC)
    assert result.authentic and result.billable
    begin, end = begin_end("T10", "T11")
    tampered = verify_pair(begin, end.replace('"RV":2.0', '"RV":3.0'), PUBLIC)
    assert not tampered.authentic and not tampered.billable


def test_a_pair_with_consecutive_pagination_is_billable():
    batch = verify_input(read_input(line_file(list(begin_end("T10", "T11"))), "pair.txt"), PUBLIC)
    assert [(t.begin, t.end) for t in batch.transactions] == [(1, 2)]
    assert batch.transactions[0].authentic and batch.transactions[0].billable
    assert batch.exit_code == EXIT_OK


def test_a_pair_with_a_gap_in_pagination_is_authentic_but_not_billable():
    batch = verify_input(read_input(line_file(list(begin_end("T10", "T12"))), "gap.txt"), PUBLIC)
    (pair,) = batch.transactions
    assert pair.authentic and not pair.billable
    assert pair.result.failed_checks == {"pagination"}
    assert "T11 missing between begin record T10 and end record T12" in pair.result.failures[0]
    assert all(r.authentic and r.billable for r in batch.records)  # each record alone is fine
    assert batch.exit_code == EXIT_NOT_BILLABLE


def test_records_between_begin_and_end_close_the_gap():
    begin, end = begin_end("T10", "T12")
    middle = record(payload([reading(BEGIN_TIME, "C", 1.5)], PG="T11"), KEY)
    batch = verify_input(read_input(line_file([end, middle, begin]), "log.txt"), PUBLIC)
    (pair,) = batch.transactions
    assert (pair.begin, pair.end, pair.between) == (3, 1, (2,)) and pair.billable


def test_pairing_keeps_meters_and_transactions_apart():
    first = begin_end("T10", "T11")
    second = begin_end("T12", "T13")
    other_meter = record(payload([reading(END_TIME, "E", 2.0)], PG="T11", MS="OTHER"), KEY)
    lonely_begin = record(payload([reading(BEGIN_TIME, "B", 5.0)], PG="T20"), KEY)
    records = [*first, *second, other_meter, lonely_begin]
    batch = verify_input(read_input(line_file(records), "log.txt"), PUBLIC)
    assert [(t.begin, t.end) for t in batch.transactions] == [(1, 2), (3, 4)]
    assert any("no begin record" in n for n in batch.records[4].notes)
    assert any("no end record" in n for n in batch.records[5].notes)
    assert batch.exit_code == EXIT_OK


def test_two_different_records_with_one_pagination_are_not_billable():
    one = record(payload(transaction_readings(), PG="T5"), KEY)
    two = record(payload(transaction_readings(end=13.0), PG="T5"), KEY)
    batch = verify_input(read_input(line_file([one, two]), "dup.txt"), PUBLIC)
    assert all(r.authentic and not r.billable for r in batch.records)
    assert all(r.result is not None and r.result.failed_checks == {"pagination"} for r in batch.records)


def test_a_tampered_record_in_a_batch_makes_it_not_authentic():
    begin, end = begin_end("T10", "T11")
    batch = verify_input(read_input(line_file([begin, end.replace("2.0", "2.5")]), "log.txt"), PUBLIC)
    assert batch.exit_code == EXIT_NOT_AUTHENTIC
    assert not batch.transactions[0].authentic and batch.records[0].authentic


def test_no_transaction_pairs_nothing():
    batch = verify_input(read_input(line_file(list(begin_end("T10", "T12"))), "x"), PUBLIC, transaction=False)
    assert batch.transactions == () and batch.exit_code == EXIT_OK
