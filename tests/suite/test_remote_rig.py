"""The meter "in another room": the whole conformance suite with meter-sim behind an RFC 2217 server on
127.0.0.1 (rigs/virtual-rfc2217.toml), the link proxy opening it as rfc2217://; and the [link] remote
field of the rig file."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rigs import RigFileError, load_rig

ROOT = Path(__file__).resolve().parents[2]
RFC2217_RIG = ROOT / "rigs" / "virtual-rfc2217.toml"


def test_the_whole_suite_passes_through_rfc2217(tmp_path):
    junit = tmp_path / "junit.xml"
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "features/scenarios.py",
         "--rig", str(RFC2217_RIG), f"--junitxml={junit}", "--conformance-reports", str(reports)],
        cwd=ROOT, capture_output=True, text=True, timeout=420, check=False)
    output = done.stdout + done.stderr
    cases = ET.parse(junit).getroot().iter("testcase")
    not_a_pass = ("failure", "error", "skipped")

    def counts(child: ET.Element) -> bool:  # a scenario the reference model cannot do is not applicable
        return child.tag in not_a_pass and "not applicable" not in (child.get("message") or "")

    outcomes = {case.get("name"): [child.tag for child in case if counts(child)] for case in cases}
    assert len(outcomes) >= 20, output
    not_passed = {name: tags for name, tags in outcomes.items() if tags}
    assert not not_passed, f"{not_passed}\n{output[-3000:]}"
    assert done.returncode == 0, output[-3000:]
    assert "to_meter" in (reports / "wire.log").read_text()  # the frames really crossed the proxy


def test_the_rfc2217_rig_file_serves_the_simulated_meter():
    spec = load_rig(RFC2217_RIG)
    assert spec.link_remote == "rfc2217" and spec.link_proxy and spec.meter.kind == "simulator"
    assert spec.has("link_control") and spec.has("ground_truth")


@pytest.mark.parametrize(("table", "message"), [
    ('[meter]\nkind = "simulator"\n[link]\nremote = "telnet"', r"link\.remote: expected one of none"),
    ('[meter]\nkind = "physical"\nport = "/dev/ttyUSB9"\n[link]\nremote = "rfc2217"',
     r"link\.remote: .*names its URL in meter\.port"),
])
def test_link_remote_is_checked(tmp_path, table, message):
    path = tmp_path / "rig.toml"
    path.write_text('[rig]\nname = "r"\n' + table + "\n")
    with pytest.raises(RigFileError, match=message):
        load_rig(path)
