"""`meter-driver serve`: meter-hil's PowermeterDriver behind the out-of-process driver protocol.

JSON-RPC 2.0 over stdin/stdout, one JSON object a line (docs/driver-protocol.md). The rig calls
`start_transaction` / `stop_transaction`; this process notifies `ready`, `powermeter`,
`public_key_ocmf`, `raise_error` and `clear_error`. stdout carries nothing but the protocol; logs go to
stderr. End of stdin (or SIGTERM) closes the driver and ends the process with status 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import IO, Any

from driver.config import AUTO, DriverConfig
from driver.errors import ConfigurationError, DriverError
from driver.events import ErrorEvent, ErrorType
from driver.powermeter import PowermeterDriver
from driver.protocols import PROTOCOLS
from driver.types import Powermeter

log = logging.getLogger("meter-driver.serve")

PROTOCOL_VERSION = 1
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700, -32600, -32601, -32602, -32603)
SEVERITY = {ErrorType.COMMUNICATION_FAULT: "High", ErrorType.VENDOR_ERROR: "High",
            ErrorType.VENDOR_WARNING: "Low"}


class RpcFailure(Exception):
    """A call that gets a JSON-RPC error object instead of a result."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_object(event: ErrorEvent, module_id: str = "meter-driver") -> dict[str, Any]:
    """An ErrorEvent as EVerest's error object (error_json.hpp): type, message, state, severity, ..."""
    return {
        "type": event.everest_type,
        "sub_type": "",
        "message": event.message,
        "description": event.message,
        "severity": SEVERITY.get(event.type, "Medium"),
        "state": "Active" if event.raised else "ClearedByModule",
        "origin": {"module_id": module_id, "implementation_id": "main"},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "uuid": str(uuid.uuid4()),
        "vendor_id": "meter-hil",
    }


class RpcServer:
    """Speaks the protocol on two text streams for one PowermeterDriver-like object."""

    def __init__(self, driver: PowermeterDriver, out: IO[str]) -> None:
        self.driver = driver
        self._out = out
        self._write_lock = threading.Lock()
        self._key: str | None = None
        self._calls: list[threading.Thread] = []

    # --- writing -----------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps({"jsonrpc": "2.0", **message}, separators=(",", ":"))
        with self._write_lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):  # the rig has gone; stdin's end will follow
                pass

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def _on_powermeter(self, dataset: Powermeter) -> None:
        self.notify("powermeter", dataset.to_dict())
        self._publish_key()

    def _on_error(self, event: ErrorEvent) -> None:
        self.notify("raise_error" if event.raised else "clear_error", error_object(event))

    def _publish_key(self) -> None:
        key = self.driver.public_key_ocmf
        if key is not None and key != self._key:
            self._key = key
            self.notify("public_key_ocmf", key)

    # --- reading -----------------------------------------------------------------------------

    def serve(self, lines: IO[str]) -> None:
        """Open the driver, say ready, answer calls until stdin ends, close the driver."""
        self.driver.subscribe_errors(self._on_error)
        self.driver.subscribe_powermeter(self._on_powermeter)
        self.driver.open()
        try:
            self._publish_key()
            self.notify("ready", {"publish_interval": self.driver.publish_interval,
                                  "protocol_version": PROTOCOL_VERSION, "name": "meter-driver serve"})
            for line in lines:
                if line.strip():
                    self._dispatch(line)
        finally:
            for call in self._calls:
                call.join(timeout=30)
            self.driver.close()

    def _dispatch(self, line: str) -> None:
        try:
            message = json.loads(line)
        except json.JSONDecodeError as exc:
            self.send({"id": None, "error": {"code": PARSE_ERROR, "message": f"parse error: {exc}"}})
            return
        valid = (isinstance(message, dict) and message.get("jsonrpc") == "2.0"
                 and isinstance(message.get("method"), str))
        if not valid:
            request_id = message.get("id") if isinstance(message, dict) else None
            self.send({"id": request_id, "error": {
                "code": INVALID_REQUEST, "message": "invalid request: expected a JSON-RPC 2.0 object "
                "with jsonrpc \"2.0\" and a method"}})
            return
        if "id" not in message:
            log.info("ignoring notification %r from the rig", message["method"])
            return
        # Each call on its own thread, so a long stop does not hold up a second call (the driver
        # serialises commands itself) and notifications keep flowing meanwhile.
        call = threading.Thread(target=self._answer, args=(message,), name="rpc-call", daemon=True)
        self._calls = [c for c in self._calls if c.is_alive()] + [call]
        call.start()

    def _answer(self, message: dict[str, Any]) -> None:
        request_id = message["id"]
        try:
            result = self._call(message["method"], message.get("params"))
        except RpcFailure as exc:
            self.send({"id": request_id, "error": {"code": exc.code, "message": exc.message}})
        except Exception as exc:  # a bug here must answer, not leave the rig waiting
            log.exception("call %s failed", message["method"])
            self.send({"id": request_id, "error": {"code": INTERNAL_ERROR, "message": repr(exc)}})
        else:
            self.send({"id": request_id, "result": result})
            self._publish_key()

    def _call(self, method: str, params: Any) -> dict[str, Any]:
        if method == "start_transaction":
            if not isinstance(params, dict) or not isinstance(params.get("value"), dict):
                raise RpcFailure(INVALID_PARAMS, 'start_transaction takes {"value": <TransactionReq>}')
            # The TransactionReq's fields are the driver's to check: a bad one is UNEXPECTED_ERROR
            # naming the field, as over MQTT, not a JSON-RPC error.
            return self.driver.start_transaction(params["value"]).to_dict()
        if method == "stop_transaction":
            if not isinstance(params, dict) or not isinstance(params.get("transaction_id"), str):
                raise RpcFailure(INVALID_PARAMS, 'stop_transaction takes {"transaction_id": "<id>"}')
            return self.driver.stop_transaction(params["transaction_id"]).to_dict()
        raise RpcFailure(METHOD_NOT_FOUND, f"method not found: {method!r} "
                                           "(known: start_transaction, stop_transaction)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meter-driver serve",
        description="meter-hil's driver as an out-of-process EVerest powermeter driver: JSON-RPC 2.0 "
                    "lines on stdin/stdout (docs/driver-protocol.md)")
    parser.add_argument("--port", required=True, help="device path or pyserial URL")
    parser.add_argument("--model", choices=[*PROTOCOLS, AUTO], default="reference")
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--parity", choices=["N", "E", "O"], default="E")
    parser.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds to wait for one answer")
    parser.add_argument("--retries", type=int, default=1,
                        help="repeats of an unanswered request before the link counts as lost")
    parser.add_argument("--command-timeout", type=float, default=10.0,
                        help="seconds start/stop wait for an unreachable meter")
    parser.add_argument("--busy-timeout", type=float, default=10.0,
                        help="seconds to wait for a meter that answers busy (signing)")
    parser.add_argument("--busy-poll", type=float, default=0.05,
                        help="seconds between status reads while the meter works or signs")
    parser.add_argument("--backoff-initial", type=float, default=0.2, help="first reconnect backoff (s)")
    parser.add_argument("--backoff-max", type=float, default=5.0, help="longest reconnect backoff (s)")
    parser.add_argument("--publish-interval", type=float, default=1.0,
                        help="seconds between powermeter notifications (told to the rig in ready)")
    parser.add_argument("--error-namespace", choices=["powermeter", "generic"], default="powermeter")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the driver does on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`meter-driver serve ...`; exit 0 at the end of stdin, 2 on a usage or configuration error."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds through serve(): the port is closed
    try:
        config = DriverConfig(port=args.port, model=args.model, baudrate=args.baudrate, parity=args.parity,
                              stopbits=args.stopbits, unit=args.unit, timeout=args.timeout,
                              retries=args.retries, command_timeout=args.command_timeout,
                              busy_timeout=args.busy_timeout, busy_poll=args.busy_poll,
                              backoff_initial=args.backoff_initial, backoff_max=args.backoff_max,
                              publish_interval=args.publish_interval, error_namespace=args.error_namespace)
        server = RpcServer(PowermeterDriver(config), sys.stdout)
        server.serve(sys.stdin)
    except ConfigurationError as exc:
        print(f"meter-driver serve: {exc}", file=sys.stderr)
        return 2
    except DriverError as exc:
        print(f"meter-driver serve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    return 0
