"""A small summary.json as the conformance report writes it, and a report directory around it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RIG_TEXT = '[rig]\nname = "virtual"\n'
RIG_SHA256 = "0" * 64  # make_run_dir puts the real rig file's in


def summary(rig_sha256: str = RIG_SHA256) -> dict[str, Any]:
    readings = [{"t": round(0.5 + 0.25 * i, 2), "power_w": 22000.0 if i else 0.0, "energy_wh": 1.5 * i}
                for i in range(8)]
    timeline = {
        "readings": readings,
        "commands": [{"t": 0.4, "name": "stop", "transaction_id": "", "status": "OK", "duration_s": 0.01,
                      "reason": "boot"},
                     {"t": 0.45, "name": "start", "transaction_id": "tx-1", "status": "OK",
                      "duration_s": 0.02},
                     {"t": 2.6, "name": "stop", "transaction_id": "tx-1", "status": "UNEXPECTED_ERROR",
                      "duration_s": 0.5, "error": "no <answer> & more", "reason": "Local"}],
        "faults": [{"t": 0.3, "name": "driver_started"}, {"t": 1.0, "name": "link_down"},
                   {"t": 1.8, "name": "link_up"}, {"t": 0.42, "name": "load", "power_w": 22000.0}],
        "errors": [{"t": 1.3, "type": "CommunicationFault", "raised": True, "message": "no answer"},
                   {"t": 2.0, "type": "CommunicationFault", "raised": False, "message": ""}],
        "readings_dropped": 0,
    }
    steps = [{"keyword": "Given", "name": "the charger has booted", "line": 3, "outcome": "passed", "t": 0.0,
              "duration_s": 0.4},
             {"keyword": "Then", "name": "the stop is answered \"OK\"", "line": 9, "outcome": "failed",
              "t": 2.6, "duration_s": 0.5, "error": "stop answered <UNEXPECTED_ERROR>"},
             {"keyword": "And", "name": "the record verifies", "line": 10, "outcome": "not run"}]
    scenarios = [
        {"nodeid": "features/test_conformance.py::test_a", "name": "Link drop <1>", "feature": "Link",
         "requirements": ["R-RECONNECT"], "outcome": "failed", "reason": "stop answered UNEXPECTED_ERROR",
         "duration_s": 3.1, "tags": ["R-RECONNECT", "link_control"], "steps": steps, "timeline": timeline},
        {"nodeid": "features/test_conformance.py::test_b", "name": "Start and stop", "feature": "Start",
         "requirements": ["R-START"], "outcome": "passed", "reason": "", "duration_s": 1.0,
         "tags": ["R-START"], "steps": steps[:1], "timeline": {**timeline, "errors": [], "faults": []}},
        {"nodeid": "features/test_conformance.py::test_c", "name": "Phase order", "feature": "Live",
         "requirements": ["R-LIVE"], "outcome": "skipped", "reason": "rig lacks capability: phase_control",
         "duration_s": 0.0, "tags": ["R-LIVE", "phase_control"], "steps": [], "timeline": None},
    ]
    requirements = {
        "R-START": {"passed": 1, "failed": 0, "skipped": 0, "verdict": "PASS"},
        "R-RECONNECT": {"passed": 0, "failed": 1, "skipped": 0, "verdict": "FAIL"},
        "R-LIVE": {"passed": 0, "failed": 0, "skipped": 1, "verdict": "SKIPPED"},
        "R-OCPP": {"passed": 0, "failed": 0, "skipped": 0},  # an older summary: no verdict field
    }
    run = {"rig_file": "/somewhere/rigs/virtual.toml", "rig_name": "virtual", "rig_sha256": rig_sha256,
           "model": "reference", "capabilities": ["link_control"], "driver_class": "driver.PowermeterDriver",
           "versions": {"meter-hil": "0.1.0", "python": "3.11"}, "seed": 20240601,
           "started_utc": "2024-06-01T00:00:00Z"}
    return {"verdict": "FAIL", "run": run, "wire_log": None, "requirements": requirements,
            "scenarios": scenarios}


STEM = "certification-virtual-reference-20240601T000000Z"


def make_run_dir(root: Path, name: str = STEM) -> tuple[Path, Path]:
    """A report directory as a run leaves it, and the rig file it names."""
    import hashlib

    rig = root / "virtual.toml"
    rig.write_text(RIG_TEXT)
    directory = root / name
    directory.mkdir()
    data = summary(hashlib.sha256(rig.read_bytes()).hexdigest())
    (directory / "summary.json").write_text(json.dumps(data))
    for file in ("junit.xml", "cucumber.json", "wire.log", "summary.md"):
        (directory / file).write_text(f"{file}\n")
    return directory, rig
