"""Fault control of a running meter-sim: JSON lines over a unix socket (see docs/control.md).

ControlServer runs in meter-sim's asyncio loop; ControlClient is the synchronous client the rig and
benchmarks use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ControlError, SimulatorError
from .runtime import MeterSim, check_load

MAX_LINE = 1 << 20


def _args(request: dict[str, Any], *allowed: str) -> dict[str, Any]:
    extra = set(request) - {"cmd", *allowed}
    if extra:
        raise ControlError(f"{request['cmd']}: unknown argument(s) {', '.join(sorted(extra))}")
    return {k: request[k] for k in allowed if k in request}


class ControlServer:
    """Answers control commands for one MeterSim."""

    def __init__(self, path: str | Path, sim: MeterSim, on_quit: Callable[[], None]) -> None:
        self.path = str(path)
        self.sim = sim
        self.on_quit = on_quit
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen on the socket path (a stale socket file is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=self.path, limit=MAX_LINE)
        except OSError as exc:
            raise ControlError(f"cannot listen on control socket {self.path}: {exc.strerror}") from None

    async def stop(self) -> None:
        """Stop listening and remove the socket file."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = self.handle_line(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def handle_line(self, line: bytes) -> dict[str, Any]:
        """One request line to one reply: {"ok": true, "result": ...} or {"ok": false, "error": "..."}."""
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": f"not a JSON line: {exc}"}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'a request is a JSON object with a "cmd" string'}
        try:
            return {"ok": True, "result": self.dispatch(request)}
        except (SimulatorError, ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug: answer it rather than drop the connection silently
            return {"ok": False, "error": f"internal error {type(exc).__name__}: {exc}"}

    def dispatch(self, request: dict[str, Any]) -> Any:
        """Run one command on the MeterSim."""
        sim, cmd = self.sim, request["cmd"]
        if cmd == "status":
            return sim.status(**_args(request, "unit"))
        simple: dict[str, Callable[[], None]] = {
            "power_off": sim.power_off,
            "power_on": sim.power_on,
            "link_down": sim.link_down,
            "link_up": sim.link_up,
        }
        if cmd in simple:
            _args(request)
            simple[cmd]()
        elif cmd == "set_corruption":
            args = _args(request, "rate", "seed")
            if "rate" not in args:
                raise ControlError("set_corruption: argument 'rate' is missing")
            sim.set_corruption(args["rate"], args.get("seed"))
        elif cmd == "set_answer_delay":
            args = _args(request, "seconds")
            if "seconds" not in args:
                raise ControlError("set_answer_delay: argument 'seconds' is missing")
            sim.set_answer_delay(args["seconds"])
        elif cmd == "set_phase_order":
            args = _args(request, "order")
            sim.set_phase_order(args.get("order", ""))
        elif cmd == "set_load":
            sim.set_load(check_load(**_args(request, "power_w", "profile")))
        elif cmd == "set_device_state":
            args = _args(request, "bits")
            if "bits" not in args:
                raise ControlError("set_device_state: argument 'bits' is missing")
            sim.set_device_state(args["bits"])
        elif cmd == "quit":
            _args(request)
            self.on_quit()
        else:
            raise ControlError(f"unknown command {cmd!r}")
        return None


class ControlClient:
    """Synchronous client of meter-sim's control socket (one connection per command)."""

    def __init__(self, socket_path: str | Path, timeout: float = 5.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one command, return its result; ControlError on a refusal or no answer."""
        line = json.dumps({"cmd": cmd, **args}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                sock.sendall(line)
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        except OSError as exc:
            raise ControlError(f"control socket {self.socket_path}: {exc.strerror or exc}") from None
        if not reply:
            if cmd == "quit":
                return None
            raise ControlError(f"control socket {self.socket_path}: no answer to {cmd!r}")
        answer = json.loads(reply)
        if not answer.get("ok"):
            raise ControlError(f"{cmd}: {answer.get('error')}")
        return answer.get("result")

    def power_off(self) -> None:
        """Cut the meter's supply."""
        self.call("power_off")

    def power_on(self) -> None:
        """Restore the supply (the meter boots)."""
        self.call("power_on")

    def link_down(self) -> None:
        """Cut the bus at the meter."""
        self.call("link_down")

    def link_up(self) -> None:
        """Reconnect the bus."""
        self.call("link_up")

    def set_corruption(self, rate: float, seed: int | None = None) -> None:
        """Flip bits on the bus at rate per byte (seeded)."""
        self.call("set_corruption", rate=rate, **({} if seed is None else {"seed": seed}))

    def set_answer_delay(self, seconds: float) -> None:
        """Answer late."""
        self.call("set_answer_delay", seconds=seconds)

    def set_device_state(self, bits: int) -> None:
        """Set the device-state register of a model that has one (the EM580's 0x5012); 0 clears it."""
        self.call("set_device_state", bits=bits)

    def set_phase_order(self, order: str) -> None:
        """ "cw" or "ccw"."""
        self.call("set_phase_order", order=order)

    def set_load(self, power_w: float | None = None, profile: str | None = None) -> None:
        """A fixed power in W, or profile="ev"."""
        args: dict[str, Any] = {}
        if power_w is not None:
            args["power_w"] = power_w
        if profile is not None:
            args["profile"] = profile
        self.call("set_load", **args)

    def status(self, unit: int | None = None) -> dict[str, Any]:
        """Ground truth of one meter (the first by default)."""
        return self.call("status", **({} if unit is None else {"unit": unit}))  # type: ignore[no-any-return]

    def quit(self) -> None:
        """Ask meter-sim to exit cleanly."""
        self.call("quit")
