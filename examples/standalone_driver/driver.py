#!/usr/bin/env python3
"""A standalone EVerest powermeter driver for meter-hil's reference meter, as an out-of-process driver.

The example a vendor copies: it imports nothing of meter-hil, only the standard library, pyserial and
pymodbus. It speaks the reference register map (docs/meters/reference.md) over Modbus RTU and the
driver protocol (docs/driver-protocol.md) on stdin/stdout: JSON-RPC 2.0, one JSON object a line.

    driver.py --port /dev/ttyUSB0 [--baudrate 19200] [--parity E] [--unit 1] [--publish-interval 1]

Calls from the rig: start_transaction {"value": TransactionReq}, stop_transaction {"transaction_id"}.
Notifications to the rig: ready, powermeter, public_key_ocmf, raise_error, clear_error.
stdout carries the protocol only; everything else goes to stderr. End of stdin ends the driver.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

log = logging.getLogger("standalone-driver")

# --- the reference register map (docs/meters/reference.md) ----------------------------------------
IDENTITY, IDENTITY_REGS = 0x0000, 30  # serial 8, vendor 8, model 8, firmware 4, capabilities, map_version
MEASUREMENTS, MEASUREMENT_REGS = 0x0100, 60
STATUS, STATUS_REGS = 0x0200, 8  # flags, transaction_state, last_error, boot_count, pagination, uptime
CLOCK, CLOCK_REGS = 0x0300, 4  # clock_time (u32), utc offset, synchronised
IDENTIFICATION = 0x0400  # status, level, flags x4, type, data 20, tariff text 125, evse id 20
TRANSACTION_ID = 0x04AC
TRANSACTION_STATE, TRANSACTION_STATE_REGS = 0x04C0, 29  # open id 20, command, status, length, pg, min, max
COMMAND, COMMAND_STATUS = 0x04D4, 0x04D5
RESULT_BUFFER, RESULT_BYTES = 0x0500, 1024
PUBLIC_KEY, PUBLIC_KEY_REGS = 0x0A00, 73  # length, curve 8, key 64
CMD_START, CMD_STOP, CMD_CLEAR_ALL, CMD_FETCH = 1, 2, 3, 4
CMD_DONE, CMD_BUSY, CMD_FAILED = 0, 1, 2
METER_ERRORS = {1: "a transaction is already active", 2: "unknown transaction id",
                3: "no transaction is active", 4: "identification data invalid",
                5: "minimum transaction duration not reached", 6: "meter not ready"}
MAX_READ, MAX_WRITE = 125, 123

# The enumerations in EVerest's order, which is the meter's index order.
STATUSES = ["NOT_ASSIGNED", "ASSIGNED"]
LEVELS = ["NONE", "HEARSAY", "TRUSTED", "VERIFIED", "CERTIFIED", "SECURE", "MISMATCH", "INVALID",
          "OUTDATED", "UNKNOWN"]
FLAGS = ["RFID_NONE", "RFID_PLAIN", "RFID_RELATED", "RFID_PSK", "OCPP_NONE", "OCPP_RS", "OCPP_AUTH",
         "OCPP_RS_TLS", "OCPP_AUTH_TLS", "OCPP_CACHE", "OCPP_WHITELIST", "OCPP_CERTIFIED", "ISO15118_NONE",
         "ISO15118_PNC", "PLMN_NONE", "PLMN_RING", "PLMN_SMS"]
TYPES = ["NONE", "DENIED", "UNDEFINED", "ISO14443", "ISO15693", "EMAID", "EVCCID", "EVCOID", "ISO7812",
         "CARD_TXN_NR", "CENTRAL", "CENTRAL_1", "CENTRAL_2", "LOCAL", "LOCAL_1", "LOCAL_2", "PHONE_NUMBER",
         "KEY_CODE"]
TEXT_FIELDS = {"evse_id": 40, "transaction_id": 40, "identification_data": 40, "tariff_text": 250}


class NoAnswer(Exception):
    """The meter did not answer (or answered garbage): a CommunicationFault."""


class MeterRefused(Exception):
    """The meter answered a Modbus exception, or a command failed; the message says why."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class Invalid(Exception):
    """A TransactionReq field is wrong; the message names it."""


# --- words -----------------------------------------------------------------------------------------

def u32(words: list[int], i: int) -> int:
    return (words[i] << 16) | words[i + 1]


def s32(words: list[int], i: int) -> int:
    value = u32(words, i)
    return value - (1 << 32) if value & 0x80000000 else value


def text(words: list[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0").decode("ascii", "replace")


def encode_text(value: str, regs: int) -> list[int]:
    data = value.encode("ascii").ljust(regs * 2, b"\0")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, regs * 2, 2)]


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# --- the Modbus link ------------------------------------------------------------------------------

class Meter:
    """Register reads and writes on one unit; every request under one lock (publisher and commands)."""

    def __init__(self, port: str, baudrate: int, parity: str, unit: int, timeout: float,
                 on_answer: Callable[[str | None], None]) -> None:
        if parity != "N" and port.startswith("/dev/") and os.path.exists(port) \
                and 136 <= os.major(os.stat(port).st_rdev) <= 143:
            parity = "N"  # a pseudo-terminal carries bytes, not bits; Linux refuses parity on it
        self.client = ModbusSerialClient(port, framer=FramerType.RTU, baudrate=baudrate, parity=parity,
                                         timeout=timeout, retries=1)
        self.unit = unit
        self.lock = threading.Lock()
        self.on_answer = on_answer  # None: it answered; a text: it did not

    def _request(self, what: str, call: Callable[[], Any]) -> Any:
        with self.lock:
            try:
                if not self.client.connected:
                    self.client.connect()
                response = call()
            except (ModbusException, OSError, ValueError) as exc:
                self.on_answer(f"no answer from unit {self.unit} to {what}: {exc}")
                raise NoAnswer(f"no answer to {what}: {exc}") from None
        self.on_answer(None)
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise MeterRefused(f"meter answered exception {code:02d} to {what}", code)
        return response

    def read(self, address: int, count: int) -> list[int]:
        words: list[int] = []
        while count > 0:
            chunk = min(count, MAX_READ)
            response = self._request(f"read at 0x{address:04X}", lambda a=address, c=chunk:
                                     self.client.read_holding_registers(a, count=c, device_id=self.unit))
            if len(response.registers) != chunk:
                raise NoAnswer(f"short answer at 0x{address:04X}")
            words += response.registers
            address, count = address + chunk, count - chunk
        return words

    def write(self, address: int, values: list[int]) -> None:
        if len(values) == 1:
            self._request(f"write at 0x{address:04X}",
                          lambda: self.client.write_register(address, values[0], device_id=self.unit))
            return
        for start in range(0, len(values), MAX_WRITE):
            at, chunk = address + start, values[start:start + MAX_WRITE]
            self._request(f"write at 0x{at:04X}", lambda a=at, c=chunk:
                          self.client.write_registers(a, c, device_id=self.unit))


# --- the driver ---------------------------------------------------------------------------------

class Driver:
    """EVerest's powermeter interface for the reference meter, speaking JSON-RPC on stdin/stdout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out_lock = threading.Lock()
        self.fault: str | None = None
        self.meter = Meter(args.port, args.baudrate, args.parity, args.unit, args.timeout, self.on_answer)
        self.serial: str | None = None
        self.transactions = False
        self.public_key: str | None = None
        self.closing = threading.Event()

    # --- the protocol's output: one JSON object a line -------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        with self.out_lock:
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
            sys.stdout.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def on_answer(self, failure: str | None) -> None:
        """Raise CommunicationFault when the meter is silent, clear it at its first answer."""
        if (failure is None) == (self.fault is None):
            return
        error = {"type": f"{self.args.error_namespace}/CommunicationFault", "sub_type": "",
                 "message": failure or self.fault, "severity": "High",
                 "state": "Active" if failure else "ClearedByModule"}
        self.fault = failure
        self.notify("raise_error" if failure else "clear_error", error)

    # --- what the meter is --------------------------------------------------------------------

    def identify(self) -> None:
        """Identity and public key, once; NoAnswer while the meter is silent."""
        if self.serial is not None:
            return
        words = self.meter.read(IDENTITY, IDENTITY_REGS)
        self.transactions = bool(words[28] & 1)
        if self.transactions:
            key = self.meter.read(PUBLIC_KEY, PUBLIC_KEY_REGS)
            data = b"".join(w.to_bytes(2, "big") for w in key[9:])[:key[0]]
            self.public_key = data.hex().upper()
            self.notify("public_key_ocmf", self.public_key)
        self.serial = text(words[0:8])

    def status(self) -> list[int]:
        """The status block; an unsynchronised clock (after the meter's power-up) is set first."""
        words = self.meter.read(STATUS, STATUS_REGS)
        if words[0] & 1:
            now = time.time()
            time.sleep(math.ceil(now) - now)  # a whole second, so the clock is never set behind
            second = math.ceil(now)
            self.meter.write(CLOCK, [second >> 16, second & 0xFFFF])
            words = self.meter.read(STATUS, STATUS_REGS)
        return words

    # --- the live dataset ---------------------------------------------------------------------

    def powermeter(self) -> dict[str, Any]:
        self.identify()
        m = self.meter.read(MEASUREMENTS, MEASUREMENT_REGS)
        flags = self.status()[0]
        clock = self.meter.read(CLOCK, CLOCK_REGS)
        return {
            "timestamp": rfc3339(u32(clock, 0)),
            "meter_id": self.serial,
            "phase_seq_error": bool(flags & 2) or bool(m[0x3B]),
            "energy_Wh_import": {"total": u32(m, 0x20) / 10, "L1": u32(m, 0x22) / 10, "L2": u32(m, 0x24) / 10,
                                 "L3": u32(m, 0x26) / 10},
            "energy_Wh_export": {"total": u32(m, 0x28) / 10},
            "power_W": {"total": s32(m, 0x14) / 10, "L1": s32(m, 0x0E) / 10, "L2": s32(m, 0x10) / 10,
                        "L3": s32(m, 0x12) / 10},
            "VAR": {"total": s32(m, 0x1C) / 10, "L1": s32(m, 0x16) / 10, "L2": s32(m, 0x18) / 10,
                    "L3": s32(m, 0x1A) / 10},
            "voltage_V": {"L1": u32(m, 0x00) / 100, "L2": u32(m, 0x02) / 100, "L3": u32(m, 0x04) / 100},
            "current_A": {"L1": s32(m, 0x06) / 1000, "L2": s32(m, 0x08) / 1000, "L3": s32(m, 0x0A) / 1000,
                          "N": s32(m, 0x0C) / 1000},
            "frequency_Hz": {"L1": u32(m, 0x1E) / 1000},
        }

    def publish_loop(self) -> None:
        backoff = 0.2
        while not self.closing.is_set():
            wait = self.args.publish_interval
            try:
                self.notify("powermeter", self.powermeter())
                backoff = 0.2
            except NoAnswer:
                wait, backoff = backoff, min(backoff * 2, 2.0)
            except MeterRefused as exc:
                log.warning("publisher: %s", exc)
            self.closing.wait(wait)

    # --- commands -------------------------------------------------------------------------------

    def persist(self, what: str, attempt: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Repeat an attempt while the meter is silent (up to --command-timeout) or busy signing."""
        deadline = time.monotonic() + self.args.command_timeout
        while True:
            try:
                self.identify()
                if not self.transactions:
                    return {"status": "NOT_SUPPORTED", "error": "the meter has no signed transactions"}
                return attempt()
            except NoAnswer as exc:
                if time.monotonic() >= deadline:
                    return {"status": "UNEXPECTED_ERROR", "error": f"{what} failed: meter not reachable for "
                            f"{self.args.command_timeout:g} s ({exc}); repeat it once the link is back"}
                time.sleep(0.2)
            except MeterRefused as exc:
                if exc.code == 6 and time.monotonic() < deadline:
                    time.sleep(0.05)  # busy
                    continue
                return {"status": "UNEXPECTED_ERROR", "error": f"{what} failed: {exc}"}

    def command(self, command: int, what: str) -> list[int]:
        """Write a command, wait while the meter signs; the transaction state block when it is done."""
        self.meter.write(COMMAND, [command])
        while True:
            state = self.meter.read(TRANSACTION_STATE, TRANSACTION_STATE_REGS)
            if state[21] == CMD_DONE:
                return state
            if state[21] == CMD_FAILED:
                code = self.meter.read(STATUS, STATUS_REGS)[2]
                raise MeterRefused(f"{METER_ERRORS.get(code, 'meter error')} (meter error {code})")
            time.sleep(0.02)

    def record(self, state: list[int]) -> dict[str, Any]:
        length = state[22]
        if not 0 < length <= RESULT_BYTES:
            raise MeterRefused(f"the meter reports a record of {length} bytes")
        words = self.meter.read(RESULT_BUFFER, math.ceil(length / 2))
        data = b"".join(w.to_bytes(2, "big") for w in words)[:length].decode("utf-8")
        return {"signed_meter_data": data, "signing_method": "", "encoding_method": "OCMF",
                "public_key": self.public_key}

    def start_transaction(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            words = identification(req)
        except Invalid as exc:
            return {"status": "UNEXPECTED_ERROR", "error": f"invalid TransactionReq: {exc}"}
        transaction_id = req["transaction_id"]

        def attempt() -> dict[str, Any]:
            state = self.meter.read(TRANSACTION_STATE, TRANSACTION_STATE_REGS)
            if self.status()[1] == 0:
                self.meter.write(IDENTIFICATION, words)
                self.meter.write(TRANSACTION_ID, encode_text(transaction_id, 20))
                try:
                    state = self.command(CMD_START, "start")
                except MeterRefused:
                    state = self.meter.read(TRANSACTION_STATE, TRANSACTION_STATE_REGS)
                    if text(state[0:20]) != transaction_id:  # a repeated start the meter ran already?
                        raise
            elif text(state[0:20]) != transaction_id:
                raise MeterRefused(f"transaction {text(state[0:20])!r} is still active in the meter")
            answer: dict[str, Any] = {"status": "OK"}
            for name, at in (("transaction_min_stop_time", 25), ("transaction_max_stop_time", 27)):
                if u32(state, at):
                    answer[name] = rfc3339(u32(state, at))
            return answer

        return self.persist(f"start of {transaction_id!r}", attempt)

    def stop_transaction(self, transaction_id: str) -> dict[str, Any]:
        if not isinstance(transaction_id, str) or len(transaction_id) > 40 or not transaction_id.isascii():
            return {"status": "UNEXPECTED_ERROR", "error": "transaction_id: not an id the meter can store"}
        if transaction_id == "":
            return self.clear_all()

        def attempt() -> dict[str, Any]:
            self.status()
            self.meter.write(TRANSACTION_ID, encode_text(transaction_id, 20))
            return {"status": "OK", "signed_meter_value": self.record(self.command(CMD_STOP, "stop"))}

        return self.persist(f"stop of {transaction_id!r}", attempt)

    def clear_all(self) -> dict[str, Any]:
        """stop(""): close everything; the record of a transaction that was open is fetched and returned."""
        seen_open: list[str] = []  # across attempts: a retry after a lost answer still finds the record

        def attempt() -> dict[str, Any]:
            self.status()
            open_id = text(self.meter.read(TRANSACTION_STATE, 20))
            if open_id and open_id not in seen_open:
                seen_open.append(open_id)
            self.command(CMD_CLEAR_ALL, "clear all")
            if not seen_open:
                return {"status": "OK"}
            self.meter.write(TRANSACTION_ID, encode_text(seen_open[-1], 20))
            return {"status": "OK", "signed_meter_value": self.record(self.command(CMD_FETCH, "fetch"))}

        return self.persist("stop of every pending transaction", attempt)

    # --- the protocol's input: calls, one JSON object a line ------------------------------------

    def handle(self, line: str) -> None:
        try:
            message = json.loads(line)
        except json.JSONDecodeError as exc:
            self.send({"id": None, "error": {"code": -32700, "message": f"parse error: {exc}"}})
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or "method" not in message:
            self.send({"id": None, "error": {"code": -32600, "message": "invalid request"}})
            return
        if "id" not in message:
            return  # a notification from the rig: none is defined
        call_id, method, params = message["id"], message["method"], message.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "start_transaction" and isinstance(params.get("value"), dict):
            result = self.start_transaction(params["value"])
        elif method == "stop_transaction" and "transaction_id" in params:
            result = self.stop_transaction(params["transaction_id"])
        elif method in ("start_transaction", "stop_transaction"):
            self.send({"id": call_id, "error": {"code": -32602, "message": f"invalid params for {method}"}})
            return
        else:
            self.send({"id": call_id, "error": {"code": -32601, "message": f"method not found: {method}"}})
            return
        self.send({"id": call_id, "result": result})

    def run(self) -> None:
        try:
            self.identify()
        except (NoAnswer, MeterRefused) as exc:
            log.warning("meter not ready at start: %s", exc)  # the publisher and commands try again
        self.notify("ready", {"publish_interval": self.args.publish_interval, "protocol_version": 1,
                              "name": "standalone reference-meter driver"})
        publisher = threading.Thread(target=self.publish_loop, daemon=True)
        publisher.start()
        for line in sys.stdin:  # one call at a time; the publisher keeps notifying meanwhile
            if line.strip():
                self.handle(line)
        self.closing.set()  # stdin closed: the rig wants the driver to stop
        publisher.join(timeout=5)
        self.meter.client.close()


def identification(req: dict[str, Any]) -> list[int]:
    """The identification block (0x0400, 172 registers) for a TransactionReq; Invalid names a bad field."""
    known = {"evse_id", "transaction_id", "identification_status", "identification_level",
             "identification_flags", "identification_type", "identification_data", "tariff_text"}
    for name in req:
        if name not in known:
            raise Invalid(f"{name}: unknown field")
    for name in ("evse_id", "transaction_id", "identification_status", "identification_flags",
                 "identification_type"):
        if req.get(name) is None:
            raise Invalid(f"{name}: required field is missing")
    for name, longest in TEXT_FIELDS.items():
        value = req.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > longest:
            raise Invalid(f"{name}: a string of at most {longest} characters is allowed")
        if any(not " " <= c <= "~" for c in value):
            raise Invalid(f"{name}: only printable ASCII can be stored in the meter")
    if not req["transaction_id"]:
        raise Invalid("transaction_id: must not be empty")

    def index(name: str, table: list[str], value: Any) -> int:
        if value not in table:
            raise Invalid(f"{name}: unknown value {value!r}")
        return table.index(value)

    flags = req["identification_flags"]
    if not isinstance(flags, list) or len(flags) > 4:
        raise Invalid("identification_flags: a list of at most 4 flags is allowed")
    level = req.get("identification_level")
    return [index("identification_status", STATUSES, req["identification_status"]),
            0xFFFF if level is None else index("identification_level", LEVELS, level),
            *[index(f"identification_flags[{i}]", FLAGS, f) for i, f in enumerate(flags)],
            *[0xFFFF] * (4 - len(flags)),
            index("identification_type", TYPES, req["identification_type"]),
            *encode_text(req.get("identification_data") or "", 20),
            *encode_text(req.get("tariff_text") or "", 125),
            *encode_text(req["evse_id"], 20)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True)
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--parity", choices=["N", "E", "O"], default="E")
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds to wait for one answer")
    parser.add_argument("--command-timeout", type=float, default=10.0)
    parser.add_argument("--publish-interval", type=float, default=1.0)
    parser.add_argument("--error-namespace", choices=["powermeter", "generic"], default="powermeter")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    Driver(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
