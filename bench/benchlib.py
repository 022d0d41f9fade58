"""Shared plumbing of the benchmarks: percentiles, tables, reports/bench.json, a meter-sim subprocess.

Benchmarks print figures side by side in one run (ratios, not bare times: these machines are noisy);
they are never timed unit tests.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import selectors
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from simulator import meter_sim_command

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "bench.json"
START_TIMEOUT_S = 15.0


class BenchError(Exception):
    """A benchmark could not run (a server did not start, a reply was wrong); the message says why."""


def size_args(parser: argparse.ArgumentParser) -> None:
    """--quick (the default, sized for `make bench`) or --full (longer runs, steadier figures)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", dest="full", action="store_false", help="short run (default)")
    group.add_argument("--full", dest="full", action="store_true", help="longer run, steadier figures")
    parser.set_defaults(full=False)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; BenchError on no values."""
    if not values:
        raise BenchError("no samples to take a percentile of")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50.0)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain text table: numbers right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row, raw in zip(cells, rows, strict=True):
        print("  ".join(c.rjust(w) if isinstance(v, int | float) else c.ljust(w)
                        for c, w, v in zip(row, widths, raw, strict=True)))


def _cell(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) < 1e-9:
            value = 0.0  # float noise around zero (e.g. a delay the wire model hid completely)
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews bare times
    }


def write_report(section: str, figures: dict[str, Any]) -> Path:
    """Put `figures` under `section` in reports/bench.json, keeping the other benchmarks' sections."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {}
    if REPORT.exists():
        try:
            data = json.loads(REPORT.read_text())
        except json.JSONDecodeError:
            data = {}  # a damaged report is rewritten rather than aborting a benchmark run
    data[section] = {"machine": machine(), **figures}
    tmp = REPORT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, REPORT)
    return REPORT


class ServerProcess:
    """A subprocess that prints the device path it serves as its first stdout line (as meter-sim does)."""

    def __init__(self, command: list[str], name: str) -> None:
        self.name = name
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log,
                                        stdin=subprocess.DEVNULL, cwd=ROOT)
        try:
            assert self.process.stdout is not None
            self.path = self._first_line(self.process.stdout)
        except BaseException:
            self.close()
            raise

    def _first_line(self, stream: IO[bytes]) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"{self.name} printed no device path within {START_TIMEOUT_S:.0f} s")
                if selector.select(remaining):
                    chunk = os.read(stream.fileno(), 4096)
                    if not chunk:
                        raise BenchError(f"{self.name} exited before printing its device path: "
                                         f"{self.log_tail()}")
                    buffer += chunk
        return buffer.split(b"\n", 1)[0].decode().strip()

    def log_tail(self) -> str:
        """The last lines the process wrote on stderr."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-800:].strip()

    def close(self) -> None:
        """Terminate the process (kill if it does not stop) and release its pipes."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@contextlib.contextmanager
def meter_sim(*args: str, state_dir: Path | None = None) -> Iterator[ServerProcess]:
    """meter-sim --pty with `args` in a subprocess, its state in a temp dir; closed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-meter-") as tmp:
        state = state_dir or Path(tmp) / "state"
        server = ServerProcess([*meter_sim_command(), "--pty", "--state-dir", str(state), *args], "meter-sim")
        try:
            yield server
        finally:
            server.close()
