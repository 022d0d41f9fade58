"""The campaign's invariants, each shown to fail on its own, on records signed with a real ECDSA key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from campaign.invariants import Observation, TxTrace, check
from driver.types import SignedMeterValue, TransactionRequestStatus, TransactionStopResponse
from simulator.ocmf import (
    Identification,
    Reading,
    RecordData,
    build_payload,
    derive_private_key,
    public_key_der,
    sign_record,
)

KEY = derive_private_key("secp256r1", "campaign-invariants-test")
OTHER_KEY = derive_private_key("secp256r1", "someone-else")
PUBLIC = public_key_der(KEY).hex().upper()
TM_BEGIN = "2026-01-01T10:00:00,000+0000 S"
TM_END = "2026-01-01T10:05:00,000+0000 S"


def signed(pagination: int, begin: int, end: int, key=KEY) -> str:
    data = RecordData(pagination, "meter-hil", "EICH-REF-3", "MHIL00000001", "1.0.0",
                      Identification(status=1, data="TAG"),
                      Reading(begin, begin / 10, TM_BEGIN), Reading(end, end / 10, TM_END))
    return sign_record(build_payload(data), key, "secp256r1")


@dataclass
class Case:
    """A schedule of two transactions that kept every promise; tests break one thing each."""

    obs: Observation
    truth: dict

    @classmethod
    def good(cls) -> Case:
        obs = Observation(pagination_before=4, public_key=PUBLIC)
        truth = {"pagination": 6, "open_transaction_id": "", "transaction_state": 0, "signing": False,
                 "energy_resolution_wh": 0.1,
                 "closed_transactions": []}
        for number, (begin, end) in enumerate([(100, 130), (130, 170)]):
            tx_id = f"tx-{number}"
            text = signed(5 + number, begin, end)
            trace = TxTrace(tx_id, begin_low=begin - 2, begin_high=begin + 1, end_low=end, end_high=end)
            obs.traces.append(trace)
            obs.received.append(("stop", tx_id, response(text)))
            truth["closed_transactions"].append({"transaction_id": tx_id, "pagination": 5 + number,
                                                 "begin_register": begin, "end_register": end, "ocmf": text})
        obs.errors = [("CommunicationFault", True), ("CommunicationFault", False)]
        return cls(obs, truth)


def response(text: str | None, status: str = "OK") -> TransactionStopResponse:
    signed_value = None if text is None else SignedMeterValue(text, "", "OCMF", PUBLIC)
    return TransactionStopResponse(TransactionRequestStatus(status), signed_meter_value=signed_value)


def kinds(problems: list[str]) -> set[str]:
    return {p.split(":", 1)[0] for p in problems}


def test_a_schedule_that_kept_every_promise_passes():
    case = Case.good()
    assert check(case.obs, case.truth) == []


def test_a_record_never_received_is_lost():
    case = Case.good()
    del case.obs.received[1]
    problems = check(case.obs, case.truth)
    assert kinds(problems) == {"lost"}
    assert "tx-1" in problems[0]


def test_two_different_records_for_one_transaction_are_a_duplicate():
    case = Case.good()
    other = signed(5, 100, 130).replace("TAG", "TAG")  # same content, a fresh signature: a different text
    case.truth["closed_transactions"].append(dict(case.truth["closed_transactions"][0], ocmf=other,
                                                  transaction_id="tx-0"))
    case.obs.received.append(("boot stop(last id)", "tx-0", response(other)))
    assert "duplicated" in kinds(check(case.obs, case.truth))


def test_the_record_of_another_transaction_is_a_duplicate():
    case = Case.good()
    case.obs.received[1] = ("stop", "tx-1", case.obs.received[0][2])
    assert {"duplicated", "lost"} <= kinds(check(case.obs, case.truth))


def test_a_record_signed_by_another_key_is_invalid():
    case = Case.good()
    forged = signed(6, 130, 170, key=OTHER_KEY)
    case.truth["closed_transactions"][1]["ocmf"] = forged
    case.obs.received[1] = ("stop", "tx-1", response(forged))
    problems = check(case.obs, case.truth)
    assert kinds(problems) == {"invalid"}
    assert "does not verify" in problems[0]


def test_energy_that_differs_from_the_ground_truth_is_caught():
    case = Case.good()
    case.truth["closed_transactions"][0]["end_register"] = 131
    assert kinds(check(case.obs, case.truth)) == {"energy"}


def test_a_reading_outside_the_bracket_around_its_command_is_caught():
    case = Case.good()
    case.obs.traces[1].end_high = 169
    problems = check(case.obs, case.truth)
    assert kinds(problems) == {"energy"}
    assert "end reading of tx-1 is 170" in problems[0]


@pytest.mark.parametrize(("before", "after"), [(3, 6), (4, 7)])
def test_a_pagination_gap_is_caught(before, after):
    case = Case.good()
    case.obs.pagination_before, case.truth["pagination"] = before, after
    assert kinds(check(case.obs, case.truth)) == {"pagination"}


def test_a_transaction_left_open_is_caught():
    case = Case.good()
    case.truth.update(open_transaction_id="tx-2", transaction_state=1)
    assert kinds(check(case.obs, case.truth)) == {"open"}


def test_a_communication_fault_never_cleared_is_caught():
    case = Case.good()
    case.obs.errors.append(("CommunicationFault", True))
    assert kinds(check(case.obs, case.truth)) == {"fault"}


def test_a_failed_stop_and_a_crash_are_reported():
    case = Case.good()
    case.obs.received.append(("stop", "tx-1", response(None, "UNEXPECTED_ERROR")))
    case.obs.crashes.append("thread powermeter-publisher died: RuntimeError: boom")
    assert kinds(check(case.obs, case.truth)) == {"failed", "crash"}


# ---- a meter that signs begin and end apart (reference-sr): two records a transaction ------------------
APART = frozenset({"transactions", "separate_begin_end"})


def signed_apart(pagination: int, value: int, which: str) -> str:
    reading = Reading(value, value / 10, TM_BEGIN if which == "begin" else TM_END)
    data = RecordData(pagination, "meter-hil", "EICH-REF-3", "MHIL00000001", "1.0.0",
                      Identification(status=1, data="TAG"),
                      reading if which == "begin" else None, reading if which == "end" else None)
    return sign_record(build_payload(data), KEY, "secp256r1")


def apart_case() -> Case:
    """Two transactions, T5/T6 and T7/T8; the first begin came with its start, the second with its stop."""
    obs = Observation(pagination_before=4, public_key=PUBLIC)
    truth = {"pagination": 8, "open_transaction_id": "", "transaction_state": 0, "signing": False,
             "energy_resolution_wh": 0.1, "closed_transactions": []}
    for number, (begin, end) in enumerate([(100, 130), (130, 170)]):
        tx_id = f"tx-{number}"
        first = 5 + 2 * number
        begin_text, end_text = signed_apart(first, begin, "begin"), signed_apart(first + 1, end, "end")
        obs.traces.append(TxTrace(tx_id, begin_low=begin, begin_high=begin, end_low=end, end_high=end))
        obs.begins.append(("start" if number == 0 else "stop(Local)", tx_id, begin_text))
        obs.received.append(("stop", tx_id, response(end_text)))
        truth["closed_transactions"].append({
            "transaction_id": tx_id, "begin_pagination": first, "pagination": first + 1,
            "begin_register": begin, "end_register": end, "ocmf": end_text, "begin_ocmf": begin_text})
    return Case(obs, truth)


def test_records_signed_apart_that_kept_every_promise_pass():
    case = apart_case()
    assert check(case.obs, case.truth, APART) == []


def test_a_begin_record_never_received_is_lost():
    case = apart_case()
    del case.obs.begins[1]
    problems = check(case.obs, case.truth, APART)
    assert kinds(problems) == {"lost"} and "begin record of tx-1" in problems[0]


def test_a_begin_record_of_another_transaction_is_a_duplicate():
    case = apart_case()
    _, _, text = case.obs.begins[0]
    case.obs.begins.append(("start", "tx-1", text))
    assert "duplicated" in kinds(check(case.obs, case.truth, APART))


def test_a_begin_record_with_the_wrong_energy_or_pagination_is_caught():
    case = apart_case()
    tx = case.truth["closed_transactions"][0]
    tx["begin_register"] += 1
    tx["begin_pagination"] += 10
    assert kinds(check(case.obs, case.truth, APART)) == {"energy", "pagination"}


def test_records_signed_apart_count_two_numbers_a_transaction():
    case = apart_case()
    case.truth["pagination"] = 7  # the meter counted one number fewer than the records carry
    assert kinds(check(case.obs, case.truth, APART)) == {"pagination"}


def test_a_record_of_an_earlier_schedule_answered_again_is_a_repeat_not_an_invalid_record():
    earlier = signed(3, 80, 90)
    case = Case.good()
    case.obs.received.append(('stop("")', "", response(earlier)))
    assert kinds(check(case.obs, case.truth)) == {"invalid"}  # never seen: no record of this meter's
    case = Case.good()
    case.obs.delivered_before = {earlier}
    case.obs.received.append(('stop("")', "", response(earlier)))
    assert check(case.obs, case.truth) == [] and case.obs.repeated == 1
