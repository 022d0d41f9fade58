"""Modbus turnaround: the simulated meter against pymodbus's own simulator server, in the same run.

Both servers run as subprocesses behind the same pty plumbing (meter pty, Forwarder, driver pty) and
answer the same client. Rounds interleave the servers (order alternating A/B, B/A) so machine noise
falls on both alike. Reads: 10 registers and the 60-register measurement block at 0x0100
(docs/meters/reference.md).
Two clients: a minimal RTU master (rtu_client.py: measures the server) and pymodbus's ModbusSerialClient
at 19200 baud (what a driver sees: it samples the port every 4 character times).

    python bench/modbus_turnaround.py [--quick | --full]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from benchlib import (
    BenchError,
    ServerProcess,
    median,
    meter_sim,
    percentile,
    print_table,
    size_args,
    write_report,
)
from pymodbus import FramerType, ModbusException
from pymodbus.client import ModbusSerialClient
from rtu_client import RtuClient, read_request

UNIT = 1
BLOCK = 0x0100
READS = (10, 60)
CLIENT_BAUDRATE = 19200  # the driver's default; pymodbus's client derives its polling interval from it
METERS = {  # name: meter-sim arguments
    "meter-sim idle (0 W)": ["--speed", "1", "--load-w", "0"],
    "meter-sim charging (7.4 kW)": ["--speed", "1", "--load-w", "7400"],
}
BASELINE = "pymodbus SimDevice"
COLUMNS = ("client", "registers", "server", "median_ms", "p99_ms", "requests_per_s", "median_vs_pymodbus",
           "p99_vs_pymodbus", "rate_vs_pymodbus")


@dataclass
class Series:
    """Latencies of one (server, read size, client) and the wall time of their batches."""

    latencies: list[float] = field(default_factory=list)
    batch_s: float = 0.0
    round_rates: list[float] = field(default_factory=list)

    def add_batch(self, latencies: list[float], wall_s: float) -> None:
        self.latencies += latencies
        self.batch_s += wall_s
        self.round_rates.append(len(latencies) / wall_s)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.batch_s


class Clients:
    """The two clients on one server's driver-side pty."""

    def __init__(self, path: str, stack: ExitStack) -> None:
        self.raw = stack.enter_context(RtuClient(path))
        self.pymodbus = ModbusSerialClient(path, framer=FramerType.RTU, baudrate=CLIENT_BAUDRATE, timeout=1.0,
                                           retries=0)
        stack.callback(self.pymodbus.close)
        if not self.pymodbus.connect():
            raise BenchError(f"pymodbus client cannot open {path}")

    def timed(self, client: str, count: int) -> Callable[[], float]:
        """A function doing one timed read of `count` registers with `client`."""
        if client == "raw":
            frame = read_request(UNIT, BLOCK, count)
            return lambda: self.raw.timed_read(UNIT, BLOCK, count, frame)

        def one() -> float:
            start = time.perf_counter()
            try:
                reply = self.pymodbus.read_holding_registers(BLOCK, count=count, device_id=UNIT)
            except ModbusException as exc:
                raise BenchError(f"pymodbus client: no answer to a {count}-register read: {exc}") from None
            elapsed = time.perf_counter() - start
            if reply.isError() or len(reply.registers) != count:
                raise BenchError(f"pymodbus client: bad reply {reply}")
            return elapsed
        return one


def run(full: bool) -> dict[str, object]:
    """Start the three servers, warm up, then interleaved rounds of timed batches."""
    rounds = 10 if full else 4
    per_batch = {"raw": 500 if full else 150, "pymodbus": 200 if full else 50}
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    series: dict[tuple[str, int, str], Series] = {}
    with ExitStack() as stack:
        servers: dict[str, Clients] = {}
        for name, args in METERS.items():
            process = stack.enter_context(meter_sim(*args))
            servers[name] = Clients(process.path, stack)
        snapshot = servers[next(iter(METERS))].raw.read(UNIT, BLOCK, 60)  # B serves the meter's own values
        command = [sys.executable, "bench/pymodbus_reference_server.py", "--address", str(BLOCK),
                   "--values", ",".join(map(str, snapshot))]
        reference = ServerProcess(command, BASELINE)
        stack.callback(reference.close)
        servers[BASELINE] = Clients(reference.path, stack)
        names = list(servers)
        for clients in servers.values():  # warm up: first frames, imports, caches
            for client in per_batch:
                for count in READS:
                    for _ in range(20):
                        clients.timed(client, count)()
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                for count in READS:
                    for client, n in per_batch.items():
                        one = servers[name].timed(client, count)
                        start = time.perf_counter()
                        latencies = [one() for _ in range(n)]
                        series.setdefault((name, count, client), Series()).add_batch(
                            latencies, time.perf_counter() - start)
    return report(series, rounds, per_batch)


def report(series: dict[tuple[str, int, str], Series], rounds: int,
           per_batch: dict[str, int]) -> dict[str, object]:
    figures = []
    for (name, count, client), s in series.items():
        base = series[(BASELINE, count, client)]
        round_ratio = median([a / b for a, b in zip(s.round_rates, base.round_rates, strict=True)])
        entry = {
            "server": name, "registers": count, "client": client, "requests": len(s.latencies),
            "median_ms": median(s.latencies) * 1e3, "p99_ms": percentile(s.latencies, 99) * 1e3,
            "requests_per_s": s.rate, "rate_vs_pymodbus": round_ratio,
            "median_vs_pymodbus": median(s.latencies) / median(base.latencies),
            "p99_vs_pymodbus": percentile(s.latencies, 99) / percentile(base.latencies, 99),
        }
        figures.append(entry)
    figures.sort(key=lambda e: (e["client"], e["registers"], e["server"] != BASELINE, e["server"]))
    rows = [[e[k] for k in COLUMNS] for e in figures]
    print_table(f"Modbus turnaround over a pty, {rounds} interleaved rounds "
                f"({per_batch['raw']} raw / {per_batch['pymodbus']} pymodbus-client requests a batch); "
                "ratios vs pymodbus SimDevice (rate ratio: median of per-round ratios; >= 1 is as fast)",
                ["client", "regs", "server", "median ms", "p99 ms", "req/s", "median x", "p99 x", "rate x"],
                rows)
    return {"rounds": rounds, "batch": per_batch, "client_baudrate": CLIENT_BAUDRATE, "results": figures}


def register_map_cost(full: bool) -> dict[str, object]:
    """Where a meter-sim read goes: RegisterMap.read in this process, and how many measurement snapshots
    (MeterModel.measurements()) one read computes (one: every register of a read is from one instant)."""
    import simpy

    from simulator import LoadProfile, MeterModel, RegisterMap, load_profile

    reads = 2000 if full else 500
    env = simpy.Environment()
    model = MeterModel(env, load_profile("reference"), UNIT, None, seed=1, load=LoadProfile.fixed(7400.0))
    regmap = RegisterMap(model)
    env.run(until=10)
    original = model.measurements
    calls = 0

    def counting() -> object:
        nonlocal calls
        calls += 1
        return original()

    model.measurements = counting  # type: ignore[method-assign]
    rows, figures = [], []
    for count in READS:
        calls = 0
        start = time.perf_counter()
        for _ in range(reads):
            regmap.read(BLOCK, count)
        per_read = (time.perf_counter() - start) / reads
        snapshots = calls / reads
        figures.append({"registers": count, "us_per_read": per_read * 1e6, "snapshots_per_read": snapshots})
        rows.append([count, per_read * 1e6, snapshots])
    print_table(f"meter-sim's register map in-process ({reads} reads)",
                ["regs", "us/read", "snapshots/read"], rows)
    return {"reads": reads, "results": figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    args = parser.parse_args(argv)
    try:
        figures = run(args.full)
        figures["register_map_in_process"] = register_map_cost(args.full)
    except BenchError as exc:
        print(f"modbus_turnaround: {exc}", file=sys.stderr)
        return 1
    path = write_report("modbus_turnaround", figures)
    print(f"\nfigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
