"""Issue 14's goals from reports/bench.json, as the benchmarks of this `make bench` run left them: each
goal met, or the measured gap and its cause as far as the figures show it.

    python bench/goals.py
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchlib import REPORT, print_table


def turnaround(data: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    section = data.get("modbus_turnaround")
    if not section:
        return [["turnaround >= 1.0x pymodbus", "-", "not run", ""]]
    maps = {(r["model"], r["registers"]): r["us_per_read"]
            for r in section.get("register_map_in_process", {}).get("results", [])}
    blocked = {r["model"]: r["blocked_share"] for r in section.get("energy_persist", {}).get("results", [])}
    for e in section["results"]:
        if e["client"] != "raw" or "goal_met" not in e or "Forwarder" in e["server"] or "idle" in e["server"]:
            continue
        ratio = e["speed_vs_pymodbus"]
        cause = "" if e["goal_met"] else (
            f"register map {maps.get((e['model'], e['registers']), 0):.0f} us a read in-process; the energy "
            f"persist (fsync) blocks {100 * blocked.get(e['model'], 0):.1f} % of wall time at 7.4 kW")
        gap = f"gap {e['median_ms'] - e['median_ms'] * ratio:.3f} ms"
        rows.append([f"turnaround {e['model']} {e['registers']} regs", f"{ratio:.2f}x",
                     "met" if e["goal_met"] else gap, cause])
    return rows


def wire(data: dict[str, Any]) -> list[list[object]]:
    section = data.get("wire_throughput")
    if not section:
        return [["wire >= 97 %", "-", "not run", ""]]
    rows: list[list[object]] = []
    for r in section["results"]:
        if r["what"].startswith("poll()"):
            continue
        pct = 100 * r["fraction_of_limit"]
        cause = "" if r["goal_met"] else (
            f"median {r['meter_excess_ms_per_request']:.2f} ms meter side (meter-sim turnaround, pty hops, "
            f"proxy delivery) and {r['driver_excess_ms_per_request']:.2f} ms driver side a request; "
            f"{100 * r['fraction_of_limit_median_cycle']:.1f} % from the median cycle "
            "(above the mean: stalls)")
        rows.append([f"wire {r['line']} {r['model']} {r['what']}", f"{pct:.1f} %",
                     "met" if r["goal_met"] else f"gap {97 - pct:.1f} pts", cause])
    return rows


def conformance(data: dict[str, Any]) -> list[list[object]]:
    section = data.get("conformance_all")
    if not section:
        return [["conformance-all < 240 s", "-", "not run", ""]]
    return [[f"conformance-all, {section['jobs']} jobs", f"{section['wall_s']:.0f} s",
             "met" if section["goal_met"] else "not met", f"peak {section['peak_rss_mib']:.0f} MiB a run"]]


def main() -> int:
    if not REPORT.exists():
        print(f"goals: no {REPORT}: run the benchmarks first", file=sys.stderr)
        return 1
    data = json.loads(REPORT.read_text())
    rows = turnaround(data) + wire(data) + conformance(data)
    print_table("Issue 14 goals (this run's figures)", ["goal", "figure", "verdict", "cause of a gap"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
