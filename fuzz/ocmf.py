"""Fuzz target: driver/ocmf.py, the OCMF parser and verifier, on fuzzed records and public keys.

An input is a mode byte, then parts separated by 0x1E (ASCII record separator): a record and a key,
or (mode bit 0) a begin record, an end record and a key, for verify_pair. Mode bit 1 hands the key
over as text (latin-1: hex, base64 or PEM), else as bytes (DER, 04||X||Y, ...); bit 2 hands the
records over as text (UTF-8, undecodable bytes replaced), else as bytes.

Crashes: any exception that is not an OcmfError (docs/errors.md: a malformed record or key raises
OcmfFormatError naming where), and a Verification that contradicts itself (valid with failures, or a
valid record whose signature is not).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import atheris

from fuzz.common import Finding, main

with atheris.instrument_imports(include=["driver"]):
    from driver.errors import OcmfError
    from driver.ocmf import Verification, verify, verify_pair

TARGET = "ocmf"
SEPARATOR = b"\x1e"
VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "ocmf-vectors"
COMMITTED = Path(__file__).resolve().parent / "seeds" / TARGET
"""The same seeds, written once from the vectors, for a checkout without ../shared."""


def _check(result: Verification) -> None:
    if result.valid != (not result.failures):
        raise Finding(f"valid={result.valid} with failures {result.failures!r}")
    if result.valid and not result.signature_valid:
        raise Finding("a valid record whose signature is not valid")


def test_one(data: bytes) -> None:
    """One input: verify (or verify_pair) the records with the key, and check the answer's consistency."""
    if not data:
        return
    mode, parts = data[0], data[1:].split(SEPARATOR)
    pair = bool(mode & 1)
    if len(parts) < (3 if pair else 2):
        return
    key: str | bytes = parts[-1].decode("latin-1") if mode & 2 else parts[-1]
    records: list[str | bytes] = [p.decode("utf-8", "replace") if mode & 4 else p for p in parts[:-1]]
    if pair:
        _check(verify_pair(records[0], records[1], key))
    else:
        _check(verify(records[0], key))


def seeds() -> Iterator[bytes]:
    """The shared OCMF vectors (record and key, each way of handing them over), and a pair of two;
    without ../shared/ocmf-vectors the copy in fuzz/seeds/ocmf."""
    if not VECTORS.is_dir():
        for path in sorted(COMMITTED.iterdir()):
            yield path.read_bytes()
        return
    vectors = [json.loads(p.read_text()) for p in sorted(VECTORS.glob("*.json"))]
    for vector in vectors:
        record, key = vector["ocmf"].encode(), vector["public_key"].encode()
        for mode in (2, 6):
            yield bytes([mode]) + record + SEPARATOR + key
        yield bytes([0]) + record + SEPARATOR + bytes.fromhex(vector["public_key"])
    if len(vectors) >= 2:
        yield bytes([3]) + SEPARATOR.join(v["ocmf"].encode() for v in vectors[:2]) + SEPARATOR + \
            vectors[0]["public_key"].encode()


if __name__ == "__main__":
    main(TARGET, test_one, (OcmfError,), seeds)
    sys.exit(0)
