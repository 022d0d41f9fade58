"""meter-sim as a subprocess: the way a rig, a test or a benchmark runs a simulated meter.

One place knows how to start it (the meter-sim beside this Python, else on PATH, else the module),
read the driver-side device path from its first stdout line within a timeout, wait for its control
socket, and stop it: SIGTERM for a clean exit, SIGKILL for a power loss at an arbitrary instruction.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from .control import ControlClient
from .errors import LaunchError
from .profile import check_model_name


def meter_sim_command(model: str | None = None) -> list[str]:
    """meter-sim from the same environment as this Python (the venv), else from PATH, else the module;
    with `model`, followed by --model NAME (ProfileError listing the known models for a wrong name)."""
    beside = Path(sys.executable).with_name("meter-sim")
    if beside.exists():
        command = [str(beside)]
    else:
        found = shutil.which("meter-sim")
        command = [found] if found else [sys.executable, "-m", "simulator.cli"]
    if model is not None:
        command += ["--model", check_model_name(model)]
    return command


class MeterSimProcess:
    """`meter-sim --pty` with its state dir, control socket and log in `workdir`.

    `start()` returns the driver-side device path; `kill()` then `start()` is a meter that lost its
    power (same state dir; a new pty path, unless `port` names the device to serve). `model` names a
    built-in model (reference, plain, iskra-wm3m4c) and wins over `profile` (a name or a TOML path).
    Keep `workdir` short: a unix socket path has 108 bytes."""

    def __init__(
        self,
        workdir: str | Path,
        *,
        speed: float = 1.0,
        seed: int = 0,
        profile: str = "reference",
        model: str | None = None,
        unit: int = 1,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 20.0,
        port: str | None = None,
        control_timeout: float = 5.0,
        standby: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.workdir / "state"
        self.socket_path = str(self.workdir / "control.sock")
        self.log_path = self.workdir / "meter-sim.log"
        which = ("--model", check_model_name(model)) if model is not None else ("--profile", profile)
        # port: serve a device that outlives the process (a pty the caller keeps), so a meter-sim
        # killed and started again is found on the same path; else a new pty each start.
        where = ("--pty",) if port is None else ("--port", port)
        self.command = [
            *meter_sim_command(),
            *where, *("--speed", f"{speed:g}", "--state-dir", str(self.state_dir)),
            *("--control", self.socket_path, "--seed", str(seed), *which, "--unit", str(unit)),
            *extra_args,
        ]
        self.start_timeout = start_timeout
        self.control = ControlClient(self.socket_path, timeout=control_timeout)
        self.process: subprocess.Popen[bytes] | None = None
        self.path = ""
        self._log: IO[bytes] = open(self.log_path, "ab")  # closed in close()
        self._drain: threading.Thread | None = None
        self.standby = standby
        """Keep the next meter-sim loaded and waiting (meter-sim --standby), for fast restarts."""
        self._spare: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start meter-sim; return its driver-side device path once its control socket answers. With
        standby, a meter-sim already loaded and waiting is told to go, and the next one starts loading."""
        Path(self.socket_path).unlink(missing_ok=True)
        if self.standby:
            self.process, self._spare = self._spare or self._spawn(), None
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(b"go\n")
                self.process.stdin.flush()
            except OSError:
                pass  # it died waiting: _first_line reports how
        else:
            self.process = self._spawn()
        try:
            self.path = self._first_line()
            self._drain = threading.Thread(target=self._copy_rest, daemon=True, name="meter-sim-stdout")
            self._drain.start()
            self._wait_for_control()
        except BaseException:
            self._stop(signal.SIGKILL)
            raise
        if self.standby:
            self._spare = self._spawn()
        return self.path

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*self.command, "--standby"] if self.standby else self.command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.PIPE if self.standby else subprocess.DEVNULL,
        )

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    @property
    def spare(self) -> subprocess.Popen[bytes] | None:
        """The meter-sim kept loaded and waiting for the next start (standby), None without."""
        return self._spare

    def kill(self) -> None:
        """SIGKILL: the meter loses its power at whatever instruction it was running."""
        self._stop(signal.SIGKILL)

    def close(self) -> None:
        """Stop meter-sim cleanly (SIGTERM, SIGKILL if it hangs), and a waiting one; close the log."""
        self._stop(signal.SIGTERM)
        spare, self._spare = self._spare, None
        if spare is not None:
            for stream in (spare.stdin, spare.stdout):
                if stream is not None:
                    stream.close()  # EOF on stdin: it exits without powering up
            try:
                spare.wait(timeout=5)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait(timeout=5)
        self._log.close()

    def log_tail(self, lines: int = 3) -> str:
        """The last lines meter-sim wrote on stderr, for error messages."""
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def tracebacks(self) -> list[str]:
        """Python tracebacks meter-sim wrote to its log: each one a crash of some part of it."""
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.startswith("Traceback")]

    def __enter__(self) -> MeterSimProcess:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- internals ------------------------------------------------------------------------------------
    def _first_line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LaunchError(
                        f"meter-sim printed no device path within {self.start_timeout:g} s "
                        f"(see {self.log_path})"
                    )
                if not selector.select(remaining):
                    continue
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    code = self.process.wait(timeout=5)
                    raise LaunchError(
                        f"meter-sim exited (code {code}) before printing its device path: {self.log_tail()}"
                    )
                buffer += chunk
        line, _, rest = buffer.partition(b"\n")
        self._log.write(rest)
        path = line.decode(errors="replace").strip()
        if not path:
            raise LaunchError(f"meter-sim printed an empty first line (see {self.log_path})")
        return path

    def _copy_rest(self) -> None:
        """Keep reading stdout so meter-sim never blocks on a full pipe."""
        stream = self.process.stdout if self.process is not None else None
        if stream is None:
            return
        try:
            while chunk := os.read(stream.fileno(), 4096):
                if not self._log.closed:
                    self._log.write(chunk)
        except (OSError, ValueError):
            return

    def _wait_for_control(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                self.control.status()
                return
            except Exception as exc:  # not listening yet
                if time.monotonic() >= deadline:
                    raise LaunchError(
                        f"meter-sim control socket {self.socket_path} did not answer: {exc}"
                    ) from None
                if not self.alive:
                    raise LaunchError(f"meter-sim exited while starting: {self.log_tail()}") from None
                time.sleep(0.005)

    def _stop(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(how)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._drain is not None:  # the pipe is at EOF once the process is gone
            self._drain.join(timeout=5)
            self._drain = None
        for stream in (process.stdout, process.stdin):
            if stream is not None:
                stream.close()
