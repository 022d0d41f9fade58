"""The EVerest powermeter policy, written once for every meter model.

Commands never raise for meter-side trouble: they answer OK / NOT_SUPPORTED / UNEXPECTED_ERROR with a
verbose error, as EVerest's interface asks, and report link and meter faults through error callbacks
(CommunicationFault, VendorError, VendorWarning, in the configured EVerest namespace). A lost link is
retried with backoff; every record is verified before it is passed on, unchanged. What a meter model's
registers and commands are is its protocol's business (driver/protocol.py, driver/protocols/). The
driver keeps no memory a restart would lose: the meter holds the open transaction and the last records,
so every command first asks the meter.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from driver.config import AUTO, DriverConfig
from driver.errors import (
    CommunicationError,
    DriverError,
    MeterExceptionError,
    OcmfError,
    RequestError,
)
from driver.events import ErrorEvent, ErrorType
from driver.modbus_link import ModbusLink
from driver.protocol import (
    CommandFailed,
    MeterIdentity,
    MeterProtocol,
    Started,
    Stopped,
    TooEarly,
    TransactionsNotSupported,
)
from driver.protocols import identify, protocol_class
from driver.types import (
    MAX_TRANSACTION_ID,
    Powermeter,
    SignedMeterValue,
    TransactionReq,
    TransactionRequestStatus,
    TransactionStartResponse,
    TransactionStopResponse,
    check_meter_text,
    rfc3339,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["DriverConfig", "ErrorEvent", "ErrorType", "PowermeterDriver"]



class _WatchedLink:
    """The Modbus link as protocols see it: an answer clears CommunicationFault, a silence raises it."""

    def __init__(self, link: ModbusLink, driver: PowermeterDriver) -> None:
        self._link = link
        self._driver = driver

    def _call(self, operation: Callable[..., T], *args: Any) -> T:
        try:
            result = operation(*args)
        except CommunicationError as exc:
            self._driver.raise_error(ErrorType.COMMUNICATION_FAULT, str(exc))
            raise
        except MeterExceptionError:
            self._driver.clear_error(ErrorType.COMMUNICATION_FAULT)
            raise
        self._driver.clear_error(ErrorType.COMMUNICATION_FAULT)
        return result

    def read_holding(self, address: int, count: int) -> list[int]:
        return self._call(self._link.read_holding, address, count)

    def read_input(self, address: int, count: int) -> list[int]:
        return self._call(self._link.read_input, address, count)

    def write(self, address: int, values: list[int]) -> None:
        self._call(self._link.write, address, values)

    def write_multiple(self, address: int, values: list[int]) -> None:
        self._call(self._link.write_multiple, address, values)


class PowermeterDriver:
    """EVerest's powermeter interface over Modbus RTU, for any meter model; thread safe; a context manager."""

    def __init__(self, config: DriverConfig) -> None:
        config.validate()
        self.config = config
        known = None if config.model == AUTO else protocol_class(config.model)
        self._link = ModbusLink(
            config.port,
            unit=config.unit,
            baudrate=config.baudrate,
            parity=config.parity,
            stopbits=config.stopbits,
            bytesize=config.bytesize,
            timeout=config.timeout,
            retries=config.retries,
            **({} if known is None else {"max_read": known.max_read, "max_write": known.max_write}),
        )
        self._watched = _WatchedLink(self._link, self)
        self._protocol: MeterProtocol | None = None if known is None else known(self._watched, self)
        self.model_found: str | None = None
        """What `model = "auto"` identified (the meter's own description), None before or otherwise."""
        self._command_lock = threading.Lock()  # one command at a time
        self._meter_lock = threading.RLock()  # identification, shared by the publisher and commands
        self._state_lock = threading.Lock()  # errors and subscriber lists
        self._closing = threading.Event()
        self._publisher: threading.Thread | None = None
        self._identified = False
        self._begin_records: dict[str, SignedMeterValue] = {}
        self._active: dict[ErrorType, str] = {}
        self._powermeter_subscribers: list[Callable[[Powermeter], None]] = []
        self._error_subscribers: list[Callable[[ErrorEvent], None]] = []

    # --- life cycle --------------------------------------------------------------------------

    def open(self) -> PowermeterDriver:
        """Open the port, learn the meter, start the publisher. A silent meter is a fault, not a failure."""
        self._link.open()
        self._closing.clear()
        try:
            self._meter()
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

    @property
    def publish_interval(self) -> float:
        """Seconds between published datasets (0: none are published)."""
        return float(self.config.publish_interval)

    @property
    def model(self) -> str | None:
        """The meter model this driver speaks, None while `auto` has not identified the meter yet."""
        return None if self._protocol is None else self._protocol.model

    @property
    def protocol(self) -> MeterProtocol | None:
        """The meter protocol in use (None while `auto` has not identified the meter yet)."""
        return self._protocol

    @property
    def reboots_seen(self) -> int:
        """How many meter reboots the protocol has noticed (0 where it cannot tell)."""
        return int(getattr(self._protocol, "reboots_seen", 0))

    # --- what the meter is ---------------------------------------------------------------------

    def _meter(self) -> MeterProtocol:
        """The protocol, identified (model "auto") and introduced to the meter once."""
        with self._meter_lock:
            if self._protocol is None:
                found, description = identify(self._watched)
                self.model_found = description
                log.info("meter identified as %s (%s)", found.model, description)
                self._link.max_read, self._link.max_write = found.max_read, found.max_write
                self._protocol = found(self._watched, self)
            if not self._identified:
                self._protocol.identify()
                self._identified = True
            return self._protocol

    def meter_identity(self) -> MeterIdentity:
        """What the meter says it is (identified now if needed); CommunicationError when it is silent."""
        identity = self._meter().identity
        assert identity is not None
        return identity

    def _require_transactions(self) -> MeterProtocol:
        protocol = self._meter()
        identity = protocol.identity
        assert identity is not None
        if not identity.transactions:
            raise TransactionsNotSupported(
                f"meter {identity.vendor} {identity.model} has no signed transactions ({identity.evidence})"
            )
        return protocol

    @property
    def public_key_ocmf(self) -> str | None:
        """The meter's OCMF public key: hex of its DER SubjectPublicKeyInfo, upper case; None if unknown."""
        try:
            key = self._meter().public_key_der()
        except DriverError as exc:
            log.warning("public key not readable: %s", exc)
            return None
        return None if key is None else key.hex().upper()

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
            return [self._event(kind, True, message) for kind, message in self._active.items()]

    def _event(self, kind: ErrorType, raised: bool, message: str) -> ErrorEvent:
        return ErrorEvent(kind, raised, message, self.config.error_namespace)

    def raise_error(self, kind: ErrorType, message: str) -> None:
        """Raise an error once (a second raise of an active one is ignored)."""
        with self._state_lock:
            if kind in self._active:
                return
            self._active[kind] = message
            subscribers = list(self._error_subscribers)
        log.warning("%s raised: %s", kind, message)
        self._notify(subscribers, self._event(kind, True, message))

    def clear_error(self, kind: ErrorType) -> None:
        """Clear an active error (nothing happens when it is not raised)."""
        with self._state_lock:
            if kind not in self._active:
                return
            message = self._active.pop(kind)
            subscribers = list(self._error_subscribers)
        log.info("%s cleared", kind)
        self._notify(subscribers, self._event(kind, False, message))

    @staticmethod
    def _notify(subscribers: list[Callable[[Any], None]], value: object) -> None:
        for callback in subscribers:
            try:
                callback(value)
            except Exception:
                log.exception("a subscriber failed; the driver carries on")

    def pause(self, seconds: float, what: str) -> None:
        """Wait, unless the driver closes meanwhile (then the command is abandoned)."""
        if self._closing.wait(seconds):
            raise CommandFailed(f"{what} abandoned: the driver is closing")

    def wait(self, seconds: float) -> bool:
        """Wait; True when the driver is closing."""
        return self._closing.wait(max(0.0, seconds))

    # --- the live dataset ----------------------------------------------------------------------

    def read_powermeter(self) -> Powermeter:
        """One Powermeter dataset read from the meter now; raises CommunicationError if it does not answer."""
        return self._meter().read_dataset()

    def _publish_loop(self) -> None:
        """Publish every publish_interval; after a link loss retry with exponential backoff."""
        backoff = self.config.backoff_initial
        refused = False
        while not self._closing.is_set():
            wait = self.config.publish_interval
            try:
                dataset = self.read_powermeter()
            except CommunicationError:
                wait = backoff
                backoff = min(backoff * 2, self.config.backoff_max)
            except MeterExceptionError as exc:
                refused = True
                self.raise_error(ErrorType.VENDOR_ERROR, f"meter refuses to report measurements: {exc}")
            except DriverError as exc:
                log.warning("publisher: %s", exc)
            except Exception:  # a bug must not end publishing for the life of the charger
                log.exception("publisher: unexpected failure; publishing carries on")
            else:
                backoff = self.config.backoff_initial
                if refused:  # only the refusal this loop raised; a protocol clears its own VendorErrors
                    refused = False
                    self.clear_error(ErrorType.VENDOR_ERROR)
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
        request = req
        return self._answer(
            TransactionStartResponse, f"start of {req.transaction_id!r}", lambda: self._start_once(request)
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
            TransactionStopResponse, f"stop of {transaction_id!r}",
            lambda: self._stop_response(self._require_transactions().stop(transaction_id)),
        )

    def _answer(self, response: Callable[..., T], what: str, attempt: Callable[[], T]) -> T:
        """Run a command's attempts under the command lock; what goes wrong becomes the answer's status
        and error, as EVerest's interface wants (a driver bug is answered too, not thrown at EvseManager)."""
        with self._command_lock:
            try:
                return self._persist(what, attempt)
            except TransactionsNotSupported as exc:
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
            except TooEarly as exc:
                wait = exc.earliest - time.time() + 0.05
                if time.monotonic() + wait > link_deadline:
                    raise
                log.info("%s: the meter takes a stop in %.2f s; waiting for it", what, wait)
                self.pause(max(wait, 0.0), what)
            except CommunicationError as exc:
                remaining = link_deadline - time.monotonic()
                if remaining <= 0:
                    raise CommandFailed(
                        f"{what} failed: meter not reachable for {self.config.command_timeout:g} s ({exc}); "
                        "the meter keeps its transactions, repeat the command once the link is back"
                    ) from None
                self.pause(min(backoff, remaining), what)
                backoff = min(backoff * 2, self.config.backoff_max)
            except MeterExceptionError as exc:
                if exc.code == 2:
                    raise TransactionsNotSupported(
                        f"{what}: the meter has no transaction registers ({exc})"
                    ) from None
                if exc.code != 6:
                    raise CommandFailed(f"{what} failed: {exc}") from None
                if time.monotonic() >= busy_deadline:
                    raise CommandFailed(
                        f"{what} failed: meter stayed busy for {self.config.busy_timeout:g} s"
                    ) from None
                self.pause(0.05, what)

    def _start_once(self, req: TransactionReq) -> TransactionStartResponse:
        started = self._require_transactions().start(req)
        return self._start_response(req.transaction_id, started)

    def _start_response(self, transaction_id: str, started: Started) -> TransactionStartResponse:
        def when(seconds: int | None) -> str | None:
            return None if seconds is None else rfc3339(seconds)

        response = TransactionStartResponse(
            TransactionRequestStatus.OK,
            transaction_min_stop_time=when(started.min_stop_time),
            transaction_max_stop_time=when(started.max_stop_time),
        )
        begin, key = started.begin_record, self.public_key_ocmf
        if begin is not None and key is not None and self._verify(begin, key):
            # read torn by a power loss (a blank buffer, or the record before): read it again; if that
            # does not verify either, the stop's answer carries the begin record (fetched then)
            again = self._require_transactions().fetch_begin(transaction_id)
            ok = again is not None and not self._verify(again, key)
            log.warning("the begin record of %r read did not verify; %s", transaction_id,
                        "the one fetched again does" if ok else "the stop's answer will carry it")
            begin = again if ok else None
        if begin is not None:
            response.signed_meter_value = self._signed(begin)
            self._begin_records[transaction_id] = response.signed_meter_value
        return response

    def _clear_all_once(self) -> Callable[[], TransactionStopResponse]:
        """An attempt for stop(""); remembers across retries which transaction was open, for its record."""
        seen_open: list[str] = []

        def attempt() -> TransactionStopResponse:
            protocol = self._require_transactions()
            open_id = protocol.open_transaction()
            if open_id is not None and open_id not in seen_open:
                seen_open.append(open_id)
            closed = protocol.close_all()
            if closed is None and seen_open:
                closed = protocol.fetch(seen_open[-1])
            if closed is None:
                return TransactionStopResponse(TransactionRequestStatus.OK)
            return self._stop_response(closed)

        return attempt

    def _signed(self, record: str) -> SignedMeterValue:
        return SignedMeterValue(
            signed_meter_data=record,
            signing_method="",
            encoding_method="OCMF",
            public_key=self.public_key_ocmf,
        )

    def _stop_response(self, stopped: Stopped) -> TransactionStopResponse:
        failures = self._verify(stopped.record, self.public_key_ocmf)
        if failures and self.public_key_ocmf is not None:
            again = self._read_again(stopped)
            if again is not None:
                stopped, failures = again, []
        signed = self._signed(stopped.record)
        begin = self._begin_records.pop(stopped.transaction_id, None)
        if stopped.begin_record is not None:
            begin = self._signed(stopped.begin_record)
        response = TransactionStopResponse(
            TransactionRequestStatus.OK, start_signed_meter_value=begin, signed_meter_value=signed
        )
        if failures:
            response.status = TransactionRequestStatus.UNEXPECTED_ERROR
            response.error = (
                f"OCMF record of transaction {stopped.transaction_id!r} does not verify against the meter's "
                f"public key: {'; '.join(failures)} (record passed on unchanged)"
            )
        return response

    def _read_again(self, stopped: Stopped) -> Stopped | None:
        """The record fetched once more when the one read does not verify: a read the meter's power loss
        tore (its buffer read after it rebooted) is no record of the meter's, and the meter still holds
        the real one. None when it holds no other record of the transaction that verifies."""
        fetched = self._require_transactions().fetch(stopped.transaction_id)
        if fetched is None or fetched.record == stopped.record or self._verify(fetched.record,
                                                                                self.public_key_ocmf):
            return None
        log.warning("the record of %r read did not verify; the one fetched again does (a read torn by a "
                    "power loss?)", stopped.transaction_id)
        if fetched.begin_record is None and stopped.begin_record is not None:
            fetched = dataclasses.replace(fetched, begin_record=stopped.begin_record)
        return fetched

    def _verify(self, record: str, public_key: str | None) -> list[str]:
        """The failed checks of the meter's record (empty when it verifies)."""
        if public_key is None:
            return ["the meter's public key could not be read"]
        try:  # written separately; imported late so the driver runs without it
            ocmf = importlib.import_module("driver.ocmf")
        except ImportError:
            self.raise_error(
                ErrorType.VENDOR_WARNING,
                "driver.ocmf is not installed: OCMF records are passed on unverified",
            )
            return []
        try:
            result = ocmf.verify(record, public_key)
        except OcmfError as exc:
            return [str(exc)]
        return [] if result.valid else [str(failure) for failure in result.failures] or ["signature invalid"]
