"""`make conformance-all`: the conformance suite on the virtual rig once a meter model, and one verdict
table (model x requirement) at the end.

Each model's run is its own pytest process with its own reports directory (reports/<model>/), so the
reports stay apart; the table is read back from each run's summary.json, the suite's own record. Each run's
peak memory is the largest resident set any one process of its tree reached (ru_maxrss from wait4 on that
one child: the pytest process and the meter-sim processes it reaped; a maximum, not a sum), so runs in
parallel are measured apart; the table and reports/conformance-all.json give it beside the wall time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from meter_hil_suite import SCENARIOS_MODULE

ROOT = Path(__file__).resolve().parent.parent
SUITE = SCENARIOS_MODULE  # the official scenarios, from the installed package


def simulated_models() -> list[str]:
    """The models both sides know: a simulator profile and a driver protocol of the same name."""
    from driver.protocols import PROTOCOLS
    from simulator.profile import known_models

    return [name for name in known_models() if name in PROTOCOLS]


def run_model(model: str, rig: str, reports: Path) -> tuple[int, float, float]:
    """Run the suite on one model; its exit code, wall seconds and peak memory (MiB, the largest resident
    set of the pytest process and its reaped children). Output goes to reports/<model>/run.log."""
    out = reports / model
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rig", rig,
               "--model", model, "--conformance-reports", str(out), f"--junitxml={out / 'junit.xml'}",
               f"--cucumberjson={out / 'cucumber.json'}", str(SUITE)]
    started = time.monotonic()
    with (out / "run.log").open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not every child's
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.monotonic() - started, usage.ru_maxrss / 1024  # Linux: KiB


def verdict_table(models: list[str], reports: Path,
                  peaks: dict[str, float] | None = None) -> tuple[list[str], bool]:
    """Lines of the model x requirement table (with each run's peak memory), and whether every model
    passed."""
    peaks = peaks or {}
    summaries: dict[str, dict] = {}
    for model in models:
        path = reports / model / "summary.json"
        summaries[model] = json.loads(path.read_text()) if path.exists() else {}
    requirements = sorted({r for s in summaries.values() for r in s.get("requirements", {})})
    width = max(len(m) for m in models) + 2
    lines = [f"{'model':{width}}" + "".join(f"{r:>13}" for r in requirements) + f"{'verdict':>13}"
             + f"{'peak MiB':>10}"]
    all_pass = True
    for model, summary in summaries.items():
        verdict = summary.get("verdict", "NO REPORT")
        all_pass &= verdict == "PASS"
        cells = []
        for requirement in requirements:
            row = summary.get("requirements", {}).get(requirement)
            if row is None:
                cells.append("-")
            elif row["failed"]:
                cells.append(f"FAIL {row['failed']}")
            elif row["passed"]:
                cells.append(f"PASS {row['passed']}")
            elif row.get("not_applicable", 0) == len(row["scenarios"]):
                cells.append("n/a")
            else:
                cells.append("SKIP")
        peak = f"{peaks[model]:.0f}" if model in peaks else "-"
        lines.append(f"{model:{width}}" + "".join(f"{c:>13}" for c in cells) + f"{verdict:>13}{peak:>10}")
    return lines, all_pass


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when every model passes, 1 when one does not."""
    parser = argparse.ArgumentParser(prog="python -m rigs.conformance_all",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rig", default=str(ROOT / "rigs" / "virtual.toml"),
                        help="rig file (a simulated meter)")
    parser.add_argument("--reports", default=str(ROOT / "reports"), help="reports/<model>/ go here")
    parser.add_argument("--models", nargs="*", help="models to run (default: every simulated model)")
    parser.add_argument("--skip", nargs="*", default=[], help="models not to run")
    parser.add_argument("--jobs", type=int, default=1, help="models run at once (default 1)")
    args = parser.parse_args(argv)
    models = [m for m in (args.models or simulated_models()) if m not in args.skip]
    if not models or args.jobs < 1:
        parser.error("no model to run" if not models else "--jobs must be at least 1")
    reports = Path(args.reports)
    print(f"conformance-all: {len(models)} models ({', '.join(models)}), {args.jobs} at a time", flush=True)
    started = time.monotonic()
    runs: dict[str, dict[str, float]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_model, model, args.rig, reports): model for model in models}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            model = futures[future]
            code, seconds, peak = future.result()
            runs[model] = {"exit": code, "seconds": seconds, "peak_rss_mib": peak}
            print(f"[{done}/{len(models)}] {model}: exit {code} in {seconds:.0f} s, peak {peak:.0f} MiB "
                  f"(log: {reports / model / 'run.log'})", flush=True)
    total = time.monotonic() - started
    worst = max(runs, key=lambda m: runs[m]["peak_rss_mib"])
    print(f"conformance-all: {total:.0f} s in all, {args.jobs} at a time; peak memory of a run "
          f"{runs[worst]['peak_rss_mib']:.0f} MiB ({worst})")
    lines, all_pass = verdict_table(models, reports, {m: r["peak_rss_mib"] for m, r in runs.items()})
    print()
    print("\n".join(lines))
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "conformance-all.json").write_text(json.dumps(
        {"jobs": args.jobs, "seconds": total, "load_average_1min": os.getloadavg()[0], "models": runs,
         "all_pass": all_pass}, indent=2, sort_keys=True) + "\n")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
