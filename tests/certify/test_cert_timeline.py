"""rigs.timeline: what the rig and EvseManager record, and how it reads back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from driver.events import ErrorEvent, ErrorType
from rigs import timeline as timeline_module
from rigs.evse_manager import EvseManager
from rigs.timeline import Timeline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Total:
    total: float


@dataclass
class Reading:
    power_W: Total
    energy_Wh_import: Total


@dataclass
class Answer:
    status: str
    error: str = ""


class FakeDriver:
    """Just enough of the driver API for EvseManager."""

    def __init__(self) -> None:
        self.on_error = None
        self.on_reading = None

    def subscribe_errors(self, callback):
        self.on_error = callback

    def subscribe_powermeter(self, callback):
        self.on_reading = callback

    def start_transaction(self, request):
        return Answer("OK")

    def stop_transaction(self, transaction_id):
        return Answer("OK") if transaction_id else Answer("NOT_SUPPORTED", "nothing pending")


@dataclass
class Request:
    transaction_id: str


def test_events_are_relative_to_the_origin_and_sorted_by_kind():
    clock = Clock()
    line = Timeline(clock)
    clock.now = 101.0
    line.fault("power_off")
    clock.now = 102.5
    line.reading(Reading(Total(7400.0), Total(12.5)))
    line.fault("load", power_w=0.0)
    out = line.to_json(origin=100.5)
    assert out["faults"] == [{"t": 0.5, "name": "power_off"}, {"t": 2.0, "name": "load", "power_w": 0.0}]
    assert out["readings"] == [{"t": 2.0, "power_w": 7400.0, "energy_wh": 12.5}]
    assert out["commands"] == [] and out["errors"] == [] and out["readings_dropped"] == 0
    assert line.to_json()["faults"][0]["t"] == 1.0  # the timeline's own creation as origin


def test_a_reading_without_power_keeps_the_energy():
    line = Timeline(Clock())
    line.reading(Reading(None, Total(3.0)))  # type: ignore[arg-type]
    assert line.to_json()["readings"] == [{"t": 0.0, "power_w": None, "energy_wh": 3.0}]


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        Timeline().add("weather")


def test_readings_beyond_the_limit_are_counted_not_kept(monkeypatch):
    monkeypatch.setattr(timeline_module, "MAX_READINGS", 3)
    line = Timeline(Clock())
    for _ in range(5):
        line.reading(Reading(Total(1.0), Total(1.0)))
    line.fault("power_on")
    out = line.to_json()
    assert len(out["readings"]) == 3 and out["readings_dropped"] == 2 and len(out["faults"]) == 1


def test_evse_manager_records_its_calls_the_readings_and_the_errors():
    line = Timeline()
    driver = FakeDriver()
    manager = EvseManager(driver, fail_on_powermeter_errors=False, timeline=line)
    manager.boot("old-id")
    session = manager.start_session(Request("tx-1"))
    driver.on_reading(Reading(Total(11000.0), Total(5.0)))
    driver.on_error(ErrorEvent(ErrorType.COMMUNICATION_FAULT, True, "no answer"))
    driver.on_error(ErrorEvent(ErrorType.COMMUNICATION_FAULT, False, "no answer"))
    manager.stop_session(session)
    manager.close()
    out = line.to_json()
    calls = [(c["name"], c["transaction_id"], c["status"], c.get("reason", "")) for c in out["commands"]]
    assert calls == [("stop", "old-id", "OK", "boot"), ("stop", "", "NOT_SUPPORTED", "boot"),
                     ("start", "tx-1", "OK", ""), ("stop", "tx-1", "OK", "Local")]
    assert out["commands"][1]["error"] == "nothing pending"
    assert all(c["duration_s"] >= 0 for c in out["commands"])
    assert [(e["type"], e["raised"]) for e in out["errors"]] == [("CommunicationFault", True),
                                                                  ("CommunicationFault", False)]
    assert out["readings"][0]["power_w"] == 11000.0
    times = [e["t"] for kind in ("commands", "errors") for e in out[kind]]
    assert all(t >= 0 for t in times)


def test_evse_manager_without_a_timeline_records_nothing():
    driver = FakeDriver()
    manager = EvseManager(driver)
    manager.start_session(Request("tx-2"))
    driver.on_reading(Reading(Total(1.0), Total(1.0)))
    assert len(manager.readings()) == 1
