"""Malformed records and keys: OcmfFormatError saying where, never a traceback from deep inside."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocmf_factory import meter_key, payload, reading, record

from driver.errors import DriverError, OcmfError, OcmfFormatError
from driver.ocmf import load_public_key, parse, verify

KEY = meter_key("secp256r1")
GOOD = record(payload(), KEY)
BODY, SECTION = GOOD.split("|")[1], GOOD.split("|")[2]


def with_payload(text: str) -> str:
    return f"OCMF|{text}|{SECTION}"


def with_section(section: dict) -> str:
    return f"OCMF|{BODY}|{json.dumps(section)}"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", "record: empty"),
        ("   \n", "record: empty"),
        ("OCMF|" + BODY, "found 2 section"),
        (GOOD + "|extra", "found 4 section"),
        ("OCMX|" + BODY + "|" + SECTION, "header: expected 'OCMF'"),
        (with_payload('{"FV":"1.0",'), "payload: invalid JSON at char"),
        (with_payload("[1,2]"), "payload: expected a JSON object"),
        (with_payload('{"RD":[],"RD":[]}'), "payload: duplicate key 'RD'"),
        (with_payload('{"FV":"1.0"}'), "payload: RD (readings) is missing"),
        (with_payload('{"RD":[]}'), "payload: RD must be a non-empty array"),
        (with_payload('{"RD":{}}'), "payload: RD must be a non-empty array"),
        (with_payload('{"RD":[5]}'), "payload: RD[0]: expected an object"),
        (with_payload('{"RD":[{"RV":NaN}]}'), "payload: NaN is not valid JSON"),
        (with_payload('{"RD":[{"RV":"abc"}]}'), "payload: RD[0]: RV 'abc' is not a number"),
        (with_payload('{"RD":[{"RV":true}]}'), "payload: RD[0]: RV must be a number"),
        (with_payload('{"RD":[{"RV":1,"TM":"yesterday"}]}'), "payload: RD[0]: TM 'yesterday'"),
        (with_payload('{"RD":[{"RV":1,"TM":"2026-11-23T01:00:00,000+0000 Q"}]}'), "time status 'Q' unknown"),
        (with_payload('{"RD":[{"RV":1,"TM":"2026-13-23T01:00:00,000+0000 S"}]}'), "is not a valid time"),
        (with_payload('{"RD":[{"RV":1,"TX":7}]}'), "payload: RD[0]: TX must be a string"),
        (with_payload('{"RD":[{"RV":1},{"RV":2,"ST":false}]}'), "payload: RD[1]: ST must be a string"),
        (with_payload('{"RD":[{"RV":1,"RU":null}]}'), "payload: RD[0]: RU must be a string, found null"),
        (f"OCMF|{BODY}|[]", "signature section: expected a JSON object"),
        (with_section({"SA": "ECDSA-secp256r1-SHA256"}), "signature section: SD (signature data) is missing"),
        (with_section({"SD": 12}), "signature section: SD must be a string"),
        (with_section({"SD": "zz11"}), "signature section: SD: not valid hex"),
        (with_section({"SD": "!!!", "SE": "base64"}), "signature section: SD: not valid base64"),
        (with_section({"SD": "3044", "SE": "base85"}), "SE 'base85' unknown"),
        (with_section({"SD": "3044", "SA": "ECDSA-secp999r1-SHA256"}), "unknown curve"),
        (with_section({"SD": "3044", "SA": "ECDSA-secp256r1-MD5"}), "unknown hash"),
        (with_section({"SD": "3044", "SA": "RSA-2048"}), "is not of the form ECDSA-<curve>-<hash>"),
        (with_section({"SD": "00" * 17}), "SD (17 bytes) is neither a DER ECDSA signature nor raw r||s (64"),
        (with_section({"SD": "3006020101020101" + "00"}), "neither a DER ECDSA signature"),
    ],
)
def test_malformed_records_say_where(text, where):
    with pytest.raises(OcmfFormatError) as caught:
        parse(text)
    assert where in str(caught.value)


def test_non_utf8_bytes():
    with pytest.raises(OcmfFormatError, match="record: not UTF-8 at byte 7"):
        parse(b'OCMF|{"\xff"}|{}')


def test_oversized_record():
    with pytest.raises(OcmfFormatError, match="more than the 65536 accepted"):
        parse("OCMF|" + " " * 70000 + "|{}")


def test_deeply_nested_json():
    with pytest.raises(OcmfFormatError, match="payload"):
        parse(with_payload("[" * 30000 + "]" * 30000))


def test_format_error_is_part_of_the_driver_tree():
    assert issubclass(OcmfFormatError, OcmfError) and issubclass(OcmfError, DriverError)
    assert issubclass(OcmfFormatError, ValueError)


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("", "public key: empty"),
        (b"", "public key: empty"),
        ("not a key!", "public key: neither hex nor base64"),
        ("ABC", "public key: odd number of hex digits"),
        ("3059" + "00" * 10, "public key: not a DER SubjectPublicKeyInfo"),
        ("04" + "11" * 10, "public key: 11 bytes is not a secp256r1 point"),
        ("04" + "00" * 64, "public key: the point is not on secp256r1"),
        (12345, "public key: expected text or bytes"),
    ],
)
def test_malformed_keys_say_where(key, where):
    with pytest.raises(OcmfFormatError) as caught:
        verify(GOOD, key)
    assert where in str(caught.value)


def test_a_key_that_is_not_an_ec_key():
    der = (
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(OcmfFormatError, match="is not an EC public key"):
        load_public_key(der)


def test_a_key_on_a_curve_ocmf_does_not_use():
    from cryptography.hazmat.primitives.asymmetric import ec

    der = (
        ec.derive_private_key(7, ec.SECP521R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(OcmfFormatError, match=r"curve OID 1\.3\.132\.0\.35 is not one OCMF uses"):
        load_public_key(base64.b64encode(der).decode())


@pytest.mark.parametrize(
    ("curve_oid", "where"),
    [
        (b"\x06\x00", "empty OID"),
        (b"\x06\x01\x81", "OID ends inside an arc"),
        (b"\x05\x00", "explicit curve"),
    ],
)
def test_broken_curve_parameters_in_a_der_key(curve_oid, where):
    ec_oid = bytes.fromhex("06072A8648CE3D0201")
    algorithm = b"\x30" + bytes([len(ec_oid) + len(curve_oid)]) + ec_oid + curve_oid
    bits = b"\x03\x42\x00" + KEY.point()
    der = b"\x30" + bytes([len(algorithm) + len(bits)]) + algorithm + bits
    with pytest.raises(OcmfFormatError, match=where):
        load_public_key(der)


def _mutations(text: str) -> st.SearchStrategy[str]:
    """Records with bytes cut, replaced or inserted: what a corrupted transmission delivers."""
    positions = st.integers(min_value=0, max_value=len(text))
    chars = st.sampled_from(list('|{}[]",:0123456789abcdefOCMFRVTX\\ \x00é'))
    return st.one_of(
        st.builds(lambda i, j: text[: min(i, j)] + text[max(i, j) :], positions, positions),
        st.builds(lambda i, c: text[:i] + c + text[i + 1 :], positions, chars),
        st.builds(lambda i, c: text[:i] + c + text[i:], positions, chars),
    )


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_mutations(GOOD))
def test_garbled_records_never_crash(text):
    try:
        result = verify(text, KEY.public_key())
    except OcmfFormatError as exc:
        assert str(exc)
    else:
        # whatever survives parsing, a changed payload never passes as signed
        if result.record.payload_bytes != BODY.encode():
            assert not result.signature_valid, text


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text):
    try:
        parse(text)
    except OcmfFormatError:
        pass


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(st.binary(min_size=1, max_size=120))
def test_arbitrary_key_bytes_never_crash(data):
    try:
        verify(GOOD, data)
    except OcmfFormatError:
        pass


def test_a_single_reading_record_with_inherited_fields_parses_without_tm():
    parsed = parse(record(payload([reading(None, "B", 1.0)]), KEY))
    assert parsed.readings[0].time is None
