"""Picking a meter model: meter-sim --model, meter_sim_command(model=), MeterSimProcess(model=)."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from simulator import MeterSimProcess, ProfileError, known_models, load_model, meter_sim_command

ROOT = Path(__file__).resolve().parents[2]


def test_the_built_in_models():
    assert known_models() == ["carlo-gavazzi-em580", "carlo-gavazzi-em580-p384", "eastron-sdm630",
                            "iskra-wm3m4c", "plain", "reference", "reference-sr"]
    assert load_model("iskra-wm3m4c").protocol == "iskra"
    assert meter_sim_command(model="iskra-wm3m4c")[-2:] == ["--model", "iskra-wm3m4c"]

KNOWN = ("carlo-gavazzi-em580, carlo-gavazzi-em580-p384, eastron-sdm630, iskra-wm3m4c, plain, reference, "
         "reference-sr")


def test_an_unknown_model_is_one_error_listing_the_known_ones():
    with pytest.raises(
        ProfileError, match=rf"unknown meter model 'nope' \(known models: {KNOWN}\)"
    ):
        MeterSimProcess(tempfile.mkdtemp(prefix="mdl-"), model="nope")
    with pytest.raises(ProfileError, match="known models"):
        meter_sim_command(model="nope")
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "--pty", "--model", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr.strip()
        == f"meter-sim: unknown meter model 'nope' (known models: {KNOWN})"
    )


def test_help_names_the_models_and_model_excludes_profile():
    run = [sys.executable, "-m", "simulator.cli"]
    shown = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=30, cwd=ROOT).stdout
    flowing = "".join(shown.split())  # argparse wraps the list of models, also inside a name
    assert "--model NAME" in shown and ",".join(known_models()) in flowing
    both = subprocess.run(
        [*run, "--pty", "--model", "plain", "--profile", "reference"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_status_names_the_model_and_its_energy_resolution():
    with MeterSimProcess(tempfile.mkdtemp(prefix="mdl-"), speed=10, model="iskra-wm3m4c", unit=33) as meter:
        status = meter.control.status()
        assert status["model"] == "iskra-wm3m4c" and status["energy_resolution_wh"] == 10
        assert status["serial"] == "W4100033" and status["transaction_state"] == 0
    with MeterSimProcess(tempfile.mkdtemp(prefix="mdl-"), speed=10) as meter:
        status = meter.control.status()
        assert status["model"] == "reference" and status["energy_resolution_wh"] == 0.1
