"""Steps about the published Powermeter dataset: the interval, its fields, its values and phase order.

The publish interval comes from the driver API (`publish_interval`), never from a driver's settings.
"""

from __future__ import annotations

import itertools
from typing import Any

from pytest_bdd import parsers, then, when

from rigs import Rig

from .context import Context, evse, wait_until


@when(parsers.parse("the driver has published {count:d} readings"))
def published_readings(rig: Rig, ctx: Context, count: int) -> None:
    manager = evse(rig)
    ctx.readings_from = len(manager.readings())
    interval = manager.driver.publish_interval
    wait_until(lambda: len(manager.readings()) >= ctx.readings_from + count,
               f"the driver published {count} readings", timeout=count * interval * 4 + 5)
    ctx.readings = manager.readings()[ctx.readings_from:ctx.readings_from + count]


def taken(ctx: Context, at_least: int = 1) -> list[tuple[float, Any]]:
    assert len(ctx.readings) >= at_least, (
        f"{len(ctx.readings)} readings taken, this needs {at_least}: wait for them first")
    return ctx.readings


@then("the readings arrived at the configured interval")
def readings_at_interval(rig: Rig, ctx: Context) -> None:
    interval = float(evse(rig).driver.publish_interval)
    times = [t for t, _ in taken(ctx, 2)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    # The publisher waits `interval` after each read, so the period is the interval plus a read time.
    assert 0.8 * interval <= mean <= 1.5 * interval + 0.1, (
        f"mean interval {mean:.3f} s, configured {interval} s")
    assert max(gaps) <= 3 * interval + 0.2, f"a gap of {max(gaps):.3f} s (configured {interval} s)"


@then("every reading has a timestamp, energy and the meter id")
def readings_complete(ctx: Context) -> None:
    for _, reading in taken(ctx):
        assert reading.timestamp, f"no timestamp: {reading}"
        assert reading.energy_Wh_import is not None and reading.energy_Wh_import.total is not None, (
            f"no imported energy: {reading}")
        assert reading.meter_id, f"no meter_id: {reading}"


@then("the imported energy never went backwards")
def energy_monotonic(ctx: Context) -> None:
    values = [reading.energy_Wh_import.total for _, reading in taken(ctx, 2)]
    for before, after in itertools.pairwise(values):
        assert after >= before, f"energy went backwards: {before} -> {after}"


@then("the imported energy grew")
def energy_grew(ctx: Context) -> None:
    values = [reading.energy_Wh_import.total for _, reading in taken(ctx, 2)]
    assert values[-1] > values[0], f"energy did not grow over the readings: {values[0]} -> {values[-1]}"


@then("the readings show power drawn on the phases")
def readings_show_power(ctx: Context) -> None:
    _, last = taken(ctx)[-1]
    assert last.power_W is not None and (last.power_W.total or 0) > 0, f"power: {last.power_W}"
    assert last.voltage_V is not None and last.voltage_V.L1, f"voltage: {last.voltage_V}"
    assert last.current_A is not None and last.current_A.L1, f"current: {last.current_A}"


@then("the readings show no power drawn")
def readings_show_no_power(ctx: Context) -> None:
    for _, reading in taken(ctx):
        total = reading.power_W.total if reading.power_W is not None else None
        assert total is not None and abs(total) < 1, f"power {total} W with no load"


@then("the last reading agrees with the meter's ground truth")
def reading_agrees_with_ground_truth(rig: Rig) -> None:
    """Catches a wrong scale or word order in the driver's decoding: the meter side knows the truth.

    The energy is bracketed, which holds at any speed factor: ground truth before, a reading whose
    Modbus read began after it (the second one to arrive: the publisher reads one at a time), and
    ground truth after that reading arrived."""
    manager = evse(rig)
    before = rig.ground_truth()
    seen = len(manager.readings())
    wait_until(lambda: len(manager.readings()) >= seen + 2, "two more readings")
    _, reading = manager.readings()[seen + 1]
    truth = rig.ground_truth()
    energy = reading.energy_Wh_import.total
    resolution_wh = truth["energy_resolution_wh"]
    assert before["energy_wh"] - resolution_wh <= energy <= truth["energy_wh"] + resolution_wh, (
        f"published energy {energy} Wh, the meter counted {before['energy_wh']:.3f} Wh before the read "
        f"and {truth['energy_wh']:.3f} Wh after it")
    assert reading.power_W is not None and reading.power_W.total is not None
    assert abs(reading.power_W.total - truth["power_w"]) <= 0.02 * truth["power_w"] + 1, (
        f"published power {reading.power_W.total} W, the meter draws {truth['power_w']:.1f} W")
    phases = (reading.power_W.L1, reading.power_W.L2, reading.power_W.L3)
    for published, real in zip(phases, truth["power_phases_w"], strict=True):
        assert published is not None and abs(published - real) <= 0.02 * real + 1, (
            f"per-phase power {phases}, the meter's {truth['power_phases_w']}")
    volts = (reading.voltage_V.L1, reading.voltage_V.L2, reading.voltage_V.L3) if reading.voltage_V else ()
    assert len(volts) == 3 and all(v is not None for v in volts), f"voltages missing: {reading.voltage_V}"
    for published, real in zip(volts, truth["voltages_v"], strict=True):
        assert abs(published - real) <= 0.01 * real, f"voltages {volts}, the meter's {truth['voltages_v']}"


@when(parsers.parse('the phase order becomes "{order}"'))
def phase_order(rig: Rig, ctx: Context, order: str) -> None:
    rig.set_phase_order(order)
    ctx.readings_from = len(evse(rig).readings())


@then(parsers.parse("a reading shows phase_seq_error {value}"))
def reading_phase_error(rig: Rig, ctx: Context, value: str) -> None:
    """A reading published after the phase order last changed (or after any, if it never did)."""
    expected = {"true": True, "false": False}[value]
    manager = evse(rig)
    wait_until(lambda: any(r.phase_seq_error is expected for _, r in manager.readings()[ctx.readings_from:]),
               f"a reading shows phase_seq_error {value}")
