"""A short seeded pass of every fuzz target (make test): each runs as `make fuzz` runs it, for a fixed
number of inputs from seed 1, starting from its seeds and the crash inputs saved in tests/fuzz/crashes;
a crash stops libFuzzer with a non-zero status and leaves a crash file, and fails the test."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRASHES = Path(__file__).parent / "crashes"
RUNS = {"sim_rtu": 3000, "driver_answers": 5000, "ocmf": 5000, "rig_file": 5000}


@pytest.mark.parametrize("target", sorted(RUNS))
def test_seeded_pass_finds_no_crash(target, tmp_path):
    seeds, corpus, artifacts = tmp_path / "seeds", tmp_path / "corpus", tmp_path / "artifacts"
    corpus.mkdir()
    artifacts.mkdir()
    subprocess.run([sys.executable, "-m", f"fuzz.{target}", "--write-seeds", str(seeds)], cwd=ROOT,
                   check=True, capture_output=True, timeout=60)
    saved = [str(CRASHES / target)] if (CRASHES / target).is_dir() else []
    command = [sys.executable, "-m", f"fuzz.{target}", f"-runs={RUNS[target]}", "-seed=1",
               f"-artifact_prefix={artifacts}/", "-timeout=20", str(corpus), str(seeds), *saved]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "FUZZ_KEEP_GOING"})
    tail = done.stderr[-3000:]
    assert done.returncode == 0, tail
    assert list(artifacts.iterdir()) == [], tail
    assert f"Done {RUNS[target]} runs" in done.stderr, tail
