"""Time compression: simulated seconds per wall second in virtual time (simpy, no wall clock).

MeterModels with the EV charging profile on one simpy Environment, as a long simulation runs them:
1 meter and 247 meters (a full Modbus bus), each left alone and polled through its register map
(RegisterMap.read, the work a Modbus read costs the meter without the serial port). Real time (what
a user has with a physical meter) is 1 simulated second per wall second; the virtual rig runs at 60.
Each run checks its result: every meter's energy equals the profile's exact integral.

    python bench/time_compression.py [--quick | --full]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy
from benchlib import BenchError, print_table, size_args, write_report

from simulator import LoadProfile, MeterModel, RegisterMap, load_profile

DAY_S = 86400.0
BUS_SIZE = 247
MEASUREMENTS = (0x0100, 60)
DATASET = (MEASUREMENTS, (0x0200, 8), (0x0300, 4))  # what the driver reads for one Powermeter dataset
WIRE_CYCLE_19200_S = (8 + 3.5 + 5 + 2 * 60 + 3.5) * 11 / 19200  # one 60-register read on a 19200 8E1 bus


@dataclass(frozen=True)
class Case:
    """One run: how many meters, how they are polled, for how long (simulated seconds)."""

    meters: int
    polling: str  # "none", "dataset every 1 s" or "bus at wire limit"
    span_s: float


def poller(env: simpy.Environment, maps: list[RegisterMap], interval_s: float,
           blocks: tuple[tuple[int, int], ...], counter: list[int]) -> Generator[simpy.Event, Any, None]:
    """A bus master: every interval_s the next meter (round robin) is read block by block."""
    index = 0
    while True:
        yield env.timeout(interval_s)
        regmap = maps[index % len(maps)]
        index += 1
        for address, count in blocks:
            words = regmap.read(address, count)
            if not isinstance(words, list) or len(words) != count:
                raise BenchError(f"meter {regmap.model.unit}: read of {count} at 0x{address:04X} "
                                 f"gave {words!r}")
            counter[0] += 1


def run_case(case: Case) -> dict[str, Any]:
    profile = load_profile("reference")
    load = LoadProfile.ev()
    env = simpy.Environment()
    start = time.perf_counter()
    models = [MeterModel(env, profile, unit, None, seed=1, load=load) for unit in range(1, case.meters + 1)]
    setup_s = time.perf_counter() - start
    reads = [0]
    if case.polling == "dataset every 1 s":
        env.process(poller(env, [RegisterMap(m) for m in models], 1.0, DATASET, reads))
    elif case.polling == "bus at wire limit":
        env.process(poller(env, [RegisterMap(m) for m in models], WIRE_CYCLE_19200_S, (MEASUREMENTS,), reads))
    start = time.perf_counter()
    env.run(until=case.span_s)
    wall_s = time.perf_counter() - start
    expected = load.energy_wh(case.span_s)
    for model in models:
        if not math.isclose(model.energy_wh(), expected, rel_tol=1e-9):
            raise BenchError(f"meter {model.unit}: {model.energy_wh()} Wh after {case.span_s} s, "
                             f"the profile integrates to {expected} Wh")
    rate = case.span_s / wall_s
    return {"meters": case.meters, "polling": case.polling, "simulated_s": case.span_s, "wall_s": wall_s,
            "setup_s": setup_s, "sim_s_per_wall_s": rate, "meter_s_per_wall_s": rate * case.meters,
            "wall_s_per_simulated_day": DAY_S / rate, "reads": reads[0], "energy_wh_each": expected}


def run(full: bool) -> dict[str, object]:
    bus_span = 6 * 3600.0 if full else 900.0
    cases = [
        Case(1, "none", DAY_S),
        Case(1, "dataset every 1 s", DAY_S if full else 3600.0),
        Case(BUS_SIZE, "none", bus_span),
        Case(BUS_SIZE, "bus at wire limit", bus_span),
    ]
    results = [run_case(case) for case in cases]
    rows = [[r["meters"], r["polling"], r["simulated_s"], r["reads"], r["wall_s"], r["sim_s_per_wall_s"],
             r["meter_s_per_wall_s"], r["wall_s_per_simulated_day"]] for r in results]
    print_table("Virtual time (EV charging profile; real time = 1 simulated s per wall s, the virtual rig "
                "= 60). Goal: a simulated day of one meter in under a second",
                ["meters", "polling", "simulated s", "reads", "wall s", "sim s / wall s", "meter-s / wall s",
                 "wall s / sim day"], rows)
    day = results[0]["wall_s"]
    print(f"\none meter, a simulated day: {day:.3f} s wall (goal < 1 s: {'met' if day < 1 else 'NOT met'}); "
          "'dataset every 1 s' reads what the driver reads each second (60+8+4 registers); 'bus at wire "
          f"limit' reads one measurement block each {WIRE_CYCLE_19200_S * 1e3:.1f} ms, round robin "
          "(19200 8E1)")
    return {"results": results, "day_goal_met": day < 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    args = parser.parse_args(argv)
    try:
        figures = run(args.full)
    except BenchError as exc:
        print(f"time_compression: {exc}", file=sys.stderr)
        return 1
    path = write_report("time_compression", figures)
    print(f"\nfigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
