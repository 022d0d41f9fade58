"""A small campaign against the real driver and a real meter-sim, replay, and the schedules that found bugs.

The fast campaign (12 seeded schedules, 1 rig) is the `make test` share of `make campaign`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.runner import CampaignRunner, RunnerConfig
from campaign.schedule import Schedule, generate
from rigs.spec import load_rig

ROOT = Path(__file__).resolve().parents[2]
SMALL_SEED, SMALL_COUNT = 1, 12

# Found by the campaign (seed 2, schedule 17): the answer to the start command is cut after 3 bytes
# (the link back at once here, so the repeat always gets through; the campaign had it back after 0.098 s).
# pymodbus repeats the unanswered write (DriverConfig.retries=1), the meter already runs the transaction,
# answers the repeat "already active", and the driver reports the start as failed although the meter
# runs exactly the transaction asked for. Fixed in driver/powermeter.py _start_once; see docs/reliability.md.
START_ANSWER_LOST = {
    "seed": 2, "index": 17,
    "sessions": [{"power_w": 11000.0, "charge_register": 8}],
    "faults": [{"kind": "link", "duration_s": 0.0,
                "trigger": {"kind": "start", "occurrence": 1, "phase": "answer", "cut_after": 3}}],
}


@pytest.fixture(scope="module")
def runner() -> Iterator[CampaignRunner]:
    with CampaignRunner(RunnerConfig(rig=load_rig(ROOT / "rigs" / "campaign.toml"))) as rig:
        yield rig


@pytest.mark.campaign
def test_a_small_campaign_loses_and_duplicates_nothing(runner):
    results = [runner.run(generate(SMALL_SEED, i)) for i in range(SMALL_COUNT)]
    failures = {r.schedule.index: r.violations for r in results if r.violations}
    assert failures == {}, json.dumps(failures, indent=1)
    fired = Counter()
    for r in results:
        fired.update(r.faults_fired)
    assert sum(r.transactions for r in results) >= SMALL_COUNT
    assert set(fired) >= {"link", "power", "kill", "system"}, fired  # the schedules did hit every kind


@pytest.mark.campaign
def test_a_power_loss_while_the_meter_signs_loses_nothing(runner):
    schedule = Schedule.from_json({
        "seed": 0, "index": 1, "sessions": [{"power_w": 22000.0, "charge_register": 3}],
        "faults": [{"kind": "power", "duration_s": 0.1,
                    "trigger": {"kind": "stop", "occurrence": 1, "phase": "answer", "cut_after": 8}}],
    })
    result = runner.run(schedule)
    assert result.violations == []
    assert result.faults_fired == {"power": 1} and result.transactions == 1


@pytest.mark.campaign
def test_a_whole_system_failure_mid_record_read_back_is_recovered_at_boot(runner):
    schedule = Schedule.from_json({
        "seed": 0, "index": 2, "sessions": [{"power_w": 22000.0, "charge_register": 3}] * 2,
        "faults": [{"kind": "system", "duration_s": 0.05,
                    "trigger": {"kind": "record", "occurrence": 2, "phase": "answer", "cut_after": 100}}],
    })
    result = runner.run(schedule)
    assert result.violations == []
    assert result.faults_fired == {"system": 1} and result.transactions == 2


@pytest.mark.campaign
def test_regression_start_answer_lost_then_repeated_by_the_link(runner):
    result = runner.run(Schedule.from_json(START_ANSWER_LOST))
    assert result.violations == []


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "campaign", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.campaign
def test_replay_runs_a_saved_schedule_and_prints_the_summary(tmp_path):
    saved = tmp_path / "schedule.json"
    saved.write_text(json.dumps({"schedule": generate(SMALL_SEED, 0).to_json(), "violations": []}))
    done = run_cli("--replay", str(saved), "--jobs", "1", "--failures", str(tmp_path / "failures"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "schedules run: 1 (failed 0)" in done.stdout
    assert "lost: 0; duplicated: 0; crashes: 0" in done.stdout


def test_replay_of_a_bad_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seed": 1}))
    done = run_cli("--replay", str(bad))
    assert done.returncode == 2
    assert "bad.json: schedule: missing field(s) faults, index, sessions" in done.stderr


MODELS_WITH_TRANSACTIONS = ("iskra-wm3m4c", "carlo-gavazzi-em580")


@pytest.mark.campaign
@pytest.mark.parametrize("model", MODELS_WITH_TRANSACTIONS)
def test_every_model_keeps_every_promise_on_a_few_seeded_schedules(model):
    from driver.protocols import PROTOCOLS
    from rigs.spec import with_model

    spec = with_model(load_rig(ROOT / "rigs" / "campaign.toml"), model)
    kinds = tuple(p.kind for p in PROTOCOLS[model].requests)
    with CampaignRunner(RunnerConfig(rig=spec)) as rig:
        results = [rig.run(generate(3, i, kinds)) for i in range(3)]
    assert {r.schedule.index: r.violations for r in results if r.violations} == {}
    assert sum(r.transactions for r in results) >= 3


@pytest.mark.campaign
def test_the_campaign_runs_through_an_out_of_process_driver(tmp_path):
    done = run_cli("--rig", "rigs/campaign-process.toml", "--schedules", "3", "--seed", "4", "--jobs", "1",
                   "--failures", str(tmp_path / "failures"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "meter-driver serve" in done.stdout and "lost: 0; duplicated: 0; crashes: 0" in done.stdout


@pytest.mark.campaign
def test_a_model_that_signs_begin_and_end_apart_runs_with_its_begin_records_checked(tmp_path):
    done = run_cli("--model", "reference-sr", "--schedules", "3", "--seed", "5", "--jobs", "1",
                   "--failures", str(tmp_path / "failures"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "model reference-sr" in done.stdout and "lost: 0; duplicated: 0; crashes: 0" in done.stdout


def test_a_rig_file_with_a_physical_meter_is_refused_by_name(tmp_path):
    done = run_cli("--rig", "rigs/bench-example.toml", "--schedules", "1")
    assert done.returncode == 2 and "needs a simulated meter" in done.stderr, done.stderr
