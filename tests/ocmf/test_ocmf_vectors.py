"""Real records: the shared vectors and further records from the transparency software's test data."""

from __future__ import annotations

from typing import Any

import pytest
from ocmf_corpus import load_real_world_records, load_shared_vectors, shared_vectors_dir

from driver.ocmf import verify
from driver.ocmf_cli import main


def test_the_shared_vectors_hold_positive_and_negative_records():
    vectors = load_shared_vectors()
    assert {v["expected_valid"] for v in vectors} == {True, False}, shared_vectors_dir()


def test_every_shared_vector_verifies_as_expected():
    for vector in load_shared_vectors():
        result = verify(vector["ocmf"], vector["public_key"])
        assert result.valid is vector["expected_valid"], (vector["id"], result.failures)
        if not vector["expected_valid"]:
            assert result.failures, vector["id"]


def test_the_tampered_shared_vector_fails_on_its_signature_alone():
    negatives = [v for v in load_shared_vectors() if not v["expected_valid"]]
    for vector in negatives:
        result = verify(vector["ocmf"], vector["public_key"])
        assert not result.signature_valid, vector["id"]
        assert result.failed_checks == {"signature"}, result.failures


def test_meter_ocmf_verify_exit_status_matches_every_shared_vector(capsys):
    for vector in load_shared_vectors():
        status = main(["verify", "--public-key", vector["public_key"], vector["ocmf"]])
        assert status == (0 if vector["expected_valid"] else 1), vector["id"]
        out = capsys.readouterr().out
        assert out.startswith("VALID" if vector["expected_valid"] else "INVALID"), out


REAL_WORLD = load_real_world_records()


@pytest.mark.parametrize("entry", REAL_WORLD, ids=[e["id"] for e in REAL_WORLD])
def test_real_world_record(entry: dict[str, Any]):
    result = verify(entry["ocmf"], entry["public_key"])
    assert result.signature_valid is entry["expected_signature_valid"], result.failures
    assert result.valid is entry["expected_valid"], result.failures
    assert result.failed_checks == set(entry["expected_failed_checks"]), result.failures


def test_real_world_records_cover_curves_and_encodings():
    curves = set()
    for entry in REAL_WORLD:
        result = verify(entry["ocmf"], entry["public_key"])
        if result.signature_valid:
            curves.add(result.record.algorithm.curve.name)
    assert {"secp192k1", "secp256k1", "secp256r1", "brainpoolP256r1", "secp384r1"} <= curves


def test_a_key_on_another_curve_is_named_not_just_refused():
    entry = next(e for e in REAL_WORLD if e["id"] == "dzg_nano_wrong_curve_key_NEGATIVE")
    (failure,) = verify(entry["ocmf"], entry["public_key"]).failures
    assert "secp256r1" in failure and "secp256k1" in failure
