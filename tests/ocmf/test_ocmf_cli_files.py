"""meter-ocmf verify FILE end to end, as a user runs it: exit codes of both verdicts, text and --json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ocmf_corpus import load_shared_vectors
from ocmf_factory import BEGIN_TIME, END_TIME, meter_key, payload, reading, record
from ocmf_inputs import line_file, ocpp201_transaction_event, wrap, xml_values

KEY = meter_key("secp256r1", seed=8)
PUBLIC = str(KEY.public_key())


def signed(pg: str = "T1", *readings: dict) -> str:
    return record(payload(list(readings) or None, PG=pg), KEY)


GOOD = signed()
ERROR_STATUS = signed("T2", reading(BEGIN_TIME, "B", 1.0), reading(END_TIME, "E", 2.0, ST="E"))
TAMPERED = GOOD.replace('"RV":12.5', '"RV":12.6')


def meter_ocmf(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("meter-ocmf", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "driver.ocmf_cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, check=False)


def test_exit_0_authentic_and_billable(tmp_path: Path):
    path = tmp_path / "receipt.xml"
    path.write_text(xml_values([GOOD], PUBLIC))
    done = meter_ocmf("verify", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  authentic: yes" in done.stdout and "  billable:  yes" in done.stdout
    assert "RESULT: authentic and billable (1 record) (exit 0)" in done.stdout


def test_exit_1_not_authentic(tmp_path: Path):
    path = tmp_path / "records.txt"
    path.write_text(line_file([GOOD, TAMPERED.replace('"PG":"T1"', '"PG":"T9"')]))
    done = meter_ocmf("verify", "--public-key", PUBLIC, str(path))
    assert done.returncode == 1 and "  authentic: NO" in done.stdout and "    signature:" in done.stdout


def test_exit_3_authentic_but_not_billable_naming_the_check(tmp_path: Path):
    path = tmp_path / "event.json"
    path.write_text(ocpp201_transaction_event([ERROR_STATUS], PUBLIC, base64_data=True))
    done = meter_ocmf("verify", str(path))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "  authentic: yes" in done.stdout and "  billable:  NO   1 check failed:" in done.stdout
    assert "    status: reading 2 meter status 'E' (OTHER_ERROR), not G" in done.stdout


def test_exit_2_malformed_names_the_file_without_a_traceback(tmp_path: Path):
    path = tmp_path / "broken.xml"
    path.write_text("<values><value>")
    done = meter_ocmf("verify", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"meter-ocmf: malformed input: {path}: not well-formed XML")
    assert "Traceback" not in done.stderr
    missing = meter_ocmf("verify", str(tmp_path / "absent.xml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "absent.xml" in missing.stderr


def test_help_documents_the_exit_codes():
    done = meter_ocmf("verify", "--help")
    assert done.returncode == 0
    for line in (
        "2  malformed input",
        "1  not authentic",
        "3  authentic but not billable",
        "0  authentic and",
    ):
        assert line in done.stdout, line


def test_json_document(tmp_path: Path):
    begin = signed("T10", reading(BEGIN_TIME, "B", 1.0))
    end = signed("T12", reading(END_TIME, "E", 2.0, EF="t"))
    path = tmp_path / "log.txt"
    path.write_text(line_file([begin, end, TAMPERED]))
    done = meter_ocmf("verify", "--json", "--public-key", PUBLIC, str(path))
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert (document["format"], document["authentic"], document["billable"], document["exit_code"]) == (
        "lines",
        False,
        False,
        1,
    )
    first, second, third = document["records"]
    assert first["source"] == f"{path}: line 3" and first["pagination"] == "T10"
    assert (first["authentic"], first["billable"], first["failures"]) == (True, True, [])
    assert (second["authentic"], second["billable"]) == (True, False)
    assert [f["check"] for f in second["failures"]] == ["error-flag"]
    assert second["readings"][0] == {
        "index": 1,
        "time": END_TIME,
        "time_status": "S",
        "tx": "E",
        "value": "2.0",
        "unit": "kWh",
        "ri": "1-0:1.8.0",
        "rt": "AC",
        "st": "G",
        "ef": "t",
    }
    assert (third["authentic"], third["billable"], third["failures"][0]["check"]) == (
        False,
        False,
        "signature",
    )
    (transaction,) = document["transactions"]
    assert (transaction["begin_record"], transaction["end_record"], transaction["pagination"]) == (
        1,
        2,
        ["T10", "T12"],
    )
    assert (transaction["authentic"], transaction["billable"]) == (True, False)
    assert {f["check"] for f in transaction["failures"]} == {"error-flag", "pagination"}


def test_json_of_an_unreadable_file(tmp_path: Path):
    path = tmp_path / "x.json"
    path.write_text("{")
    done = meter_ocmf("verify", "--json", str(path))
    assert done.returncode == 2 and json.loads(done.stdout)["exit_code"] == 2


@pytest.mark.parametrize("input_format", ["xml", "lines", "ocpp16", "ocpp201", "ocpp201-base64"])
def test_every_shared_vector_exit_status_from_a_file(tmp_path: Path, input_format: str):
    vectors = load_shared_vectors()
    for vector in vectors:
        content, key = wrap(input_format, [vector["ocmf"]], vector["public_key"])
        path = tmp_path / f"{vector['id']}.{input_format}"
        path.write_text(content)
        done = meter_ocmf("verify", "--json", *(["--public-key", key] if key else []), str(path))
        authentic = vector.get("expected_authentic", vector["expected_valid"])
        expected = 0 if vector["expected_valid"] else (3 if authentic else 1)
        assert done.returncode == expected, (vector["id"], done.stdout, done.stderr)
        (entry,) = json.loads(done.stdout)["records"]
        assert (entry["authentic"], entry["billable"]) == (authentic, vector["expected_valid"])
