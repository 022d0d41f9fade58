"""MeterSimProcess: the one way rigs, tests and benchmarks run meter-sim as a subprocess."""

from __future__ import annotations

import tempfile

import pytest

from simulator import LaunchError, MeterSimProcess


@pytest.mark.parametrize("standby", [False, True], ids=["new-process", "standby"])
def test_kill_and_restart_is_a_power_loss_on_the_same_state(standby):
    with MeterSimProcess(tempfile.mkdtemp(prefix="proc-"), speed=60, seed=3, standby=standby) as meter:
        assert meter.path.startswith("/dev/pts/")
        first = meter.control.status()
        assert first["boot_count"] == 1
        meter.kill()
        assert not meter.alive
        new_path = meter.start()
        assert meter.alive and new_path == meter.path
        again = meter.control.status()
        assert again["boot_count"] == 2
        assert again["serial"] == first["serial"]
        assert again["energy_wh"] >= first["energy_wh"]
        assert meter.tracebacks() == []
        waiting = meter.spare
        assert (waiting is not None and waiting.poll() is None) == standby
    assert not meter.alive
    if standby:
        assert waiting.poll() == 0  # the one kept waiting exits at EOF without powering up


def test_a_meter_sim_that_cannot_start_is_a_launch_error_naming_why():
    meter = MeterSimProcess(tempfile.mkdtemp(prefix="proc-"), profile="no-such-profile", start_timeout=10)
    try:
        with pytest.raises(LaunchError, match=r"exited .* before printing its device path.*no-such-profile"):
            meter.start()
        assert not meter.alive
    finally:
        meter.close()


@pytest.mark.parametrize("extra", [(), ("--bridge-thread",)], ids=["transceiver", "bridge-thread"])
def test_both_pty_plumbings_answer_and_cut_the_link(extra):
    from pymodbus.client import ModbusSerialClient

    with MeterSimProcess(tempfile.mkdtemp(prefix="proc-"), extra_args=extra) as meter:
        client = ModbusSerialClient(meter.path, baudrate=19200, timeout=0.3, retries=0)
        assert client.connect()
        try:
            assert len(client.read_holding_registers(0x0100, count=10, device_id=1).registers) == 10
            meter.control.link_down()
            with pytest.raises(Exception):  # noqa: B017 - no answer: pymodbus raises its own timeout
                client.read_holding_registers(0x0100, count=10, device_id=1)
            meter.control.link_up()
            assert len(client.read_holding_registers(0x0100, count=10, device_id=1).registers) == 10
        finally:
            client.close()
