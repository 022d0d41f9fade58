"""`make conformance-all` as a benchmark: the conformance suite on every simulated model, two at a time,
wall time and each run's peak memory, against issue 14's goal (under 4 minutes on 2 cores).

It runs rigs.conformance_all (the same command as `make conformance-all`) into reports/bench-conformance-all/
and reads back its reports/.../conformance-all.json (per model: exit, seconds, peak RSS from wait4).

    python bench/conformance_all.py [--quick | --full] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchlib import ROOT, BenchError, print_table, size_args, write_report

GOAL_S = 240.0
REPORTS = ROOT / "reports" / "bench-conformance-all"


def run(jobs: int) -> dict[str, object]:
    """One conformance-all run; its figures."""
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "rigs.conformance_all", "--jobs", str(jobs), "--reports",
                           str(REPORTS)], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    path = REPORTS / "conformance-all.json"
    if not path.exists():
        raise BenchError(f"rigs.conformance_all wrote no {path}: {done.stdout[-400:]}{done.stderr[-400:]}")
    data = json.loads(path.read_text())
    models = data["models"]
    rows = [[m, r["exit"], r["seconds"], r["peak_rss_mib"]] for m, r in sorted(models.items())]
    peak = max(r["peak_rss_mib"] for r in models.values())
    met = wall < GOAL_S and data["all_pass"]
    print_table(f"conformance-all: {len(models)} models, {jobs} at a time, {wall:.0f} s wall "
                f"(load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after); peak memory is "
                "the largest resident set of one process of a model's run (ru_maxrss via wait4)",
                ["model", "exit", "seconds", "peak MiB"], rows)
    verdict = "met" if met else (f"gap {wall - GOAL_S:.0f} s" if data["all_pass"] else "a model failed")
    print(f"goal: every model under {GOAL_S:.0f} s on 2 cores, all passing: {verdict} "
          f"({wall:.0f} s, peak {peak:.0f} MiB)")
    return {"jobs": jobs, "wall_s": wall, "goal_s": GOAL_S, "goal_met": met, "all_pass": data["all_pass"],
            "peak_rss_mib": peak, "models": models, "load_average_1min": load_before}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    parser.add_argument("--jobs", type=int, default=2, help="models at a time (default 2)")
    args = parser.parse_args(argv)
    try:
        figures = run(args.jobs)
    except BenchError as exc:
        print(f"conformance_all: {exc}", file=sys.stderr)
        return 1
    path = write_report("conformance_all", figures)
    print(f"\nfigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
