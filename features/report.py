"""The conformance report: what ran, by requirement id, in a form a vendor can hand over.

Collects each scenario's outcome (passed / failed / skipped with the reason) and its requirement tags
(@R-START ...), prints one progress line per scenario and a summary by requirement at the end, and
writes summary.md and summary.json with the rig file, its sha256 and the driver and simulator versions.

summary.json also holds, a scenario, its tags, its steps (from pytest-bdd's step hooks: outcome, time
since the scenario began, duration, the error) and its timeline (rigs/timeline.py: the readings, the
commands EvseManager made, the faults the rig injected, the errors the driver raised and cleared), from
which rigs/certify_html.py draws report.html. summary.md stays short.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.parser import Feature, Scenario, Step
from pytest_bdd.scenario import scenario_wrapper_template_registry

from meter_hil_suite import is_official
from rigs.certify_html import requirement_verdict

REQUIREMENTS = ("R-START", "R-STOP", "R-RECOVER", "R-RECONNECT", "R-FAULT", "R-LIVE", "R-OCPP", "R-INTEGRITY")


@dataclass
class ScenarioResult:
    """One scenario's outcome."""

    nodeid: str
    name: str
    feature: str
    requirements: list[str]
    outcome: str = "passed"  # passed | failed | skipped
    reason: str = ""
    duration_s: float = 0.0
    tags: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    timeline: dict[str, Any] | None = None
    official: bool = True  # shipped with meter-hil; a vendor's own scenario is reported apart


NOT_APPLICABLE = "not applicable"
"""The start of the skip reason of a scenario the meter model cannot do (not the rig's lack)."""


@dataclass
class RunInfo:
    """What the run was made with: enough to reproduce and to trust the report."""

    rig_file: str
    rig_name: str
    rig_sha256: str
    model: str
    capabilities: list[str]
    driver_class: str
    versions: dict[str, str]
    seed: int
    started_utc: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              timeout=5, check=False, cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def versions(driver_class: str) -> dict[str, str]:
    """Versions of the parts under test: the meter-hil distribution (simulator and reference driver),
    the driver module's own __version__ when it has one, the source revision, and the key libraries."""
    found = {
        "meter-hil": _version("meter-hil"),
        "source": _git_revision(),
        "python": platform.python_version(),
        "pymodbus": _version("pymodbus"),
        "pytest-bdd": _version("pytest-bdd"),
    }
    module = sys.modules.get(driver_class.rpartition(".")[0])
    found["driver"] = str(getattr(module, "__version__", found["meter-hil"]))
    simulator = sys.modules.get("simulator")
    found["simulator"] = str(getattr(simulator, "__version__", found["meter-hil"]))
    return found


class ConformanceReport:
    """pytest plugin: registered by the plugin (meter_hil_suite.plugin) once the rig file is loaded."""

    def __init__(self, config: pytest.Config, info: RunInfo, out_dir: Path | None) -> None:
        self.config = config
        self.info = info
        self.out_dir = out_dir
        self.results: dict[str, ScenarioResult] = {}
        self.total = 0
        self.wire_log: Path | None = None
        self._started: dict[str, float] = {}  # nodeid -> monotonic time the scenario began
        self._timelines: dict[str, Any] = {}  # nodeid -> the rig's Timeline
        self._planned: dict[str, list[Step]] = {}  # nodeid -> the scenario's steps
        self._steps: dict[str, list[dict[str, Any]]] = {}  # nodeid -> the steps that ran
        self._step_began: dict[str, float] = {}

    # --- collection of outcomes ------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = sum(1 for item in session.items if _is_scenario(item))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        item_tags = getattr(report, "requirement_tags", None)
        if item_tags is None:
            return
        result = self.results.setdefault(report.nodeid, ScenarioResult(
            nodeid=report.nodeid, name=report.scenario_name, feature=report.feature_name,
            requirements=list(item_tags), official=getattr(report, "official", True)))
        result.duration_s += report.duration
        result.tags = list(getattr(report, "scenario_tags", result.tags))
        if report.skipped and result.outcome == "passed":
            result.outcome = "skipped"
            result.reason = _skip_reason(report)
        elif report.failed and result.outcome != "failed":
            result.outcome = "failed"
            result.reason = _failure_line(report)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report = outcome.get_result()
        if _is_scenario(item):
            report.requirement_tags = sorted(m.name for m in item.iter_markers() if m.name.startswith("R-"))
            template = _template(item)
            report.scenario_name = template.name
            report.feature_name = template.feature.name
            report.official = is_official(template.feature.filename)
            report.scenario_tags = sorted(template.tags)
            if "[" in item.name:  # an outline's example: keep the parameters apart in the report
                report.scenario_name += " [" + item.name.split("[", 1)[1]

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """In quiet mode a scenario gets its progress line instead of a dot."""
        if getattr(report, "requirement_tags", None) is None or config.get_verbosity() > 0:
            return None
        if report.when == "call" or (report.when == "setup" and report.skipped):
            return report.outcome, "", report.outcome.upper()
        return None

    # --- steps (pytest-bdd's hooks) and the timeline ---------------------------------------------

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._started[nodeid] = time.monotonic()

    def pytest_bdd_before_scenario(self, request: pytest.FixtureRequest, feature: Feature,
                                   scenario: Scenario) -> None:
        self._planned[request.node.nodeid] = list(scenario.steps)

    def pytest_bdd_before_step(self, request: pytest.FixtureRequest, feature: Feature, scenario: Scenario,
                               step: Step, step_func: Callable[..., object]) -> None:
        self._step_began[request.node.nodeid] = time.monotonic()

    def pytest_bdd_before_step_call(self, request: pytest.FixtureRequest, feature: Feature,
                                    scenario: Scenario, step: Step, step_func: Callable[..., object],
                                    step_func_args: dict[str, object]) -> None:
        """The rig is built by the first step that asks for it: its timeline is the scenario's."""
        timeline = getattr(step_func_args.get("rig"), "timeline", None)
        if timeline is not None:
            self._timelines.setdefault(request.node.nodeid, timeline)

    def pytest_bdd_after_step(self, request: pytest.FixtureRequest, feature: Feature, scenario: Scenario,
                              step: Step, step_func: Callable[..., object],
                              step_func_args: dict[str, object]) -> None:
        self._step_done(request.node.nodeid, step, "passed")

    def pytest_bdd_step_error(self, request: pytest.FixtureRequest, feature: Feature, scenario: Scenario,
                              step: Step, step_func: Callable[..., object],
                              step_func_args: dict[str, object], exception: Exception) -> None:
        self._step_done(request.node.nodeid, step, "failed", exception)

    def pytest_bdd_step_func_lookup_error(self, request: pytest.FixtureRequest, feature: Feature,
                                          scenario: Scenario, step: Step, exception: Exception) -> None:
        self._step_done(request.node.nodeid, step, "undefined", exception)

    def _step_done(self, nodeid: str, step: Step, outcome: str,
                   exception: BaseException | None = None) -> None:
        now = time.monotonic()
        began = self._step_began.pop(nodeid, now)
        origin = self._started.get(nodeid, began)
        entry: dict[str, Any] = {"keyword": step.keyword, "name": step.name, "line": step.line_number,
                                 "outcome": outcome, "t": round(began - origin, 4),
                                 "duration_s": round(now - began, 4)}
        if exception is not None:
            text = str(exception).strip() or type(exception).__name__
            entry["error"] = text.splitlines()[0][:500]
        self._steps.setdefault(nodeid, []).append(entry)

    def _finish_scenario(self, result: ScenarioResult) -> None:
        """The steps (those that never ran as "not run") and the timeline, into the result."""
        nodeid = result.nodeid
        ran = self._steps.pop(nodeid, [])
        planned = self._planned.pop(nodeid, [])
        steps = list(ran)
        for step in planned[len(ran):]:
            steps.append({"keyword": step.keyword, "name": step.name, "line": step.line_number,
                          "outcome": "not run"})
        result.steps = steps
        timeline = self._timelines.pop(nodeid, None)
        if timeline is not None:
            result.timeline = timeline.to_json(self._started.get(nodeid))

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        result = self.results.get(nodeid)
        if result is None:
            return
        self._finish_scenario(result)
        done = sum(1 for r in self.results.values())
        reason = f"  ({result.reason})" if result.outcome != "passed" and result.reason else ""
        line = (f"[{done}/{self.total}] {result.outcome.upper():7} {' '.join(result.requirements):28} "
                f"{result.name} ({result.duration_s:.1f} s){reason}")
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.ensure_newline()
            terminal.write_line(line)

    # --- the summary -------------------------------------------------------------------------------

    def by_requirement(self) -> dict[str, dict[str, Any]]:
        table: dict[str, dict[str, Any]] = {}
        for requirement in REQUIREMENTS:
            rows = [r for r in self.official_results() if requirement in r.requirements]
            table[requirement] = {
                "passed": sum(r.outcome == "passed" for r in rows),
                "failed": sum(r.outcome == "failed" for r in rows),
                "skipped": sum(r.outcome == "skipped" for r in rows),
                "not_applicable": sum(r.outcome == "skipped" and r.reason.startswith(NOT_APPLICABLE)
                                      for r in rows),
                "scenarios": [r.name for r in rows],
                "notes": sorted({f"{r.outcome}: {r.name}: {r.reason}"
                                 for r in rows if r.outcome != "passed"}),
            }
            row = table[requirement]
            row["verdict"] = requirement_verdict(row["passed"], row["failed"], row["skipped"])
        return table

    def official_results(self) -> list[ScenarioResult]:
        """The scenarios that decide the verdict: meter-hil's own."""
        return [r for r in self.results.values() if r.official]

    def vendor_results(self) -> list[ScenarioResult]:
        """A vendor's own scenarios: reported, never part of the verdict."""
        return [r for r in self.results.values() if not r.official]

    def verdict(self) -> str:
        table = self.by_requirement()
        if any(row["failed"] for row in table.values()):
            return "FAIL"
        if any(not row["passed"] and (not row["scenarios"] or row["not_applicable"] < len(row["scenarios"]))
               for row in table.values()):
            return "INCOMPLETE"  # a requirement with nothing passed is not shown to hold
        # a requirement whose every scenario is not applicable to the meter model (a meter without
        # transactions and R-RECOVER) neither holds nor fails: the verdict is PASS on what applies
        return "PASS"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        write = terminalreporter.write_line
        write("")
        info = self.info
        write(f"Conformance summary: rig {info.rig_name}, model {info.model} ({info.rig_file}, "
              f"sha256 {info.rig_sha256[:16]}...), verdict {self.verdict()}")
        write(f"{'requirement':12} {'passed':>6} {'failed':>6} {'skipped':>7}")
        for requirement, row in self.by_requirement().items():
            write(f"{requirement:12} {row['passed']:6} {row['failed']:6} {row['skipped']:7}")
            for note in row["notes"]:
                write(f"    {note}")
        vendor = self.vendor_results()
        if vendor:
            passed = sum(r.outcome == "passed" for r in vendor)
            write(f"Own scenarios (not part of the verdict): {passed} of {len(vendor)} passed")
            for r in vendor:
                if r.outcome != "passed":
                    write(f"    {r.outcome}: {r.name}: {r.reason}")
        if self.out_dir is not None:
            write(f"Reports written to {self.out_dir}/ (summary.md, summary.json)")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.out_dir is None or not self.results:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "verdict": self.verdict(),
            "run": asdict(self.info),
            "wire_log": str(self.wire_log) if self.wire_log else None,
            "requirements": self.by_requirement(),
            "scenarios": [asdict(r) for r in self.official_results()],
            "vendor_scenarios": [asdict(r) for r in self.vendor_results()],
        }
        (self.out_dir / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
        (self.out_dir / "summary.md").write_text(self.markdown(data))

    def markdown(self, data: dict[str, Any]) -> str:
        info = self.info
        lines = [
            f"# Conformance report: {info.rig_name}",
            "",
            f"- Verdict: **{data['verdict']}**",
            f"- Rig file: `{info.rig_file}` (sha256 `{info.rig_sha256}`)",
            f"- Capabilities: {', '.join(info.capabilities) or 'none'}",
            f"- Meter model: `{info.model}`",
            f"- Driver: `{info.driver_class}`",
            f"- Versions: {', '.join(f'{k} {v}' for k, v in info.versions.items())}",
            f"- Identity seed: {info.seed}",
            f"- Started: {info.started_utc}",
            f"- Wire log: `{data['wire_log']}`" if data["wire_log"] else "- Wire log: none (no link proxy)",
            "",
            "## By requirement",
            "",
            "| requirement | passed | failed | skipped |",
            "|---|---|---|---|",
        ]
        for requirement, row in data["requirements"].items():
            lines.append(f"| {requirement} | {row['passed']} | {row['failed']} | {row['skipped']} |")
        lines += ["", "## Scenarios", "", "| scenario | requirements | outcome | reason |",
                  "|---|---|---|---|"]
        for r in self.official_results():
            reason = r.reason.replace("|", "\\|")
            lines.append(f"| {r.name} | {' '.join(r.requirements)} | {r.outcome} | {reason} |")
        vendor = self.vendor_results()
        if vendor:
            lines += ["", "## Own scenarios (not part of the verdict)", "",
                      "| scenario | feature | outcome | reason |", "|---|---|---|---|"]
            for r in vendor:
                reason = r.reason.replace("|", "\\|")
                lines.append(f"| {r.name} | {r.feature} | {r.outcome} | {reason} |")
        return "\n".join(lines) + "\n"


def _template(item: pytest.Item) -> Any:
    """pytest-bdd's scenario template behind a test item, None for a plain test."""
    return scenario_wrapper_template_registry.get(getattr(item, "obj", None))


def _is_scenario(item: pytest.Item) -> bool:
    return _template(item) is not None


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _failure_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.strip().splitlines()[0][:300] if text.strip() else "failed"
