"""Transactions a meter signs as two records (EVerest's start_signed_meter_value and signed_meter_value)."""

from __future__ import annotations

from ocmf_factory import BEGIN_TIME, END_TIME, meter_key, payload, reading, record

from driver.ocmf import verify_pair
from driver.ocmf_cli import main

KEY = meter_key("secp384r1")
PUBLIC = str(KEY.public_key())


def pair(begin_value=1.0, end_value=2.0, *, begin_fields=None, end_fields=None, begin_tx="B", end_tx="E"):
    begin = record(
        payload([reading(BEGIN_TIME, begin_tx, begin_value)], **{"PG": "T10", **(begin_fields or {})}), KEY
    )
    end = record(payload([reading(END_TIME, end_tx, end_value)], **{"PG": "T11", **(end_fields or {})}), KEY)
    return begin, end


def test_a_good_pair():
    result = verify_pair(*pair(), PUBLIC)
    assert result.valid and result.signature_valid and result.transaction_checked
    assert result.begin_record is not None and result.begin_record.pagination == "T10"


def test_end_value_below_the_begin_value_across_records():
    assert verify_pair(*pair(5.0, 4.0), PUBLIC).failed_checks == {"end-value"}


def test_swapped_records():
    begin, end = pair()
    assert {"begin-reading", "end-reading", "pagination"} <= verify_pair(end, begin, PUBLIC).failed_checks


def test_records_of_different_meters():
    begin, end = pair(end_fields={"MS": "SIM0000002"})
    assert verify_pair(begin, end, PUBLIC).failed_checks == {"same-meter"}


def test_a_tampered_begin_record_is_named():
    begin, end = pair()
    result = verify_pair(begin.replace('"RV":1.0', '"RV":0.5'), end, PUBLIC)
    assert not result.signature_valid
    assert result.failures == [result.failures[0]] and result.failures[0].startswith(
        "signature: begin record:"
    )


def test_reading_checks_apply_to_both_records():
    begin, end = pair(end_fields={"IL": "INVALID"})
    assert verify_pair(begin, end, PUBLIC).failed_checks == {"identification"}


def test_cli_verifies_a_pair(tmp_path):
    begin, end = pair()
    (tmp_path / "begin.txt").write_text(begin)
    assert main(["verify", "--public-key", PUBLIC, "--begin", f"@{tmp_path / 'begin.txt'}", end]) == 0
    assert main(["verify", "--public-key", PUBLIC, "--begin", end, begin]) == 3  # authentic, not billable
