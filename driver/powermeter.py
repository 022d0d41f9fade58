"""The EVerest powermeter driver for an Eichrecht meter speaking the reference register map.

Commands never raise for meter-side trouble: they answer OK / NOT_SUPPORTED / UNEXPECTED_ERROR with a
verbose error, as EVerest's interface asks, and report link and meter faults through error callbacks
(CommunicationFault, VendorError, VendorWarning). The driver keeps no memory a restart would lose:
the meter holds the open transaction and the last records, so every command first asks the meter.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from driver import registers as reg
from driver.errors import (
    CommunicationError,
    ConfigurationError,
    DriverError,
    MeterExceptionError,
    OcmfError,
    RequestError,
)
from driver.modbus_link import PARITIES, ModbusLink
from driver.types import (
    MAX_TRANSACTION_ID,
    Current,
    Energy,
    Frequency,
    Power,
    Powermeter,
    ReactivePower,
    SignedMeterValue,
    TransactionReq,
    TransactionRequestStatus,
    TransactionStartResponse,
    TransactionStopResponse,
    Voltage,
    check_meter_text,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_POLL_SECONDS = 0.05


@dataclass
class DriverConfig:
    """Everything the driver needs to know: the port, the bus settings, and its time budgets."""

    port: str
    baudrate: int = 19200
    parity: str = "E"
    stopbits: int = 1
    bytesize: int = 8
    unit: int = 1
    timeout: float = 0.5
    """Seconds to wait for one answer."""
    retries: int = 1
    """Repeats of an unanswered request before the link counts as lost."""
    publish_interval: float = 1.0
    """Seconds between published Powermeter datasets; 0 runs no publisher thread."""
    command_timeout: float = 10.0
    """How long start/stop wait for an unreachable meter before answering UNEXPECTED_ERROR."""
    busy_timeout: float = 10.0
    """How long to wait for a meter that answers busy (signing) before giving up."""
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    meter_id: str | None = None
    """Published as Powermeter.meter_id; the meter's serial number when None."""
    sync_clock: bool = True
    """Set the meter's clock from this host whenever the meter reports it unsynchronised."""
    utc_offset_minutes: int | None = None
    """Written to clock_utc_offset together with the clock when given."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ConfigurationError naming the first setting that is wrong."""
        if not isinstance(self.port, str) or not self.port:
            raise ConfigurationError("port: no serial port given")
        if self.parity not in PARITIES:
            raise ConfigurationError(f"parity: {self.parity!r} is not one of N, E, O")
        if not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ConfigurationError(f"baudrate: {self.baudrate!r} is not a positive integer")
        if self.stopbits not in (1, 2):
            raise ConfigurationError(f"stopbits: {self.stopbits!r} is not 1 or 2")
        if self.bytesize not in (7, 8):
            raise ConfigurationError(f"bytesize: {self.bytesize!r} is not 7 or 8")
        if not isinstance(self.unit, int) or not 1 <= self.unit <= 247:
            raise ConfigurationError(f"unit: {self.unit!r} is not a Modbus unit id (1..247)")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(f"retries: {self.retries!r} is not a count")
        for name in ("timeout", "command_timeout", "busy_timeout", "backoff_initial", "backoff_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{name}: {value!r} is not a positive number of seconds")
        if not isinstance(self.publish_interval, int | float) or self.publish_interval < 0:
            raise ConfigurationError(f"publish_interval: {self.publish_interval!r} is negative")


class ErrorType(StrEnum):
    """The EVerest powermeter error types this driver raises."""

    COMMUNICATION_FAULT = "CommunicationFault"
    VENDOR_ERROR = "VendorError"
    VENDOR_WARNING = "VendorWarning"


@dataclass(frozen=True)
class ErrorEvent:
    """An error raised (raised=True) or cleared (raised=False), as the subscribers see it."""

    type: ErrorType
    raised: bool
    message: str


class _CommandFailed(DriverError):
    """A command cannot be done; becomes UNEXPECTED_ERROR with this message. Never leaves this module."""


class _NotSupported(DriverError):
    """The meter cannot do transactions; becomes NOT_SUPPORTED. Never leaves this module."""


def rfc3339(seconds: int | float) -> str:
    """UTC seconds since 1970 as an RFC 3339 timestamp."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PowermeterDriver:
    """EVerest's powermeter interface over Modbus RTU; thread safe; use as a context manager."""

    def __init__(self, config: DriverConfig) -> None:
        config.validate()
        self.config = config
        self._link = ModbusLink(
            config.port,
            unit=config.unit,
            baudrate=config.baudrate,
            parity=config.parity,
            stopbits=config.stopbits,
            bytesize=config.bytesize,
            timeout=config.timeout,
            retries=config.retries,
        )
        self._command_lock = threading.Lock()  # one command at a time
        self._meter_lock = threading.RLock()  # identity, boot count and clock handling
        self._state_lock = threading.Lock()  # errors and subscriber lists
        self._closing = threading.Event()
        self._publisher: threading.Thread | None = None
        self._identity: dict[str, Any] | None = None
        self._public_key_der: bytes | None = None
        self._boot_count: int | None = None
        self._begin_records: dict[str, SignedMeterValue] = {}
        self._active: dict[ErrorType, str] = {}
        self._powermeter_subscribers: list[Callable[[Powermeter], None]] = []
        self._error_subscribers: list[Callable[[ErrorEvent], None]] = []
        self.reboots_seen = 0
        """How many meter reboots (boot_count changes) this driver has noticed."""

    # --- life cycle --------------------------------------------------------------------------

    def open(self) -> PowermeterDriver:
        """Open the port, learn the meter, start the publisher. A silent meter is a fault, not a failure."""
        self._link.open()
        self._closing.clear()
        try:
            self._learn_meter()
        except (CommunicationError, MeterExceptionError) as exc:
            log.warning("meter not ready at open: %s", exc)
        if self.config.publish_interval > 0:
            self._publisher = threading.Thread(
                target=self._publish_loop, name="powermeter-publisher", daemon=True
            )
            self._publisher.start()
        return self

    def close(self) -> None:
        """Stop the publisher and close the port; safe to call twice."""
        self._closing.set()
        if self._publisher is not None:
            self._publisher.join(timeout=self.config.timeout * (self.config.retries + 1) * 4 + 5)
            self._publisher = None
        self._link.close()

    def __enter__(self) -> PowermeterDriver:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- subscriptions and errors ------------------------------------------------------------

    def subscribe_powermeter(self, callback: Callable[[Powermeter], None]) -> None:
        """Called from the publisher thread with every published dataset."""
        with self._state_lock:
            self._powermeter_subscribers.append(callback)

    def subscribe_errors(self, callback: Callable[[ErrorEvent], None]) -> None:
        """Called on every raise and clear of an error."""
        with self._state_lock:
            self._error_subscribers.append(callback)

    @property
    def active_errors(self) -> list[ErrorEvent]:
        """The errors raised and not yet cleared."""
        with self._state_lock:
            return [ErrorEvent(kind, True, message) for kind, message in self._active.items()]

    def _raise_error(self, kind: ErrorType, message: str) -> None:
        with self._state_lock:
            if kind in self._active:
                return
            self._active[kind] = message
            subscribers = list(self._error_subscribers)
        log.warning("%s raised: %s", kind, message)
        self._notify(subscribers, ErrorEvent(kind, True, message))

    def _clear_error(self, kind: ErrorType) -> None:
        with self._state_lock:
            if kind not in self._active:
                return
            message = self._active.pop(kind)
            subscribers = list(self._error_subscribers)
        log.info("%s cleared", kind)
        self._notify(subscribers, ErrorEvent(kind, False, message))

    @staticmethod
    def _notify(subscribers: list[Callable[[Any], None]], value: object) -> None:
        for callback in subscribers:
            try:
                callback(value)
            except Exception:
                log.exception("a subscriber failed; the driver carries on")

    # --- register access with fault bookkeeping ----------------------------------------------

    def _read(self, address: int, count: int) -> list[int]:
        try:
            registers = self._link.read(address, count)
        except CommunicationError as exc:
            self._raise_error(ErrorType.COMMUNICATION_FAULT, str(exc))
            raise
        except MeterExceptionError:
            self._clear_error(ErrorType.COMMUNICATION_FAULT)
            raise
        self._clear_error(ErrorType.COMMUNICATION_FAULT)
        return registers

    def _write(self, address: int, values: list[int]) -> None:
        try:
            self._link.write(address, values)
        except CommunicationError as exc:
            self._raise_error(ErrorType.COMMUNICATION_FAULT, str(exc))
            raise
        except MeterExceptionError:
            self._clear_error(ErrorType.COMMUNICATION_FAULT)
            raise
        self._clear_error(ErrorType.COMMUNICATION_FAULT)

    def _read_block(self, block: reg.Block) -> dict[str, Any]:
        return reg.decode_block(block, self._read(block.address, block.count))

    # --- what the meter is ---------------------------------------------------------------------

    def _learn_meter(self) -> None:
        """Read identity and public key, and look at the status (which sets the clock if needed)."""
        with self._meter_lock:
            identity = self._read_block(reg.IDENTITY)
            if identity["map_version"] != reg.SUPPORTED_MAP_VERSION:
                self._raise_error(
                    ErrorType.VENDOR_WARNING,
                    f"meter register map version {identity['map_version']}, "
                    f"driver knows version {reg.SUPPORTED_MAP_VERSION}",
                )
            self._identity = identity
            if identity["capabilities"] & reg.CAP_TRANSACTIONS:
                self._public_key_der = self._read_public_key()
            self._read_status()

    def _ensure_identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._learn_meter()
        assert self._identity is not None
        return self._identity

    def _read_public_key(self) -> bytes:
        registers = self._read(reg.PUBLIC_KEY.address, reg.PUBLIC_KEY.count)
        length = registers[0]
        key_bytes = reg.registers_to_bytes(registers[reg.PUBLIC_KEY_BYTES_OFFSET :])
        if not 0 < length <= len(key_bytes):
            raise CommunicationError(
                f"meter reports a public key of {length} bytes, outside 1..{len(key_bytes)}"
            )
        return key_bytes[:length]

    @property
    def public_key_ocmf(self) -> str | None:
        """The meter's OCMF public key: hex of its DER SubjectPublicKeyInfo, upper case; None if unknown."""
        if self._public_key_der is None:
            try:
                self._learn_meter()
            except DriverError as exc:
                log.warning("public key not readable: %s", exc)
        return None if self._public_key_der is None else self._public_key_der.hex().upper()

    def _read_status(self) -> dict[str, Any]:
        """Read the status block; notice a reboot (boot_count changed) and set an unsynchronised clock."""
        with self._meter_lock:
            status = self._read_block(reg.STATUS)
            boot_count = status["boot_count"]
            if self._boot_count is not None and boot_count != self._boot_count:
                self.reboots_seen += 1
                log.warning("meter rebooted (boot_count %s -> %s)", self._boot_count, boot_count)
                self._boot_count = boot_count
                self._identity = None
                self._learn_meter()  # reads identity and key again, then this status once more
                return self._read_block(reg.STATUS)
            self._boot_count = boot_count
            if status["status_flags"] & reg.FLAG_CLOCK_UNSYNCHRONISED and self.config.sync_clock:
                self._set_clock()
                status = self._read_block(reg.STATUS)
            return status

    def _set_clock(self) -> None:
        """Write the host's UTC time at a whole-second boundary, so the meter's clock is not set behind.

        The register has whole seconds; writing a truncated time would put the clock up to a second
        behind, and a second setting (after a reboot) could then date an end reading before its begin.
        """
        try:
            if self.config.utc_offset_minutes is not None:
                self._write(reg.CLOCK.address + 2, [self.config.utc_offset_minutes & 0xFFFF])
            now = time.time()
            second = math.ceil(now)
            if self._closing.wait(second - now):
                return
            self._write(reg.CLOCK_TIME, reg.encode_u32(second))
        except MeterExceptionError as exc:
            self._raise_error(
                ErrorType.VENDOR_WARNING, f"meter clock is unsynchronised and cannot be set: {exc}"
            )
            return
        log.info("meter clock set from this host")

    # --- the live dataset ----------------------------------------------------------------------

    def read_powermeter(self) -> Powermeter:
        """One Powermeter dataset read from the meter now; raises CommunicationError if it does not answer."""
        identity = self._ensure_identity()
        values = self._read_block(reg.MEASUREMENTS)
        status = self._read_status()
        clock = self._read_block(reg.CLOCK)
        return Powermeter(
            timestamp=rfc3339(clock["clock_time"]),
            meter_id=self.config.meter_id or identity["serial_number"] or None,
            phase_seq_error=bool(
                values["phase_sequence"] == 1 or status["status_flags"] & reg.FLAG_PHASE_SEQUENCE_ERROR
            ),
            energy_Wh_import=Energy(
                total=values["energy_import_total"],
                L1=values["energy_import_l1"],
                L2=values["energy_import_l2"],
                L3=values["energy_import_l3"],
            ),
            energy_Wh_export=Energy(total=values["energy_export_total"]),
            power_W=Power(
                total=values["power_total"],
                L1=values["power_l1"],
                L2=values["power_l2"],
                L3=values["power_l3"],
            ),
            voltage_V=Voltage(L1=values["voltage_l1"], L2=values["voltage_l2"], L3=values["voltage_l3"]),
            VAR=ReactivePower(
                total=values["reactive_power_total"],
                L1=values["reactive_power_l1"],
                L2=values["reactive_power_l2"],
                L3=values["reactive_power_l3"],
            ),
            current_A=Current(
                L1=values["current_l1"],
                L2=values["current_l2"],
                L3=values["current_l3"],
                N=values["current_n"],
            ),
            frequency_Hz=Frequency(L1=values["frequency"]),
        )

    def _publish_loop(self) -> None:
        """Publish every publish_interval; after a link loss retry with exponential backoff."""
        backoff = self.config.backoff_initial
        while not self._closing.is_set():
            wait = self.config.publish_interval
            try:
                dataset = self.read_powermeter()
            except CommunicationError:
                wait = backoff
                backoff = min(backoff * 2, self.config.backoff_max)
            except MeterExceptionError as exc:
                self._raise_error(ErrorType.VENDOR_ERROR, f"meter refuses to report measurements: {exc}")
            except DriverError as exc:
                log.warning("publisher: %s", exc)
            except Exception:  # a bug must not end publishing for the life of the charger
                log.exception("publisher: unexpected failure; publishing carries on")
            else:
                backoff = self.config.backoff_initial
                self._clear_error(ErrorType.VENDOR_ERROR)
                with self._state_lock:
                    subscribers = list(self._powermeter_subscribers)
                self._notify(subscribers, dataset)
            self._closing.wait(wait)

    # --- commands ------------------------------------------------------------------------------

    def start_transaction(self, req: TransactionReq | dict[str, Any]) -> TransactionStartResponse:
        """Write the identification and start; a request that breaks the type never reaches the meter."""
        try:
            if isinstance(req, TransactionReq):
                req.validate()
            else:
                req = TransactionReq.from_dict(req)
        except RequestError as exc:
            return TransactionStartResponse(
                TransactionRequestStatus.UNEXPECTED_ERROR, error=f"invalid TransactionReq: {exc}"
            )
        return self._answer(
            TransactionStartResponse, f"start of {req.transaction_id!r}", lambda: self._start_once(req)
        )

    def stop_transaction(self, transaction_id: str) -> TransactionStopResponse:
        """Stop one transaction and return its signed record; "" clears every pending transaction."""
        try:
            check_meter_text("transaction_id", transaction_id, MAX_TRANSACTION_ID)
        except RequestError as exc:
            return TransactionStopResponse(TransactionRequestStatus.UNEXPECTED_ERROR, error=str(exc))
        if transaction_id == "":
            return self._answer(TransactionStopResponse, "stop of every pending transaction",
                                self._clear_all_once())
        return self._answer(
            TransactionStopResponse, f"stop of {transaction_id!r}", lambda: self._stop_once(transaction_id)
        )

    def _answer(
        self,
        response: Callable[..., T],
        what: str,
        attempt: Callable[[], T],
    ) -> T:
        """Run a command's attempts under the command lock; what goes wrong becomes the answer's status
        and error, as EVerest's interface wants (a driver bug is answered too, not thrown at EvseManager)."""
        with self._command_lock:
            try:
                return self._persist(what, attempt)
            except _NotSupported as exc:
                return response(TransactionRequestStatus.NOT_SUPPORTED, error=str(exc))
            except DriverError as exc:
                return response(TransactionRequestStatus.UNEXPECTED_ERROR, error=str(exc))
            except Exception as exc:
                log.exception("%s failed unexpectedly", what)
                return response(TransactionRequestStatus.UNEXPECTED_ERROR, error=f"driver failure: {exc!r}")

    def _persist(self, what: str, attempt: Callable[[], T]) -> T:
        """Run an idempotent command attempt until it works, the link stays down too long, or busy lasts."""
        started = time.monotonic()
        link_deadline = started + self.config.command_timeout
        busy_deadline = started + self.config.busy_timeout
        backoff = self.config.backoff_initial
        while True:
            try:
                return attempt()
            except CommunicationError as exc:
                remaining = link_deadline - time.monotonic()
                if remaining <= 0:
                    raise _CommandFailed(
                        f"{what} failed: meter not reachable for {self.config.command_timeout:g} s ({exc}); "
                        "the meter keeps its transactions, repeat the command once the link is back"
                    ) from None
                self._pause(min(backoff, remaining), what)
                backoff = min(backoff * 2, self.config.backoff_max)
            except MeterExceptionError as exc:
                if exc.code == 2:
                    raise _NotSupported(f"{what}: the meter has no transaction registers ({exc})") from None
                if exc.code != 6:
                    raise _CommandFailed(f"{what} failed: {exc}") from None
                if time.monotonic() >= busy_deadline:
                    raise _CommandFailed(
                        f"{what} failed: meter stayed busy for {self.config.busy_timeout:g} s"
                    ) from None
                self._pause(BUSY_POLL_SECONDS, what)

    def _pause(self, seconds: float, what: str) -> None:
        if self._closing.wait(seconds):
            raise _CommandFailed(f"{what} abandoned: the driver is closing")

    def _require_transactions(self) -> None:
        identity = self._ensure_identity()
        if not identity["capabilities"] & reg.CAP_TRANSACTIONS:
            raise _NotSupported(
                f"meter {identity['vendor']} {identity['model']} has no signed transactions "
                "(capabilities bit 0 clear)"
            )

    def _run_meter_command(self, command: int, what: str) -> dict[str, Any]:
        """Write a command and wait while the meter is busy; _CommandFailed with the meter's reason."""
        try:
            self._write(reg.COMMAND, [command])
        except MeterExceptionError as exc:
            if exc.code in (2, 6):
                raise  # not supported / busy: _persist handles them
            raise _CommandFailed(f"{what} refused: {exc}{self._last_error_suffix()}") from None
        busy_deadline = time.monotonic() + self.config.busy_timeout
        while True:
            state = self._read_block(reg.TRANSACTION_STATE)
            if state["command_status"] == reg.CMD_DONE:
                return state
            if state["command_status"] == reg.CMD_FAILED:
                code = self._read_block(reg.STATUS)["last_error"]
                raise _CommandFailed(f"{what} failed: {reg.meter_error_text(code)} (meter error {code})")
            if time.monotonic() >= busy_deadline:
                raise _CommandFailed(f"{what} failed: meter stayed busy for {self.config.busy_timeout:g} s")
            self._pause(BUSY_POLL_SECONDS, what)

    def _last_error_suffix(self) -> str:
        try:
            code = self._read_block(reg.STATUS)["last_error"]
        except DriverError:
            return ""
        return f"; meter says: {reg.meter_error_text(code)} (meter error {code})" if code else ""

    def _start_once(self, req: TransactionReq) -> TransactionStartResponse:
        self._require_transactions()
        status = self._read_status()
        state = self._read_block(reg.TRANSACTION_STATE)
        if status["transaction_state"] != reg.STATE_IDLE:
            if state["open_transaction_id"] == req.transaction_id:
                log.info(
                    "transaction %r is already open in the meter (start answer lost?)", req.transaction_id
                )
                return self._started(req.transaction_id, state, fresh=False)
            raise _CommandFailed(
                f"start of {req.transaction_id!r} refused: transaction {state['open_transaction_id']!r} "
                "is still active in the meter; stop it first"
            )
        self._write(reg.IDENTIFICATION_ADDRESS, reg.encode_identification(req))
        try:
            state = self._run_meter_command(reg.CMD_START, f"start of {req.transaction_id!r}")
        except _CommandFailed:
            # The link layer repeats a write whose answer was lost; a start the meter already ran then
            # fails "already active". If the open transaction is the one asked for, the start worked.
            state = self._read_block(reg.TRANSACTION_STATE)
            if state["open_transaction_id"] != req.transaction_id:
                raise
            log.info("start of %r: the meter runs it (a repeated start was refused)", req.transaction_id)
        return self._started(req.transaction_id, state, fresh=True)

    def _started(
        self, transaction_id: str, state: dict[str, Any], *, fresh: bool
    ) -> TransactionStartResponse:
        response = TransactionStartResponse(
            TransactionRequestStatus.OK,
            transaction_min_stop_time=rfc3339(state["min_stop_time"]) if state["min_stop_time"] else None,
            transaction_max_stop_time=rfc3339(state["max_stop_time"]) if state["max_stop_time"] else None,
        )
        separate_begin = self._ensure_identity()["capabilities"] & reg.CAP_SEPARATE_BEGIN
        if fresh and separate_begin and state["result_length"]:
            # Only a record made by this start counts: the buffer may still hold the last stop's record.
            if state["result_pagination"] == self._read_block(reg.STATUS)["pagination"]:
                response.signed_meter_value = self._signed(self._read_record(state))
                self._begin_records[transaction_id] = response.signed_meter_value
            else:
                log.info("meter signs begin records separately but left none for %r", transaction_id)
        return response

    def _stop_once(self, transaction_id: str) -> TransactionStopResponse:
        self._require_transactions()
        self._read_status()  # notices a reboot before the command
        self._write(reg.TRANSACTION_ID, reg.encode_string(transaction_id, reg.TRANSACTION_ID_REGS))
        state = self._run_meter_command(reg.CMD_STOP, f"stop of {transaction_id!r}")
        record = self._read_record(state)
        return self._stop_response(transaction_id, record)

    def _clear_all_once(self) -> Callable[[], TransactionStopResponse]:
        """An attempt for stop(""); remembers across retries which transaction was open, for its record."""
        seen_open: list[str] = []

        def attempt() -> TransactionStopResponse:
            self._require_transactions()
            self._read_status()
            open_id = self._read_block(reg.TRANSACTION_STATE)["open_transaction_id"]
            if open_id and open_id not in seen_open:
                seen_open.append(open_id)
            self._run_meter_command(reg.CMD_CLEAR_ALL, "clear of every pending transaction")
            if not seen_open:
                return TransactionStopResponse(TransactionRequestStatus.OK)
            closed = seen_open[-1]
            self._write(reg.TRANSACTION_ID, reg.encode_string(closed, reg.TRANSACTION_ID_REGS))
            state = self._run_meter_command(reg.CMD_FETCH, f"fetch of the record of {closed!r}")
            return self._stop_response(closed, self._read_record(state))

        return attempt

    def _read_record(self, state: dict[str, Any]) -> str:
        """The OCMF record in the result buffer, exactly as the meter wrote it."""
        length = state["result_length"]
        if not 0 < length <= reg.RESULT_BUFFER_BYTES:
            raise _CommandFailed(
                f"meter reports a record of {length} bytes, outside 1..{reg.RESULT_BUFFER_BYTES}"
            )
        registers = self._read(reg.RESULT_BUFFER, math.ceil(length / 2))
        data = reg.registers_to_bytes(registers)[:length]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _CommandFailed(f"the meter's record is not UTF-8 text ({exc})") from None

    def _signed(self, record: str) -> SignedMeterValue:
        return SignedMeterValue(
            signed_meter_data=record,
            signing_method="",
            encoding_method="OCMF",
            public_key=self.public_key_ocmf,
        )

    def _stop_response(self, transaction_id: str, record: str) -> TransactionStopResponse:
        signed = self._signed(record)
        response = TransactionStopResponse(
            TransactionRequestStatus.OK,
            start_signed_meter_value=self._begin_records.pop(transaction_id, None),
            signed_meter_value=signed,
        )
        failures = self._verify(record, signed.public_key)
        if failures:
            response.status = TransactionRequestStatus.UNEXPECTED_ERROR
            response.error = (
                f"OCMF record of transaction {transaction_id!r} does not verify against the meter's "
                f"public key: {'; '.join(failures)} (record passed on unchanged)"
            )
        return response

    def _verify(self, record: str, public_key: str | None) -> list[str]:
        """The failed checks of the meter's record (empty when it verifies)."""
        if public_key is None:
            return ["the meter's public key could not be read"]
        try:  # written separately; imported late so the driver runs without it
            ocmf = importlib.import_module("driver.ocmf")
        except ImportError:
            self._raise_error(
                ErrorType.VENDOR_WARNING,
                "driver.ocmf is not installed: OCMF records are passed on unverified",
            )
            return []
        try:
            result = ocmf.verify(record, public_key)
        except OcmfError as exc:
            return [str(exc)]
        return [] if result.valid else [str(failure) for failure in result.failures] or ["signature invalid"]
