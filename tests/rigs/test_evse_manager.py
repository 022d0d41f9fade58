"""EvseManager's stop-on-error worker, as a rig waits for it (wait_idle) before it reads the timeline."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from driver.events import ErrorEvent, ErrorType
from rigs.evse_manager import EvseManager


@dataclass
class Answer:
    status: str
    error: str = ""


@dataclass
class Request:
    transaction_id: str


class SlowStopDriver:
    """Just enough of the driver API: a stop answers only once `release` is set."""

    def __init__(self) -> None:
        self.on_error = None
        self.release = threading.Event()
        self.stops = 0

    def subscribe_errors(self, callback):
        self.on_error = callback

    def subscribe_powermeter(self, callback):
        pass

    def start_transaction(self, request):
        return Answer("OK")

    def stop_transaction(self, transaction_id):
        self.stops += 1
        return Answer("OK") if self.release.wait(5) else Answer("UNEXPECTED_ERROR", "meter unreachable")


def test_wait_idle_waits_for_the_stop_on_error_worker_and_says_when_it_still_runs():
    driver = SlowStopDriver()
    manager = EvseManager(driver, fail_on_powermeter_errors=True)
    session = manager.start_session(Request("tx-1"))
    driver.on_error(ErrorEvent(ErrorType.COMMUNICATION_FAULT, True, "no answer"))
    assert session.stop_reason == "PowermeterError"
    driver.on_error(ErrorEvent(ErrorType.COMMUNICATION_FAULT, False, "answered"))  # the worker may stop now
    try:
        assert manager.wait_idle(0.3) is False  # its stop has not been answered
        driver.release.set()
        assert manager.wait_idle(5) is True
        assert session.closed and driver.stops >= 1
    finally:
        driver.release.set()
        manager.close()
