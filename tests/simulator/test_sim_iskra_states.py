"""The Iskra model's state machine through its register map, in virtual time: commands in the wrong
state, busy, metadata parse errors, power loss (state 2, time status 0, records kept, signed at boot)."""

import json
import struct

import pytest
import simpy

from simulator import LoadProfile, MeterModel, Nvram, load_model
from simulator.registers import ModbusException

PROFILE = load_model("iskra-wm3m4c")
B, R = 0x4200, 0x7200
STATE, COMMAND, STATUS, TIME_STATUS = 7000, 7051, 7052, 7071
META = (
    '{"FV":"1.0","GI":"gw","GS":"","GV":"1","PG":"","MV":"","MM":"","MS":"","MF":"","IS":true,'
    '"IF":["RFID_PLAIN"],"IT":"NONE","ID":"abc","TT":"0.40 EUR<=>tx-42","CT":"EVSEID","CI":"evse","RD":[]}'
)


def words(raw):
    raw = raw + b"\0" * (len(raw) % 2)
    return list(struct.unpack(f">{len(raw) // 2}H", raw))


def text(regs):
    return struct.pack(f">{len(regs)}H", *regs)


class Meter:
    """An Iskra meter on a state file, powered off and on in virtual time."""

    def __init__(self, path):
        self.path = path
        self.env = simpy.Environment()
        self.boot()

    def boot(self):
        self.model = MeterModel(self.env, PROFILE, 33, Nvram(self.path), seed=1, load=LoadProfile.fixed(7200))
        self.regs = self.model.register_map()

    def power_cycle(self):
        self.model.stop_metering()
        self.env = simpy.Environment(initial_time=self.env.now)
        self.boot()

    def read(self, address, count=1):
        result = self.regs.read(address, count)
        assert not isinstance(result, ModbusException), (address, result)
        return result

    def set_time(self, utc=1_780_000_000):
        for address, value in ((7054, utc >> 16), (7055, utc & 0xFFFF), (7053, 60), (TIME_STATUS, 2)):
            assert self.regs.write(address, [value], 6) is None

    def write_metadata(self, meta=META):
        raw = meta.encode("ascii")
        assert self.regs.write(7100, words(raw)) is None
        assert self.regs.write(7056, [len(raw)], 6) is None

    def command(self, value):
        return self.regs.write(COMMAND, [value], 6)

    def dataset(self):
        n = self.read(7057)[0]
        return text(self.read(7612, (n + 1) // 2))[:n].decode("ascii") if n else ""


@pytest.fixture
def meter(tmp_path):
    return Meter(tmp_path / "meter-33.json")


def test_begin_and_end_give_a_dataset_with_both_readings(meter):
    assert meter.read(STATUS) == [0] and meter.read(TIME_STATUS) == [0]
    meter.set_time()
    meter.write_metadata()
    assert meter.command(B) is None
    assert meter.read(STATE) == [1] and meter.read(STATUS) == [2]
    assert meter.read(7057) == [0] and meter.read(7058) == [0]  # nothing readable while signing
    meter.model.finish_signing()
    assert meter.read(STATUS) == [15]
    begin = json.loads(meter.dataset())
    assert [r["TX"] for r in begin["RD"]] == ["B"] and begin["PG"] == "T1"
    assert meter.model.status()["open_transaction_id"] == "tx-42"
    meter.env.run(until=meter.env.now + 3600)  # 7.2 kWh
    assert meter.command(R) is None
    assert meter.read(STATE) == [0] and meter.read(STATUS) == [2]
    meter.model.finish_signing()
    end = json.loads(meter.dataset())
    assert list(end) == [
        "FV",
        "GI",
        "GS",
        "GV",
        "PG",
        "MV",
        "MM",
        "MS",
        "MF",
        "IS",
        "IF",
        "IT",
        "ID",
        "TT",
        "CT",
        "CI",
        "RD",
    ]
    assert (end["MV"], end["MM"], end["MS"], end["MF"], end["PG"]) == (
        "Iskra",
        "WM3M4C",
        "W4100033",
        "2.05",
        "T1",
    )
    assert [r["TX"] for r in end["RD"]] == ["B", "E"]
    assert end["RD"][1]["RV"] - end["RD"][0]["RV"] == pytest.approx(7.2)
    assert end["RD"][0]["TM"].endswith(",000+0100 S") and end["RD"][0]["EF"] == ""
    status = meter.model.status()
    (closed,) = status["closed_transactions"]
    assert closed["transaction_id"] == "tx-42" and closed["pagination"] == 1
    assert closed["end_register"] == round(end["RD"][1]["RV"] * 1000 / status["energy_resolution_wh"])
    assert closed["ocmf"].startswith("OCMF|" + meter.dataset() + '|{"SD":"30')
    assert status["transaction_state"] == 0 and status["open_transaction_id"] == ""


def test_commands_in_the_wrong_state_without_time_or_while_busy(meter):
    meter.write_metadata()
    assert meter.command(R) == ModbusException.ILLEGAL_VALUE and meter.read(STATUS) == [131]
    assert meter.command(B) == ModbusException.ILLEGAL_VALUE and meter.read(STATUS) == [128]
    assert meter.command(0x4500) == ModbusException.ILLEGAL_VALUE and meter.read(STATUS) == [130]  # 'E'
    assert meter.command(0x4201) == ModbusException.ILLEGAL_VALUE and meter.read(STATUS) == [130]
    meter.set_time()
    assert meter.command(B) is None
    assert meter.command(R) == ModbusException.DEVICE_BUSY
    assert meter.regs.write(7100, words(b"{}")) == ModbusException.DEVICE_BUSY
    assert meter.read(STATUS) == [2]
    meter.model.finish_signing()
    assert meter.command(B) == ModbusException.ILLEGAL_VALUE and meter.read(STATUS) == [131]
    assert meter.read(COMMAND) == [B]
    assert meter.regs.write(7059, [1], 6) == ModbusException.ILLEGAL_VALUE
    assert meter.regs.write(7000, [0], 6) == ModbusException.ILLEGAL_ADDRESS  # read-only
    assert meter.regs.read(7001, 1) == ModbusException.ILLEGAL_ADDRESS
    assert meter.regs.read(7000, 1, 4) == ModbusException.ILLEGAL_ADDRESS  # not an input register
    assert meter.regs.read(105, 2) == ModbusException.ILLEGAL_ADDRESS  # not a holding register


@pytest.mark.parametrize(
    ("meta", "status"),
    [
        ('{"GI":"x","FV":"1.0","RD":[]}', 252),  # out of order
        ('{"FV":"1.0","FV":"1.0"}', 252),  # repeated
        ('{"FV":"1.0","XX":"1"}', 252),  # unknown key
        ('{"FV":"1.0","IS":"true"}', 252),  # wrong type
        ('{"FV":"1.0","IF":[1]}', 252),
        ('{"FV":"1.0", "RD":[]}', 252),  # whitespace
        ('{"GI":"x"}', 252),  # no FV
        ('{"FV":"1.0"', 252),  # not JSON
        ('["FV"]', 252),
        ('{"FV":"1.0","ID":"' + "x" * 900 + '"}', 253),  # the dataset would not fit
    ],
)
def test_metadata_the_meter_refuses(meter, meta, status):
    meter.set_time()
    meter.write_metadata(meta)
    assert meter.command(B) == ModbusException.ILLEGAL_VALUE
    assert meter.read(STATUS) == [status] and meter.read(STATE) == [0]


def test_only_fv_is_needed_and_a_space_inside_a_string_is_fine(meter):
    meter.set_time()
    meter.write_metadata('{"FV":"1.0","TT":"0.40 EUR/kWh"}')
    assert meter.command(B) is None
    assert meter.model.status()["open_transaction_id"] == "T1"


def test_power_loss_keeps_the_transaction_and_signs_what_was_left_unsigned(meter):
    meter.set_time()
    meter.write_metadata()
    assert meter.command(B) is None
    meter.model.finish_signing()
    meter.regs.write(7062, [8], 6)
    meter.env.run(until=meter.env.now + 600)
    meter.power_cycle()
    assert meter.read(STATE) == [2] and meter.read(TIME_STATUS) == [0] and meter.read(STATUS) == [0]
    assert meter.read(7062) == [0]  # the LCD is RAM
    assert text(meter.read(7100, (len(META) + 1) // 2))[: len(META)].decode() == META  # still there
    assert meter.read(7056) == [len(META)]
    assert meter.model.status()["open_transaction_id"] == "tx-42"
    assert meter.command(R) == ModbusException.ILLEGAL_VALUE and meter.read(STATUS) == [128]
    meter.set_time()
    meter.write_metadata()
    assert meter.command(R) is None and meter.read(STATE) == [0]
    meter.power_cycle()  # before the signature: signed at boot
    assert meter.read(STATUS) == [0]
    end = json.loads(meter.dataset())
    assert [r["TX"] for r in end["RD"]] == ["B", "E"]
    (closed,) = meter.model.status()["closed_transactions"]
    assert closed["ocmf"].startswith("OCMF|" + meter.dataset())
    meter.power_cycle()  # the last dataset stays readable across power loss
    assert json.loads(meter.dataset()) == end
    assert meter.model.status()["boot_count"] == 4 and meter.model.status()["pagination"] == 1


def test_an_interrupted_begin_is_signed_at_boot(meter):
    meter.set_time()
    meter.write_metadata()
    assert meter.command(B) is None
    meter.power_cycle()
    assert meter.read(STATE) == [2]
    assert [r["TX"] for r in json.loads(meter.dataset())["RD"]] == ["B"]
