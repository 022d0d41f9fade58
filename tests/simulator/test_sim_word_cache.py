"""The register map's caches (read plans, measured words, energy counters per instant) never change what
a read returns: at every instant a long-lived map answers exactly what a map built at that instant does."""

import pytest
import simpy

from simulator import LoadProfile, MeterModel, RegisterMap, known_models, load_model
from simulator.codec import encode_number, number_encoder
from simulator.registers import FC_READ_HOLDING, FC_READ_INPUT, encode, encoder

RANDOM = {"signed_snapshot"}  # the EM580 signs each read with a random ECDSA nonce: only its length counts


def reads(regmap, profile):
    """Every register alone and every table as one block per 60 words, as (request, answer)."""
    out = []
    for reg in profile.registers:
        fc = FC_READ_INPUT if reg.table == "input" else FC_READ_HOLDING
        answer = regmap.read(reg.address, reg.regs, fc)
        out.append(((fc, reg.address, reg.regs), len(answer) if reg.name in RANDOM else answer))
    for table, fc in (("holding", FC_READ_HOLDING), ("input", FC_READ_INPUT)):
        regs = sorted((r for r in profile.registers if r.table == table), key=lambda r: r.address)
        for start in range(0, len(regs), 6):
            first = regs[start]
            block = regs[start : start + 6]
            count = min(60, max(r.end for r in block) - first.address)
            if not any(r.name in RANDOM for r in block):
                out.append(((fc, first.address, count), regmap.read(first.address, count, fc)))
    return out


@pytest.mark.parametrize("name", known_models())
def test_cached_map_reads_what_a_fresh_map_reads(name):
    profile = load_model(name)
    env = simpy.Environment()
    model = MeterModel(env, profile, 1, None, seed=3, load=LoadProfile.fixed(7400.0))
    kept = RegisterMap(model)
    for step, until in enumerate((5.0, 5.0, 5.3, 12.0, 12.0, 40.5, 41.0)):
        if until > env.now:
            env.run(until=until)
        if step == 3:
            model.set_load(LoadProfile.fixed(1234.5))
            env.run(until=until + 0.001)
        if step == 5:
            model.grid.set_phase_order("ccw")
        fresh = RegisterMap(model)
        assert reads(kept, profile) == reads(fresh, profile), f"{name} at t={env.now}"


@pytest.mark.parametrize("kind", ["u16", "s16", "u32", "s32", "i32", "u64", "s64", "f32", "t5", "t6"])
@pytest.mark.parametrize("order", ["high_first", "low_first"])
def test_number_encoder_gives_encode_number_words(kind, order):
    encode_one = number_encoder(kind, 0.1, -1, order)
    for value in (0.0, 1.0, -1.0, 0.05, 0.15, 229.97, -3.3e9, 1e30, float("nan"), float("inf"), 12345.678):
        if kind == "f32" and abs(value) == 1e30:
            continue  # not a float32; both raise
        assert encode_one(value) == encode_number(kind, value, 0.1, -1, order), (kind, value)


def test_register_encoder_takes_lists_and_texts_as_encode_does():
    profile = load_model("reference")
    for reg in profile.registers:
        if reg.type in ("string", "bytes"):
            assert encoder(reg)("ABC") == encode(reg, "ABC")
        elif reg.regs in (1, 2, 4):
            assert encoder(reg)(7.0) == encode(reg, 7.0)
