"""Fault campaign: nothing lost or duplicated under any schedule of link drops and power losses.

    python -m campaign [--rig FILE] [--model NAME] [--schedules N] [--seed S] [--jobs J] [--replay FILE]

Runs on the rig a rig file describes (its driver: a class or driver.command; its model, or --model; its
EvseManager setting fail_on_powermeter_errors) with a simulated meter of that model. Prints a progress
line every few schedules and a summary; each failing schedule is printed as JSON (with its seed) and
saved under --failures so that `--replay FILE` (or a test) runs exactly that schedule again.
Exit status: 0 all schedules kept every promise, 1 some did not, 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import queue
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from campaign.report import Summary, failure_json
from campaign.runner import TIMINGS, CampaignRunner, RunnerConfig, ScheduleResult, Timing, campaign_protocol
from campaign.schedule import Schedule, ScheduleError, generate
from rigs.errors import RigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_RIG = "rigs/campaign.toml"


def run_schedules(schedules: list[Schedule], config: RunnerConfig) -> Iterator[ScheduleResult]:
    """Run schedules one after the other on one rig (one meter-sim, one driver)."""
    with CampaignRunner(config) as runner:
        for schedule in schedules:
            yield runner.run(schedule)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so each rig closes its meter-sim (and the one kept waiting)."""
    raise SystemExit(128 + signum)


def _worker(args: tuple[list[Schedule], RunnerConfig, Any]) -> None:
    schedules, config, results = args
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(level=logging.CRITICAL)  # the driver's warnings are expected here by the thousand
    try:
        for result in run_schedules(schedules, config):
            results.put(result)
    except RigError as exc:
        results.put(f"rig failed: {exc}")
    except Exception as exc:  # a bug of the rig itself: report it, the other rigs carry on
        results.put(f"rig failed: {type(exc).__name__}: {exc}")
    finally:
        results.put(None)


def run_campaign(schedules: list[Schedule], jobs: int, config: RunnerConfig, progress_every: int = 10,
                 out: TextIO = sys.stdout) -> Summary:
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
    interrupted = False
    try:
        while running:
            try:
                item = results.get(timeout=5)
            except queue.Empty:
                if not any(w.is_alive() for w in workers):
                    print("campaign: every rig process is gone", file=out, flush=True)
                    summary.crashes += 1
                    break
                continue
            if item is None:
                running -= 1
                continue
            if isinstance(item, str):
                summary.crashes += 1
                print(f"campaign: {item}", file=out, flush=True)
                continue
            summary.add(item)
            if not item.ok:
                print(f"FAILED schedule seed={item.schedule.seed} index={item.schedule.index}:\n"
                      f"{failure_json(item)}", file=out, flush=True)
            if summary.schedules % progress_every == 0 or summary.schedules == len(schedules):
                print(summary.progress(len(schedules), time.monotonic() - began), file=out, flush=True)
    except BaseException:  # Ctrl-C or SIGTERM: stop the rigs now, not after their schedules
        interrupted = True
        raise
    finally:
        for w in workers:
            if interrupted and w.is_alive():
                w.terminate()
            w.join(timeout=60)
            if w.is_alive():
                w.terminate()
                w.join(timeout=10)
    summary.seconds = time.monotonic() - began
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m campaign", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--rig", default=DEFAULT_RIG, metavar="FILE",
                   help="rig file: its driver and model; the meter must be simulated "
                        f"(default {DEFAULT_RIG})")
    p.add_argument("--model", help="meter model with transactions instead of the rig file's (docs/meters/)")
    p.add_argument("--schedules", type=int, default=100, help="how many schedules (default 100)")
    p.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    p.add_argument("--first", type=int, default=0, help="index of the first schedule (default 0)")
    p.add_argument("--jobs", type=int, default=2, help="rigs run in parallel, each with its own meter-sim")
    p.add_argument("--timing", choices=sorted(TIMINGS), default="fast",
                   help="meter-side timing: fast (speed 600, boot 0.1 s, signing 0.02 s, faults of "
                        "0.02-0.3 s; the default) or today (speed 60, the profile's 1 s boot and 0.2 s "
                        "signing, faults of 0.05-0.8 s, as before)")
    p.add_argument("--speed", type=float, help="meter-sim speed factor instead of the timing's")
    p.add_argument("--boot-delay", type=float, metavar="S",
                   help="meter boot delay (wall s) instead of the timing's")
    p.add_argument("--signing-delay", type=float, metavar="S",
                   help="meter signing delay (wall s) instead of the timing's")
    p.add_argument("--fail-on-powermeter-errors", choices=("true", "false"),
                   help="EvseManager's setting instead of the rig file's")
    p.add_argument("--failures", metavar="DIR", default="reports/campaign",
                   help="where failing schedules are saved as JSON (default reports/campaign)")
    p.add_argument("--replay", metavar="FILE", help="run the one schedule saved in FILE")
    p.add_argument("--json", metavar="FILE", help="also write the summary's figures as JSON to FILE")
    p.add_argument("--progress-every", type=int, default=10, metavar="N",
                   help="a progress line every N schedules")
    return p


def config_from_args(args: argparse.Namespace) -> RunnerConfig:
    """The runner's configuration from the command line; RigError for a bad rig file or model."""
    from rigs.spec import load_rig, with_model

    spec = load_rig(args.rig)
    if args.model:
        spec = with_model(spec, args.model)
    timing = TIMINGS[args.timing]
    timing = Timing(args.speed if args.speed is not None else timing.speed,
                    args.boot_delay if args.boot_delay is not None else timing.boot_delay,
                    args.signing_delay if args.signing_delay is not None else timing.signing_delay,
                    timing.fault_seconds)
    fail_on = None if args.fail_on_powermeter_errors is None else args.fail_on_powermeter_errors == "true"
    config = RunnerConfig(rig=spec, timing=timing, fail_on_powermeter_errors=fail_on)
    campaign_protocol(config)  # refused before any rig process starts
    return config


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a killed campaign leaves no rig running
    if args.schedules < 1 or args.jobs < 1 or args.progress_every < 1 or args.first < 0:
        parser.error("--schedules, --jobs and --progress-every must be positive, --first not negative")
    for name in ("speed", "boot_delay", "signing_delay"):
        value = getattr(args, name)
        if value is not None and not (value > 0 if name == "speed" else value >= 0):
            least = "positive" if name == "speed" else "at least 0"
            parser.error(f"--{name.replace('_', '-')} must be {least}")
    try:
        config = config_from_args(args)
    except RigError as exc:
        print(f"campaign: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from driver.protocols import PROTOCOLS

    kinds = tuple(p.kind for p in PROTOCOLS[config.model].requests)
    if args.replay:
        try:
            schedules = [Schedule.load(args.replay)]
        except ScheduleError as exc:
            print(f"campaign: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        schedules = [generate(args.seed, i, kinds, config.timing.fault_seconds)
                     for i in range(args.first, args.first + args.schedules)]
    t = config.timing
    print(f"campaign: {len(schedules)} schedule(s) on {config.rig.path} ({config.rig.driver.described}), "
          f"model {config.model}, seed {args.seed}, {args.jobs} job(s), speed {t.speed:g}, boot delay "
          f"{'profile' if t.boot_delay is None else f'{t.boot_delay:g} s'}, signing delay "
          f"{'profile' if t.signing_delay is None else f'{t.signing_delay:g} s'}, faults of "
          f"{t.fault_seconds[0]:g}-{max(t.fault_seconds[1:]):g} s, "
          f"fail_on_powermeter_errors {str(config.stop_on_errors).lower()}", flush=True)
    summary = run_campaign(schedules, min(args.jobs, len(schedules)), config, args.progress_every)
    if summary.failures:
        out = Path(args.failures)
        out.mkdir(parents=True, exist_ok=True)
        for result in summary.failures:
            path = out / f"schedule-{config.model}-{result.schedule.seed}-{result.schedule.index}.json"
            path.write_text(failure_json(result) + "\n", encoding="utf-8")
            print(f"saved {path} (replay: python -m campaign --rig {args.rig} --model {config.model} "
                  f"--replay {path})")
    print(summary.text())
    if args.json:
        figures = {"rig": str(config.rig.path), "model": config.model, "seed": args.seed,
                   "timing": dataclasses.asdict(config.timing), **summary.to_json()}
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    ok = summary.failed == 0 and summary.crashes == 0 and summary.schedules == len(schedules)
    return EXIT_OK if ok else EXIT_FAILED
