"""Helpers shared by the simulator tests: register encoding and OCMF checks done independently."""

import json
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def text_words(text, regs):
    raw = text.encode("ascii").ljust(regs * 2, b"\0")
    return list(struct.unpack(f">{regs}H", raw))


def words_bytes(words):
    return struct.pack(f">{len(words)}H", *words)


def u32(words):
    return (words[0] << 16) | words[1]


def split_record(record):
    assert record.startswith("OCMF|")
    payload, signature = record[5:].rsplit("|", 1)
    return payload, json.loads(signature)


def verify_record(record, public_key_der):
    """True when the record's signature verifies over the exact payload bytes."""
    payload, signature = split_record(record)
    key = serialization.load_der_public_key(public_key_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    digest = hashes.SHA384() if signature["SA"].endswith("SHA384") else hashes.SHA256()
    try:
        key.verify(bytes.fromhex(signature["SD"]), payload.encode("ascii"), ec.ECDSA(digest))
    except InvalidSignature:
        return False
    return True
