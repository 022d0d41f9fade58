"""Fault campaign: nothing lost or duplicated under any schedule of link drops and power losses.

    python -m rigs.campaign [--schedules N] [--seed S] [--jobs J] [--failures DIR] [--replay FILE]

Prints a progress line every few schedules and a summary; each failing schedule is printed as JSON (with
its seed) and saved under --failures so that `--replay FILE` (or a test) runs exactly that schedule again.
Exit status: 0 all schedules kept every promise, 1 some did not, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import queue
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rigs.campaign_runner import CampaignRunner, RunnerConfig, ScheduleResult
from rigs.campaign_schedule import Schedule, ScheduleError, generate
from rigs.errors import RigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass
class Summary:
    """Totals over a campaign."""

    schedules: int = 0
    failed: int = 0
    transactions: int = 0
    lost: int = 0
    duplicated: int = 0
    crashes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    points: Counter[str] = field(default_factory=Counter)
    faults_unfired: int = 0
    seconds: float = 0.0
    failures: list[ScheduleResult] = field(default_factory=list)

    def add(self, result: ScheduleResult) -> None:
        self.schedules += 1
        self.transactions += result.transactions
        self.lost += result.lost
        self.duplicated += result.duplicated
        self.crashes += result.crashes
        self.faults.update(result.faults_fired)
        self.points.update(result.points_fired)
        self.faults_unfired += result.faults_unfired
        if not result.ok:
            self.failed += 1
            self.failures.append(result)

    def text(self) -> str:
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"schedules run: {self.schedules} (failed {self.failed}) in {self.seconds:.0f} s\n"
            f"faults injected: {sum(self.faults.values())} ({by_kind}); armed but not reached: "
            f"{self.faults_unfired}\n"
            f"fault points: {', '.join(f'{k} {v}' for k, v in sorted(self.points.items())) or 'none'}\n"
            f"transactions: {self.transactions}; lost: {self.lost}; duplicated: {self.duplicated}; "
            f"crashes: {self.crashes}"
        )


def failure_json(result: ScheduleResult) -> str:
    """The replayable report of one failing schedule."""
    return json.dumps({"schedule": result.schedule.to_json(), "violations": result.violations}, indent=1)


def run_schedules(schedules: list[Schedule], config: RunnerConfig | None = None) -> Iterator[ScheduleResult]:
    """Run schedules one after the other on one rig (one meter-sim, one driver)."""
    with CampaignRunner(config) as runner:
        for schedule in schedules:
            yield runner.run(schedule)


def _worker(args: tuple[list[Schedule], RunnerConfig, multiprocessing.Queue]) -> None:  # type: ignore[type-arg]
    schedules, config, results = args
    logging.basicConfig(level=logging.ERROR)  # the driver's warnings are expected here by the thousand
    try:
        for result in run_schedules(schedules, config):
            results.put(result)
    except RigError as exc:
        results.put(f"rig failed: {exc}")
    except Exception as exc:  # a bug of the rig itself: report it, the other rigs carry on
        results.put(f"rig failed: {type(exc).__name__}: {exc}")
    finally:
        results.put(None)


def run_campaign(
    schedules: list[Schedule],
    jobs: int,
    config: RunnerConfig,
    progress_every: int = 10,
    out: object = sys.stdout,
) -> Summary:
    """Run schedules on `jobs` rigs in parallel (each its own meter-sim); print progress; the summary."""
    summary = Summary()
    began = time.monotonic()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    shares = [schedules[i::jobs] for i in range(jobs)]
    workers = [context.Process(target=_worker, args=((share, config, results),)) for share in shares if share]
    for w in workers:
        w.start()
    running = len(workers)
    try:
        while running:
            try:
                item = results.get(timeout=5)
            except queue.Empty:
                if not any(w.is_alive() for w in workers):
                    print("campaign: every rig process is gone", file=out, flush=True)  # type: ignore[call-overload]
                    summary.crashes += 1
                    break
                continue
            if item is None:
                running -= 1
                continue
            if isinstance(item, str):
                summary.crashes += 1
                print(f"campaign: {item}", file=out, flush=True)  # type: ignore[call-overload]
                continue
            summary.add(item)
            if not item.ok:
                print(
                    f"FAILED schedule seed={item.schedule.seed} index={item.schedule.index}:\n"
                    f"{failure_json(item)}",
                    file=out,
                    flush=True,
                )  # type: ignore[call-overload]
            if summary.schedules % progress_every == 0 or summary.schedules == len(schedules):
                print(
                    f"[{summary.schedules}/{len(schedules)}] {time.monotonic() - began:6.0f} s  "
                    f"tx {summary.transactions}  faults {sum(summary.faults.values())}  lost {summary.lost}  "
                    f"dup {summary.duplicated}  crashes {summary.crashes}  failed {summary.failed}",
                    file=out,
                    flush=True,
                )  # type: ignore[call-overload]
    finally:
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.terminate()
                w.join(timeout=10)
    summary.seconds = time.monotonic() - began
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rigs.campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("--schedules", type=int, default=100, help="how many schedules (default 100)")
    p.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    p.add_argument("--first", type=int, default=0, help="index of the first schedule (default 0)")
    p.add_argument("--jobs", type=int, default=2, help="rigs run in parallel, each with its own meter-sim")
    p.add_argument(
        "--speed", type=float, default=60.0, help="meter-sim speed factor (default 60)"
    )
    p.add_argument("--model", default="reference",
                   help="meter model with transactions (docs/meters/; default reference)")
    p.add_argument(
        "--failures",
        metavar="DIR",
        default="reports/campaign",
        help="where failing schedules are saved as JSON (default reports/campaign)",
    )
    p.add_argument("--replay", metavar="FILE", help="run the one schedule saved in FILE")
    p.add_argument(
        "--progress-every", type=int, default=10, metavar="N", help="a progress line every N schedules"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.schedules < 1 or args.jobs < 1 or args.progress_every < 1 or args.first < 0:
        parser.error("--schedules, --jobs and --progress-every must be positive, --first not negative")
    if not args.speed > 0:
        parser.error("--speed must be positive")
    if args.replay:
        try:
            schedules = [Schedule.load(args.replay)]
        except ScheduleError as exc:
            print(f"campaign: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        schedules = [generate(args.seed, i) for i in range(args.first, args.first + args.schedules)]
    from driver.protocols import PROTOCOLS

    protocol = PROTOCOLS.get(args.model)
    if protocol is None or "transactions" not in protocol.features:
        with_tx = [name for name, p in PROTOCOLS.items() if "transactions" in p.features]
        parser.error(f"--model {args.model!r}: not a meter model with transactions ({', '.join(with_tx)})")
    config = RunnerConfig(model=args.model, speed=args.speed)
    print(
        f"campaign: {len(schedules)} schedule(s), model {args.model}, seed {args.seed}, {args.jobs} job(s), "
        f"speed {args.speed:g}",
        flush=True,
    )
    summary = run_campaign(schedules, min(args.jobs, len(schedules)), config, args.progress_every)
    if summary.failures:
        out = Path(args.failures)
        out.mkdir(parents=True, exist_ok=True)
        for result in summary.failures:
            path = out / f"schedule-{result.schedule.seed}-{result.schedule.index}.json"
            path.write_text(failure_json(result) + "\n", encoding="utf-8")
            print(f"saved {path} (replay: python -m rigs.campaign --replay {path})")
    print(summary.text())
    ok = summary.failed == 0 and summary.crashes == 0 and summary.schedules == len(schedules)
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
