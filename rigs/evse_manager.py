"""EVerest's EvseManager, as far as the powermeter sees it: the order and arguments of its calls.

EvseManager starts a signed transaction with the session's UUID as transaction_id, stops it with the
same id, and at boot first calls stop_transaction(last id) to close a transaction a power failure
interrupted, then stop_transaction("") to clear anything else pending in the meter. With
fail_on_powermeter_errors set, a CommunicationFault raised during a session stops that session; its
signed value is fetched once the meter answers again.

Driver callbacks arrive on the driver's own thread, so the stop on error is done by a worker thread
here (calling back into the driver from its callback could deadlock it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rigs.timeline import Timeline

log = logging.getLogger(__name__)

COMMUNICATION_FAULT = "CommunicationFault"


def status_name(response: Any) -> str:
    """The status of a start/stop response as its EVerest name ("OK", ...), whether enum or string."""
    status = getattr(response, "status", None)
    return str(getattr(status, "value", status))


@dataclass
class Session:
    """One charging session as EvseManager tracks it."""

    transaction_id: str
    request: Any
    start_response: Any = None
    stop_response: Any = None
    stop_reason: str | None = None  # "Local" for a normal stop, "PowermeterError" for a stop on error
    stop_attempts: int = 0

    @property
    def active(self) -> bool:
        return self.stop_reason is None

    @property
    def closed(self) -> bool:
        """True once the meter gave the signed value (the stop answered OK)."""
        return self.stop_response is not None and status_name(self.stop_response) == "OK"


@dataclass
class BootResult:
    """What the boot sequence got back: stop(last id) (None when there was no last id) and stop("")."""

    stop_last: Any
    clear_pending: Any


@dataclass
class _Events:
    errors: list[Any] = field(default_factory=list)
    readings: list[tuple[float, Any]] = field(default_factory=list)


class EvseManager:
    """Calls a powermeter driver the way EVerest's EvseManager does and records what it got back."""

    def __init__(self, driver: Any, fail_on_powermeter_errors: bool = True,
                 on_charging_disabled: Callable[[], None] | None = None,
                 timeline: Timeline | None = None, store: dict[str, Any] | None = None) -> None:
        self.driver = driver
        # EvseManager's persistent store (it survives a power failure of the charger): the rig keeps
        # one for all the EvseManagers it starts, so a restarted one knows the last transaction id.
        self.store: dict[str, Any] = {} if store is None else store
        self.timeline = timeline  # where the calls, readings and errors are recorded (rigs/timeline.py)
        self.fail_on_powermeter_errors = fail_on_powermeter_errors
        self.on_charging_disabled = on_charging_disabled
        self.session: Session | None = None
        self.events = _Events()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._worker: threading.Thread | None = None
        driver.subscribe_errors(self._on_error)
        driver.subscribe_powermeter(self._on_reading)

    @property
    def last_transaction_id(self) -> str | None:
        """The id of the last transaction started, from the persistent store."""
        return self.store.get("last_transaction_id")

    # --- the calls EvseManager makes -------------------------------------------------------------

    def boot(self, last_transaction_id: str | None) -> BootResult:
        """The start-up sequence: stop_transaction(last id) if there is one, then stop_transaction("")."""
        stop_last = None
        if last_transaction_id:
            stop_last = self._call("stop", last_transaction_id, "boot")
        clear = self._call("stop", "", "boot")
        return BootResult(stop_last=stop_last, clear_pending=clear)

    def start_session(self, request: Any) -> Session:
        """Start a signed transaction for a new session; the session id is request.transaction_id."""
        session = Session(transaction_id=request.transaction_id, request=request)
        session.start_response = self._call("start", request.transaction_id, "", request)
        if status_name(session.start_response) == "OK":
            with self._lock:
                self.session = session
                self.store["last_transaction_id"] = session.transaction_id
        return session

    def stop_session(self, session: Session) -> Any:
        """The normal end of a session: stop_transaction(id) with the session's id."""
        with self._lock:
            if session.stop_reason is None:
                session.stop_reason = "Local"
        return self._stop(session)

    def stop_transaction(self, transaction_id: str, reason: str = "") -> Any:
        """stop_transaction(id) outside any session (an id the charger never started, say)."""
        return self._call("stop", transaction_id, reason)

    def wait_idle(self, timeout: float) -> bool:
        """Wait for the stop-on-error worker to end (it ends once its session is closed, also by another
        stop); False when it still runs after timeout. A rig takes the timeline only then, so that no
        late answer of the worker lands in the next test's."""
        worker = self._worker
        if worker is None:
            return True
        self._wake.set()
        worker.join(timeout)
        return not worker.is_alive()

    def close(self) -> None:
        """Stop the worker thread (the driver itself belongs to the rig)."""
        self._closing = True
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
            self._worker = None

    # --- what the driver reports -------------------------------------------------------------------

    def active_errors(self) -> set[str]:
        """Error types raised and not yet cleared, from the events the driver published."""
        active: set[str] = set()
        with self._lock:
            for event in self.events.errors:
                (active.add if event.raised else active.discard)(event.type)
        return active

    def readings(self) -> list[tuple[float, Any]]:
        """(monotonic arrival time, Powermeter) pairs as the driver published them."""
        with self._lock:
            return list(self.events.readings)

    def _call(self, name: str, transaction_id: str, reason: str, request: Any = None) -> Any:
        """start_transaction(request) or stop_transaction(id), recorded on the timeline."""
        started = time.monotonic()
        if name == "start":
            response = self.driver.start_transaction(request)
        else:
            response = self.driver.stop_transaction(transaction_id)
        if self.timeline is not None:
            self.timeline.command(name, transaction_id, response, started, reason)
        return response

    def _on_reading(self, reading: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self.events.readings.append((now, reading))
        if self.timeline is not None:
            self.timeline.reading(reading, now)

    def _on_error(self, event: Any) -> None:
        if self.timeline is not None:
            self.timeline.error(event)
        with self._lock:
            self.events.errors.append(event)
            session = self.session
            stop_now = (self.fail_on_powermeter_errors and event.raised and event.type == COMMUNICATION_FAULT
                        and session is not None and session.active)
            if stop_now and session is not None:
                session.stop_reason = "PowermeterError"
        if stop_now:
            log.info("CommunicationFault during session %s: stopping it", session and session.transaction_id)
            if self.on_charging_disabled is not None:
                self.on_charging_disabled()
            self._ensure_worker()
        self._wake.set()

    # --- stop on error ---------------------------------------------------------------------------

    def _stop(self, session: Session) -> Any:
        session.stop_attempts += 1
        response = self._call("stop", session.transaction_id, session.stop_reason or "")
        session.stop_response = response
        return response

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():  # one worker per stop on error, not once
            self._worker = threading.Thread(target=self._stop_after_error, name="evse-manager", daemon=True)
            self._worker.start()

    def _stop_after_error(self) -> None:
        """Ask for the signed value of a session stopped on error until the meter gives it."""
        while not self._closing:
            session = self.session
            if session is None or session.stop_reason != "PowermeterError" or session.closed:
                return
            if COMMUNICATION_FAULT not in self.active_errors():
                try:
                    self._stop(session)
                except Exception as exc:  # a driver bug must not kill the worker silently
                    log.warning("stop_transaction(%s) raised %r", session.transaction_id, exc)
                if session.closed:
                    return
            self._wake.wait(timeout=0.2)
            self._wake.clear()
