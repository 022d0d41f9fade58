"""The campaign's wall time a schedule: today's meter-side timing and the fast one, side by side.

Both rigs run at once, the same seeded schedules interleaved (schedule i on the today rig, then on the
fast rig), so the machine's load falls on both alike. Prints the median seconds a schedule of each and
their ratio. The driver timing is the rig file's for both (rigs/campaign.toml by default).

    .venv/bin/python bench/campaign_speed.py [--schedules 30] [--seed 1] [--model reference] [--rig FILE]
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", default="reference")
    p.add_argument("--rig", default=str(ROOT / "rigs" / "campaign.toml"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    spec = with_model(load_rig(args.rig), args.model)
    kinds = tuple(r.kind for r in PROTOCOLS[args.model].requests)
    seconds: dict[str, list[float]] = {"today": [], "fast": []}
    failed = {"today": 0, "fast": 0}
    with CampaignRunner(RunnerConfig(rig=spec, timing=TIMINGS["today"])) as today, \
            CampaignRunner(RunnerConfig(rig=spec, timing=TIMINGS["fast"])) as fast:
        for i in range(args.schedules):
            schedule = generate(args.seed, i, kinds)
            for name, runner in (("today", today), ("fast", fast)):
                result = runner.run(schedule)
                seconds[name].append(result.seconds)
                failed[name] += not result.ok
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"campaign speed, model {args.model}, {args.schedules} schedules (seed {args.seed}), interleaved")
    print("| timing | median s a schedule | mean | failed schedules |")
    print("|---|---|---|---|")
    for name in ("today", "fast"):
        print(f"| {name} | {medians[name]:.2f} | {statistics.mean(seconds[name]):.2f} | {failed[name]} |")
    print(f"ratio today / fast (median): {medians['today'] / medians['fast']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
