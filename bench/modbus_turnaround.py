"""Modbus turnaround: every simulated meter model against pymodbus's own simulator server, in the same run.

Each model runs as meter-sim (charging at 7.4 kW, so it computes live values) beside a pymodbus SimDevice
serving that model's own register values at the same addresses, behind the same pty plumbing (one pty
whose master the server reads, simulator/transceiver.py), answering the same clients. Rounds interleave
all servers (order alternating forward/backward) so machine noise falls on all alike; medians decide.
Reads per model: 10 registers and the model's largest block of live measurement registers, up to 60
(60 on the reference and SDM630 maps; the EM580's measurement block is 52, Iskra's longest run 17).
Two more rows show the plumbing: the reference idle, and the former two-pty Forwarder plumbing
(--bridge-thread) against pymodbus behind the same.
Two clients: a minimal RTU master (rtu_client.py: measures the server) and pymodbus's ModbusSerialClient
at 19200 baud (what a driver sees: it samples the port every 4 character times).
Goal (issue 14): raw turnaround at least 1.0x pymodbus's (its median latency / meter-sim's) for both
reads on every model.

    python bench/modbus_turnaround.py [--quick | --full]
"""

from __future__ import annotations

import argparse
import logging
import os
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
CLIENT_BAUDRATE = 19200  # the driver's default; pymodbus's client derives its polling interval from it
GOAL = 1.0


@dataclass(frozen=True)
class ModelReads:
    """Where a model's live measurements are: function code, first address, the two read sizes."""

    function: int
    address: int
    sizes: tuple[int, int]


MODELS = {  # the driver's measurement block of each model (driver/protocols/), sizes the map allows
    "reference": ModelReads(3, 0x0100, (10, 60)),
    "reference-sr": ModelReads(3, 0x0100, (10, 60)),
    "iskra-wm3m4c": ModelReads(4, 140, (10, 17)),  # powers at 140..156: Iskra's longest run of measurements
    "carlo-gavazzi-em580": ModelReads(4, 0x0000, (10, 52)),  # its whole measurement block
    "eastron-sdm630": ModelReads(4, 0x0000, (10, 60)),
}
CHARGING = ["--speed", "1", "--load-w", "7400"]


@dataclass(frozen=True)
class Server:
    """One server of the run: meter-sim of a model or pymodbus's SimDevice with that model's values."""

    name: str
    model: str
    meter_args: tuple[str, ...] | None  # None: the pymodbus baseline
    baseline: str  # the name of the server it is compared with ("" for a baseline)
    bridge_thread: bool = False


def servers() -> list[Server]:
    """Each model charging and its baseline; the reference idle; the former plumbing and its baseline."""
    out: list[Server] = []
    for model in MODELS:
        base = f"pymodbus SimDevice [{model}]"
        out.append(Server(base, model, None, ""))
        out.append(Server(f"meter-sim {model} charging (7.4 kW)", model, ("--model", model, *CHARGING), base))
    base = "pymodbus SimDevice [reference]"
    out.append(Server("meter-sim reference idle (0 W)", "reference",
                      ("--model", "reference", "--speed", "1", "--load-w", "0"), base))
    old = "pymodbus SimDevice [reference] two ptys + Forwarder"
    out.append(Server(old, "reference", None, "", bridge_thread=True))
    out.append(Server("meter-sim reference charging, two ptys + Forwarder (--bridge-thread)", "reference",
                      ("--model", "reference", *CHARGING, "--bridge-thread"), old, bridge_thread=True))
    return out


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

    def timed(self, client: str, reads: ModelReads, count: int) -> Callable[[], float]:
        """A function doing one timed read of `count` registers with `client`."""
        address, function = reads.address, reads.function
        if client == "raw":
            frame = read_request(UNIT, address, count, function)
            return lambda: self.raw.timed_read(UNIT, address, count, frame, function)
        call = self.pymodbus.read_input_registers if function == 4 else self.pymodbus.read_holding_registers

        def one() -> float:
            start = time.perf_counter()
            try:
                reply = call(address, count=count, device_id=UNIT)
            except ModbusException as exc:
                raise BenchError(f"pymodbus client: no answer to a {count}-register read: {exc}") from None
            elapsed = time.perf_counter() - start
            if reply.isError() or len(reply.registers) != count:
                raise BenchError(f"pymodbus client: bad reply {reply}")
            return elapsed
        return one


def start(stack: ExitStack, plan: list[Server]) -> dict[str, Clients]:
    """Every meter-sim first, then each baseline with the values its model's meter-sim serves."""
    clients: dict[str, Clients] = {}
    snapshots: dict[str, list[int]] = {}
    for server in plan:
        if server.meter_args is None:
            continue
        process = stack.enter_context(meter_sim(*server.meter_args))
        clients[server.name] = Clients(process.path, stack)
        reads = MODELS[server.model]
        snapshots.setdefault(server.model, clients[server.name].raw.read(UNIT, reads.address, reads.sizes[1],
                                                                          reads.function))
    for server in plan:
        if server.meter_args is not None:
            continue
        reads = MODELS[server.model]
        command = [sys.executable, "bench/pymodbus_reference_server.py", "--address", str(reads.address),
                   "--values", ",".join(map(str, snapshots[server.model])),
                   *(["--bridge-thread"] if server.bridge_thread else [])]
        reference = ServerProcess(command, server.name)
        stack.callback(reference.close)
        clients[server.name] = Clients(reference.path, stack)
    return clients


def run(full: bool) -> dict[str, object]:
    """Start the servers, warm up, then interleaved rounds of timed batches."""
    rounds = 10 if full else 4
    per_batch = {"raw": 400 if full else 120, "pymodbus": 100 if full else 30}
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    plan = servers()
    series: dict[tuple[str, int, str], Series] = {}
    load_before = os.getloadavg()
    with ExitStack() as stack:
        clients = start(stack, plan)
        for server in plan:  # warm up: first frames, imports, caches
            reads = MODELS[server.model]
            for client in per_batch:
                for count in reads.sizes:
                    for _ in range(20):
                        clients[server.name].timed(client, reads, count)()
        for r in range(rounds):
            for server in plan if r % 2 == 0 else plan[::-1]:
                reads = MODELS[server.model]
                for count in reads.sizes:
                    for client, n in per_batch.items():
                        one = clients[server.name].timed(client, reads, count)
                        begin = time.perf_counter()
                        latencies = [one() for _ in range(n)]
                        series.setdefault((server.name, count, client), Series()).add_batch(
                            latencies, time.perf_counter() - begin)
    return report(plan, series, rounds, per_batch, (load_before, os.getloadavg()))


Loads = tuple[tuple[float, ...], tuple[float, ...]]


def report(plan: list[Server], series: dict[tuple[str, int, str], Series], rounds: int,
           per_batch: dict[str, int], loads: Loads) -> dict[str, object]:
    figures = []
    by_name = {s.name: s for s in plan}
    for (name, count, client), s in series.items():
        server = by_name[name]
        base = series[(server.baseline or name, count, client)]
        round_ratio = median([b / a for a, b in zip(s.round_rates, base.round_rates, strict=True)])
        entry = {
            "server": name, "model": server.model, "registers": count, "client": client,
            "baseline": server.baseline or name, "requests": len(s.latencies),
            "median_ms": median(s.latencies) * 1e3, "p99_ms": percentile(s.latencies, 99) * 1e3,
            "requests_per_s": s.rate,
            "speed_vs_pymodbus": median(base.latencies) / median(s.latencies),
            "rate_vs_pymodbus": 1 / round_ratio,
            "p99_speed_vs_pymodbus": percentile(base.latencies, 99) / percentile(s.latencies, 99),
        }
        figures.append(entry)
    order = {s.name: i for i, s in enumerate(plan)}
    figures.sort(key=lambda e: (e["client"], order[e["server"]], e["registers"]))
    columns = ("client", "registers", "server", "median_ms", "p99_ms", "requests_per_s", "speed_vs_pymodbus",
               "p99_speed_vs_pymodbus", "rate_vs_pymodbus")
    print_table(f"Modbus turnaround over a pty, {rounds} interleaved rounds ({per_batch['raw']} raw / "
                f"{per_batch['pymodbus']} pymodbus-client requests a batch); load average "
                f"{loads[0][0]:.2f} before, {loads[1][0]:.2f} after. Speed x = the baseline's median latency "
                "/ this server's (>= 1: as fast or faster); rate x = median of per-round request-rate ratios",
                ["client", "regs", "server", "median ms", "p99 ms", "req/s", "speed x", "p99 speed x",
                 "rate x"],
                [[e[k] for k in columns] for e in figures])
    goals = []
    for e in figures:
        if e["client"] != "raw" or not by_name[e["server"]].baseline:
            continue
        ratio = e["speed_vs_pymodbus"]
        gap_ms = e["median_ms"] - e["median_ms"] * ratio
        verdict = "met" if ratio >= GOAL else f"gap {gap_ms:.3f} ms a read"
        goals.append([e["model"], e["registers"], e["server"], e["median_ms"], e["median_ms"] * ratio, ratio,
                      e["rate_vs_pymodbus"], verdict])
        e["goal_met"] = ratio >= GOAL
    print_table(f"Goal: raw turnaround >= {GOAL:.1f}x pymodbus's simulator (median latency ratio), every "
                "model, 10 registers and its largest measurement block",
                ["model", "regs", "server", "meter-sim ms", "pymodbus ms", "speed x", "rate x", "goal"],
                goals)
    return {"rounds": rounds, "batch": per_batch, "client_baudrate": CLIENT_BAUDRATE, "goal_speed_x": GOAL,
            "load_average_1min": [loads[0][0], loads[1][0]], "results": figures}


def register_map_cost(full: bool) -> dict[str, object]:
    """Where a meter-sim read goes: RegisterMap.read in this process for every model, and how many
    measurement snapshots (MeterModel.measurements()) one read computes (at most one: every register of a
    read is from one instant; fewer when the measured state did not move since the last read)."""
    import simpy

    from simulator import LoadProfile, MeterModel, RegisterMap, load_model

    reads = 2000 if full else 500
    rows, figures = [], []
    for name, block in MODELS.items():
        env = simpy.Environment()
        model = MeterModel(env, load_model(name), UNIT, None, seed=1, load=LoadProfile.fixed(7400.0))
        regmap = RegisterMap(model)
        env.run(until=10)
        original = model.measurements
        calls = 0

        def counting(original: Callable[[], object] = original) -> object:
            nonlocal calls
            calls += 1
            return original()

        model.measurements = counting  # type: ignore[method-assign]
        for count in block.sizes:
            calls = 0
            t = env.now
            begin = time.perf_counter()
            for _ in range(reads):
                t += 0.001  # 1 ms of simulated time a read, as a client polling back to back
                env.run(until=t)
                regmap.read(block.address, count, block.function)
            per_read = (time.perf_counter() - begin) / reads
            figures.append({"model": name, "registers": count, "us_per_read": per_read * 1e6,
                            "snapshots_per_read": calls / reads})
            rows.append([name, count, per_read * 1e6, calls / reads])
    print_table(f"meter-sim's register map in-process at 7.4 kW ({reads} reads, 1 ms of simulated time "
                "apart, no state file; snapshots/read: measurement snapshots computed, below 1 when the "
                "measured state is kept between simpy events)",
                ["model", "regs", "us/read", "snapshots/read"], rows)
    return {"reads": reads, "results": figures}


def persist_cost(full: bool) -> dict[str, object]:
    """What the energy guarantee costs a charging meter: before a moved energy counter is served the state
    file is written and fsynced (never more energy shown than stored). Per model: counter steps a second
    at 7.4 kW, the median time of one MeterModel.persist() here, and the share of wall time it blocks."""
    import tempfile
    from pathlib import Path

    import simpy

    from simulator import LoadProfile, MeterModel, load_model
    from simulator.nvram import Nvram

    saves = 60 if full else 20
    rows, figures = [], []
    with tempfile.TemporaryDirectory(prefix="bench-persist-") as tmp:
        for name in MODELS:
            env = simpy.Environment()
            profile = load_model(name)
            model = MeterModel(env, profile, UNIT, Nvram(Path(tmp) / f"{name}.json"), seed=1,
                               load=LoadProfile.fixed(7400.0))
            times = []
            for _ in range(saves):
                begin = time.perf_counter()
                model.persist()
                times.append(time.perf_counter() - begin)
            steps = 7400.0 / 3600.0 / profile.energy_resolution_wh
            share = steps * median(times)
            figures.append({"model": name, "resolution_wh": profile.energy_resolution_wh,
                            "persists_per_s": steps, "persist_ms": median(times) * 1e3,
                            "blocked_share": share})
            rows.append([name, profile.energy_resolution_wh, steps, median(times) * 1e3, 100 * share])
    print_table(f"The energy persist at 7.4 kW ({saves} saves a model, state file with fsync of the file and "
                "its directory; 'blocked %': share of wall time the server spends in it)",
                ["model", "resolution Wh", "persists/s", "ms a persist", "blocked %"], rows)
    return {"saves": saves, "results": figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    args = parser.parse_args(argv)
    try:
        figures = run(args.full)
        figures["register_map_in_process"] = register_map_cost(args.full)
        figures["energy_persist"] = persist_cost(args.full)
    except BenchError as exc:
        print(f"modbus_turnaround: {exc}", file=sys.stderr)
        return 1
    path = write_report("modbus_turnaround", figures)
    print(f"\nfigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
