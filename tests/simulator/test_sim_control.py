"""Fault control of a running meter-sim over its unix socket (ControlClient)."""

import os
import time

import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer.rtu import FramerRTU
from sim_support import MeterSimProcess, modbus_client, nothing_arrives, read_exactly, u32, wait_until

from simulator import ControlClient, ControlError, PtyPair

FAST_BOOT = 'base = "reference"\n[meter]\nname = "fast"\nboot_delay_s = 1.0\n'


@pytest.fixture
def controlled(tmp_path):
    profile = tmp_path / "fast.toml"
    profile.write_text(FAST_BOOT)
    process = MeterSimProcess(
        "--speed",
        "60",
        "--load-w",
        "3000",
        "--profile",
        str(profile),
        state_dir=tmp_path / "state",
        control=tmp_path / "c.sock",
    )
    client = modbus_client(process.path, timeout=0.3, retries=0)
    yield process, client, ControlClient(process.control)
    client.close()
    process.close()


def answers(client):
    try:
        return not client.read_holding_registers(0x0203, count=1, device_id=1).isError()
    except ModbusIOException:
        return False


def test_status_is_ground_truth(controlled):
    _, client, control = controlled
    status = control.status()
    for key in (
        "energy_wh",
        "energy_register",
        "power_w",
        "transaction_state",
        "open_transaction_id",
        "uptime_s",
        "boot_count",
        "closed_transactions",
        "pagination",
        "power",
        "link",
    ):
        assert key in status
    assert status["power_w"] == 3000.0 and status["power"] == "on" and status["boot_count"] == 1
    register = u32(client.read_holding_registers(0x0120, count=2, device_id=1).registers)
    later = control.status()
    assert later["energy_register"] >= register
    assert isinstance(later["energy_wh"], float) and later["energy_wh"] * 10 >= register


def test_power_off_and_on_reboots_the_meter(controlled):
    _, client, control = controlled
    assert answers(client)
    control.power_off()
    assert not answers(client)
    off = control.status()
    assert off["power"] == "off"
    energy_off = off["energy_wh"]
    control.power_on()
    assert control.status()["power"] == "booting"
    assert not answers(client)  # no answers during the boot delay
    wait_until(lambda: answers(client), timeout=5, what="the meter to boot")
    assert client.read_holding_registers(0x0203, count=1, device_id=1).registers == [2]
    assert client.read_holding_registers(0x0303, count=1, device_id=1).registers == [
        0
    ]  # clock unsynchronised
    assert control.status()["energy_wh"] >= energy_off


def test_link_down_and_up(controlled):
    _, client, control = controlled
    control.link_down()
    assert control.status()["link"] == "down"
    assert not answers(client)
    control.link_up()
    assert answers(client)


def test_phase_order_load_and_answer_delay(controlled):
    _, client, control = controlled
    control.set_phase_order("ccw")
    assert client.read_holding_registers(0x013B, count=1, device_id=1).registers == [1]
    control.set_load(power_w=7000)
    assert u32(client.read_holding_registers(0x0114, count=2, device_id=1).registers) == 70000
    control.set_load(profile="ev")
    assert control.status()["load"] == "ev"
    control.set_answer_delay(0.3)
    client.close()  # the pty opens exclusively: a patient client replaces the fixture's
    patient = modbus_client(controlled[0].path, timeout=2.0, retries=0)
    try:
        start = time.monotonic()
        assert answers(patient)
        assert time.monotonic() - start >= 0.3
    finally:
        patient.close()
    control.set_answer_delay(0)


def test_corruption_on_the_bus(controlled):
    _, client, control = controlled
    control.set_corruption(1.0, seed=3)  # every byte damaged: nothing valid gets through
    assert not answers(client)
    control.set_corruption(0.0)
    assert answers(client)


def test_bad_control_commands_are_clear_errors(controlled):
    process, _, control = controlled
    with pytest.raises(ControlError, match="unknown command 'explode'"):
        control.call("explode")
    with pytest.raises(ControlError, match="power_w"):
        control.set_load(power_w=-5)
    with pytest.raises(ControlError, match="phase order"):
        control.set_phase_order("sideways")
    with pytest.raises(ControlError, match="between 0 and 1"):
        control.set_corruption(2.0)
    with pytest.raises(ControlError, match="unknown argument"):
        control.call("power_off", now=True)
    with pytest.raises(ControlError, match="no meter at unit 9"):
        control.status(unit=9)
    assert process.proc.poll() is None


def test_quit_exits_cleanly_and_keeps_the_state(controlled):
    process, _, control = controlled
    control.quit()
    assert process.proc.wait(timeout=10) == 0
    assert (process.state_dir / "meter-1.json").exists()
    with pytest.raises(ControlError):
        control.status()


def test_sigterm_exits_cleanly(tmp_path):
    process = MeterSimProcess(state_dir=tmp_path / "state")
    try:
        assert process.terminate() == 0
        assert (tmp_path / "state" / "meter-1.json").exists()
    finally:
        process.close()


def test_port_mode_serves_a_given_device_and_silences_answers_without_power(tmp_path):
    request = b"\x01\x03\x00\x1c\x00\x02"
    request += FramerRTU.compute_CRC(request).to_bytes(2, "big")
    with PtyPair() as device:
        process = MeterSimProcess(
            "--port",
            device.path,
            "--parity",
            "E",
            state_dir=tmp_path / "s",
            control=tmp_path / "c.sock",
            pty=False,
        )
        try:
            assert process.path == device.path
            control = ControlClient(process.control)
            os.write(device.master, request)
            answer = read_exactly(device.master, 9)
            assert answer[:7] == b"\x01\x03\x04\x00\x01\x00\x01"  # capabilities 1, map version 1
            control.power_off()
            os.write(device.master, request)
            assert nothing_arrives(device.master, within=0.5)
            with pytest.raises(ControlError, match="not with --port"):
                control.link_down()
            control.power_on()
            answer = wait_until(
                lambda: os.write(device.master, request) and read_exactly(device.master, 9, 0.3),
                what="answers after the boot",
            )
            assert answer[:3] == b"\x01\x03\x04"
        finally:
            process.close()
