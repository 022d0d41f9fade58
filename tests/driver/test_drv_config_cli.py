"""Configuration checks and the command line where no meter is needed: clear errors, exit 2, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from driver import ConfigurationError, DriverConfig, PowermeterDriver
from driver.cli import build_parser, main

METER_DRIVER = [str(Path(sys.executable).with_name("meter-driver"))]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"port": ""}, "port"),
        ({"parity": "X"}, "parity"),
        ({"baudrate": 0}, "baudrate"),
        ({"stopbits": 3}, "stopbits"),
        ({"unit": 0}, "unit"),
        ({"unit": 248}, "unit"),
        ({"timeout": 0}, "timeout"),
        ({"command_timeout": -1}, "command_timeout"),
        ({"publish_interval": -0.5}, "publish_interval"),
        ({"retries": -1}, "retries"),
        ({"busy_poll": 0}, "busy_poll"),
        ({"sync_clock": 1}, "sync_clock"),
    ],
)
def test_a_wrong_setting_is_named(change, field):
    with pytest.raises(ConfigurationError, match=f"^{field}:"):
        DriverConfig(**{"port": "/dev/null", **change})
    config = DriverConfig(port="/dev/null")
    for name, value in change.items():
        setattr(config, name, value)  # changed after construction: the driver checks again
    with pytest.raises(ConfigurationError, match=f"^{field}:"):
        PowermeterDriver(config)


def test_open_on_a_missing_device_names_it():
    driver = PowermeterDriver(DriverConfig(port="/dev/ttyDOES-NOT-EXIST"))
    with pytest.raises(ConfigurationError, match="/dev/ttyDOES-NOT-EXIST does not exist"):
        driver.open()
    driver.close()


def test_cli_missing_port_is_one_line_and_exit_2():
    result = subprocess.run(
        [*METER_DRIVER, "--port", "/dev/ttyNOPE7", "read"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == "meter-driver: port: serial port /dev/ttyNOPE7 does not exist"


def test_cli_bad_json_request_names_the_field(capsys):
    code = main(["--port", "/dev/ttyNOPE7", "start", "--json", '{"evse_id": "E", "transaction_id": "t"}'])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("meter-driver: identification_status: required field is missing")
    assert "Traceback" not in err


def test_cli_json_file_that_does_not_exist(capsys):
    assert main(["--port", "/dev/ttyNOPE7", "start", "--json", "/no/such/req.json"]) == 2
    assert "neither JSON text nor a readable file" in capsys.readouterr().err


def test_cli_start_needs_an_id(capsys):
    assert main(["--port", "/dev/ttyNOPE7", "start"]) == 2
    assert "--transaction-id or --json" in capsys.readouterr().err


def test_cli_options_parse():
    args = build_parser().parse_args(
        [
            "--port",
            "socket://localhost:5020",
            "--baudrate",
            "9600",
            "--parity",
            "N",
            "--unit",
            "3",
            "start",
            "--transaction-id",
            "t1",
            "--id-flag",
            "RFID_PLAIN",
            "--id-flag",
            "OCPP_AUTH",
            "--id-type",
            "ISO14443",
            "--id-data",
            "04AB",
        ]
    )
    assert (args.port, args.baudrate, args.parity, args.unit) == ("socket://localhost:5020", 9600, "N", 3)
    assert args.id_flag == ["RFID_PLAIN", "OCPP_AUTH"]
    assert build_parser().parse_args(["--port", "p", "stop", ""]).transaction_id == ""


def test_cli_unknown_flag_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--port", "p", "start", "--transaction-id", "t", "--id-flag", "NFC"])
    assert caught.value.code == 2
    assert "NFC" in capsys.readouterr().err


def test_a_bad_setting_is_also_a_value_error_for_file_loaders():
    with pytest.raises(ValueError, match=r"^timeout: -1 is not a positive number of seconds"):
        DriverConfig(port="/dev/null", timeout=-1)
