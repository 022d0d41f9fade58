"""A meter in another room: the round trip of one Modbus read through a local RFC 2217 server, a raw TCP
server (ser2net's two modes, here rigs.remote.PortServer on 127.0.0.1) and the plain pty, side by side.

Every path reaches the same meter-sim and uses the driver's own link (driver.modbus_link.ModbusLink),
rounds interleave the paths so machine noise falls on all alike. A fourth column sets pymodbus's own
ModbusSerialClient on the socket:// URL beside them (it cannot open rfc2217:// at all: it sets a write
timeout, which pyserial's RFC 2217 client refuses). Loopback has next to no network latency: what shows is
the cost of the servers' and clients' own work; a real network adds its round trip time on top.

    python bench/remote_latency.py [--quick | --full]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

from benchlib import BenchError, median, meter_sim, percentile, print_table, size_args, write_report
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient

from driver.modbus_link import ModbusLink
from rigs.remote import PortServer

REGISTERS = 10
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def driver_link(port: str) -> ModbusLink:
    link = ModbusLink(port, unit=1, baudrate=19200, parity="E", stopbits=1, bytesize=8, timeout=0.5,
                      retries=0)
    link.open()
    return link


def timed(read: Callable[[], object]) -> float:
    start = time.perf_counter()
    read()
    return time.perf_counter() - start


def measure(pty: str, path: str, reads: int, opens: list[float]) -> list[float]:
    """Open `path` to the meter (a server in front of its pty when it is a URL), time `reads` reads, close;
    the time the open took goes into opens[-1]."""
    server = None if path == "pty" else PortServer(pty, path.split(":")[0]).start()
    try:
        start = time.perf_counter()
        if path.endswith("(pymodbus client)"):
            assert server is not None
            client = ModbusSerialClient(server.url, framer=FramerType.RTU, baudrate=19200, timeout=0.5,
                                        retries=0)
            if not client.connect():
                raise BenchError(f"pymodbus could not open {server.url}")
            opens[-1] = time.perf_counter() - start
            def read() -> None:
                if client.read_holding_registers(0, count=REGISTERS, device_id=1).isError():
                    raise BenchError(f"pymodbus's client got an error answer on {server.url}")

            try:
                return [timed(read) for _ in range(reads)]
            finally:
                client.close()
        link = driver_link(pty if server is None else server.url)
        opens[-1] = time.perf_counter() - start
        try:
            return [timed(lambda: link.read_holding(0, REGISTERS)) for _ in range(reads)]
        finally:
            link.close()
    finally:
        if server is not None:
            server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size_args(parser)
    args = parser.parse_args()
    rounds, per_round = (40, 50) if args.full else (10, 30)
    paths = ("pty", "rfc2217://", "socket://", "socket:// (pymodbus client)")
    samples: dict[str, list[float]] = {name: [] for name in paths}
    opens: dict[str, list[float]] = {name: [] for name in paths}
    with meter_sim("--speed", "60") as meter:
        # A server reads everything the pty says, so only one path is open at a time; rounds alternate.
        for i in range(rounds):
            for name in paths if i % 2 == 0 else reversed(paths):
                opens[name].append(0.0)
                samples[name] += measure(meter.path, name, per_round, opens[name])
    base = median(samples["pty"])
    opened = {name: median(values) for name, values in opens.items()}
    base = median(samples["pty"])
    rows = [(name, round(median(s) * 1000, 3), round(percentile(s, 95) * 1000, 3),
             round(median(s) / base, 2), round(opened[name] * 1000, 1)) for name, s in samples.items()]
    print_table(f"One Modbus read ({REGISTERS} registers, FC03) through each path: "
                f"{rounds * per_round} reads each",
                ("path", "median ms", "p95 ms", "x pty", "open ms"), rows)
    write_report("remote_latency", {name: {"median_ms": r[1], "p95_ms": r[2], "open_ms": r[4]}
                                    for name, r in zip(samples, rows, strict=True)})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
