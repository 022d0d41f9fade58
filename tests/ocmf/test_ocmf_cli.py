"""meter-ocmf: exit 0 authentic and billable, 1 not authentic, 3 authentic but not billable (each failed check
named), 2 malformed input (saying where)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ocmf_factory import BEGIN_TIME, meter_key, payload, reading, record, transaction_readings

from driver.ocmf_cli import main

KEY = meter_key("brainpoolP256r1")
GOOD = record(payload(), KEY)
PUBLIC = str(KEY.public_key())


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_err, sys.stderr = sys.stderr, err
    try:
        status = main(list(argv), out=out, stdin=io.StringIO(stdin))
    finally:
        sys.stderr = old_err
    return status, out.getvalue(), err.getvalue()


def test_valid_record_exits_0():
    status, out, _ = run("verify", "--public-key", PUBLIC, GOOD)
    assert status == 0 and "ECDSA-brainpoolP256r1-SHA256" in out
    assert "  authentic: yes" in out and "  billable:  yes" in out
    assert out.rstrip().endswith("RESULT: authentic and billable (1 record) (exit 0)")


def test_tampered_record_exits_1_naming_the_signature():
    status, out, _ = run("verify", "--public-key", PUBLIC, GOOD.replace("12.5", "13.5"))
    assert status == 1 and "  authentic: NO" in out and "    signature: does not verify" in out
    assert "  billable:  NO   the values are not authentic" in out and "RESULT: NOT AUTHENTIC" in out


def test_failed_check_of_an_authentic_record_exits_3_naming_it():
    bad = record(payload(transaction_readings(begin=9.0, end=8.0), IL="OUTDATED"), KEY)
    status, out, _ = run("verify", "--public-key", PUBLIC, bad)
    assert status == 3 and "  authentic: yes" in out and "  billable:  NO   2 checks failed:" in out
    assert "    end-value:" in out and "    identification:" in out and "signature:" not in out
    assert "RESULT: authentic but NOT BILLABLE" in out


def test_malformed_record_exits_2_saying_where():
    status, out, err = run("verify", "--public-key", PUBLIC, "OCMF|{oops}|{}")
    assert status == 2 and "MALFORMED: payload: invalid JSON" in out
    assert "malformed input: command line: line 1: payload: invalid JSON" in err


def test_malformed_key_exits_2():
    status, _, err = run("verify", "--public-key", "zz-not-a-key", GOOD)
    assert status == 2 and "public key:" in err


def test_record_from_standard_input():
    status, out, _ = run("verify", "--public-key", PUBLIC, "-", stdin=GOOD + "\n")
    assert status == 0, out


def test_key_from_text_and_binary_files(tmp_path: Path):
    (tmp_path / "key.hex").write_text(PUBLIC + "\n")
    (tmp_path / "key.der").write_bytes(KEY.der())
    assert run("verify", "--public-key", f"@{tmp_path / 'key.hex'}", GOOD)[0] == 0
    assert run("verify", "--public-key", f"@{tmp_path / 'key.der'}", GOOD)[0] == 0
    status, _, err = run("verify", "--public-key", f"@{tmp_path / 'absent'}", GOOD)
    assert status == 2 and "cannot read" in err


def test_transaction_checks_can_be_forced():
    begin_only = record(payload([reading(BEGIN_TIME, "B", 1.0)]), KEY)
    assert run("verify", "--public-key", PUBLIC, begin_only)[0] == 0
    status, out, _ = run("verify", "--transaction", "--public-key", PUBLIC, begin_only)
    assert status == 3 and "end-reading:" in out


def test_show_prints_the_readings_as_a_table():
    status, out, _ = run("show", GOOD)
    assert status == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#"))
    assert lines[header].split() == ["#", "time", "sync", "TX", "value", "unit", "RI", "RT", "ST", "EF"]
    assert lines[header + 2].split()[:6] == ["1", "2026-11-23T01:00:00,000+0000", "S", "B", "1.234", "kWh"]
    assert lines[header + 3].split()[3:5] == ["E", "12.5"]
    assert "ECDSA-brainpoolP256r1-SHA256" in out


def test_show_malformed_exits_2():
    assert run("show", "nonsense")[0] == 2


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as caught:
        run("verify", "--public-key", PUBLIC)  # INPUT missing
    assert caught.value.code == 2


def test_a_record_without_any_key_exits_2():
    status, _, err = run("verify", GOOD)
    assert status == 2 and "no public key" in err and "--public-key" in err


def test_the_installed_console_script(tmp_path: Path):
    script = shutil.which("meter-ocmf", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "driver.ocmf_cli"]
    (tmp_path / "key.txt").write_text(PUBLIC)
    done = subprocess.run(
        [*command, "verify", "--public-key", f"@{tmp_path / 'key.txt'}", "-"],
        input=GOOD,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    broken = subprocess.run(
        [*command, "verify", "--public-key", PUBLIC, "OCMF|x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert broken.returncode == 2 and "record: expected" in broken.stderr
