"""meter-sim over a real pty with a pymodbus client: registers, exceptions, garbage, signed records,
SIGKILL and restart, the speed-up factor."""

import json
import os
import random
import time

import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer.rtu import FramerRTU
from sim_support import (
    MeterSimProcess,
    modbus_client,
    split_record,
    text_words,
    u32,
    verify_record,
    wait_until,
    words_bytes,
)

from simulator import ControlClient

SLOW_SIGNING = (
    'base = "reference"\n[meter]\nname = "slow-signer"\nsigning_delay_s = 1.5\nboot_delay_s = 1.0\n'
)


def frame(body):
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def raw_exchange(client, data, expect=True, wait=0.5):
    """Write raw bytes on the client's port; return what comes back within `wait` seconds."""
    port = client.socket
    port.reset_input_buffer()
    port.write(data)
    deadline = time.monotonic() + wait
    answer = b""
    while time.monotonic() < deadline:
        port.timeout = max(deadline - time.monotonic(), 0.01)
        chunk = port.read(64)
        answer += chunk
        if expect and len(answer) >= 5:
            break
    return answer


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    base = tmp_path_factory.mktemp("sim")
    profile = base / "slow.toml"
    profile.write_text(SLOW_SIGNING)
    process = MeterSimProcess(
        "--speed",
        "60",
        "--load-w",
        "11000",
        "--seed",
        "5",
        "--profile",
        str(profile),
        state_dir=base / "state",
        control=base / "control.sock",
    )
    client = modbus_client(process.path)
    yield process, client
    client.close()
    process.close()


def read(client, address, count, unit=1):
    response = client.read_holding_registers(address, count=count, device_id=unit)
    assert not response.isError(), response
    return response.registers


def read_record(client):
    length = read(client, 0x04D6, 1)[0]
    regs = (length + 1) // 2
    words = []
    for start in range(0, regs, 125):
        words += read(client, 0x0500 + start, min(125, regs - start))
    return words_bytes(words)[:length].decode("ascii")


def read_public_key(client):
    length = read(client, 0x0A00, 1)[0]
    return words_bytes(read(client, 0x0A09, 64))[:length]


def test_documented_registers_answer(sim):
    _, client = sim
    assert words_bytes(read(client, 0x0000, 8)).rstrip(b"\0") == b"MHIL00000001"
    assert words_bytes(read(client, 0x0008, 8)).rstrip(b"\0") == b"meter-hil"
    assert read(client, 0x001C, 2) == [1, 1]
    m = read(client, 0x0100, 60)
    for i in range(3):
        assert abs(u32(m[2 * i : 2 * i + 2]) * 0.01 - 230.0) < 5
    assert abs(u32(m[0x1E:0x20]) * 0.001 - 50.0) < 0.1
    assert abs(u32(m[0x14:0x16]) * 0.1 - 11000.0) < 0.5
    assert m[0x3B] == 0
    status = read(client, 0x0200, 8)
    assert status[1] == 0 and status[3] == 1
    assert read(client, 0x0303, 1) == [0]
    assert read(client, 0x0A01, 8) == text_words("secp256r1", 8)
    assert len(read_public_key(client)) == 91


def test_exception_answers(sim):
    _, client = sim
    assert client.read_coils(0, count=1, device_id=1).exception_code == 1
    assert client.read_input_registers(0x0100, count=2, device_id=1).exception_code == 1
    unknown = raw_exchange(client, frame(b"\x01\x41\x00\x00"))
    assert unknown == frame(b"\x01\xc1\x01")
    assert client.read_holding_registers(0x9000, count=1, device_id=1).exception_code == 2
    assert client.read_holding_registers(0x0030, count=1, device_id=1).exception_code == 2
    assert client.write_register(0x0100, 1, device_id=1).exception_code == 2
    assert client.write_register(0x04D4, 9, device_id=1).exception_code == 3
    assert client.write_register(0x0401, 42, device_id=1).exception_code == 3


def test_garbage_and_bad_crc_get_silence_and_leave_it_answering(sim):
    _, client = sim
    good = frame(b"\x01\x03\x01\x20\x00\x02")
    bad_crc = good[:-1] + bytes([good[-1] ^ 0xFF])
    assert raw_exchange(client, bad_crc, expect=False, wait=0.3) == b""
    truncated = good[:5]
    assert raw_exchange(client, truncated, expect=False, wait=0.3) == b""
    rng = random.Random(1234)
    for _ in range(10):
        raw_exchange(
            client, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))), expect=False, wait=0.05
        )
        assert len(read(client, 0x0120, 2)) == 2  # the client retries like a driver would
    answer = raw_exchange(client, good)
    assert answer[:3] == b"\x01\x03\x04" and len(answer) == 9
    # the start of a long FC16 frame that never completes: forgotten after a silence, as on a real bus
    assert raw_exchange(client, bytes.fromhex("01100000007BF6"), expect=False, wait=0.2) == b""
    answer = raw_exchange(client, good)
    assert answer[:3] == b"\x01\x03\x04" and len(answer) == 9


def test_a_transaction_over_modbus_gives_a_record_that_verifies(sim):
    process, client = sim
    assert (
        client.write_registers(
            0x0300, [int(time.time()) >> 16, int(time.time()) & 0xFFFF], device_id=1
        ).isError()
        is False
    )
    assert (
        client.write_registers(0x0400, [1, 2, 5, 0xFFFF, 0xFFFF, 0xFFFF, 10], device_id=1).isError() is False
    )
    assert not client.write_registers(0x0407, text_words("CENTRAL-42", 20), device_id=1).isError()
    assert not client.write_registers(0x04AC, text_words("mb-tx-1", 20), device_id=1).isError()
    assert not client.write_register(0x04D4, 1, device_id=1).isError()
    assert read(client, 0x0201, 1) == [1]
    assert words_bytes(read(client, 0x04C0, 20)).rstrip(b"\0") == b"mb-tx-1"
    wait_until(lambda: u32(read(client, 0x0120, 2)) > 0, what="energy")
    assert not client.write_register(0x04D4, 2, device_id=1).isError()
    # signing takes 1.5 s: busy, and the result buffer answers 06 meanwhile
    assert read(client, 0x04D5, 1) == [1]
    assert client.read_holding_registers(0x0500, count=10, device_id=1).exception_code == 6
    assert client.write_register(0x04D4, 4, device_id=1).exception_code == 6
    wait_until(lambda: read(client, 0x04D5, 1) == [0], what="signing")
    record = read_record(client)
    assert verify_record(record, read_public_key(client))
    payload = json.loads(split_record(record)[0])
    assert payload["ID"] == "CENTRAL-42" and payload["IT"] == "CENTRAL" and payload["IL"] == "TRUSTED"
    truth = ControlClient(process.control).status()
    closed = [t for t in truth["closed_transactions"] if t["transaction_id"] == "mb-tx-1"]
    assert len(closed) == 1 and closed[0]["ocmf"] == record
    begin, end = payload["RD"]
    assert begin["RV"] == round(closed[0]["begin_register"] / 10000, 4)
    assert end["RV"] == round(closed[0]["end_register"] / 10000, 4)
    assert end["RV"] > begin["RV"] and end["TM"].endswith(" S")


def test_several_meters_share_one_bus(tmp_path):
    process = MeterSimProcess("--meters", "2", "--unit", "7", state_dir=tmp_path / "state")
    client = modbus_client(process.path, retries=0)
    try:
        serials = {words_bytes(read(client, 0x0000, 8, unit=u)).rstrip(b"\0") for u in (7, 8)}
        assert serials == {b"MHIL00000007", b"MHIL00000008"}
        assert read_key(client, 7) != read_key(client, 8)
        with pytest.raises(ModbusIOException):
            client.read_holding_registers(0x0000, count=1, device_id=9)  # nobody at 9: silence
        assert sorted(os.listdir(tmp_path / "state")) == ["meter-7.json", "meter-8.json"]
    finally:
        client.close()
        process.close()


def read_key(client, unit):
    return words_bytes(read(client, 0x0A09, 64, unit=unit))


def test_sigkill_during_a_transaction_then_restart_is_a_power_failure(tmp_path):
    state = tmp_path / "state"
    process = MeterSimProcess("--speed", "600", "--load-w", "7400", state_dir=state)
    client = modbus_client(process.path)
    try:
        assert not client.write_registers(0x04AC, text_words("kill-me", 20), device_id=1).isError()
        assert not client.write_register(0x04D4, 1, device_id=1).isError()
        served = wait_until(
            lambda: u32(read(client, 0x0120, 2)) > 1000 and u32(read(client, 0x0120, 2)), what="energy"
        )
    finally:
        client.close()
        process.kill()
    restarted = MeterSimProcess("--speed", "600", state_dir=state)
    client = modbus_client(restarted.path)
    try:
        assert read(client, 0x0203, 1) == [2]  # boot count
        assert read(client, 0x0201, 1) == [2]  # active after power failure
        assert read(client, 0x0200, 1)[0] & 0b101 == 0b101
        assert words_bytes(read(client, 0x04C0, 20)).rstrip(b"\0") == b"kill-me"
        assert u32(read(client, 0x0120, 2)) >= served
        assert not client.write_registers(0x04AC, text_words("kill-me", 20), device_id=1).isError()
        assert not client.write_register(0x04D4, 2, device_id=1).isError()
        wait_until(lambda: read(client, 0x04D5, 1) == [0], what="signing")
        record = read_record(client)
        assert verify_record(record, read_public_key(client))
        begin, end = json.loads(split_record(record)[0])["RD"]
        assert end["RV"] >= begin["RV"] and round(end["RV"] * 10000) >= served
    finally:
        client.close()
        assert restarted.terminate() == 0


def test_speed_600_energy_rises_by_power_times_time_times_speed(tmp_path):
    process = MeterSimProcess("--speed", "600", "--load-w", "11000", state_dir=tmp_path / "state")
    client = modbus_client(process.path)
    try:
        m = read(client, 0x0100, 6)
        assert all(abs(u32(m[i : i + 2]) * 0.01 - 230.0) < 5 for i in (0, 2, 4))

        def sample():
            before = time.monotonic()
            value = u32(read(client, 0x0120, 2)) * 0.1
            return (before + time.monotonic()) / 2, value

        t1, e1 = sample()
        wait_until(lambda: time.monotonic() - t1 > 3.0, what="3 wall seconds", interval=0.2)
        t2, e2 = sample()
        expected = 11000.0 * (t2 - t1) * 600 / 3600
        assert abs((e2 - e1) - expected) / expected < 0.01
    finally:
        client.close()
        assert process.terminate() == 0


def test_the_plain_profile_answers_02_for_the_transaction_block(tmp_path):
    process = MeterSimProcess("--profile", "plain", state_dir=tmp_path / "state")
    client = modbus_client(process.path)
    try:
        assert read(client, 0x001C, 1) == [0]
        assert client.read_holding_registers(0x0400, count=1, device_id=1).exception_code == 2
        assert client.write_register(0x04D4, 1, device_id=1).exception_code == 2
        assert client.read_holding_registers(0x0A00, count=1, device_id=1).exception_code == 2
    finally:
        client.close()
        process.close()
