"""Real records: the shared vectors beside the repository (../shared/ocmf-vectors)."""

from __future__ import annotations

from ocmf_corpus import load_shared_vectors, shared_vectors_dir

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
        assert ("  authentic: yes" if vector["expected_valid"] else "  authentic: NO") in out, out
