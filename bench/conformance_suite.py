"""The conformance suite on the virtual rig: wall time, peak memory, and the highest speed it passes at.

`pytest features` runs as a subprocess on rigs/virtual.toml (goal: under 2 minutes on 2 cores). Peak
memory is taken two ways: /proc polled every 50 ms summing the RSS of the whole process tree (pytest and
every meter-sim it starts), and getrusage(RUSAGE_CHILDREN).ru_maxrss (the largest single process).
The speed search reruns the suite with the rig's meter.speed overridden (a copy of the rig file with
only that line changed; the rig file is the rig's interface) and counts a factor as passing when every
scenario that passed at the rig's own speed passes again.

    python bench/conformance_suite.py [--quick | --full]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import ROOT, BenchError, print_table, size_args, write_report

from rigs import RigError, load_rig

VIRTUAL_RIG = ROOT / "rigs" / "virtual.toml"
SAMPLE_S = 0.05
RUN_TIMEOUT_S = 900.0
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
GOAL_WALL_S = 120.0
# Searched upwards from the rig's own speed (factors at or below it are left out); the search stops at
# the first factor that loses a scenario.
QUICK_FACTORS = [300.0, 1200.0]
FULL_FACTORS = [120.0, 300.0, 600.0, 1200.0, 3600.0, 10000.0]


@dataclass
class SuiteRun:
    """One run of `pytest features`: outcome of each scenario, wall time, peak memory of the tree."""

    speed: float
    exit_code: int
    wall_s: float
    peak_tree_rss_mb: float
    outcomes: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)  # passed at the rig's speed, failed here and on a rerun
    flaky: list[str] = field(default_factory=list)  # the same, but passed on the rerun

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    @property
    def passed(self) -> set[str]:
        return {name for name, o in self.outcomes.items() if o == "passed"}


def rig_with_speed(speed: float, directory: Path) -> Path:
    """A copy of the virtual rig with meter.speed set to `speed`, checked by the rig loader."""
    text = VIRTUAL_RIG.read_text()
    changed, n = re.subn(r"(?m)^speed\s*=\s*[0-9.eE+-]+", f"speed = {float(speed)!r}", text)
    if n != 1:
        raise BenchError(f"{VIRTUAL_RIG}: expected one 'speed = ...' line to override, found {n}")
    path = directory / f"virtual-speed-{speed:g}.toml"
    path.write_text(changed)
    try:
        loaded = load_rig(path).meter.speed
    except RigError as exc:
        raise BenchError(f"the speed override made a bad rig file: {exc}") from None
    if loaded != speed:
        raise BenchError(f"{path}: meter.speed reads back as {loaded}, not {speed}")
    return path


def tree_rss_kb(root: int) -> int:
    """Resident memory of `root` and all its descendants, from /proc (processes may vanish meanwhile)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
    return total


def outcomes_from_junit(path: Path) -> dict[str, str]:
    """Scenario name -> passed / failed / skipped, from pytest's JUnit XML."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as exc:
        raise BenchError(f"no readable JUnit report from the suite ({path}): {exc}") from None
    outcomes = {}
    for case in tree.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("skipped") is not None:
            outcomes[name] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes[name] = "failed"
        else:
            outcomes[name] = "passed"
    return outcomes


def node_id(name: str) -> str:
    """pytest's node id of a JUnit "classname::name" (classname is the dotted module, maybe a class)."""
    classname, _, test = name.partition("::")
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        module = "/".join(parts[:i]) + ".py"
        if (ROOT / module).exists():
            return "::".join([module, *parts[i:], test])
    raise BenchError(f"cannot find the test file of {name}")


def run_suite(rig: Path, speed: float, workdir: Path, targets: tuple[str, ...] = ("features/scenarios.py",),
              tag: str = "") -> SuiteRun:
    """Run pytest on `targets` (the whole suite by default) with `rig`, sampling the tree's memory."""
    junit = workdir / f"junit-{speed:g}{tag}.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets, "--rig", str(rig),
               f"--junitxml={junit}"]
    log = workdir / f"pytest-{speed:g}{tag}.log"
    with open(log, "wb") as out:
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        peak = 0
        try:
            while True:
                peak = max(peak, tree_rss_kb(process.pid))
                try:
                    code = process.wait(timeout=SAMPLE_S)  # the sampling tick
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() - start > RUN_TIMEOUT_S:
                        raise BenchError(f"the suite at speed {speed:g} ran over {RUN_TIMEOUT_S:.0f} s") \
                            from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # our own session: pytest and its meter-sims
                process.wait()
        wall = time.monotonic() - start
    if code not in (0, 1):  # 1: some scenario failed; anything else: the suite itself could not run
        tail = log.read_text(errors="replace")[-1500:]
        raise BenchError(f"pytest features at speed {speed:g} exited {code}:\n{tail}")
    return SuiteRun(speed, code, wall, peak / 1024, outcomes_from_junit(junit))


def parse_factors(text: str) -> list[float]:
    """Comma-separated positive speed factors, ascending; argparse error naming the bad one."""
    try:
        factors = sorted(float(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed factors must be numbers, not {text!r}") from None
    if not factors or factors[0] <= 0:
        raise argparse.ArgumentTypeError(f"speed factors must be positive, not {text!r}")
    return factors


def run(full: bool, factors: list[float] | None = None) -> dict[str, Any]:
    base_speed = load_rig(VIRTUAL_RIG).meter.speed
    if factors is None:
        factors = FULL_FACTORS if full else QUICK_FACTORS
    factors = [f for f in factors if f > base_speed]
    with tempfile.TemporaryDirectory(prefix="bench-conformance-") as tmp:
        workdir = Path(tmp)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        base = run_suite(VIRTUAL_RIG, base_speed, workdir)
        largest_mb: float | None = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if before:
            largest_mb = None  # an earlier child of this process may hold the maximum
        runs = [base]
        highest = base_speed
        for factor in factors:
            rig = rig_with_speed(factor, workdir)
            result = run_suite(rig, factor, workdir)
            runs.append(result)
            failed = sorted(base.passed - result.passed)
            if failed:  # rerun those alone once: a flake passes, a failure the speed causes does not
                rerun = run_suite(rig, factor, workdir, tuple(node_id(n) for n in failed), "-rerun")
                result.flaky = [n for n in failed if n in rerun.passed]
                result.lost = [n for n in failed if n not in rerun.passed]
                if result.flaky:
                    print(f"speed {factor:g}: failed, then passed on a rerun (flaky, not counted): "
                          + "; ".join(n.split("::")[-1] for n in result.flaky))
            if result.lost:
                print(f"speed {factor:g}: {len(result.lost)} scenario(s) that pass at {base_speed:g} fail "
                      "twice: " + "; ".join(n.split("::")[-1] for n in result.lost))
                break
            highest = factor
    rows, figures = [], []
    for r in runs:
        figures.append({"speed": r.speed, "wall_s": r.wall_s, "passed": r.count("passed"),
                        "failed": r.count("failed"), "skipped": r.count("skipped"),
                        "peak_tree_rss_mb": r.peak_tree_rss_mb, "lost_vs_base": r.lost, "flaky": r.flaky,
                        "failed_scenarios": sorted(n for n, o in r.outcomes.items() if o == "failed")})
        rows.append([r.speed, r.wall_s, r.count("passed"), r.count("failed"), r.count("skipped"), len(r.lost),
                     len(r.flaky), r.peak_tree_rss_mb, base.wall_s / r.wall_s])
    print_table(f"pytest features on the virtual rig (speed {base_speed:g} is the rig's own; the others "
                "override meter.speed); 'lost' = passing at the rig's speed, failing here and on a rerun; "
                "'flaky' = failing here, passing on the rerun",
                ["speed", "wall s", "passed", "failed", "skipped", "lost", "flaky", "peak tree MB",
                 "x faster"], rows)
    print(f"\nwall time at the rig's speed: {base.wall_s:.1f} s (goal < {GOAL_WALL_S:.0f} s: "
          f"{'met' if base.wall_s < GOAL_WALL_S else 'NOT met'}); peak memory: whole tree "
          f"{base.peak_tree_rss_mb:.0f} MB "
          f"(/proc, {SAMPLE_S * 1e3:.0f} ms samples), largest single process "
          f"{'?' if largest_mb is None else f'{largest_mb:.0f}'} MB (RUSAGE_CHILDREN)")
    print(f"highest speed factor passing: {highest:g} (searched {', '.join(f'{f:g}' for f in factors)})")
    if base.count("failed"):
        print(f"note: {base.count('failed')} scenario(s) fail at the rig's own speed: "
              + "; ".join(n.split("::")[-1] for n in figures[0]["failed_scenarios"]))
    return {"rig_speed": base_speed, "factors_searched": factors, "highest_passing_speed": highest,
            "wall_s_at_rig_speed": base.wall_s, "wall_goal_met": base.wall_s < GOAL_WALL_S,
            "peak_tree_rss_mb": base.peak_tree_rss_mb, "largest_process_rss_mb": largest_mb, "runs": figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    parser.add_argument("--factors", type=parse_factors, metavar="F,F,...",
                        help=f"speed factors to search (quick: {QUICK_FACTORS}, full: {FULL_FACTORS})")
    args = parser.parse_args(argv)
    try:
        figures = run(args.full, args.factors)
    except (BenchError, RigError) as exc:
        print(f"conformance_suite: {exc}", file=sys.stderr)
        return 1
    path = write_report("conformance_suite", figures)
    print(f"\nfigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
