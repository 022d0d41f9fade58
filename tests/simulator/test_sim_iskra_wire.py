"""The simulated Iskra WM3M4C over a real pty with a plain pymodbus client: FC04 measurements decoded by
hand, a whole session in RsIskraMeter's order verified by pyocmf and by meter-hil's own verifier, and the
model-independent faults (phase order, link, power)."""

import struct
import tempfile
import time

import pyocmf
import pytest
from pymodbus.exceptions import ModbusIOException
from sim_support import modbus_client, wait_until

from driver import ocmf as driver_ocmf
from simulator import MeterSimProcess

UNIT = 33
SPKI_PREFIX = "3059301306072A8648CE3D020106082A8648CE3D03010703420004"


@pytest.fixture(scope="module")
def iskra():
    meter = MeterSimProcess(
        tempfile.mkdtemp(prefix="isk-"),
        speed=60,
        seed=4,
        model="iskra-wm3m4c",
        unit=UNIT,
        extra_args=("--load-w", "11000"),
    )
    meter.start()
    client = modbus_client(meter.path, timeout=1.0)
    yield meter, client
    client.close()
    crashes = meter.tracebacks()
    meter.close()
    assert crashes == []


def fc04(client, address, count):
    response = client.read_input_registers(address, count=count, device_id=UNIT)
    assert not response.isError(), (address, response)
    return response.registers


def fc03(client, address, count=1):
    response = client.read_holding_registers(address, count=count, device_id=UNIT)
    assert not response.isError(), (address, response)
    return response.registers


def fc06(client, address, value):
    response = client.write_register(address, value, device_id=UNIT)
    assert not response.isError(), (address, response)


def t5(words):
    exp = words[0] >> 8
    exp = exp - 256 if exp > 127 else exp
    return (((words[0] & 0xFF) << 16) | words[1]) * 10.0**exp


def t6(words):
    exp = words[0] >> 8
    exp = exp - 256 if exp > 127 else exp
    mantissa = ((words[0] & 0xFF) << 16) | words[1]
    return (mantissa - (1 << 24) if mantissa & 0x800000 else mantissa) * 10.0**exp


def i32(words):
    value = (words[0] << 16) | words[1]
    return value - (1 << 32) if value & 0x80000000 else value


def text(words):
    return struct.pack(f">{len(words)}H", *words)


def test_measurements_over_fc04_decoded_by_hand_agree_with_ground_truth(iskra):
    meter, client = iskra
    assert text(fc04(client, 1, 8)) == b"WM3M4C".ljust(16)
    assert text(fc04(client, 9, 4)) == b"W4100033"
    before = meter.control.status()
    exponent = fc04(client, 414, 1)[0]
    counter = i32(fc04(client, 418, 2))
    after = meter.control.status()
    assert exponent == 1 and fc04(client, 415, 1) == [1] and i32(fc04(client, 420, 2)) == 0
    assert before["energy_wh"] - 10 <= counter * 10**exponent <= after["energy_wh"]
    assert before["energy_register"] <= counter <= after["energy_register"]
    assert t5(fc04(client, 105, 2)) == pytest.approx(50.0, abs=0.1)
    for address in (107, 109, 111):
        assert t5(fc04(client, address, 2)) == pytest.approx(230.0, abs=5)
    assert t6(fc04(client, 140, 2)) == pytest.approx(after["power_w"], abs=0.1)
    assert sum(t6(fc04(client, a, 2)) for a in (142, 144, 146)) == pytest.approx(11000, abs=0.3)
    for address in (126, 128, 130):
        assert t6(fc04(client, address, 2)) == pytest.approx(11000 / 3 / 0.99 / 230, rel=0.05)
    assert t6(fc04(client, 148, 2)) > 0
    assert fc04(client, 156, 1) == [0]
    assert client.read_input_registers(7000, count=1, device_id=UNIT).exception_code == 2
    assert client.read_holding_registers(105, count=2, device_id=UNIT).exception_code == 2
    assert client.read_coils(0, count=1, device_id=UNIT).exception_code == 1


def set_time(client):
    now = int(time.time())
    fc06(client, 7054, now >> 16)
    fc06(client, 7055, now & 0xFFFF)
    fc06(client, 7053, 0)
    fc06(client, 7071, 2)


def read_buffer(client, length_address, address):
    length = fc03(client, length_address)[0]
    data = b""
    for start in range(0, (length + 1) // 2, 47):  # RsIskraMeter's chunks with max_packet_size 100
        data += text(fc03(client, address + start, min(47, (length + 1) // 2 - start)))
    return data[:length]


def test_a_session_in_rsiskrameter_order_verifies_with_pyocmf_and_the_driver_verifier(iskra):
    meter, client = iskra
    assert fc03(client, 7000) == [0]
    set_time(client)
    fc06(client, 7059, 0)
    meta = (
        b'{"FV":"1.0","GI":"meter-hil","GS":"1","GV":"0.1","PG":"","MV":"","MM":"","MS":"","MF":"",'
        b'"IS":true,"IF":["RFID_PLAIN"],"IT":"NONE","ID":"0123456789abcdef0123 tariff<=>some-id",'
        b'"TT":"tariff<=>some-id","CT":"EVSEID","CI":"some evse id","RD":[]}'
    )
    padded = meta + b"\0" * (len(meta) % 2)
    regs = list(struct.unpack(f">{len(padded) // 2}H", padded))
    for start in range(0, len(regs), 47):
        assert not client.write_registers(7100 + start, regs[start : start + 47], device_id=UNIT).isError()
    fc06(client, 7056, len(meta))
    assert read_buffer(client, 7056, 7100) == meta
    fc06(client, 7062, fc03(client, 7062)[0] | 8)
    assert not client.write_registers(7063, list(struct.unpack(">4H", b"tariff  ")), device_id=UNIT).isError()
    assert not client.write_registers(7067, [0, 0], device_id=UNIT).isError()
    fc06(client, 7051, 0x4200)
    wait_until(lambda: fc03(client, 7000) == [1], what="charging state 1")
    wait_until(lambda: fc03(client, 7052) == [15], what="the begin signature")
    assert meter.control.status()["open_transaction_id"] == "some-id"
    begin_wh = meter.control.status()["energy_wh"]
    wait_until(lambda: meter.control.status()["energy_wh"] > begin_wh + 100, what="100 Wh more")
    fc06(client, 7051, 0x7200)
    wait_until(lambda: fc03(client, 7000) == [0], what="charging state 0")
    wait_until(lambda: fc03(client, 7052) == [15], what="the end signature")
    signature = read_buffer(client, 7058, 8188)
    dataset = read_buffer(client, 7057, 7612).decode("ascii")
    key = text(fc03(client, 8124, 64))
    assert key[64:] == bytes(64)
    public_key = SPKI_PREFIX + key[:64].hex().upper()
    record = f'OCMF|{dataset}|{{"SD":"{signature.hex().upper()}"}}'
    parsed = pyocmf.OCMF.from_string(record, strict=True)
    assert parsed.verify_signature(public_key)
    assert parsed.check_eichrecht(errors_only=True) == []
    assert [r.TX.value if hasattr(r.TX, "value") else r.TX for r in parsed.payload.RD] == ["B", "E"]
    assert driver_ocmf.verify(record, public_key, transaction=True).valid
    status = meter.control.status()
    closed = status["closed_transactions"][-1]
    assert closed["ocmf"] == record and closed["transaction_id"] == "some-id"
    assert status["model"] == "iskra-wm3m4c" and status["energy_resolution_wh"] == 10
    readings = parsed.payload.RD
    assert float(readings[0].RV) * 1000 / 10 == closed["begin_register"]
    assert float(readings[1].RV) * 1000 / 10 == closed["end_register"]
    assert closed["begin_wh"] - 10 < closed["begin_register"] * 10 <= closed["begin_wh"]


def test_faults_work_on_the_iskra_model(iskra):
    meter, client = iskra
    meter.control.set_phase_order("ccw")
    assert fc04(client, 156, 1) == [1]
    meter.control.set_phase_order("cw")
    meter.control.link_down()
    with pytest.raises(ModbusIOException):
        client.read_input_registers(156, count=1, device_id=UNIT)  # silence
    meter.control.link_up()
    assert fc04(client, 156, 1) == [0]
    set_time(client)
    fc06(client, 7051, 0x4200)
    wait_until(lambda: fc03(client, 7052) == [15], what="the begin signature")
    meter.control.power_off()
    assert meter.control.status()["power"] == "off"
    meter.control.power_on()
    wait_until(lambda: meter.control.status()["power"] == "on", what="the boot")
    assert fc03(client, 7000) == [2] and fc03(client, 7071) == [0] and fc03(client, 7052) == [0]
    assert meter.control.status()["transaction_state"] == 2
    set_time(client)
    fc06(client, 7051, 0x7200)
    wait_until(lambda: fc03(client, 7052) == [15], what="the end signature")
    assert meter.control.status()["transaction_state"] == 0
