"""Out-of-process drivers (rigs/process_driver.py, docs/driver-protocol.md): the protocol round trip with
`meter-driver serve` on a real meter-sim, and each way a driver process can fail, named exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from driver.events import ErrorEvent
from driver.types import (
    OCMFIdentificationFlags,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    Powermeter,
    TransactionReq,
)
from rigs import DriverProcessError, RigFileError, load_rig
from rigs.process_driver import ProcessDriver, resolve_executable
from rigs.rig import driver_factory
from simulator import MeterSimProcess

HERE = Path(__file__).resolve().parent
FAKE = HERE / "fake_driver.py"
METER_DRIVER = str(Path(sys.executable).parent / "meter-driver")


def fake(mode: str, tmp_path: Path, call_timeout: float = 2.0) -> ProcessDriver:
    return ProcessDriver([sys.executable, str(FAKE), mode], cwd=HERE, ready_timeout=5,
                         call_timeout=call_timeout, stop_grace=1, log_path=tmp_path / "driver.log")


def request(transaction_id: str = "tx-1") -> TransactionReq:
    return TransactionReq(evse_id="DE*ABC*E1*1", transaction_id=transaction_id,
                          identification_status=OCMFUserIdentificationStatus.ASSIGNED,
                          identification_flags=[OCMFIdentificationFlags.RFID_PLAIN],
                          identification_type=OCMFIdentificationType.ISO14443, identification_data="04A1B2C3")


def wait(condition: Callable[[], object], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- the round trip with meter-hil's own driver served --------------------------------------------


@pytest.fixture(scope="module")
def meter() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="rpc-"))
    sim = MeterSimProcess(workdir, speed=60, seed=3, profile="reference", start_timeout=20)
    try:
        yield sim.start()
    finally:
        sim.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_round_trip_with_meter_driver_serve(meter: str, tmp_path: Path) -> None:
    argv = [METER_DRIVER, "serve", "--port", meter, "--publish-interval", "0.2", "--timeout", "0.3"]
    readings: list[Powermeter] = []
    errors: list[ErrorEvent] = []
    with ProcessDriver(argv, cwd=tmp_path, log_path=tmp_path / "driver.log") as driver:
        driver.subscribe_powermeter(readings.append)
        driver.subscribe_errors(errors.append)
        assert driver.publish_interval == 0.2
        assert driver.public_key_ocmf and driver.public_key_ocmf.startswith("3059")
        assert driver.stop_transaction("").status == "OK"
        started = driver.start_transaction(request("rpc-round-trip"))
        assert started.status == "OK", started
        wait(lambda: len(readings) >= 2)
        stopped = driver.stop_transaction("rpc-round-trip")
        assert stopped.status == "OK", stopped
        assert stopped.signed_meter_value is not None
        assert stopped.signed_meter_value.signed_meter_data.startswith("OCMF|")
        refused = driver.start_transaction(request(""))  # the driver names the field: no JSON-RPC error
        assert refused.status == "UNEXPECTED_ERROR" and "transaction_id" in (refused.error or "")
        assert driver.stop_transaction("never-seen").status == "UNEXPECTED_ERROR"
        assert readings[-1].energy_Wh_import.total is not None and readings[-1].meter_id
    assert driver.failure is None and not errors
    log = (tmp_path / "driver.log").read_text()
    assert '"method": "start_transaction"' in log and "exited with code 0" in log


def test_serve_answers_malformed_calls_with_json_rpc_errors(meter: str) -> None:
    lines = ["this is not json", json.dumps({"id": 1, "method": "stop_transaction"}),
             json.dumps({"jsonrpc": "2.0", "id": 2, "method": "reboot", "params": {}}),
             json.dumps({"jsonrpc": "2.0", "id": 3, "method": "stop_transaction", "params": {"id": "x"}}),
             json.dumps({"jsonrpc": "2.0", "id": 4, "method": "start_transaction", "params": {"value": 5}})]
    done = subprocess.run([METER_DRIVER, "serve", "--port", meter, "--publish-interval", "0"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    answers = {m.get("id"): m for m in map(json.loads, done.stdout.splitlines()) if "method" not in m}
    codes = sorted((str(i), a["error"]["code"]) for i, a in answers.items())
    assert codes == [("1", -32600), ("2", -32601), ("3", -32602), ("4", -32602), ("None", -32700)], codes


# --- drivers that fail, each named exactly ---------------------------------------------------------


def test_a_good_fake_driver_round_trips(tmp_path: Path) -> None:
    errors: list[ErrorEvent] = []
    readings: list[Powermeter] = []
    with fake("good", tmp_path) as driver:
        driver.subscribe_errors(errors.append)
        driver.subscribe_powermeter(readings.append)
        assert driver.public_key_ocmf == "3059301306072A8648CE3D0201"
        assert driver.publish_interval == 0.1
        assert driver.stop_transaction("tx-1").status == "OK"
    assert driver.failure is None


def test_a_driver_that_crashes_mid_stop(tmp_path: Path) -> None:
    with fake("crash-on-stop", tmp_path) as driver:
        assert driver.start_transaction(request()).status == "OK"
        with pytest.raises(DriverProcessError) as caught:
            driver.stop_transaction("tx-1")
        message = str(caught.value)
        assert message.startswith(f"driver process {sys.executable} {FAKE} crash-on-stop exited with code 3 "
                                  "during stop_transaction('tx-1'); its stderr ends with:\n"), message
        assert "    fake driver: segmentation fault in the meter library" in message
        assert f"(driver log: {tmp_path / 'driver.log'})" in message
        with pytest.raises(DriverProcessError, match="exited with code 3"):  # and every later call
            driver.start_transaction(request("tx-2"))
    log = (tmp_path / "driver.log").read_text()
    assert "stderr| fake driver: segmentation fault in the meter library" in log and "FAILURE" in log


def test_a_driver_that_hangs(tmp_path: Path) -> None:
    with fake("hang-on-stop", tmp_path, call_timeout=1.0) as driver:
        with pytest.raises(DriverProcessError) as caught:
            driver.stop_transaction("tx-1")
    assert "hang-on-stop did not answer stop_transaction('tx-1') within 1 s (hung?)" in str(caught.value)
    assert "fake driver: mode hang-on-stop" in str(caught.value)


def test_a_driver_that_prints_garbage(tmp_path: Path) -> None:
    with fake("garbage-on-stop", tmp_path) as driver:
        with pytest.raises(DriverProcessError) as caught:
            driver.stop_transaction("tx-1")
    assert ("garbage-on-stop printed on stdout line 6 that is not JSON (Expecting value at column 1): "
            "'stopping transaction now...' during stop_transaction('tx-1')") in str(caught.value)


def test_a_driver_that_answers_out_of_schema(tmp_path: Path) -> None:
    with fake("schema-on-stop", tmp_path) as driver:
        with pytest.raises(DriverProcessError) as caught:
            driver.stop_transaction("tx-1")
    assert ("schema-on-stop answered stop_transaction('tx-1') out of schema: TransactionStopResponse: "
            "status: unknown TransactionRequestStatus value 'FINE' (allowed: OK, NOT_SUPPORTED, "
            "UNEXPECTED_ERROR); the result was {\"status\": \"FINE\"}") in str(caught.value)


def test_a_driver_that_answers_a_command_with_an_error_object(tmp_path: Path) -> None:
    with fake("error-on-stop", tmp_path) as driver, pytest.raises(DriverProcessError) as caught:
        driver.stop_transaction("tx-1")
    assert "answered stop_transaction('tx-1') with JSON-RPC error -32000: meter busy" in str(caught.value)


def test_a_notification_out_of_schema_fails_the_driver(tmp_path: Path) -> None:
    with fake("bad-powermeter", tmp_path) as driver:
        wait(lambda: driver.failure is not None)
        assert not driver.failure_raised  # nothing was called: the rig fixture fails the scenario with it
        with pytest.raises(DriverProcessError, match="sent powermeter out of schema on stdout line 6: not a "
                           "Powermeter: energy_Wh_import: required field is missing"):
            driver.stop_transaction("tx-1")


def test_a_driver_that_exits_while_idle(tmp_path: Path) -> None:
    driver = fake("exit-idle", tmp_path)
    try:
        driver.open()
        wait(lambda: driver.failure is not None)
        assert "exit-idle exited with code 4; its stderr ends with:" in str(driver.failure)
        assert "fake driver: lost the serial port, exiting" in str(driver.failure)
    finally:
        driver.close()


def test_a_driver_that_never_says_ready(tmp_path: Path) -> None:
    driver = ProcessDriver([sys.executable, str(FAKE), "no-ready"], cwd=HERE, ready_timeout=1, stop_grace=0.5)
    with pytest.raises(DriverProcessError, match=r"no-ready did not say ready within 1 s .*"
                                                 r"stderr ends with:\n    fake driver: mode no-ready"):
        driver.open()
    assert driver._proc is not None and driver._proc.returncode is not None  # collected, not left running


# --- the rig file ----------------------------------------------------------------------------------

RIG = '[rig]\nname = "p"\n[meter]\nkind = "simulator"\n[driver]\n'


@pytest.mark.parametrize(("driver_table", "message"), [
    ('command = ["meter-driver"]\nclass = "driver.PowermeterDriver"',
     r"driver\.class: not with driver\.command"),
    ('command = []', r"driver\.command: empty"),
    ('command = ["meter-driver", 3]', r"driver\.command\[1\]: expected a non-empty string"),
    ('command = ["meter-driver", "--port={device}"]',
     r"driver\.command\[1\]: unknown placeholder \{device\}"),
    ('command = ["meter-driver"]\ncall_timeout = 0', r"driver\.call_timeout: must be positive"),
    ('class = "driver.PowermeterDriver"\nready_timeout = 3',
     r"driver\.ready_timeout: only with driver\.command"),
])
def test_driver_command_fields_are_checked(tmp_path: Path, driver_table: str, message: str) -> None:
    path = tmp_path / "rig.toml"
    path.write_text(RIG + driver_table + "\n")
    with pytest.raises(RigFileError, match=message):
        load_rig(path)


def test_the_command_is_resolved_and_substituted(tmp_path: Path) -> None:
    path = tmp_path / "rig.toml"
    path.write_text(RIG + 'command = ["no-such-driver-anywhere", "{port}"]\n')
    with pytest.raises(RigFileError, match=r"driver\.command\[0\]: 'no-such-driver-anywhere' not found"):
        driver_factory(load_rig(path))
    path.write_text(RIG + 'command = ["meter-driver", "serve", "--port", "{port}", "--unit={unit}", '
                    '"{{x}}"]\n')
    driver = driver_factory(load_rig(path))("/dev/pts/99")
    assert driver.argv == [METER_DRIVER, "serve", "--port", "/dev/pts/99", "--unit=1", "{x}"]
    assert driver.cwd == tmp_path
    assert resolve_executable("python", tmp_path) == sys.executable
    assert resolve_executable("./nothing.sh", tmp_path) is None
