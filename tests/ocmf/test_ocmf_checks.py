"""Reading and transaction checks: each failing check is named, on records with a good signature."""

from __future__ import annotations

import pytest
from ocmf_factory import BEGIN_TIME, END_TIME, meter_key, payload, reading, record, transaction_readings

from driver.ocmf import verify

KEY = meter_key("secp256r1")


def check(readings=None, *, transaction=None, **fields):
    result = verify(record(payload(readings, **fields), KEY), KEY.public_key(), transaction=transaction)
    assert result.signature_valid, result.failures  # every record here is genuinely signed
    return result


def test_a_good_transaction_passes_every_check():
    result = check()
    assert result.valid and result.transaction_checked and result.failures == []


def test_end_value_below_begin_value():
    result = check(transaction_readings(begin=12.5, end=12.4))
    assert result.failed_checks == {"end-value"}
    assert "12.4" in result.failures[0] and "12.5" in result.failures[0]


def test_equal_begin_and_end_values_pass():
    assert check(transaction_readings(begin=7.0, end=7.0)).valid


def test_end_before_begin():
    readings = [reading(END_TIME, "B", 1.0), reading(BEGIN_TIME, "E", 2.0)]
    assert check(readings).failed_checks == {"begin-before-end"}


def test_times_compare_across_time_zones():
    readings = [reading("2026-11-23T03:00:00,000+0200 S", "B", 1.0), reading(END_TIME, "E", 2.0)]
    assert check(readings).valid  # 01:00 UTC begins before 02:00 UTC


@pytest.mark.parametrize("status", ["N", "T", "D", "R", "M", "X", "I", "O", "S", "E", "F"])
def test_meter_status_other_than_good(status):
    readings = [reading(BEGIN_TIME, "B", 1.0), reading(END_TIME, "E", 2.0, ST=status)]
    result = check(readings)
    assert result.failed_checks == {"status"} and "reading 2" in result.failures[0]


def test_missing_meter_status():
    assert check([reading(BEGIN_TIME, "B", 1.0, ST=None)]).failed_checks == {"status"}


@pytest.mark.parametrize("flags", ["E", "t", "Et"])
def test_error_flags(flags):
    readings = [reading(BEGIN_TIME, "B", 1.0, EF=flags), reading(END_TIME, "E", 2.0)]
    assert check(readings).failed_checks == {"error-flag"}


@pytest.mark.parametrize("level", ["MISMATCH", "INVALID", "OUTDATED", "UNKNOWN"])
def test_identification_level_error_states(level):
    result = check(IL=level)
    assert result.failed_checks == {"identification"} and level in result.failures[0]


@pytest.mark.parametrize("level", ["NONE", "HEARSAY", "TRUSTED", "VERIFIED", "CERTIFIED", "SECURE", None])
def test_identification_levels_that_are_not_errors(level):
    assert check(IL=level).valid


def test_exception_reading():
    readings = [reading(BEGIN_TIME, "B", 1.0), reading(END_TIME, "X", 1.5), reading(END_TIME, "E", 2.0)]
    assert check(readings).failed_checks == {"exception"}


def test_relative_begin_time_needs_a_relative_end_time():
    readings = [reading(BEGIN_TIME[:-1] + "R", "B", 1.0), reading(END_TIME, "E", 2.0)]
    assert check(readings).failed_checks == {"time-status"}


def test_forced_transaction_check_without_an_end_reading():
    result = check([reading(BEGIN_TIME, "B", 1.0)], transaction=True)
    assert result.failed_checks == {"end-reading"}


def test_forced_transaction_check_without_a_begin_reading():
    result = check([reading(END_TIME, "E", 2.0)], transaction=True)
    assert result.failed_checks == {"begin-reading"}


def test_two_begin_readings_of_one_quantity():
    readings = [reading(BEGIN_TIME, "B", 1.0), reading(BEGIN_TIME, "B", 1.1), reading(END_TIME, "E", 2.0)]
    assert check(readings).failed_checks == {"begin-reading"}


def test_begin_and_end_of_different_quantities_do_not_pair():
    readings = [reading(BEGIN_TIME, "B", 1.0), reading(END_TIME, "E", 2.0, RI="1-0:2.8.0")]
    assert check(readings).failed_checks == {"end-reading"}


def test_single_begin_record_gets_signature_and_reading_checks_only():
    result = check([reading(BEGIN_TIME, "B", 1.0)])
    assert result.valid and not result.transaction_checked


def test_single_end_record_is_valid_on_its_own():
    result = check([reading(END_TIME, "E", 2.0)])
    assert result.valid and not result.transaction_checked


def test_single_reading_record_still_gets_reading_checks():
    assert check([reading(BEGIN_TIME, "B", 1.0, ST="E")]).failed_checks == {"status"}


def test_fiscal_reading_without_transaction_reference():
    result = check([reading(BEGIN_TIME, None, 3.0)], PG="F7")
    assert result.valid and not result.transaction_checked


def test_transaction_checks_can_be_switched_off():
    result = check(transaction_readings(begin=5.0, end=4.0), transaction=False)
    assert result.valid and not result.transaction_checked


def test_units_are_normalised_before_comparing():
    up = [reading(BEGIN_TIME, "B", 1500, RU="Wh"), reading(END_TIME, "E", 1.6, RU="kWh")]
    assert check(up).valid
    down = [reading(BEGIN_TIME, "B", 1.6, RU="kWh"), reading(END_TIME, "E", 1500, RU="Wh")]
    assert check(down).failed_checks == {"end-value"}


def test_values_compare_exactly_as_written():
    padded = [reading(BEGIN_TIME, "B", "  0.1"), reading(END_TIME, "E", "0.10000000000000001")]
    assert check(padded).valid  # a numeric string, space-padded as some meters write it
    lower = [reading(BEGIN_TIME, "B", "0.10000000000000001"), reading(END_TIME, "E", "0.1")]
    assert float("0.10000000000000001") == float("0.1")  # floats would call these equal
    assert check(lower).failed_checks == {"end-value"}


def test_omitted_fields_inherit_from_the_previous_reading():
    readings = [
        reading(BEGIN_TIME, "B", 10.0),
        {"RV": 2.0, "RI": "1-0:2.8.0"},  # export at begin: TM, TX, RU, ST inherited
        reading(END_TIME, "E", 11.0),
        {"RV": 1.5, "RI": "1-0:2.8.0"},  # export at end is lower
    ]
    result = check(readings)
    assert result.failed_checks == {"end-value"} and "1-0:2.8.0" in result.failures[0]
    second = result.record.readings[1]
    assert (second.tx, second.ru, second.st, second.time_text) == ("B", "kWh", "G", BEGIN_TIME)


def test_every_failure_is_reported_not_only_the_first():
    readings = [reading(END_TIME, "B", 5.0, EF="E"), reading(BEGIN_TIME, "E", 4.0, ST="F")]
    result = check(readings, IL="MISMATCH")
    assert result.failed_checks == {"error-flag", "status", "identification", "end-value", "begin-before-end"}
