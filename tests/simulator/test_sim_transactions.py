"""The transaction engine through the register map: commands, errors, signing, reboots, power loss."""

import json
import time

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_support import split_record, text_words, u32, verify_record, words_bytes

from simulator import LoadProfile, MeterModel, Nvram, load_profile
from simulator.registers import ModbusException, RegisterMap

PROFILE = load_profile("reference")
CMD, STATUS, TX_ID, OPEN_ID = 0x04D4, 0x04D5, 0x04AC, 0x04C0


class PowerCut(Exception):
    """The power went out during a state write."""


class Meter:
    """A meter on a state file that can lose power and boot again, in virtual time."""

    def __init__(self, path, load_w=11000.0, fault=None):
        self.path = path
        self.env = simpy.Environment()
        self.load_w = load_w
        self.fault = fault
        self.boot()

    def boot(self):
        self.model = MeterModel(
            self.env, PROFILE, 1, Nvram(self.path, self.fault), seed=3, load=LoadProfile.fixed(self.load_w)
        )
        self.regs = RegisterMap(self.model)

    def power_cycle(self):
        self.model.stop_metering()
        self.env = simpy.Environment(initial_time=self.env.now)
        self.boot()

    def run(self, seconds):
        self.env.run(until=self.env.now + seconds)

    def write_ident(self, tx_id, ident_data="04A1B2C3D4E5F6", evse="DE*ABC*E1234", tariff="0.42 EUR/kWh"):
        assert self.regs.write(0x0400, [1, 3, 1, 5, 0xFFFF, 0xFFFF, 3]) is None
        assert self.regs.write(0x0407, text_words(ident_data, 20)) is None
        assert self.regs.write(0x041B, text_words(tariff, 125)) is None
        assert self.regs.write(0x0498, text_words(evse, 20)) is None
        assert self.regs.write(TX_ID, text_words(tx_id, 20)) is None

    def command(self, command, tx_id=None):
        if tx_id is not None:
            assert self.regs.write(TX_ID, text_words(tx_id, 20)) is None
        return self.regs.write(CMD, [command], 6)

    def read_record(self):
        length = self.regs.read(0x04D6, 1)[0]
        words = []
        for start in range(0x0500, 0x0500 + (length + 1) // 2, 125):
            words += self.regs.read(start, min(125, 0x0500 + (length + 1) // 2 - start))
        return words_bytes(words)[:length].decode("ascii")

    def public_key(self):
        length = self.regs.read(0x0A00, 1)[0]
        return words_bytes(self.regs.read(0x0A09, 64))[:length]


@pytest.fixture
def meter(tmp_path):
    return Meter(tmp_path / "meter-1.json")


def test_a_full_transaction_gives_a_signed_record_with_begin_and_end(meter):
    assert meter.regs.read(0x0200, 1)[0] & 1 == 1  # clock unsynchronised after boot
    meter.write_ident("tx-0001")
    assert meter.command(1) is None
    assert meter.regs.read(0x0201, 1) == [1]
    assert words_bytes(meter.regs.read(OPEN_ID, 20)).rstrip(b"\0") == b"tx-0001"
    assert u32(meter.regs.read(0x0204, 2)) == 1
    begin_register = u32(meter.regs.read(0x0120, 2))
    assert meter.regs.write(0x0300, [0x6950, 0x0000], 16) is None  # set the clock: synchronised
    meter.run(1800)
    end_register = u32(meter.regs.read(0x0120, 2))
    assert meter.command(2, "tx-0001") is None
    # busy while signing: result buffer and command writes answer 06, measurements still answer
    assert meter.regs.read(STATUS, 1) == [1]
    assert meter.regs.read(0x0500, 10) == ModbusException.DEVICE_BUSY
    assert meter.command(4) == ModbusException.DEVICE_BUSY
    assert isinstance(meter.regs.read(0x0100, 60), list)
    meter.model.finish_signing()
    assert meter.regs.read(STATUS, 1) == [0]
    assert meter.regs.read(0x0201, 1) == [0]
    record = meter.read_record()
    assert verify_record(record, meter.public_key())
    payload, signature = split_record(record)
    assert signature["SA"] == "ECDSA-secp256r1-SHA256"
    data = json.loads(payload)
    assert data["FV"] == "1.3" and data["PG"] == "T1" and data["MS"] == "MHIL00000001"
    assert data["IS"] is True and data["IL"] == "VERIFIED" and data["IF"] == ["RFID_PLAIN", "OCPP_RS"]
    assert data["IT"] == "ISO14443" and data["ID"] == "04A1B2C3D4E5F6"
    assert data["TT"] == "0.42 EUR/kWh" and data["CT"] == "EVSEID" and data["CI"] == "DE*ABC*E1234"
    begin, end = data["RD"]
    assert (begin["TX"], end["TX"]) == ("B", "E")
    assert begin["RV"] == round(begin_register / 10000, 4) and end["RV"] == round(end_register / 10000, 4)
    assert abs(end["RV"] - begin["RV"] - 5.5) < 0.0002  # 11 kW for half an hour
    assert begin["TM"].endswith(" U") and end["TM"].endswith(" S")
    expected_end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(0x69500000 + 1800))
    assert end["TM"] == f"{expected_end},000+0000 S"
    assert u32(meter.regs.read(0x04D7, 2)) == 1


def test_tampering_with_the_payload_breaks_the_signature(meter):
    meter.write_ident("tx-t")
    meter.command(1)
    meter.run(60)
    meter.command(2, "tx-t")
    meter.model.finish_signing()
    record = meter.read_record()
    assert verify_record(record, meter.public_key())
    assert not verify_record(record.replace('"T1"', '"T2"'), meter.public_key())


def test_command_errors_are_reported_in_last_error(meter):
    assert meter.command(2, "never-seen") is None
    assert meter.regs.read(0x0202, 1) == [2] and meter.regs.read(STATUS, 1) == [2]
    assert meter.regs.read(0x0200, 1)[0] & 8 == 8
    assert meter.command(1, "") is None
    assert meter.regs.read(0x0202, 1) == [4]
    meter.write_ident("tx-a")
    assert meter.command(1) is None and meter.regs.read(0x0202, 1) == [0]
    assert meter.command(1, "tx-b") is None
    assert meter.regs.read(0x0202, 1) == [1]
    assert meter.command(4, "tx-a") is None
    assert meter.regs.read(0x0202, 1) == [2]  # an open transaction has no record yet
    assert meter.regs.read(0x04D4, 1) == [4]  # reads back the last command


def test_a_repeated_stop_loads_the_same_record_again(meter):
    meter.write_ident("tx-r")
    meter.command(1)
    meter.run(600)
    meter.command(2, "tx-r")
    meter.model.finish_signing()
    first = meter.read_record()
    meter.run(600)
    assert meter.command(2, "tx-r") is None
    assert meter.regs.read(STATUS, 1) == [0]
    assert meter.read_record() == first
    assert u32(meter.regs.read(0x0204, 2)) == 1
    assert len(meter.model.engine.records) == 1


def test_clear_all_closes_and_signs_the_open_transaction(meter):
    meter.write_ident("tx-c")
    meter.command(1)
    meter.run(100)
    assert meter.command(3) is None
    meter.model.finish_signing()
    assert meter.regs.read(0x0201, 1) == [0]
    assert meter.model.engine.records[-1].transaction.id == "tx-c"
    assert meter.command(3) is None  # nothing open: still fine
    assert meter.command(4, "tx-c") is None
    assert verify_record(meter.read_record(), meter.public_key())


def test_the_meter_keeps_the_last_16_records(meter):
    for i in range(18):
        meter.write_ident(f"tx-{i}")
        assert meter.command(1) is None
        meter.run(10)
        meter.command(2, f"tx-{i}")
        meter.model.finish_signing()
    assert [r.transaction.id for r in meter.model.engine.records] == [f"tx-{i}" for i in range(2, 18)]
    assert meter.command(4, "tx-1") is None and meter.regs.read(0x0202, 1) == [2]
    assert meter.command(4, "tx-2") is None and meter.regs.read(0x0202, 1) == [0]


def test_write_checks_answer_exceptions(meter):
    assert meter.regs.read(0x0030, 1) == ModbusException.ILLEGAL_ADDRESS
    assert meter.regs.read(0x001D, 2) == ModbusException.ILLEGAL_ADDRESS  # runs past the identity block
    assert meter.regs.write(0x0100, [1]) == ModbusException.ILLEGAL_ADDRESS  # read-only
    assert meter.regs.write(CMD, [9], 6) == ModbusException.ILLEGAL_VALUE
    assert meter.regs.write(0x0401, [10], 6) == ModbusException.ILLEGAL_VALUE  # level past the table
    assert meter.regs.write(0x0401, [0xFFFF], 6) is None  # "not given"
    assert meter.regs.write(0x0402, [16, 17], 16) == ModbusException.ILLEGAL_VALUE
    assert meter.regs.write(0x0300, [1], 6) == ModbusException.ILLEGAL_VALUE  # half a clock
    assert meter.regs.write(0x0302, [(-721) & 0xFFFF], 6) == ModbusException.ILLEGAL_VALUE
    assert meter.regs.write(0x0302, [60], 6) is None
    assert meter.model.utc_offset_min == 60


def test_reboot_with_an_open_transaction_is_active_after_power_failure(meter):
    meter.write_ident("tx-pf")
    meter.command(1)
    meter.regs.write(0x0300, [0x6950, 0], 16)
    meter.run(900)
    energy_before = meter.model.energy_register()
    meter.model.persist()
    meter.power_cycle()
    regs = meter.regs
    assert regs.read(0x0203, 1) == [2]  # boot count
    assert regs.read(0x0201, 1) == [2]  # active after power failure
    assert regs.read(0x0200, 1)[0] & 0b101 == 0b101  # clock unsynchronised, interrupted
    assert words_bytes(regs.read(OPEN_ID, 20)).rstrip(b"\0") == b"tx-pf"
    assert meter.model.energy_register() >= energy_before
    assert regs.read(0x0407, 20) == [0] * 20  # RAM (the written identification) is gone
    assert meter.command(2, "tx-pf") is None
    meter.model.finish_signing()
    assert verify_record(meter.read_record(), meter.public_key())
    assert regs.read(0x0201, 1) == [0]


def test_power_lost_while_signing_the_record_is_signed_at_the_next_boot(meter):
    meter.write_ident("tx-s")
    meter.command(1)
    meter.run(300)
    meter.command(2, "tx-s")
    assert meter.regs.read(STATUS, 1) == [1]
    meter.power_cycle()  # before finish_signing
    assert meter.regs.read(STATUS, 1) == [0]
    assert meter.command(2, "tx-s") is None
    record = meter.read_record()
    assert verify_record(record, meter.public_key())
    assert json.loads(split_record(record)[0])["PG"] == "T1"


def test_the_key_is_the_meters_own_and_survives_reboots(tmp_path):
    a = Meter(tmp_path / "a.json")
    key = a.public_key()
    a.power_cycle()
    assert a.public_key() == key
    b = Meter(tmp_path / "b.json")
    b.model.persist()
    assert b.public_key() == key  # same seed and serial: the same derived key
    assert len(key) == a.regs.read(0x0A00, 1)[0] == 91
    assert words_bytes(a.regs.read(0x0A01, 8)).rstrip(b"\0") == b"secp256r1"


def test_the_plain_profile_has_no_transactions(tmp_path):
    env = simpy.Environment()
    model = MeterModel(env, load_profile("plain"), 1, Nvram(tmp_path / "p.json"))
    regs = RegisterMap(model)
    assert regs.read(0x001C, 1) == [0]
    assert regs.read(0x0400, 1) == ModbusException.ILLEGAL_ADDRESS
    assert regs.write(CMD, [1], 6) == ModbusException.ILLEGAL_ADDRESS
    assert regs.read(0x0A00, 1) == ModbusException.ILLEGAL_ADDRESS
    assert isinstance(regs.read(0x0120, 2), list)


# ---- a power loss at every step of start and stop -------------------------------------------------------

OPERATIONS = st.lists(st.sampled_from(["start", "stop", "clear", "run", "sign"]), min_size=1, max_size=8)


def run_until_cut(path, operations, cut_at):
    """Run operations on a fresh meter, the power failing at write step `cut_at` (0: never).

    Returns the meter (rebooted from its state file) and what was acknowledged before the cut."""
    steps = {"n": 0}

    def fault(step):
        steps["n"] += 1
        if steps["n"] == cut_at:
            raise PowerCut(step)

    acked = {"open": None, "closed": set(), "register": 0, "closing": None}
    try:
        meter = Meter(path, fault=fault)
    except PowerCut:
        meter = None
    counter = 0
    try:
        for op in operations if meter is not None else []:
            if op == "start":
                counter += 1
                meter.write_ident(f"tx-{counter}")
                if meter.command(1) is None and meter.model.engine.last_error == 0:
                    acked["open"] = f"tx-{counter}"
            elif op == "stop" and acked["open"]:
                acked["closing"] = acked["open"]  # in flight: either outcome is fine if the power fails
                if meter.command(2, acked["open"]) is None and meter.model.engine.last_error == 0:
                    acked["closed"].add(acked["open"])
                    acked["open"] = None
            elif op == "clear":
                acked["closing"] = acked["open"]
                if meter.command(3) is None and meter.model.engine.last_error == 0:
                    if acked["open"]:
                        acked["closed"].add(acked["open"])
                    acked["open"] = None
            elif op == "run":
                meter.run(120)
                register = meter.model.energy_register()
                meter.model.persist()
                acked["register"] = max(acked["register"], register)
            elif op == "sign":
                meter.model.finish_signing()
    except PowerCut:
        pass
    rebooted = Meter(path)  # power back: boot from whatever the state file holds
    return rebooted, acked, steps["n"]


@settings(max_examples=25, derandomize=True, database=None, deadline=None)
@given(OPERATIONS)
def test_a_power_cut_at_every_write_step_loses_nothing_acknowledged(tmp_path_factory, operations):
    base = tmp_path_factory.mktemp("nv")
    _, _, total_steps = run_until_cut(base / "uncut.json", operations, cut_at=0)
    assert total_steps >= 5  # at least the first boot's write
    for cut_at in range(1, total_steps + 1):
        path = base / f"cut-{cut_at}.json"
        meter, acked, _ = run_until_cut(path, operations, cut_at)
        engine = meter.model.engine
        closed_ids = {r.transaction.id for r in engine.records}
        if acked["open"] is not None:
            still_open = engine.open is not None and engine.open.id == acked["open"]
            closed_unacknowledged = acked["closing"] == acked["open"] and acked["open"] in closed_ids
            assert still_open or closed_unacknowledged, (
                f"an acknowledged start was lost (cut at step {cut_at})"
            )
            if still_open:
                assert meter.regs.read(0x0201, 1) == [2]
        assert acked["closed"] <= closed_ids, f"an acknowledged stop was lost (cut at step {cut_at})"
        assert not engine.unsigned
        for record in engine.records:
            assert verify_record(record.ocmf, meter.public_key())
        paginations = [r.transaction.pagination for r in engine.records]
        assert paginations == sorted(set(paginations)), "a pagination number was used twice"
        assert meter.model.energy_register() >= acked["register"], "persisted energy was lost"


def test_a_torn_state_file_write_leaves_the_old_state(tmp_path):
    path = tmp_path / "meter-1.json"
    meter = Meter(path)
    meter.write_ident("tx-keep")
    meter.command(1)
    before = path.read_text()

    def cut_before_replace(step):
        if step == "replace":
            raise PowerCut(step)

    meter.model.nvram.fault = cut_before_replace
    meter.run(100)
    with pytest.raises(PowerCut):
        meter.model.persist()
    assert path.read_text() == before
    assert json.loads(path.read_text())["tx"]["open"]["id"] == "tx-keep"


def test_a_restart_never_shows_less_energy_than_was_served(meter):
    def energy_registers():
        words = meter.regs.read(0x0120, 8)  # total, L1, L2, L3
        return [u32(words[i : i + 2]) for i in range(0, 8, 2)]

    meter.run(3600)
    served = energy_registers()
    assert served[0] == 110000  # 11 kW for an hour, 0.1 Wh resolution
    for seconds in (0.01, 0.02, 0.05, 1.0):  # small steps: a phase register may tick before the total
        meter.run(seconds)
        served = [max(a, b) for a, b in zip(served, energy_registers(), strict=True)]
        meter.run(0.5)  # more energy that nobody read and that is not yet persisted
        meter.power_cycle()  # no clean shutdown: only what is in the state file survives
        after = energy_registers()
        assert all(a >= s for a, s in zip(after, served, strict=True)), (after, served)


def test_a_start_whose_record_would_not_fit_the_result_buffer_is_refused(meter):
    def longest(tariff_length):
        meter.write_ident("tx-long", ident_data="A" * 40, evse="E" * 40, tariff="T" * tariff_length)
        # IS 1, IL CERTIFIED, IF four times OCPP_AUTH_TLS, IT PHONE_NUMBER: the longest names
        assert meter.regs.write(0x0400, [1, 4, 8, 8, 8, 8, 16], 16) is None

    longest(250)
    assert meter.command(1) is None
    assert meter.regs.read(0x0202, 1) == [4] and meter.regs.read(0x0201, 1) == [0]
    longest(196)  # the limit docs/meters/reference.md promises
    assert meter.command(1) is None and meter.regs.read(0x0201, 1) == [1]
    meter.run(60)
    meter.command(2, "tx-long")
    meter.model.finish_signing()
    record = meter.read_record()
    assert len(record) <= 1024 and verify_record(record, meter.public_key())


def test_identification_that_is_not_printable_ascii_is_refused(meter):
    meter.write_ident("tx-x")
    assert meter.regs.write(0x0407, [0x41FF], 6) is None
    assert meter.command(1) is None
    assert meter.regs.read(0x0202, 1) == [4] and meter.regs.read(0x0201, 1) == [0]


def test_minimum_duration_is_enforced_except_after_a_power_failure(tmp_path):
    profile = tmp_path / "min.toml"
    profile.write_text('base = "reference"\n[meter]\nname = "min"\nmin_duration_s = 120\n')
    env = simpy.Environment()
    model = MeterModel(
        env, load_profile(profile), 1, Nvram(tmp_path / "m.json"), load=LoadProfile.fixed(1000)
    )
    regs = RegisterMap(model)
    assert regs.write(TX_ID, text_words("tx-min", 20)) is None
    assert regs.write(CMD, [1], 6) is None
    assert u32(regs.read(0x04D9, 2)) == int(model.clock_utc()) + 120
    env.run(until=60)
    assert regs.write(CMD, [2], 6) is None
    assert regs.read(0x0202, 1) == [5] and regs.read(0x0201, 1) == [1]
    env.run(until=121)
    assert regs.write(CMD, [2], 6) is None
    assert regs.read(0x0202, 1) == [0] and regs.read(0x0201, 1) == [0]
    # a transaction interrupted by a power failure may be stopped at once
    model.finish_signing()
    assert regs.write(TX_ID, text_words("tx-min2", 20)) is None
    assert regs.write(CMD, [1], 6) is None
    rebooted_env = simpy.Environment()  # a restarted meter-sim: simulated time starts again at 0
    rebooted = MeterModel(rebooted_env, load_profile(profile), 1, Nvram(tmp_path / "m.json"))
    regs = RegisterMap(rebooted)
    assert u32(regs.read(0x04D9, 2)) == 0
    assert regs.write(TX_ID, text_words("tx-min2", 20)) is None
    assert regs.write(CMD, [2], 6) is None
    assert regs.read(0x0202, 1) == [0]
