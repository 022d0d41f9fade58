"""Non-volatile memory of one meter: a JSON file written atomically (temp file, fsync, os.replace).

A power cut at any instant leaves either the old or the new content, never a mix. `fault` is a test
hook called at each step of a write; raising from it models the power going out at that step.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import StateError

WRITE_STEPS = ("open", "write", "fsync", "replace", "done")


class Nvram:
    """One meter's state file."""

    def __init__(self, path: str | Path, fault: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.fault = fault
        self.writes = 0

    def load(self) -> dict[str, Any] | None:
        """The stored state, or None for a meter that never ran."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the meter state: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"{self.path}: the meter state is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: the meter state must be a JSON object")
        return data

    def save(self, state: dict[str, Any]) -> None:
        """Replace the stored state atomically; returns only once the new state is durable."""
        text = json.dumps(state, sort_keys=True, separators=(",", ":"))
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self._step("open")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                self._step("write")
                os.write(fd, text.encode("utf-8"))
                self._step("fsync")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._step("replace")
            os.replace(tmp, self.path)
            self._sync_dir()
            self._step("done")
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write the meter state: {exc.strerror}") from None
        self.writes += 1

    def _step(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)

    def _sync_dir(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
