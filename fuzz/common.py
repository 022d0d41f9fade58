"""What every fuzz target shares: the crash rule, keep-going bookkeeping and the libFuzzer entry point.

A crash is an exception outside the package's documented error tree (docs/errors.md), or a broken
promise a target checks itself (Finding). The documented errors are the expected answer to bad input.

This module imports no project code, so that each target can import the code it fuzzes inside
atheris.instrument_imports() and get coverage feedback from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

KEEP_GOING_ENV = "FUZZ_KEEP_GOING"
"""Set to a directory: crashes are saved there and counted, and fuzzing goes on (make fuzz)."""


class Finding(Exception):
    """A promise the code under test broke without raising (a bad answer, a wrong exception code)."""


def crash_key(exc: BaseException) -> str:
    """Where a crash comes from: its type and the innermost frame in project code."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "/fuzz/" not in f.filename and "site-packages" not in f.filename]
    where = (mine or frames or [None])[-1]
    place = f"{Path(where.filename).parent.name}/{Path(where.filename).name}:{where.lineno}" if where else "?"
    return f"{type(exc).__name__} at {place}"


class CrashLog:
    """Unique crashes of one target (by crash_key), each with its first input, and how often each came."""

    def __init__(self, target: str, directory: Path) -> None:
        self.target = target
        self.directory = directory / target
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stats_path = directory / f"{target}.json"
        self.crashes: dict[str, dict[str, object]] = {}
        self.total = 0
        self._flush()

    def add(self, data: bytes, exc: BaseException) -> None:
        """Count a crash; save its input when it is a new one, and print it once."""
        self.total += 1
        key = crash_key(exc)
        entry = self.crashes.get(key)
        if entry is None:
            name = hashlib.sha1(data).hexdigest()
            (self.directory / f"crash-{name}").write_bytes(data)
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            entry = {"count": 0, "input": f"crash-{name}", "message": message[:500]}
            self.crashes[key] = entry
            print(f"\n==fuzz== {self.target}: new crash {key}: {message[:300]}", file=sys.stderr, flush=True)
        entry["count"] = int(entry["count"]) + 1  # type: ignore[call-overload]
        self._flush()

    def _flush(self) -> None:
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"target": self.target, "crashing_inputs": self.total,
                                   "crashes": self.crashes}, indent=1))
        os.replace(tmp, self.stats_path)


def guarded(target: str, test_one: Callable[[bytes], None],
            expected: tuple[type[BaseException], ...]) -> Callable[[bytes], None]:
    """test_one with the crash rule applied: documented errors pass, anything else is a crash (raised
    for libFuzzer, or counted and saved when FUZZ_KEEP_GOING names a directory)."""
    keep = os.environ.get(KEEP_GOING_ENV)
    log = CrashLog(target, Path(keep)) if keep else None

    def one(data: bytes) -> None:
        try:
            test_one(data)
        except expected:
            pass
        except Exception as exc:
            if log is None:
                raise
            log.add(data, exc)

    return one


def write_seeds(directory: Path, seeds: Iterable[bytes]) -> int:
    """Write each seed input to a file named by its hash; the number written."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in seeds:
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        count += 1
    return count


def main(target: str, test_one: Callable[[bytes], None], expected: tuple[type[BaseException], ...],
         seeds: Callable[[], Iterable[bytes]]) -> None:
    """The command line of a target: `--write-seeds DIR` writes its seed corpus; anything else goes to
    libFuzzer (corpus directories, -runs=N, -seed=N, -max_total_time=S, ...)."""
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        print(write_seeds(Path(sys.argv[2]), seeds()))
        return
    import atheris

    atheris.Setup(sys.argv, guarded(target, test_one, expected))
    atheris.Fuzz()
