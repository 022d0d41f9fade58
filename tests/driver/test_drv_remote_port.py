"""The driver on a meter behind the network (ser2net): rfc2217:// and socket:// URLs to a loopback server.

rigs.remote.PortServer stands in for ser2net in front of a real meter-sim; the driver cannot tell."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from drv_support import SimMeter, request_for

from driver import CommunicationError, DriverConfig, PowermeterDriver
from driver.modbus_link import FrameWaitingSerialClient, ModbusLink
from rigs.remote import PortServer

PROTOCOLS = ["rfc2217", "socket"]


@pytest.fixture(params=PROTOCOLS)
def served(request: pytest.FixtureRequest, sim: SimMeter) -> Iterator[PortServer]:
    with PortServer(sim.path, request.param) as server:
        yield server


def link_to(url: str) -> ModbusLink:
    return ModbusLink(url, unit=1, baudrate=19200, parity="E", stopbits=1, bytesize=8, timeout=0.3, retries=1)


def test_the_driver_reads_signs_and_verifies_through_a_url(served: PortServer):
    config = DriverConfig(port=served.url, timeout=0.3, publish_interval=0, command_timeout=5.0)
    with PowermeterDriver(config) as driver:
        assert driver.read_powermeter().energy_Wh_import.total >= 0
        assert driver.public_key_ocmf
        transaction_id = str(uuid.uuid4())
        assert driver.start_transaction(request_for(transaction_id)).status.name == "OK"
        stopped = driver.stop_transaction(transaction_id)
        assert stopped.status.name == "OK", stopped.error
        assert stopped.signed_meter_value is not None
        assert stopped.signed_meter_value.signed_meter_data.startswith("OCMF|")


def test_an_answer_is_read_by_its_length_not_by_pymodbus_sampling(served: PortServer, monkeypatch):
    """pymodbus's own wait samples in_waiting every few ms; the URL path never falls back to it."""

    def sampling(self: FrameWaitingSerialClient) -> int:
        raise AssertionError("pymodbus's sampling wait was used")

    monkeypatch.setattr(FrameWaitingSerialClient, "_wait_for_data", sampling)
    link = link_to(served.url)
    link.open()
    try:
        for _ in range(20):
            assert len(link.read_holding(0, 10)) == 10
    finally:
        link.close()


def test_the_driver_reconnects_when_the_server_comes_back(sim: SimMeter):
    """ser2net restarted (or the network gone and back): CommunicationError, then answers again."""
    server = PortServer(sim.path, "rfc2217").start()
    port = server.port
    link = link_to(server.url)
    try:
        link.open()
        assert len(link.read_holding(0, 2)) == 2
        server.close()
        with pytest.raises(CommunicationError, match=r"rfc2217://127\.0\.0\.1"):
            link.read_holding(0, 2)
        with PortServer(sim.path, "rfc2217", port=port):
            assert len(link.read_holding(0, 2)) == 2
    finally:
        link.close()
        server.close()


def test_a_url_with_nothing_listening_is_a_configuration_error():
    from driver import ConfigurationError

    link = link_to("socket://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match=r"cannot open serial port socket://127\.0\.0\.1:9"):
        link.open()
