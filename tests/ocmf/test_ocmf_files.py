"""Reading the files users receive: every shared vector from every format, and files that cannot be read."""

from __future__ import annotations

import base64
import json

import pytest
from ocmf_corpus import load_shared_vectors
from ocmf_factory import BEGIN_TIME, END_TIME, meter_key, payload, reading, record
from ocmf_inputs import FORMATS, line_file, ocpp16_meter_values, ocpp201_transaction_event, wrap, xml_values

from driver.errors import OcmfFormatError
from driver.ocmf_batch import EXIT_MALFORMED, verify_input
from driver.ocmf_files import read_input

KEY = meter_key("secp256r1", seed=5)
PUBLIC = str(KEY.public_key())
GOOD = record(payload(), KEY)


def expected_verdicts(vector: dict) -> tuple[bool, bool]:
    """(authentic, billable) as the vector's source says: a tampered (NEGATIVE) record is not authentic;
    `expected_authentic`, where a vector has it, says so for a genuine record that is not billable."""
    authentic = vector.get("expected_authentic", vector["expected_valid"])
    return bool(authentic), bool(vector["expected_valid"])


@pytest.mark.parametrize("input_format", FORMATS)
def test_every_shared_vector_classifies_on_both_verdicts_from_every_format(input_format):
    for vector in load_shared_vectors():
        content, key = wrap(input_format, [vector["ocmf"]], vector["public_key"])
        batch = verify_input(read_input(content, f"{vector['id']}.{input_format}"), key)
        (outcome,) = batch.records
        assert outcome.problem is None, (vector["id"], outcome.problem)
        assert (outcome.authentic, outcome.billable) == expected_verdicts(vector), (
            vector["id"],
            input_format,
            outcome.result and outcome.result.failures,
        )
        assert outcome.result is not None and outcome.result.record.text == vector["ocmf"]
        assert outcome.key_from == ("command line" if key else "input")


def test_the_detected_formats():
    vector = load_shared_vectors()[0]
    found = {f: read_input(wrap(f, [vector["ocmf"]], vector["public_key"])[0], "f").format for f in FORMATS}
    assert found == {
        "xml": "xml",
        "lines": "lines",
        "ocpp16": "ocpp",
        "ocpp201": "ocpp",
        "ocpp201-base64": "ocpp",
    }


def test_xml_with_several_values_and_base64_encodings():
    begin = record(payload([reading(BEGIN_TIME, "B", 1.0)], PG="T7"), KEY)
    end = record(payload([reading(END_TIME, "E", 2.0)], PG="T8"), KEY)
    der64 = base64.b64encode(KEY.der()).decode()
    content = xml_values(
        [begin, end],
        der64,
        contexts=["Transaction.Begin", "Transaction.End"],
        encoding="base64",
        key_encoding="base64",
    )
    source = read_input(content, "receipt.xml")
    assert [v.context for v in source.values] == ["Transaction.Begin", "Transaction.End"]
    assert source.values[0].source == "receipt.xml: value 1 (Transaction.Begin, transactionId 4711)"
    assert source.values[0].public_key == KEY.der()
    batch = verify_input(source)
    assert batch.exit_code == 0 and [(t.begin, t.end) for t in batch.transactions] == [(1, 2)]


def test_a_command_line_key_overrides_the_keys_in_the_file():
    other = meter_key("secp256r1", seed=6)
    content = xml_values([GOOD], str(other.public_key()))
    assert verify_input(read_input(content, "x.xml")).exit_code == 1
    batch = verify_input(read_input(content, "x.xml"), PUBLIC)
    assert batch.exit_code == 0 and batch.records[0].key_from == "command line"


def test_ocpp_base64_and_call_frames():
    content = ocpp16_meter_values([GOOD], base64_data=True)
    assert read_input(content, "mv.json").values[0].record == GOOD
    frame = f'[[2, "1", "TransactionEvent", {ocpp201_transaction_event([GOOD], PUBLIC)}]]'
    (value,) = read_input(frame, "log.json").values
    assert value.record == GOOD and value.public_key == PUBLIC
    assert value.source == "log.json: OCPP 2.0.1 [0][3].meterValue[0].sampledValue[0].signedMeterValue " + (
        "(Transaction.End)"
    )


def test_a_value_that_is_not_ocmf_is_named_and_the_others_still_verified():
    content = xml_values([GOOD, "1b1b1b1b01010101"], PUBLIC)
    batch = verify_input(read_input(content, "mixed.xml"))
    assert batch.records[0].authentic and batch.records[0].billable
    assert batch.records[1].problem is not None and "not an OCMF record" in batch.records[1].problem
    assert batch.exit_code == EXIT_MALFORMED


def test_a_line_file_without_a_key_is_malformed_naming_the_option():
    batch = verify_input(read_input(line_file([GOOD]), "records.txt"))
    assert batch.exit_code == EXIT_MALFORMED and "--public-key" in (batch.records[0].problem or "")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "x: empty"),
        ("hello", "x: not an input meter-ocmf reads (starts with 'hello'"),
        ("<values><value>", "x: not well-formed XML: "),
        ("<Billing/>", "x: XML root element is <Billing>, expected <values>"),
        ("<values/>", "x: Transparenzsoftware XML holds no signed values"),
        ('{"connectorId": 1,', "x: not valid JSON at line 1"),
        ('{"connectorId": 1}', "x: OCPP JSON holds no signed values"),
        (b"OCMF|\xff", "x: not UTF-8 at byte 5"),
    ],
)
def test_unreadable_inputs_name_the_file_and_what_is_wrong(content, message):
    with pytest.raises(OcmfFormatError) as caught:
        read_input(content, "x")
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    "declaration",
    [
        '<!DOCTYPE values [<!ENTITY big "aaaaaaaaaa">]>',
        '<!DOCTYPE values SYSTEM "file:///etc/passwd">',
        '<!DOCTYPE values [<!ENTITY ext SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_xml_with_a_doctype_or_entity_is_refused(declaration):
    body = "<values><value><signedData>&big;</signedData></value></values>"
    content = f'<?xml version="1.0"?>\n{declaration}\n{body}'
    with pytest.raises(OcmfFormatError, match=r"x: XML with a DOCTYPE declaration is refused"):
        read_input(content, "x")


def test_a_utf8_bom_before_the_xml_is_read():
    content = "\ufeff" + xml_values([GOOD], PUBLIC)
    assert verify_input(read_input(content.encode("utf-8"), "bom.xml")).exit_code == 0


def test_an_explicit_format_is_obeyed():
    with pytest.raises(OcmfFormatError, match="not valid JSON"):
        read_input(line_file([GOOD]), "x", "ocpp")


def test_what_this_project_sends_over_ocpp_is_read_back():
    from ocpp_samples import BEGIN_RECORD, END_RECORD, POWERMETER_AC, PUBLIC_KEY_HEX, signed_value

    from driver import ocpp

    v16 = ocpp.stop_transaction_request_v16(
        42, POWERMETER_AC, signed=signed_value(END_RECORD), start_signed=signed_value(BEGIN_RECORD)
    )
    batch = verify_input(read_input(json.dumps(v16), "stop.json"), PUBLIC_KEY_HEX)
    assert [v.context for v in batch.input.values] == ["Transaction.Begin", "Transaction.End"]
    assert batch.exit_code == 0 and len(batch.transactions) == 1
    v201 = ocpp.meter_values_request_v201(
        1, POWERMETER_AC, signed=signed_value(END_RECORD), encoding="base64"
    )
    batch = verify_input(read_input(json.dumps(v201), "mv.json"))
    assert batch.records[0].key_from == "input" and batch.exit_code == 0
