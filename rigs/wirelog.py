"""The wire log: every frame that crossed the link, with its time and direction, one line each.

Bytes come from LinkProxy.on_bytes in chunks as the pty delivers them; a chunk is one line. Scenario
boundaries are marked so a vendor can find the frames of a failed scenario.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import IO


class WireLog:
    """Appends `time direction hex` lines to a file; safe to call from the proxy's threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] | None = open(path, "a", encoding="ascii")
        self._lock = threading.Lock()
        self._origin = time.monotonic()
        self.frames = 0
        self.bytes = 0

    def mark(self, text: str) -> None:
        """A comment line, e.g. the start of a scenario, with the wall clock time."""
        with self._lock:
            if self._file is not None:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self._file.write(f"# {stamp} {text}\n")
                self._file.flush()

    def on_bytes(self, direction: str, data: bytes, monotonic_time: float) -> None:
        """LinkProxy callback: direction names the way the bytes went (e.g. driver->meter)."""
        with self._lock:
            if self._file is None:
                return
            self.frames += 1
            self.bytes += len(data)
            self._file.write(f"{monotonic_time - self._origin:12.6f} {direction:<14} {data.hex(' ')}\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
