"""Findings of fuzz/ocmf.py, replayed through the target's test_one under its crash rule (an OcmfError
is the documented answer to a malformed record or key; anything else, or a Finding, fails)."""

from pathlib import Path

import pytest

from driver.errors import OcmfError, OcmfFormatError
from driver.ocmf import key_bytes
from fuzz import ocmf as target

CRASHES = Path(__file__).parent / "crashes" / "ocmf"


@pytest.mark.parametrize("key", ["3059é30", "MFkw\u00ffEwYH", "-----BEGIN PUBLIC KEY-----\nMFkw€\n-----END"])
def test_a_key_text_with_non_ascii_characters_is_a_format_error(key):
    """base64.b64decode raises ValueError (not binascii.Error) for a text with non-ASCII characters: it
    left key_bytes as a bare ValueError instead of OcmfFormatError."""
    with pytest.raises(OcmfFormatError, match="public key"):
        key_bytes(key)


@pytest.mark.parametrize("name", sorted(p.name for p in CRASHES.iterdir()))
def test_saved_crash_inputs_pass_the_crash_rule(name):
    """Every input the fuzzer saved as a crash, as it found it."""
    try:
        target.test_one((CRASHES / name).read_bytes())
    except OcmfError:
        pass


def test_a_base64_signature_with_non_ascii_characters_is_a_format_error():
    """The same in the signature section: SD of a record with SE base64 (a vector's, its SD cut short
    and a non-ASCII character put in)."""
    vector = target.VECTORS / "09_twincharger_se_base64.json"
    if not vector.exists():
        pytest.skip("no ../shared/ocmf-vectors here")
    import json

    data = json.loads(vector.read_text())
    head, payload, signature = data["ocmf"].split("|")
    sd = json.loads(signature)["SD"]
    broken = json.loads(signature) | {"SD": "é" + sd[1:]}
    record = "|".join([head, payload, json.dumps(broken)])
    with pytest.raises(OcmfFormatError, match="base64"):
        target.verify(record, data["public_key"])
