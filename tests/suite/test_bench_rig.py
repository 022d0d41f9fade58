"""The bench path of the rig (a physical meter on a serial port, relay commands for power), run against a
meter-sim on a pty standing in for the physical meter: the rig cannot tell the difference, as on a bench."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rigs import RigError
from rigs.power import CommandPower
from rigs.spec import PowerSpec
from simulator import MeterSimProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def meter_on_a_port() -> Iterator[MeterSimProcess]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))  # short: a unix socket path lives here
    meter = MeterSimProcess(workdir, speed=60, seed=7)
    try:
        meter.start()
        yield meter
    finally:
        meter.close()
        shutil.rmtree(workdir, ignore_errors=True)


def control_command(socket_path: str, call: str) -> str:
    """A relay command as a TOML string: here it switches the stand-in meter through its control socket."""
    script = f"from simulator import ControlClient; ControlClient('{socket_path}').{call}()"
    return json.dumps(f'{sys.executable} -c "{script}"')  # a JSON string is a valid TOML basic string


def test_physical_meter_rig_runs_scenarios_and_skips_what_needs_ground_truth(meter_on_a_port, tmp_path):
    rig = tmp_path / "bench.toml"
    rig.write_text(f"""
[rig]
name = "bench-on-pty"
[meter]
kind = "physical"
port = "{meter_on_a_port.path}"
[driver.settings]
publish_interval = 0.25
timeout = 0.3
command_timeout = 5.0
[link]
proxy = true
[power]
switch = "command"
off_command = {control_command(meter_on_a_port.socket_path, "power_off")}
on_command = {control_command(meter_on_a_port.socket_path, "power_on")}
[capabilities]
power_control = true
link_control = true
""")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         "features/scenarios.py", "--rig", str(rig),
         "-k", "CommunicationFault or never_saw or EMAID or nothing_pending"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "3 passed, 1 skipped" in output, output
    assert "rig 'bench-on-pty' (model reference) lacks capability: ground_truth" in output, output


def test_relay_commands_run_and_a_failing_one_is_named(tmp_path):
    marker = tmp_path / "off"
    power = CommandPower(PowerSpec(switch="command", off_command=f"touch {marker}", on_command="false"))
    power.off()
    assert marker.exists()
    with pytest.raises(RigError, match=r"power\.on_command 'false' exited 1"):
        power.on()
