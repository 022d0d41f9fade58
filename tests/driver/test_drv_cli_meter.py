"""meter-driver as a bench user runs it, against meter-sim on a pty (one subprocess a command)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from driver import Powermeter, TransactionStopResponse, ocmf

METER_DRIVER = str(Path(sys.executable).with_name("meter-driver"))


def run(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [METER_DRIVER, "--port", port, "--timeout", "0.3", *args], capture_output=True, text=True, timeout=60
    )


def test_read_prints_a_powermeter_that_matches_the_meter(sim):
    before = sim.status()
    result = run(sim.path, "read")
    after = sim.status()
    assert result.returncode == 0, result.stderr
    dataset = Powermeter.from_json(result.stdout)
    assert before["energy_register"] / 10 <= dataset.energy_Wh_import.total <= after["energy_register"] / 10
    stamp = datetime.strptime(dataset.timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert int(before["clock_utc"]) - 1 <= stamp <= after["clock_utc"] + 1


def test_watch_prints_json_lines_when_piped(sim):
    result = run(sim.path, "read", "--watch", "--interval", "0.05", "--count", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    totals = [Powermeter.from_json(line).energy_Wh_import.total for line in lines]
    assert totals == sorted(totals)


def test_start_then_stop_prints_a_record_that_verifies_and_holds_the_identification(sim):
    started = run(
        sim.path,
        "start",
        "--transaction-id",
        "cli-1",
        "--evse-id",
        "DE*MHL*E0001*9",
        "--id-status",
        "ASSIGNED",
        "--id-flag",
        "RFID_PLAIN",
        "--id-type",
        "ISO14443",
        "--id-data",
        "04C0FFEE",
        "--tariff-text",
        "bench",
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status"] == "OK"
    stopped = run(sim.path, "stop", "cli-1")
    assert stopped.returncode == 0, stopped.stderr
    response = TransactionStopResponse.from_json(stopped.stdout)
    key = run(sim.path, "public-key")
    assert key.returncode == 0
    assert response.signed_meter_value.public_key == key.stdout.strip()
    record = response.signed_meter_value.signed_meter_data
    assert ocmf.verify(record, key.stdout.strip()).valid
    payload = json.loads(record.split("|")[1])
    assert (payload["ID"], payload["CI"], payload["TT"], payload["IF"]) == (
        "04C0FFEE",
        "DE*MHL*E0001*9",
        "bench",
        ["RFID_PLAIN"],
    )


def test_start_from_a_json_file_and_stop_all(sim, tmp_path):
    req = tmp_path / "req.json"
    req.write_text(
        json.dumps(
            {
                "evse_id": "E1",
                "transaction_id": "cli-2",
                "identification_status": "NOT_ASSIGNED",
                "identification_flags": [],
                "identification_type": "NONE",
            }
        )
    )
    assert run(sim.path, "start", "--json", str(req)).returncode == 0
    cleared = run(sim.path, "stop", "")
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["signed_meter_value"]["encoding_method"] == "OCMF"
    assert sim.status()["transaction_state"] == 0


def test_stop_of_an_unknown_id_exits_1_with_the_reason(sim):
    result = run(sim.path, "stop", "cli-never")
    assert result.returncode == 1
    assert "unknown transaction id" in json.loads(result.stdout)["error"]


def test_a_silent_port_is_one_line_and_exit_1(tmp_path):
    import os
    import pty

    master, slave = pty.openpty()  # nobody answers on the other end
    try:
        result = run(os.ttyname(slave), "read")
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    # --model auto (the default) probes each model; the one line says nothing answered any of them
    assert result.stderr.startswith("meter-driver: meter does not answer, so its model cannot be told")
    assert "reference: no answer from unit 1" in result.stderr


def test_watch_on_a_terminal_rewrites_one_live_line(sim):
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [METER_DRIVER, "--port", sim.path, "read", "--watch", "--interval", "0.05", "--count", "3"],
            stdout=slave,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        os.close(slave)
        slave = -1
        output = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        assert process.wait(timeout=10) == 0, process.stderr.read()
        process.stderr.close()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = output.decode().replace("\r\n", "\n")  # the terminal turns the final newline into CR LF
    assert text.count("\r") == 3
    assert text.count(" Wh ") == 3
    assert text.rstrip("\r\n").count("\n") == 0  # one line, rewritten in place


def test_identify_with_model_auto_names_the_reference_meter(sim):
    result = run(sim.path, "--model", "auto", "identify")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["model"] == "reference" and found["found_by"] == "auto"
    assert found["description"] == "meter-hil EICH-REF-3, serial MHIL00000001"


def test_identify_with_model_auto_names_the_iskra_meter():
    from drv_support import SimMeter

    meter = SimMeter(profile="iskra-wm3m4c", unit=1)
    try:
        result = run(meter.path, "--model", "auto", "identify")
    finally:
        meter.close()
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["model"] == "iskra-wm3m4c"
    assert found["meter"]["vendor"] == "Iskra" and found["meter"]["model"] == "WM3M4C"
