"""Physics of the meter model: energy is the integral of power, never goes backwards; grid and phase order."""

import cmath
import math
from fractions import Fraction

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import LoadProfile, MeterModel, load_profile
from simulator.registers import RegisterMap

PROFILE = load_profile("reference")


def make_meter(load=None, phase_order="cw", seed=1):
    env = simpy.Environment()
    return env, MeterModel(env, PROFILE, unit=1, seed=seed, load=load, phase_order=phase_order)


def u32(words):
    return (words[0] << 16) | words[1]


def test_fixed_load_energy_over_a_day_matches_the_integral_to_the_register_resolution():
    env, meter = make_meter(LoadProfile.fixed(7400.0))
    regs = RegisterMap(meter)
    env.run(until=86400)
    expected_wh = 7400.0 * 24
    assert abs(meter.energy_wh() - expected_wh) < 1e-6
    assert u32(regs.read(0x0120, 2)) == round(expected_wh * 10)
    phase_sum = sum(u32(regs.read(a, 2)) for a in (0x0122, 0x0124, 0x0126))
    assert abs(phase_sum - expected_wh * 10) <= 3


def test_ev_profile_energy_equals_the_sum_over_its_steps():
    load = LoadProfile.ev()
    env, meter = make_meter(load)
    env.run(until=6 * 3600)
    # the integral computed independently, exactly, from the profile's steps
    total, elapsed, horizon = Fraction(0), Fraction(0), Fraction(6 * 3600)
    for step in load.steps:
        span = (
            horizon - elapsed
            if step.duration_s is None
            else min(Fraction(step.duration_s), horizon - elapsed)
        )
        if span <= 0:
            break
        total += sum(Fraction(p) for p in step.power_w) * span / 3600
        elapsed += span
    assert total > 0
    assert abs(meter.energy_wh() - float(total)) < 1e-6
    assert abs(meter.energy_register() - float(total) * 10) <= 1


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 22000)), min_size=1, max_size=30))
def test_energy_after_arbitrary_load_changes_is_the_integral_and_never_goes_backwards(changes):
    env, meter = make_meter()
    expected = Fraction(0)
    last_register = meter.energy_register()
    for duration, power in changes:
        meter.set_load(LoadProfile.fixed(float(power)))
        for part in (Fraction(duration, 3), Fraction(duration, 3), Fraction(duration, 3)):
            env.run(until=env.now + float(part))
            register = meter.energy_register()
            assert register >= last_register, "energy went backwards"
            last_register = register
        expected += Fraction(power) * duration / 3600
    assert abs(meter.energy_wh() - float(expected)) < 1e-6 * max(1.0, float(expected))
    assert abs(meter.energy_register() - float(expected * 10)) <= 1


def test_grid_voltages_and_frequency_stay_near_nominal_and_are_seeded():
    env_a, a = make_meter(seed=7)
    env_b, b = make_meter(seed=7)
    env_c, c = make_meter(seed=8)
    samples = []
    for t in range(1, 200):
        for env in (env_a, env_b, env_c):
            env.run(until=t * 10)
        samples.append(a.grid.voltages_v[:])
        assert a.grid.voltages_v == b.grid.voltages_v
        assert all(abs(v - 230.0) < 5.0 for v in a.grid.voltages_v)
        assert abs(a.grid.frequency_hz - 50.0) < 0.1
    assert a.grid.voltages_v != c.grid.voltages_v
    assert len({tuple(s) for s in samples}) > 100, "the noise does not change"


def angle_deg(z):
    return math.degrees(cmath.phase(z))


def test_phase_order_clockwise_and_counter_clockwise():
    _, cw = make_meter(LoadProfile.fixed(11000.0), phase_order="cw")
    _, ccw = make_meter(LoadProfile.fixed(11000.0), phase_order="ccw")
    p = cw.grid.phasors()
    assert round(angle_deg(p[1] / p[0])) == -120 and round(angle_deg(p[2] / p[0])) == 120
    q = ccw.grid.phasors()
    assert round(angle_deg(q[1] / q[0])) == 120 and round(angle_deg(q[2] / q[0])) == -120
    for meter, sequence in ((cw, 0), (ccw, 1)):
        regs = RegisterMap(meter)
        assert regs.read(0x013B, 1) == [sequence]
        assert (regs.read(0x0200, 1)[0] >> 1) & 1 == sequence
        line = u32(regs.read(0x0135, 2)) * 0.01
        assert abs(line - 230.0 * math.sqrt(3)) < 10
    # a balanced load has (almost) no neutral current, whatever the rotation
    assert cw.measurements().neutral_current_a < 0.5
    cw.grid.set_phase_order("ccw")
    assert RegisterMap(cw).read(0x013B, 1) == [1]


def test_measurements_are_consistent_with_the_load():
    env, meter = make_meter(LoadProfile.fixed((3000.0, 2000.0, 1000.0)))
    env.run(until=10)
    m = meter.measurements()
    assert m.power_w == (3000.0, 2000.0, 1000.0)
    for i in range(3):
        assert abs(m.currents_a[i] * m.voltages_v[i] - m.apparent_va[i]) < 1e-6
        assert abs(m.apparent_va[i] * PROFILE.grid.power_factor - m.power_w[i]) < 1e-6
    regs = RegisterMap(meter)
    assert u32(regs.read(0x0114, 2)) == 60000  # 6000.0 W at 0.1 W
    assert m.neutral_current_a > 1.0  # an unbalanced load puts current on N


def test_stopped_metering_keeps_energy_constant():
    env, meter = make_meter(LoadProfile.fixed(1000.0))
    env.run(until=3600)
    meter.stop_metering()
    before = meter.energy_wh()
    env.run(until=7200)
    assert meter.energy_wh() == before
    assert abs(before - 1000.0) < 1e-9


def test_a_simulated_day_runs_in_virtual_time():
    env, meter = make_meter(LoadProfile.ev())
    env.run(until=86400)
    assert meter.uptime_s == 86400
    assert abs(meter.energy_wh() - LoadProfile.ev().energy_wh(86400)) < 1e-6
