"""The simulated Eastron SDM630 read by sdm_modbus, an independent open-source Eastron client library,
in its own virtualenv (.venv-eastron: it needs an older pymodbus than this project pins)."""

import json
import subprocess
from pathlib import Path

import pytest
from sim_support import wait_until

from simulator import MeterSimProcess

ROOT = Path(__file__).resolve().parents[2]
EASTRON_PYTHON = ROOT / ".venv-eastron" / "bin" / "python"
READ = """
import json, sys, sdm_modbus
meter = sdm_modbus.SDM630(device=sys.argv[1], stopbits=1, parity="N", baud=19200, timeout=1, unit=1)
values = meter.read_all()
values["serial_number"] = meter.read("serial_number")
print(json.dumps(values))
"""


@pytest.fixture
def sdm630(tmp_path_factory):
    with MeterSimProcess(tmp_path_factory.mktemp("sdm"), speed=60.0, model="eastron-sdm630",
                         extra_args=("--load-w", "7400")) as meter:
        yield meter


def test_sdm_modbus_reads_the_simulated_sdm630_as_ground_truth(sdm630):
    assert EASTRON_PYTHON.exists(), (
        f"{EASTRON_PYTHON} is missing: `make .venv-eastron/.installed-stamp` makes it "
        "(tests/simulator/eastron-client-requirements.txt)")
    path = sdm630.path
    wait_until(lambda: sdm630.control.status()["power"] == "on", 10, "the meter to boot")
    before = sdm630.control.status()
    done = subprocess.run([str(EASTRON_PYTHON), "-c", READ, path], capture_output=True, text=True,
                          timeout=60, check=False)
    after = sdm630.control.status()
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    for phase in (1, 2, 3):
        real = after["voltages_v"][phase - 1]
        assert abs(read[f"l{phase}_voltage"] - real) <= 0.01 * real
    assert abs(read["total_power_active"] - after["power_w"]) <= 0.01 * after["power_w"]
    assert abs(read["frequency"] - 50.0) < 0.5
    kwh = read["import_energy_active"]
    assert before["energy_wh"] / 1000 - 0.01 <= kwh <= after["energy_wh"] / 1000 + 0.01
    assert read["serial_number"] == 63_000_001
