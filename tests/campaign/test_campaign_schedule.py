"""Schedules: generated from the seed alone, JSON round trip, bad files named clearly."""

from __future__ import annotations

import json

import pytest

from campaign.schedule import CHARGE, FAULT_KINDS, TRIGGER_KINDS, Schedule, ScheduleError, generate


def test_a_schedule_depends_on_its_seed_and_index_only():
    assert generate(7, 3) == generate(7, 3)
    assert generate(7, 3) != generate(7, 4)
    assert generate(7, 3) != generate(8, 3)


def test_generated_schedules_cover_every_fault_kind_and_frame_kind():
    schedules = [generate(1, i) for i in range(300)]
    faults = [f for s in schedules for f in s.faults]
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    assert {f.trigger.kind for f in faults} == set(TRIGGER_KINDS)
    assert {f.trigger.phase for f in faults} == {"request", "answer"}
    assert any(f.trigger.cut_after == 0 for f in faults)  # a fault before the first byte
    assert all(1 <= len(s.sessions) <= 3 and 1 <= len(s.faults) <= 3 for s in schedules)


def test_a_model_gets_faults_only_at_the_request_kinds_its_protocol_has():
    kinds = ("start", "stop", "ident", "state", "record")  # the Iskra's: no txid, clear or fetch
    faults = [f for i in range(300) for f in generate(1, i, kinds).faults]
    assert {f.trigger.kind for f in faults} == {*kinds, CHARGE}
    assert all(f.trigger.cut_after == 0 and f.trigger.phase == "request"
               for f in faults if f.trigger.kind == CHARGE)
    with pytest.raises(ScheduleError, match="no fault point"):
        generate(1, 0, ())


def test_json_round_trip_and_file_load(tmp_path):
    schedule = generate(5, 9)
    assert Schedule.from_json(json.loads(schedule.dumps())) == schedule
    report = tmp_path / "failure.json"
    report.write_text(json.dumps({"schedule": schedule.to_json(), "violations": ["lost: x"]}))
    assert Schedule.load(report) == schedule


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("seed"), "schedule: missing field(s) seed"),
    (lambda d: d.update(extra=1), "schedule: unknown field(s) extra"),
    (lambda d: d.update(sessions=[]), "schedule.sessions: expected a list of 1..4 entries"),
    (lambda d: d["sessions"][0].update(power_w="hot"), "sessions[0].power_w: expected a number"),
    (lambda d: d["faults"][0].update(kind="flood"), "faults[0].kind: expected one of link, power"),
    (lambda d: d["faults"][0]["trigger"].update(kind="coffee"), "faults[0].trigger.kind: expected one of"),
    (lambda d: d["faults"][0]["trigger"].update(occurrence=0), "trigger.occurrence: expected an integer"),
    (lambda d: d["faults"][0].update(duration_s=99), "faults[0].duration_s: expected a number in 0..3"),
])
def test_a_bad_schedule_names_the_field(change, message):
    data = generate(1, 0).to_json()
    data = json.loads(json.dumps(data))
    change(data)
    with pytest.raises(ScheduleError, match=None) as info:
        Schedule.from_json(data)
    assert message in str(info.value)


def test_a_file_that_is_not_a_schedule_is_named(tmp_path):
    with pytest.raises(ScheduleError, match="cannot read the schedule"):
        Schedule.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScheduleError, match=r"bad\.json: not JSON"):
        Schedule.load(bad)
