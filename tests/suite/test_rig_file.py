"""The rig file loader and the suite's refusal of a bad rig: one clear line naming the field, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from driver.protocols import IskraProtocol, ReferenceProtocol
from rigs import CAPABILITIES, GROUND_TRUTH, RigFileError, RigPortError, load_rig
from rigs.frames import crc16, find_request
from rigs.meter_side import check_port
from rigs.rig import driver_factory

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[rig]
name = "t"
[meter]
kind = "simulator"
[link]
proxy = true
[power]
switch = "simulator"
[capabilities]
power_control = true
link_control = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rig.toml"
    path.write_text(text)
    return path


def test_shipped_rigs_load():
    virtual = load_rig(ROOT / "rigs" / "virtual.toml")
    assert virtual.meter.kind == "simulator" and virtual.link_proxy
    assert set(CAPABILITIES) | {GROUND_TRUTH} <= virtual.capabilities
    bench = load_rig(ROOT / "rigs" / "bench-example.toml")
    assert bench.meter.port == "/dev/ttyUSB0" and bench.meter.parity == "E"
    assert bench.power.switch == "command" and GROUND_TRUTH not in bench.capabilities
    assert len(bench.sha256) == 64 and bench.sha256 != virtual.sha256


def test_defaults(tmp_path):
    spec = load_rig(write(tmp_path, '[rig]\nname = "x"\n[meter]\nkind = "simulator"\n'))
    assert spec.driver.class_path == "driver.PowermeterDriver"
    assert spec.power.switch == "none" and not spec.link_proxy
    assert spec.capabilities == frozenset({GROUND_TRUTH})


@pytest.mark.parametrize(("old", "new", "field"), [
    ('kind = "simulator"', 'kind = "emulator"', "meter.kind"),
    ('kind = "simulator"', 'kind = "simulator"\nspeed = -1', "meter.speed"),
    ('kind = "simulator"', 'kind = "simulator"\nspeed = "fast"', "meter.speed"),
    ('kind = "simulator"', 'kind = "simulator"\nunit = 300', "meter.unit"),
    ('kind = "simulator"', 'kind = "simulator"\nparity = "X"', "meter.parity"),
    ('kind = "simulator"', 'kind = "simulator"\nport = "/dev/ttyS0"', "meter.port"),
    ('kind = "simulator"', 'kind = "physical"', "meter.port"),
    ('kind = "simulator"', 'kind = "simulator"\nbaud = 9600', "meter.baud"),
    ('name = "t"', 'name = ""', "rig.name"),
    ('proxy = true', 'proxy = false', "capabilities.link_control"),
    ('switch = "simulator"', 'switch = "none"', "capabilities.power_control"),
    ('switch = "simulator"', 'switch = "command"', "power.off_command"),
    ('switch = "simulator"', 'switch = "relay"', "power.switch"),
    ('power_control = true', 'power_control = "yes"', "capabilities.power_control"),
    ('power_control = true', 'power_control = true\nteleport = true', "capabilities.teleport"),
    ('[link]', '[driver]\nclass = "not a path"\n[link]', "driver.class"),
    ('[link]', '[driver.settings]\nport = "/dev/x"\n[link]', "driver.settings.port"),
    ('[link]', '[wiring]\n[link]', "[wiring]"),
])
def test_bad_field_is_named(tmp_path, old, new, field):
    assert old in GOOD
    with pytest.raises(RigFileError, match=r"rig\.toml: .*" + field.replace(".", r"\.").replace("[", r"\[")):
        load_rig(write(tmp_path, GOOD.replace(old, new, 1)))


def test_phase_control_needs_a_simulated_meter(tmp_path):
    text = ('[rig]\nname = "b"\n[meter]\nkind = "physical"\nport = "/dev/ttyUSB9"\n'
            '[capabilities]\nphase_control = true\n')
    with pytest.raises(RigFileError, match=r"capabilities\.phase_control"):
        load_rig(write(tmp_path, text))


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(RigFileError, match="not found"):
        load_rig(tmp_path / "missing.toml")
    with pytest.raises(RigFileError, match="not valid TOML"):
        load_rig(write(tmp_path, "[rig\nname="))
    with pytest.raises(RigFileError, match=r"\[meter\]: missing section"):
        load_rig(write(tmp_path, '[rig]\nname = "x"\n'))


def test_missing_port_is_refused(tmp_path):
    text = '[rig]\nname = "b"\n[meter]\nkind = "physical"\nport = "/dev/ttyUSB97"\n'
    spec = load_rig(write(tmp_path, text))
    with pytest.raises(RigPortError, match=r"meter\.port /dev/ttyUSB97: no such device"):
        check_port(spec.meter)


def run_suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "features", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_suite_refuses_a_bad_rig_file_in_one_line(tmp_path):
    done = run_suite("--rig", str(write(tmp_path, GOOD.replace('kind = "simulator"', 'kind = "toaster"'))))
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "meter.kind" in output and "toaster" in output
    assert "Traceback" not in output
    assert "passed" not in output  # nothing ran


def test_suite_on_the_bench_example_without_the_device_fails_at_once():
    if Path("/dev/ttyUSB0").exists():
        pytest.skip("this machine has /dev/ttyUSB0; the refusal cannot be shown here")
    done = run_suite("--rig", "rigs/bench-example.toml")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "meter.port /dev/ttyUSB0: no such device" in output
    assert "Traceback" not in output


def test_frame_finder_sees_a_stop_command_only_as_a_complete_request():
    kind = ReferenceProtocol.request_kind
    body = bytes([1, 0x06, 0x04, 0xD4, 0x00, 0x02])
    frame = body + crc16(body).to_bytes(2, "little")
    assert find_request(b"\x00\x11" + frame, 1, kind, "stop") == 10
    assert find_request(frame[:-1], 1, kind, "stop") == -1  # truncated
    assert find_request(frame[:-1] + b"\x00", 1, kind, "stop") == -1  # bad CRC
    assert find_request(frame, 2, kind, "stop") == -1  # another unit
    assert find_request(frame, 1, kind, "start") == -1
    # FC16 writing transaction id and command in one request (41 registers from 0x04AC)
    values = [0] * 40 + [2]
    body = bytes([1, 0x10, 0x04, 0xAC, 0, 41, 82]) + b"".join(v.to_bytes(2, "big") for v in values)
    frame = body + crc16(body).to_bytes(2, "little")
    assert find_request(frame, 1, kind, "stop") == len(frame)
    assert find_request(frame, 1, kind, "start") == -1


def test_frame_finder_takes_the_stop_command_from_the_meter_model():
    body = bytes([1, 0x06, 0x1B, 0x8B, 0x72, 0x00])  # 7051 = 'r' << 8: Iskra's end command
    frame = body + crc16(body).to_bytes(2, "little")
    assert find_request(frame, 1, IskraProtocol.request_kind, "stop") == len(frame)
    assert find_request(frame, 1, ReferenceProtocol.request_kind, "stop") == -1


def test_a_scenario_needing_a_missing_capability_is_skipped_naming_it(tmp_path):
    """A simulated meter with no controls: the phase scenario is skipped, never passed; the rest runs."""
    rig = write(tmp_path, '[rig]\nname = "bare"\n[meter]\nkind = "simulator"\n')
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         "features/scenarios.py", "--rig", str(rig), "-k", "nothing_pending or counterclockwise"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed, 1 skipped" in output, output
    assert "rig 'bare' (model reference) lacks capability: phase_control" in output


@pytest.mark.parametrize(("driver_table", "message"), [
    ('class = "vendor_missing.Driver"', r"driver\.class: cannot import module 'vendor_missing'"),
    ('class = "driver.NoSuchDriver"', r"driver\.class: module 'driver' has no 'NoSuchDriver'"),
    ('class = "driver.DriverConfig"', r"driver\.class: driver\.DriverConfig has no open"),
    ('[driver.settings]\npublish_intervall = 1', r"driver\.settings\.publish_intervall: .* no such setting"),
    ('[driver.settings]\ntimeout = "soon"', r"driver\.settings: timeout: 'soon' is not a positive number"),
])
def test_driver_class_and_settings_are_checked_before_anything_starts(tmp_path, driver_table, message):
    text = '[rig]\nname = "d"\n[meter]\nkind = "simulator"\n[driver]\n' + driver_table + "\n"
    if driver_table.startswith("[driver.settings]"):
        text = text.replace("[driver]\n", "")
    spec = load_rig(write(tmp_path, text))
    with pytest.raises(RigFileError, match=message):
        driver_factory(spec)


def test_the_suite_fails_a_driver_that_alters_the_signed_value(tmp_path):
    """The checks can fail: a vendor driver that rewrites the end reading is caught by R-INTEGRITY."""
    (tmp_path / "tampering_driver.py").write_text('''
from driver import PowermeterDriver


class TamperingDriver(PowermeterDriver):
    def stop_transaction(self, transaction_id):
        response = super().stop_transaction(transaction_id)
        if response.signed_meter_value is not None:
            smv = response.signed_meter_value
            smv.signed_meter_data = smv.signed_meter_data.replace('"TX":"E","RV":', '"TX":"E","RV":1')
        return response
''')
    rig = (ROOT / "rigs" / "virtual.toml").read_text().replace(
        'class = "driver.PowermeterDriver"', 'class = "tampering_driver.TamperingDriver"')
    assert "tampering_driver" in rig
    rig_path = write(tmp_path, rig)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "features/scenarios.py",
         "--rig", str(rig_path), "-k", "started_and_stopped"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "1 failed" in output and "the OCMF record does not verify" in output, output
    assert "verdict FAIL" in output
