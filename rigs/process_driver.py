"""A driver in another process (`driver.command` in the rig file), spoken to over JSON-RPC 2.0 lines.

ProcessDriver implements driver.api.PowermeterAPI: it runs the command, waits for its `ready`
notification, sends `start_transaction` / `stop_transaction` as calls on the driver's stdin, and turns
the `powermeter`, `public_key_ocmf`, `raise_error` and `clear_error` notifications on its stdout into the
callbacks and properties the rig and the steps use (docs/driver-protocol.md).

A driver that crashes, hangs, prints garbage or answers out of schema is not a driver answer: the call
raises DriverProcessError naming exactly that, the call it happened in, and the end of the driver's
stderr; every later call raises it too, and the rig fails the scenario with it even when no step called
the driver afterwards. The driver's stderr and the calls and answers go to a per-scenario driver log.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import string
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from driver.errors import RequestError
from driver.events import ErrorEvent, ErrorType
from driver.types import Powermeter, TransactionReq, TransactionStartResponse, TransactionStopResponse
from rigs.errors import DriverProcessError, RigFileError

log = logging.getLogger(__name__)

PLACEHOLDERS = ("port", "baudrate", "parity", "unit", "model")
"""What `{...}` in a driver.command argument may name; the rig substitutes them when it starts the driver."""
ERROR_NAMESPACES = ("powermeter", "generic")
STDERR_LINES_IN_MESSAGE = 10
MAX_SHOWN = 300  # characters of a bad line or result quoted in a failure message


def placeholders(argument: str) -> list[str]:
    """The placeholder names in one command argument; ValueError for an unknown name or a bad brace."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(argument):
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            written = name + ("!" + conversion if conversion else "") + (":" + spec if spec else "")
            raise ValueError(f"unknown placeholder {{{written}}} (known: {known}; "
                             "write {{ and }} for a literal brace)")
        names.append(name)
    return names


def resolve_executable(name: str, cwd: Path) -> str | None:
    """Where the command's program is: a path with "/" relative to the rig file's directory; "python" and
    "python3" as this interpreter; any other name first beside this interpreter (the venv's bin, so
    `meter-driver` is this checkout's), then on PATH. None when it is nowhere."""
    if "/" in name:
        path = Path(name) if Path(name).is_absolute() else cwd / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    if name in ("python", "python3"):
        return sys.executable
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _short(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"... ({len(text)} characters)"


@dataclass
class _Call:
    method: str
    described: str
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: str | None = None


class ProcessDriver:
    """driver.api.PowermeterAPI over a driver process's stdin/stdout (docs/driver-protocol.md)."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, ready_timeout: float = 10.0,
                 call_timeout: float = 30.0, stop_grace: float = 3.0, log_path: Path | None = None) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.call_timeout = call_timeout
        self.stop_grace = stop_grace
        self.log_path = log_path
        self.failure: str | None = None
        """The first thing the process did wrong (crash, hang, garbage, out of schema), None while well."""
        self.failure_raised = False
        """True once a call (or open) raised the failure, so a step has shown it already."""
        self.ready_params: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._ready = threading.Event()
        self._closing = False
        self._next_id = 1
        self._pending: dict[int, _Call] = {}
        self._stderr_tail: deque[str] = deque(maxlen=50)
        self._threads: list[threading.Thread] = []
        self._log: IO[str] | None = None
        self._public_key: str | None = None
        self._publish_interval = 0.0
        self._powermeter_subscribers: list[Callable[[Powermeter], None]] = []
        self._error_subscribers: list[Callable[[ErrorEvent], None]] = []

    @property
    def name(self) -> str:
        return shlex.join(self.argv)

    # --- life cycle ------------------------------------------------------------------------------

    def open(self) -> ProcessDriver:
        """Start the process and wait for its ready notification; DriverProcessError when it does not."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")
        self._note(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} rig starts: {self.name} (in {self.cwd})")
        try:
            self._proc = subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            self._fail(f"could not be started: {exc.strerror or exc}")
            self.failure_raised = True
            raise DriverProcessError(self.failure) from None
        self._note(f"--- pid {self._proc.pid}")
        for target, name in ((self._read_stdout, "driver-stdout"), (self._read_stderr, "driver-stderr")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self.failure is not None:
                break
            if time.monotonic() >= deadline:
                self._fail(f"did not say ready within {self.ready_timeout:g} s (no `ready` notification "
                           "on stdout)")
                break
        if self.failure is not None:
            self.failure_raised = True
            message = self.failure
            self.close()
            raise DriverProcessError(message)
        return self

    def kill(self) -> None:
        """The charger lost its power: SIGKILL at once (no stdin closing, no grace), as close() else."""
        self.close(power_lost=True)

    def close(self, power_lost: bool = False) -> None:
        """Close stdin (the driver's signal to stop), SIGTERM after the grace period, SIGKILL after
        another; join the readers, close the pipes and the log. Never raises; safe to call twice."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            pending = list(self._pending.values())
            self._pending.clear()
        for call in pending:
            call.error = f"driver process {self.name}: the rig closed it during {call.described}"
            call.done.set()
        proc = self._proc
        if proc is not None:
            if power_lost and proc.poll() is None:
                proc.kill()  # before its stdin closes: it must not get to close anything in order
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
            self._note("--- rig closed stdin" if not power_lost else "--- the charger lost its power")
            steps = ((None, ""), (proc.terminate, "SIGTERM"), (proc.kill, "SIGKILL"))
            for step, signal_name in steps[2:] if power_lost else steps:
                if step is not None and proc.poll() is None:
                    self._note(f"--- rig sends {signal_name}: the driver is still running")
                    step()
                try:
                    proc.wait(timeout=self.stop_grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if proc.poll() is None:
                proc.wait()
            self._note(f"--- exited with code {proc.returncode}")
        for thread in self._threads:
            thread.join(timeout=5)
        if proc is not None:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> ProcessDriver:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the driver API --------------------------------------------------------------------------

    @property
    def publish_interval(self) -> float:
        """From the driver's ready notification."""
        return self._publish_interval

    @property
    def public_key_ocmf(self) -> str | None:
        """The last public_key_ocmf the driver notified, None before it did."""
        return self._public_key

    def subscribe_powermeter(self, callback: Callable[[Powermeter], None]) -> None:
        self._powermeter_subscribers.append(callback)

    def subscribe_errors(self, callback: Callable[[ErrorEvent], None]) -> None:
        self._error_subscribers.append(callback)

    def start_transaction(self, req: TransactionReq) -> TransactionStartResponse:
        value = req.to_dict() if isinstance(req, TransactionReq) else req
        described = f"start_transaction({getattr(req, 'transaction_id', '?')!r})"
        result = self._call("start_transaction", {"value": value}, described)
        return self._parse(TransactionStartResponse, result, described)

    def stop_transaction(self, transaction_id: str) -> TransactionStopResponse:
        described = f"stop_transaction({transaction_id!r})"
        result = self._call("stop_transaction", {"transaction_id": transaction_id}, described)
        return self._parse(TransactionStopResponse, result, described)

    # --- calls -------------------------------------------------------------------------------------

    def _raise(self) -> None:
        self.failure_raised = True
        raise DriverProcessError(self.failure)

    def _call(self, method: str, params: dict[str, Any], described: str) -> Any:
        with self._lock:
            if self.failure is not None:
                self._raise()
            if self._closing or self._proc is None:
                raise DriverProcessError(f"driver process {self.name} is not running ({described})")
            call_id = self._next_id
            self._next_id += 1
            call = _Call(method, described)
            self._pending[call_id] = call
        line = json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})
        self._note(f"rig-> {line}")
        try:
            with self._write_lock:
                assert self._proc.stdin is not None
                self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            # It has gone: the stdout reader tells how (exit code); wait for it, briefly.
            call.done.wait(self.stop_grace + 2)
            if self.failure is None:
                self._fail(f"closed its stdin during {described}")
        if not call.done.wait(self.call_timeout):
            self._fail(f"did not answer {described} within {self.call_timeout:g} s (hung?)")
        with self._lock:
            self._pending.pop(call_id, None)
        if self.failure is not None:
            self._raise()
        if call.error is not None:
            raise DriverProcessError(call.error)
        return call.result

    def _parse(self, cls: type[Any], result: Any, described: str) -> Any:
        try:
            return cls.from_dict(result)
        except RequestError as exc:
            self._fail(f"answered {described} out of schema: {cls.__name__}: {exc}; "
                       f"the result was {_short(json.dumps(result))}")
            self._raise()

    # --- what the process says ---------------------------------------------------------------------

    def _read_stdout(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for number, raw in enumerate(iter(proc.stdout.readline, b""), start=1):
            try:
                self._on_line(number, raw)
            except Exception as exc:  # a bug here must not leave calls waiting
                log.exception("driver line %d", number)
                self._fail(f"line {number} broke the rig's reader: {exc!r}")
        if self._closing:
            return
        try:
            code = proc.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            self._fail("closed its stdout but is still running")
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        self._fail(how)

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._stderr_tail.append(line)
            self._note(f"stderr| {line}")

    def _garbage(self, number: int, line: str, why: str) -> None:
        self._fail(f"printed on stdout line {number} {why}: {_short(line)!r}")

    def _on_line(self, number: int, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            self._garbage(number, raw.decode("utf-8", "replace").rstrip("\n"), "that is not UTF-8")
            return
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except json.JSONDecodeError as exc:
            self._garbage(number, line, f"that is not JSON ({exc.msg} at column {exc.colno})")
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self._garbage(number, line, 'that is not a JSON-RPC 2.0 message (no "jsonrpc": "2.0")')
            return
        if "method" in message:
            if "id" in message:
                self._garbage(number, line, "that is a call: the rig takes no calls, only notifications")
            else:
                self._note_line(message, line)
                self._on_notification(number, str(message["method"]), message.get("params"), line)
            return
        if "id" in message and ("result" in message) != ("error" in message):
            self._note(f"->rig {line}")
            self._on_response(message, line)
            return
        self._garbage(number, line, "that is neither a notification nor an answer with result or error")

    def _note_line(self, message: dict[str, Any], line: str) -> None:
        if message.get("method") != "powermeter":  # datasets are many; calls, errors and the key are logged
            self._note(f"->rig {line}")

    def _on_response(self, message: dict[str, Any], line: str) -> None:
        with self._lock:
            call = self._pending.get(message["id"]) if isinstance(message["id"], int) else None
        if call is None:
            self._fail(f"answered call id {message['id']!r}, which the rig did not make or no longer "
                       f"waits for: {_short(line)!r}")
            return
        if "error" in message:
            error = message["error"]
            if isinstance(error, dict):
                text = f"JSON-RPC error {error.get('code')}: {error.get('message')}"
            else:
                text = f"a malformed JSON-RPC error {_short(json.dumps(error))}"
            self._fail(f"answered {call.described} with {text} (commands answer with a status, "
                       "e.g. UNEXPECTED_ERROR, never with an error object)")
            return
        call.result = message["result"]
        call.done.set()

    def _on_notification(self, number: int, method: str, params: Any, line: str) -> None:
        def bad(why: str) -> None:
            self._fail(f"sent {method} out of schema on stdout line {number}: {why}: {_short(line)!r}")

        if method == "ready":
            interval = params.get("publish_interval") if isinstance(params, dict) else None
            if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
                bad("params.publish_interval must be a number >= 0 (seconds between powermeter "
                    "notifications)")
                return
            self.ready_params = params
            self._publish_interval = float(interval)
            self._ready.set()
        elif method == "powermeter":
            try:
                dataset = Powermeter.from_dict(params)
            except RequestError as exc:
                bad(f"not a Powermeter: {exc}")
                return
            for callback in list(self._powermeter_subscribers):
                self._deliver(callback, dataset)
        elif method == "public_key_ocmf":
            key = params[0] if isinstance(params, list) and len(params) == 1 else params
            if not isinstance(key, str) or not key or any(c not in string.hexdigits for c in key):
                bad("params must be the key as a hex string")
                return
            self._public_key = key
        elif method in ("raise_error", "clear_error"):
            event = self._error_event(params, method == "raise_error")
            if isinstance(event, str):
                bad(event)
                return
            for callback in list(self._error_subscribers):
                self._deliver(callback, event)
        else:
            bad("unknown notification (known: ready, powermeter, public_key_ocmf, raise_error, clear_error)")

    @staticmethod
    def _error_event(params: Any, raised: bool) -> ErrorEvent | str:
        if not isinstance(params, dict):
            return "params must be an error object"
        kind, message = params.get("type"), params.get("message", "")
        if not isinstance(kind, str) or kind.count("/") != 1:
            return 'type must be "<namespace>/<name>", e.g. "powermeter/CommunicationFault"'
        namespace, name = kind.split("/")
        if namespace not in ERROR_NAMESPACES or name not in set(ErrorType):
            return (f"type {kind!r} is not a powermeter error (namespaces {', '.join(ERROR_NAMESPACES)}; "
                    f"names {', '.join(ErrorType)})")
        if not isinstance(message, str):
            return "message must be a string"
        return ErrorEvent(ErrorType(name), raised, message, namespace)

    @staticmethod
    def _deliver(callback: Callable[[Any], None], value: Any) -> None:
        try:
            callback(value)
        except Exception:
            log.exception("a subscriber of the driver process failed; the rig carries on")

    # --- failures and the log -----------------------------------------------------------------------

    def _fail(self, what: str) -> None:
        """Record the process's first failure, with the call(s) it happened in and its stderr's end."""
        with self._lock:
            if self.failure is not None or self._closing:
                return
            during = ", ".join(call.described for call in self._pending.values())
        if "exited" in what or "killed" in what:
            for thread in self._threads[1:]:  # the stderr reader: let it take the last lines first
                thread.join(timeout=2)
        if during and " during " not in what and not what.startswith(("did not answer", "answered")):
            what += f" during {during}"
        elif not during and not self._ready.is_set() and "ready" not in what:
            what += " before it said ready"
        message = f"driver process {self.name} {what}"
        tail = list(self._stderr_tail)[-STDERR_LINES_IN_MESSAGE:]
        message += ("; its stderr ends with:\n" + "\n".join(f"    {line}" for line in tail)) if tail \
            else "; its stderr is empty"
        if self.log_path is not None:
            message += f"\n(driver log: {self.log_path})"
        with self._lock:
            if self.failure is not None:
                return
            self.failure = message
            pending = list(self._pending.values())
        self._note(f"--- rig: FAILURE: {message}")
        log.warning("%s", message)
        for call in pending:
            call.done.set()
        if self._proc is not None and self._proc.poll() is None and "hung" in what:
            self._proc.kill()  # a hung driver gets no second chance; close() collects it

    def _note(self, line: str) -> None:
        with self._log_lock:
            if self._log is not None:
                now = time.time()
                stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
                self._log.write(f"{stamp} {line}\n")
                self._log.flush()


def process_driver_factory(spec: Any) -> Callable[..., ProcessDriver]:
    """The rig file's driver.command checked (program found, placeholders known); a function
    (port, log_path=None) -> ProcessDriver with the placeholders filled in."""
    command: tuple[str, ...] = spec.driver.command
    cwd = spec.path.resolve().parent
    for index, argument in enumerate(command):
        try:
            placeholders(argument)
        except ValueError as exc:
            raise RigFileError(f"{spec.path}: driver.command[{index}]: {exc}") from None
    program = resolve_executable(command[0], cwd)
    if program is None:
        raise RigFileError(f"{spec.path}: driver.command[0]: {command[0]!r} not found (a path is taken "
                           f"relative to the rig file's directory; a name is looked up beside "
                           f"{sys.executable}, then on PATH)")

    def make(port: str, log_path: Path | None = None) -> ProcessDriver:
        meter = spec.meter
        values = {"port": port, "baudrate": meter.baudrate, "parity": meter.parity, "unit": meter.unit,
                  "model": meter.model}
        argv = [program, *(argument.format_map(values) for argument in command[1:])]
        return ProcessDriver(argv, cwd=cwd, ready_timeout=spec.driver.ready_timeout,
                             call_timeout=spec.driver.call_timeout, stop_grace=spec.driver.stop_grace,
                             log_path=log_path)

    return make
