"""The campaign's wall time a schedule: today's timing and the fast one, side by side.

Both rigs run at once, the same seeded schedules interleaved (schedule i on the today rig, then on the
fast rig), so the machine's load falls on both alike. Prints the median seconds a schedule of each and
their ratio. "today" is the campaign as it ran before (rigs/campaign*.py): speed 60, the profile's boot
and signing delays, faults of 0.05-0.8 s, a new meter-sim process at every kill, and the driver's busy
poll of 50 ms; "fast" is rigs/campaign.toml as it is. The
schedules are the same sessions and fault points; only the fault durations differ with the timing.

    .venv/bin/python bench/campaign_speed.py [--schedules 30] [--seed 1] [--model reference] [--rig FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from campaign.runner import TIMINGS, CampaignRunner, RunnerConfig  # noqa: E402
from campaign.schedule import generate  # noqa: E402
from driver.protocols import PROTOCOLS  # noqa: E402
from rigs.spec import load_rig, with_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--schedules", type=int, default=30)
    p.add_argument("--quick", action="store_const", const=12, dest="schedules",
                   help="12 schedules (make bench's default sizes)")
    p.add_argument("--full", action="store_const", const=60, dest="schedules", help="60 schedules")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", default="reference")
    p.add_argument("--rig", default=str(ROOT / "rigs" / "campaign.toml"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    spec = with_model(load_rig(args.rig), args.model)
    before = {**spec.driver.settings, "busy_poll": 0.05}
    spec_today = dataclasses.replace(spec, driver=dataclasses.replace(spec.driver, settings=before))
    kinds = tuple(r.kind for r in PROTOCOLS[args.model].requests)
    seconds: dict[str, list[float]] = {"today": [], "fast": []}
    failed = {"today": 0, "fast": 0}
    today_config = RunnerConfig(rig=spec_today, timing=TIMINGS["today"], standby_meter=False)
    with CampaignRunner(today_config) as today, CampaignRunner(RunnerConfig(rig=spec)) as fast:
        for i in range(args.schedules):
            for name, runner in (("today", today), ("fast", fast)):
                result = runner.run(generate(args.seed, i, kinds, runner.config.timing.fault_seconds))
                seconds[name].append(result.seconds)
                failed[name] += not result.ok
                for violation in result.violations:
                    print(f"{name} schedule {i}: {violation}", file=sys.stderr, flush=True)
            if (i + 1) % 10 == 0:
                print(f"[{i + 1}/{args.schedules}] median today {statistics.median(seconds['today']):.2f} s, "
                      f"fast {statistics.median(seconds['fast']):.2f} s", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"campaign speed, model {args.model}, {args.schedules} schedules (seed {args.seed}), interleaved")
    print("| timing | median s a schedule | mean | failed schedules |")
    print("|---|---|---|---|")
    for name in ("today", "fast"):
        print(f"| {name} | {medians[name]:.2f} | {statistics.mean(seconds[name]):.2f} | {failed[name]} |")
    ratio = medians["today"] / medians["fast"]
    gap = medians["fast"] - medians["today"] / 5
    verdict = "met" if ratio >= 5 else f"NOT met (the gap: {gap:.2f} s a schedule)"
    print(f"ratio today / fast (median): {ratio:.2f}; goal >= 5: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
