"""Wire-accurate mode: the driver's polling throughput as a fraction of what the RS-485 wire allows.

meter-sim (charging at 7.4 kW) behind a LinkProxy with frame timing (LinkProxy.set_frame_timing) at
9600 8E1, 19200 8E1 and 115200 8N1; the driver polls through the proxy. The wire limit of one read of n
registers is a request of 8 characters, a reply of 5 + 2n, and a t3.5 gap after each: 3.5 characters,
the spec's fixed 1.75 ms above 19200 baud (Modbus over Serial Line v1.02, 2.5.1.1). 115200 runs twice:
with the spec's gap and with 3.5-character gaps (the stricter wire the issue measured). The proxy's
wire log splits each cycle's time above that limit into the meter's share (reply later than the
gap after the request) and the driver's (next request later than the gap after the reply).
Every model: the driver's read_powermeter() with that model's protocol (driver/protocols/) against
meter-sim of that model; its wire limit is taken from the frames the proxy carried (each frame's
characters and a t3.5 gap), so it is that protocol's own dataset, whatever it reads.
Goal (issue 14): at least 97 % of the wire limit at every line speed, for the driver and every model.

    python bench/wire_throughput.py [--quick | --full]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import BenchError, median, meter_sim, percentile, print_table, size_args, write_report
from rtu_client import RtuClient, read_request

from driver import DriverConfig, PowermeterDriver
from driver.errors import DriverError
from driver.modbus_link import ModbusLink
from driver.protocols import reference_map as reg
from simulator import LinkProxy, PtyPair
from simulator.forwarding import frame_gap_s

UNIT = 1
BLOCK = reg.MEASUREMENTS.address
BLOCK_REGS = reg.MEASUREMENTS.count
REQUEST_CHARS = 8
# (baudrate, parity, 3.5-character gaps above 19200 baud): 8 data bits, 1 stop bit
SETTINGS = ((9600, "E", False), (19200, "E", False), (115200, "N", False), (115200, "N", True))
DATASET_BLOCKS = (reg.MEASUREMENTS.count, reg.STATUS.count, reg.CLOCK.count)  # what read_powermeter() reads
MODELS = ("reference", "reference-sr", "iskra-wm3m4c", "carlo-gavazzi-em580", "eastron-sdm630")
GOAL = 0.97


def char_s(baudrate: int, parity: str) -> float:
    """Seconds of one character: start, 8 data, parity (unless N), 1 stop bit."""
    return (10 + (0 if parity == "N" else 1)) / baudrate


def cycle_s(registers: int, char: float, gap: float) -> float:
    """Seconds on the wire for one read of `registers`, gaps included."""
    return (REQUEST_CHARS + 5 + 2 * registers) * char + 2 * gap


def line_name(baudrate: int, parity: str, character_gaps: bool) -> str:
    return f"{baudrate} 8{parity}1" + (" 3.5-char gaps" if character_gaps and baudrate > 19200 else "")


@dataclass
class WireLog:
    """(direction, bytes, monotonic time) of every chunk the proxy delivered."""

    chunks: list[tuple[str, int, float]]

    def record(self, direction: str, data: bytes, stamp: float) -> None:
        self.chunks.append((direction, len(data), stamp))

    def shares(self, char: float, gap: float) -> tuple[float, float]:
        """Median seconds a request/reply lost on the meter side and on the driver side beyond the wire's
        own time (medians: a scheduler stall on a busy machine should not decide the split)."""
        meter, driver = [], []
        for (d1, _, t1), (d2, n2, t2) in zip(self.chunks, self.chunks[1:], strict=False):
            late = t2 - t1 - gap - n2 * char
            if d1 == "to_meter" and d2 == "to_driver":
                meter.append(late)
            elif d1 == "to_driver" and d2 == "to_meter":
                driver.append(late)
        if not meter or not driver:
            raise BenchError("the wire log holds no complete request/reply cycle")
        return median(meter), median(driver)

    def wire_s(self, char: float, gap: float) -> float:
        """Seconds the logged frames need on the wire, a t3.5 gap after each (chunks in a row in one
        direction are one frame)."""
        seconds, last = 0.0, ""
        for direction, size, _ in self.chunks:
            seconds += size * char + (gap if direction != last else 0.0)
            last = direction
        return seconds


@dataclass(frozen=True)
class Polling:
    """Back-to-back calls: how many, the seconds they took in all, and each one's duration."""

    calls: int
    elapsed_s: float
    durations: list[float]


def driver_link(path: str, baudrate: int, parity: str) -> ModbusLink:
    """The driver's own Modbus link (driver.modbus_link), opened, as PowermeterDriver builds it."""
    link = ModbusLink(path, unit=UNIT, baudrate=baudrate, parity=parity, stopbits=1, bytesize=8, timeout=2.0,
                      retries=0)
    link.open()
    return link


def poll_for(seconds: float, one: Callable[[], object]) -> Polling:
    """Call one() back to back for `seconds` (at least 3 calls), after one untimed call."""
    one()
    first = last = time.monotonic()
    durations: list[float] = []
    while last - first < seconds or len(durations) < 3:
        one()
        now = time.monotonic()
        durations.append(now - last)
        last = now
    return Polling(len(durations), last - first, durations)


def row(log: WireLog, what: str, line: str, char: float, gap: float, one: Callable[[], object],
        seconds: float, limit: float | None, requests: int, model: str = "reference") -> dict[str, Any]:
    """Poll with one() for `seconds`; limit None: the wire limit of what the proxy carried."""
    log.chunks.clear()
    polling = poll_for(seconds, one)
    meter_s, driver_s = log.shares(char, gap)
    if limit is None:  # calls + 1: poll_for's untimed first call is in the log too
        limit = (polling.calls + 1) / log.wire_s(char, gap)
    rate = polling.calls / polling.elapsed_s
    return {"what": what, "model": model, "line": line, "per_s": rate, "wire_limit_per_s": limit,
            "fraction_of_limit": rate / limit,
            "fraction_of_limit_median_cycle": 1 / limit / median(polling.durations),
            "meter_excess_ms_per_request": meter_s * 1e3, "driver_excess_ms_per_request": driver_s * 1e3,
            "requests_per_cycle": requests, "gap_ms": gap * 1e3}


def measure(proxy: LinkProxy, log: WireLog, baudrate: int, parity: str, character_gaps: bool,
            seconds: float) -> list[dict[str, Any]]:
    """The reference model: the driver's link and a poll() master on its measurement block, and the
    driver's read_powermeter()."""
    proxy.set_frame_timing(baudrate, 8, parity, 1, character_gaps)
    line = line_name(baudrate, parity, character_gaps)
    char = char_s(baudrate, parity)
    gap = frame_gap_s(baudrate, char, character_gaps)
    block_limit = 1 / cycle_s(BLOCK_REGS, char, gap)
    link = driver_link(proxy.path, baudrate, parity)
    try:
        results = [row(log, "driver link: measurement block", line, char, gap,
                       lambda: link.read_holding(BLOCK, BLOCK_REGS), seconds, block_limit, 1)]
    finally:
        link.close()
    with RtuClient(proxy.path, timeout_s=2.0) as master:
        frame = read_request(UNIT, BLOCK, BLOCK_REGS)
        results.append(row(log, "poll() RTU master: same block", line, char, gap,
                           lambda: master.timed_read(UNIT, BLOCK, BLOCK_REGS, frame), seconds,
                           block_limit, 1))
    results.append(dataset(proxy, log, "reference", baudrate, parity, character_gaps, seconds))
    return results


def dataset(proxy: LinkProxy, log: WireLog, model: str, baudrate: int, parity: str, character_gaps: bool,
            seconds: float) -> dict[str, Any]:
    """The driver's read_powermeter() with `model`'s protocol, its wire limit from the frames it sent."""
    proxy.set_frame_timing(baudrate, 8, parity, 1, character_gaps)
    char = char_s(baudrate, parity)
    config = DriverConfig(port=proxy.path, baudrate=baudrate, parity=parity, unit=UNIT, timeout=2.0,
                          publish_interval=0, sync_clock=False, model=model)
    with PowermeterDriver(config) as driver:
        driver.read_powermeter()  # learns the meter (identity, key) outside the measured loop
        log.chunks.clear()
        driver.read_powermeter()
        requests = sum(1 for d, _, _ in log.chunks if d == "to_meter")
        return row(log, "driver: read_powermeter()", line_name(baudrate, parity, character_gaps), char,
                   frame_gap_s(baudrate, char, character_gaps), driver.read_powermeter, seconds, None,
                   requests, model)


def profile_driver(proxy: LinkProxy, baudrate: int, parity: str, character_gaps: bool,
                   seconds: float) -> dict[str, Any]:
    """Where the driver's side of a cycle goes: cProfile of the measurement-block loop (a separate run)."""
    proxy.set_frame_timing(baudrate, 8, parity, 1, character_gaps)
    char = char_s(baudrate, parity)
    link = driver_link(proxy.path, baudrate, parity)
    profiler = cProfile.Profile()
    try:
        start = time.monotonic()
        profiler.enable()
        calls = poll_for(seconds, lambda: link.read_holding(BLOCK, BLOCK_REGS)).calls
        profiler.disable()
        wall = time.monotonic() - start
    finally:
        link.close()
    stats = pstats.Stats(profiler).stats
    sleep = stats.get(("~", 0, "<built-in method time.sleep>"), (0, 0, 0.0, 0.0, {}))
    reads = calls + 1
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:5]
    return {"line": line_name(baudrate, parity, character_gaps), "reads": reads,
            "sleep_share": sleep[2] / wall, "sleep_calls_per_read": sleep[1] / reads,
            "wire_ms_per_read": cycle_s(reg.MEASUREMENTS.count, char,
                                        frame_gap_s(baudrate, char, character_gaps)) * 1e3,
            "top": [(f"{name}" if file == "~" else f"{Path(file).name}:{name}", tt / reads * 1e3)
                    for (file, _, name), (_, _, tt, _, _) in top]}


def proxy_lateness(baudrate: int, parity: str, character_gaps: bool, frames: int) -> dict[str, float]:
    """How late LinkProxy delivers a frame against its own wire model, and a plain hop's latency.

    A 125-byte frame is written on a pty of ours (the meter end), read at the proxy's driver end, and its
    arrival compared with when the wire model says its last byte is in (gaps included); the same hop
    without frame timing gives the latency any forwarding has.
    """
    char = char_s(baudrate, parity)
    gap = frame_gap_s(baudrate, char, character_gaps)
    frame = bytes(5 + 2 * BLOCK_REGS)
    late: dict[str, list[float]] = {"timed": [], "plain": []}
    with PtyPair() as meter_end, LinkProxy(meter_end.path) as proxy, RtuClient(proxy.path) as driver_end:
        for mode in ("plain", "timed"):
            proxy.set_frame_timing(baudrate if mode == "timed" else None, 8, parity, 1, character_gaps)
            due = 0.0
            for _ in range(frames):
                sent = time.monotonic()
                os.write(meter_end.master, frame)
                if mode == "plain":
                    due = sent
                else:
                    due = (max(sent, due + gap) if due else sent) + len(frame) * char
                driver_end.receive(len(frame))
                late[mode].append(time.monotonic() - due)
    return {"frames": frames, "timed_median_ms": median(late["timed"]) * 1e3,
            "timed_p99_ms": percentile(late["timed"], 99) * 1e3,
            "plain_median_ms": median(late["plain"]) * 1e3,
            "plain_p99_ms": percentile(late["plain"], 99) * 1e3}


def run(full: bool) -> dict[str, Any]:
    seconds = 10.0 if full else 2.5
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    results: list[dict[str, Any]] = []
    log = WireLog([])
    load_before = os.getloadavg()[0]
    for model in MODELS:
        with meter_sim("--model", model, "--speed", "1", "--load-w", "7400") as meter, \
                LinkProxy(meter.path) as proxy:
            proxy.on_bytes(log.record)
            for baudrate, parity, character_gaps in SETTINGS:
                if model == "reference":
                    results += measure(proxy, log, baudrate, parity, character_gaps, seconds)
                else:
                    results.append(dataset(proxy, log, model, baudrate, parity, character_gaps, seconds))
            if model == "reference":
                profile = profile_driver(proxy, *SETTINGS[-1], seconds)
    lateness = proxy_lateness(*SETTINGS[-1], frames=1000 if full else 300)
    load_after = os.getloadavg()[0]
    for r in results:
        r["goal_met"] = r["fraction_of_limit"] >= GOAL
    rows = [[r["line"], r["model"], r["what"], r["requests_per_cycle"], r["per_s"], r["wire_limit_per_s"],
             100 * r["fraction_of_limit"], 100 * r["fraction_of_limit_median_cycle"],
             r["meter_excess_ms_per_request"], r["driver_excess_ms_per_request"],
             "met" if r["goal_met"] else f"gap {100 * (GOAL - r['fraction_of_limit']):.1f} pts"]
            for r in sorted(results, key=lambda r: (int(r["line"].split()[0]), r["line"],
                                                    MODELS.index(r["model"])))]
    print_table(f"Driver polling through a LinkProxy with wire timing ({seconds:g} s each, load average "
                f"{load_before:.2f} before, {load_after:.2f} after); goal >= {100 * GOAL:.0f} % of the wire "
                "limit ('median cycle': the same from the median call time, robust to stalls). Excess: "
                "median ms a request/reply spent beyond the wire's own time, meter and driver side",
                ["line", "model", "what", "reads", "per s", "wire limit/s", "% of limit", "% median cycle",
                 "meter excess ms", "driver excess ms", "goal"], rows)
    print(f"\nProfile of the driver polling the measurement block at {profile['line']} (cProfile, "
          f"{profile['reads']} reads): {100 * profile['sleep_share']:.0f} % of its wall time in time.sleep, "
          f"{profile['sleep_calls_per_read']:.1f} sleeps a read, where the wire "
          f"needs {profile['wire_ms_per_read']:.2f} ms")
    top = "; ".join(f"{name} {ms:.2f} ms/read" for name, ms in profile["top"])
    print(f"  top functions by own time: {top}")
    print_table(f"LinkProxy frame delivery at {line_name(*SETTINGS[-1])}, {lateness['frames']:g} "
                "frames of 125 bytes: arrival after the wire model's due time (timed) "
                "and a plain hop (no timing)",
                ["hop", "median ms", "p99 ms"],
                [["with frame timing", lateness["timed_median_ms"], lateness["timed_p99_ms"]],
                 ["plain (no timing)", lateness["plain_median_ms"], lateness["plain_p99_ms"]]])
    return {"seconds_each": seconds, "meter": "meter-sim --model M --speed 1 --load-w 7400", "goal": GOAL,
            "load_average_1min": [load_before, load_after], "results": results,
            "driver_profile": profile, "proxy_lateness": lateness}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    args = parser.parse_args(argv)
    try:
        figures = run(args.full)
    except (BenchError, DriverError) as exc:
        print(f"wire_throughput: {exc}", file=sys.stderr)
        return 1
    path = write_report("wire_throughput", figures)
    print(f"\nfigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
