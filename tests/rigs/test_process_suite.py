"""The whole conformance suite through out-of-process drivers: meter-hil's own driver served by
`meter-driver serve` (rigs/virtual-process.toml) and the standalone example that imports nothing of
meter-hil (examples/standalone_driver/). Both run at once, each in its own pytest; every scenario must
pass, or be skipped for a capability the rig or meter model lacks."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RIGS = {"served": ROOT / "rigs" / "virtual-process.toml",
        "standalone": ROOT / "examples" / "standalone_driver" / "virtual-standalone.toml"}


def verdicts(junit: Path) -> tuple[list[str], list[str], list[str]]:
    passed, skipped, bad = [], [], []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "?")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skip = case.find("skipped")
        if problem is not None:
            bad.append(f"{name}: {problem.get('message', '')[:500]}")
        elif skip is not None:
            message = skip.get("message", "")
            by_capability = "lacks capability" in message or message.startswith("not applicable")
            (skipped if by_capability else bad).append(
                f"{name}: skipped: {skip.get('message')}")
        else:
            passed.append(name)
    return passed, skipped, bad


def test_the_suite_passes_through_both_process_drivers(tmp_path: Path) -> None:
    runs = {}
    for name, rig in RIGS.items():
        reports = tmp_path / name
        reports.mkdir()
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                   "features/scenarios.py", "--rig", str(rig), "--conformance-reports", str(reports),
                   f"--junitxml={reports / 'junit.xml'}"]
        output = (reports / "pytest.out").open("w")
        runs[name] = (subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT), output)
    try:
        for process, output in runs.values():
            process.wait(timeout=300)
            output.close()
    finally:
        for process, output in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            output.close()
    for name in RIGS:
        reports = tmp_path / name
        text = (reports / "pytest.out").read_text()
        passed, skipped, bad = verdicts(reports / "junit.xml")
        assert not bad, f"{name}: " + "\n".join(bad) + "\n" + text[-3000:]
        assert len(passed) >= 15 and len(passed) + len(skipped) >= 20, f"{name}: {passed} {skipped}"
        assert runs[name][0].returncode == 0, text[-3000:]
        assert any((reports / "driver-logs").iterdir()), f"{name}: no driver logs"
