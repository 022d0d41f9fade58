"""`make fuzz`: each target in turn for a budget, then one table of inputs tried, speed, coverage and
crashes.

    python -m fuzz.run [--budget 45 | --budget 1000000runs] [--out reports/fuzz] [--seed 1] [TARGET ...]

A budget is seconds a target (libFuzzer's -max_total_time) or, ending in "runs", inputs a target
(-runs). Crashes do not stop a target (FUZZ_KEEP_GOING): each distinct one is saved once under
OUT/crashes/<target>/ and counted; the corpus grows in OUT/<target>/corpus from the target's seeds.
Exit status 1 when any target found a crash, 2 when a target failed to run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TARGETS = ("sim_rtu", "driver_answers", "ocmf", "rig_file")
ROOT = Path(__file__).resolve().parents[1]
EXTRA_FLAGS = {
    "driver_answers": ["-max_len=4096"],  # a record read back: 1 kB (reference) to 4 kB (EM580, cut)
    "rig_file": [f"-dict={ROOT / 'fuzz' / 'dicts' / 'rig_file.dict'}"],
}


@dataclass
class Result:
    """One target's run, as libFuzzer and the crash log report it."""

    target: str
    inputs: int
    seconds: float
    exec_per_s: int
    cov: int
    ft: int
    corpus: int
    unique_crashes: int
    crashing_inputs: int
    exit_status: int


def budget_flags(budget: str) -> list[str]:
    """libFuzzer's flags for a budget: "45" seconds or "1000000runs" inputs."""
    if budget.endswith("runs") and budget[:-4].isdigit():
        return [f"-runs={int(budget[:-4])}"]
    if budget.isdigit():
        return [f"-max_total_time={int(budget)}"]
    raise SystemExit(f"fuzz: budget {budget!r}: seconds (45) or inputs ending in runs (1000000runs)")


def run_target(target: str, budget: str, out: Path, seed: int) -> Result:
    """Write the target's seeds, run it, and read its figures back."""
    work = out / target
    seeds, corpus = work / "seeds", work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    subprocess.run([python, "-m", f"fuzz.{target}", "--write-seeds", str(seeds)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = work / "libfuzzer.log"
    env = {**os.environ, "FUZZ_KEEP_GOING": str(out / "crashes")}
    command = [python, "-m", f"fuzz.{target}", *budget_flags(budget), f"-seed={seed}", "-print_final_stats=1",
               f"-artifact_prefix={work}/", *EXTRA_FLAGS.get(target, []), str(corpus), str(seeds)]
    print(f"==fuzz== {target}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    with log.open("w") as handle:
        status = subprocess.run(command, cwd=ROOT, env=env, stdout=handle,
                                stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    inputs = _last_int(r"stat::number_of_executed_units:\s*(\d+)", text)
    speed = _last_int(r"stat::average_exec_per_sec:\s*(\d+)", text)
    cov = _last_int(r"\bcov: (\d+)", text)
    ft = _last_int(r"\bft: (\d+)", text)
    corp = _last_int(r"\bcorp: (\d+)/", text)
    stats_path = out / "crashes" / f"{target}.json"
    stats = {"crashes": {}, "crashing_inputs": 0}
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
    for key, entry in stats["crashes"].items():
        print(f"==fuzz== {target}: crash {key} x{entry['count']}: {entry['message'][:200]}\n"
              f"         input {out / 'crashes' / target / entry['input']}", flush=True)
    return Result(target, inputs, round(seconds, 1), speed, cov, ft, corp, len(stats["crashes"]),
                  int(stats["crashing_inputs"]), status)


def _last_int(pattern: str, text: str) -> int:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else 0


def table(results: list[Result]) -> str:
    """The results as a Markdown table."""
    lines = ["| target | inputs | s | exec/s | cov | ft | corpus | crashes (unique / inputs) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.target} | {r.inputs:,} | {r.seconds:g} | {r.exec_per_s:,} | {r.cov} | {r.ft} | "
                     f"{r.corpus} | {r.unique_crashes} / {r.crashing_inputs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--budget", default=os.environ.get("FUZZ_BUDGET") or "45")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "fuzz")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    budget_flags(args.budget)
    for target in args.targets:
        if target not in TARGETS:
            parser.error(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    out = args.out.resolve()
    results = [run_target(target, args.budget, out, args.seed) for target in args.targets or TARGETS]
    print()
    print(table(results))
    summary = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "budget": args.budget,
               "seed": args.seed, "results": [asdict(r) for r in results]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{out / 'summary.json'}")
    if any(r.exit_status != 0 or r.inputs == 0 for r in results):
        return 2
    return 1 if any(r.unique_crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
