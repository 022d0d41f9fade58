"""Findings of fuzz/sim_rtu.py, each replayed through the target's own check (test_one raises a
Finding when meter-sim's answer breaks a promise of the target's docstring)."""

import contextlib
import io

import pytest

from fuzz import sim_rtu


def replay(model: str, *frames: bytes) -> list[list[bytes]]:
    """Each frame alone on the line (a silence before and after), for one model, checked by the
    target's check() as test_one checks a fuzzed input; the answers to each."""
    if sim_rtu.HARNESS is None:
        sim_rtu.HARNESS = sim_rtu.Harness()
    bench = sim_rtu.HARNESS.bench(sim_rtu.MODELS.index(model))
    bench.reset()
    chunks = [(f, True) for f in frames]
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        answers = bench.loop.run_until_complete(bench.feed(chunks))
    sim_rtu.check(bench, chunks, answers, errors.getvalue())
    return answers


def frame(body: bytes) -> bytes:
    return body + sim_rtu.crc(body)


@pytest.fixture(scope="module", autouse=True)
def harness():
    yield
    if sim_rtu.HARNESS is not None:
        sim_rtu.HARNESS.close()
        sim_rtu.HARNESS = None


@pytest.mark.parametrize("model", sim_rtu.MODELS)
@pytest.mark.parametrize("fc,count", [(3, 126), (4, 126), (4, 0), (3, 0xFFFF)])
def test_a_read_of_more_than_125_registers_is_illegal_data_value(model, fc, count):
    """Found on the EM580 profile: FC04 of 126 registers was answered 01 80 01 (pymodbus cannot decode
    the request and answers function code 0). Modbus says exception 03 with the request's own code."""
    request = frame(bytes([1, fc, 0x69, 0x00]) + count.to_bytes(2, "big"))
    (answers,) = replay(model, request)
    if fc not in sim_rtu.load_model(model).function_codes:
        assert answers == [frame(bytes([1, fc | 0x80, 1]))]
    else:
        assert answers == [frame(bytes([1, fc | 0x80, 3]))]


@pytest.mark.parametrize("model", ["reference", "carlo-gavazzi-em580"])
@pytest.mark.parametrize("count,data", [(124, bytes(248)), (0, b""), (2, bytes(2))])
def test_a_write_of_a_wrong_count_is_illegal_data_value(model, count, data):
    """FC16 with more than 123 registers, none, or a byte count that is not twice the count: pymodbus
    answered these 03 already (its request decodes, its datastore check refuses it); kept so that the
    decoder meter-sim puts in front of pymodbus's for the read finding keeps them so."""
    request = frame(bytes([1, 16, 0, 0]) + count.to_bytes(2, "big") + bytes([len(data)]) + data)
    (answers,) = replay(model, request)
    assert answers == [frame(bytes([1, 0x90, 3]))]


@pytest.mark.parametrize("model", sim_rtu.MODELS)
@pytest.mark.parametrize("request_body", [
    bytes([1, 0x83, 0x02]),                   # looks like an exception answer: was answered 04
    bytes([1, 0x89, 0x01, 0x04, 0x06]),       # longer than an exception frame: was not answered at all
    bytes([1, 0xFF, 0, 0, 0, 1]),
    bytes([1, 0x80, 0, 0]),
])
def test_b_function_codes_with_bit_7_set_are_illegal_functions(model, request_body):
    """Function codes 0x80-0xFF in a request were decoded by pymodbus as exception answers: answered
    with exception 04 (device failure) when 5 bytes long, else silence. A meter answers 01."""
    (answers,) = replay(model, frame(request_body))
    assert answers == [frame(bytes([1, request_body[1] | 0x80, 1]))]


def test_an_answer_silenced_for_another_unit_is_no_frame():
    """Not a meter-sim finding: the harness counted the empty write of a silenced answer as an answer."""
    (answers,) = replay("reference", frame(bytes([7, 3, 0, 0, 0, 1])))
    assert answers == []
