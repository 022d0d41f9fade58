"""Signatures over records we sign ourselves with real keys: every curve, encoding and key format."""

from __future__ import annotations

import json

import ecdsa
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from ocmf_factory import der_signature, meter_key, payload, record, sign_numbers

from driver.ocmf import CURVES, parse, verify

ALL_CURVES = sorted(CURVES)


@pytest.mark.parametrize("curve", ALL_CURVES)
@pytest.mark.parametrize("se", [None, "hex", "base64"])
@pytest.mark.parametrize("signature_form", ["der", "raw"])
def test_every_curve_encoding_and_signature_form_verifies(curve, se, signature_form):
    key = meter_key(curve)
    text = record(payload(), key, se=se, signature_form=signature_form)
    result = verify(text, key.public_key())
    assert result.valid, result.failures
    assert result.record.algorithm.curve.name == curve
    assert result.record.signature_format == ("DER" if signature_form == "der" else "raw r||s")
    assert result.record.signature_encoding == (se or "hex")


@pytest.mark.parametrize("curve", ALL_CURVES)
def test_every_curve_rejects_a_tampered_payload(curve):
    key = meter_key(curve)
    text = record(payload(), key)
    tampered = text.replace('"RV":12.5', '"RV":12.6')
    assert tampered != text
    result = verify(tampered, key.public_key())
    assert not result.signature_valid and not result.valid
    assert result.failed_checks == {"signature"}


@pytest.mark.parametrize(
    "form",
    [
        "der-hex",
        "der-hex-spaced",
        "der-base64",
        "der-bytes",
        "pem",
        "raw-hex",
        "uncompressed-hex",
        "uncompressed-base64",
        "compressed-hex",
    ],
)
@pytest.mark.parametrize("curve", ["secp256r1", "secp192k1", "brainpoolP384r1"])
def test_every_public_key_format(curve, form):
    key = meter_key(curve)
    result = verify(record(payload(), key), key.public_key(form))
    assert result.valid, result.failures


def test_hex_key_with_lowercase_colons_and_newlines():
    key = meter_key("secp256r1")
    der_hex = key.der().hex()
    text_key = ":".join(der_hex[i : i + 2] for i in range(0, len(der_hex), 2))
    assert verify(record(payload(), key), text_key).valid
    assert verify(record(payload(), key), der_hex[:40] + "\n" + der_hex[40:]).valid


@pytest.mark.parametrize("curve", ["secp256r1", "secp192k1"])
def test_non_minimal_der_integers_are_tolerated(curve):
    key = meter_key(curve)
    text = record(payload(), key, signature_form="der-non-minimal")
    signature = parse(text).signature_bytes
    # strict DER readers (OpenSSL via cryptography) refuse this signature: the tolerance is ours
    with pytest.raises(ValueError):
        decode_dss_signature(signature)
    assert verify(text, key.public_key()).valid


def test_der_integers_without_sign_padding_are_tolerated():
    key = meter_key("secp256r1")
    for seed in range(1, 40):  # find a payload whose r or s has its top bit set, so the pad matters
        text_payload = payload(PG=f"T{seed}")
        r, s = sign_numbers(text_payload, key)
        if (r.bit_length() % 8 == 0) or (s.bit_length() % 8 == 0):
            break
    else:
        pytest.fail("no signature with a high bit found in 40 payloads")
    unpadded = der_signature(r, s, sign_pad=False)
    assert unpadded != der_signature(r, s)
    assert verify(record(text_payload, key, signature_form="der-no-sign-pad"), key.public_key()).valid


@pytest.mark.parametrize(
    ("written", "curve"),
    [
        ("ECDSA-brainpool256r1-SHA256", "brainpoolP256r1"),
        ("ECDSA-brainpoolP256r1-SHA256", "brainpoolP256r1"),
        ("ECDSA-brainpool384r1-SHA256", "brainpoolP384r1"),
        ("ECDSA-brainpoolP384r1-SHA256", "brainpoolP384r1"),
        ("ECDSA-secp256r1-SHA256", "secp256r1"),
    ],
)
def test_signature_algorithm_spellings(written, curve):
    key = meter_key(curve)
    result = verify(record(payload(), key, sa=written), key.public_key())
    assert result.valid and result.record.algorithm.curve.name == curve


def test_absent_signature_algorithm_means_secp256r1_sha256():
    key = meter_key("secp256r1")
    text = record(payload(), key, sa=None)
    assert '"SA"' not in text
    assert verify(text, key.public_key()).valid
    other = meter_key("brainpoolP256r1")
    assert not verify(record(payload(), other, sa=None), other.public_key()).signature_valid


@pytest.mark.parametrize("hash_name", ["SHA256", "SHA384", "SHA512"])
def test_the_hash_follows_the_signature_algorithm(hash_name):
    key = meter_key("secp384r1")
    assert verify(record(payload(), key, hash_name=hash_name), key.public_key()).valid


def test_a_signature_made_with_another_hash_than_sa_names_fails():
    key = meter_key("secp384r1")
    text = record(payload(), key, hash_name="SHA384").replace("SHA384", "SHA256")
    result = verify(text, key.public_key())
    assert result.failed_checks == {"signature"}


def test_payload_bytes_are_verified_as_received_never_reserialised():
    key = meter_key("secp256r1")
    spaced = json.dumps(json.loads(payload()), separators=(", ", ": "))  # a meter that writes spaces
    assert verify(record(spaced, key), key.public_key()).valid
    compact = record(payload(), key)
    with_space = compact.replace('"PG":"T1",', '"PG":"T1", ', 1)
    assert with_space != compact
    assert not verify(with_space, key.public_key()).signature_valid
    body = compact.split("|")[1]
    pretty = compact.replace(body, json.dumps(json.loads(body), indent=2))
    assert not verify(pretty, key.public_key()).signature_valid


def test_whitespace_around_the_whole_record_is_not_part_of_it():
    key = meter_key("secp256r1")
    assert verify("\n  " + record(payload(), key) + " \r\n", key.public_key()).valid


def test_non_ascii_payload_bytes_are_signed_as_utf8():
    key = meter_key("secp256r1")
    text = record(payload(GI="Zähler Süd"), key)
    assert verify(text, key.public_key()).valid
    assert verify(text.encode("utf-8"), key.public_key()).valid


def test_wrong_key_on_the_same_curve_fails():
    key, other = meter_key("secp256r1", seed=1), meter_key("secp256r1", seed=2)
    result = verify(record(payload(), key), other.public_key())
    assert not result.signature_valid and result.failed_checks == {"signature"}


def test_a_der_key_on_another_curve_is_named():
    key, other = meter_key("secp256r1"), meter_key("brainpoolP256r1")
    (failure,) = verify(record(payload(), key), other.public_key()).failures
    assert failure.startswith("signature:") and "brainpoolP256r1" in failure and "secp256r1" in failure


def test_a_flipped_signature_bit_fails():
    key = meter_key("secp256k1")
    text = record(payload(), key)
    sd = json.loads(text.split("|")[2])["SD"]
    flipped = sd[:-1] + ("0" if sd[-1] != "0" else "1")
    assert not verify(text.replace(sd, flipped), key.public_key()).signature_valid


def test_signature_numbers_out_of_range_fail_without_a_crash():
    key = meter_key("secp256r1")
    order = CURVES["secp256r1"].order
    text_payload = payload()
    for r, s in [(0, 1), (1, 0), (order, 1), (1, order + 5)]:
        section = json.dumps({"SD": der_signature(r, s).hex()})
        result = verify(f"OCMF|{text_payload}|{section}", key.public_key())
        assert not result.signature_valid, (r, s)


def test_the_secp192k1_definition_is_a_curve_of_the_stated_order():
    """secp192k1 is defined here from SEC 2, not taken from a library: check its generator and order."""
    curve = CURVES["secp192k1"].ecdsa_curve
    generator = curve.generator
    assert curve.curve.contains_point(generator.x(), generator.y())
    assert (generator * curve.order) == ecdsa.ellipticcurve.INFINITY
    assert generator * (curve.order - 1) != ecdsa.ellipticcurve.INFINITY
