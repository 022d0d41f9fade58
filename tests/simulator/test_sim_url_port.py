"""LinkProxy with its meter side behind the network (rfc2217://, socket://), through simulator.url_port."""

import os
import threading

import pytest
import serial
from sim_support import read_exactly, wait_until

from rigs.remote import PortServer
from simulator import LinkProxy, PortError, PtyPair

REQUEST = b"\x01\x03\x00\x00\x00\x01\x84\x0a"
ANSWER = b"\x01\x03\x02\xff\xff\xb9\xf4"  # 0xFF twice: Telnet's IAC, escaped by RFC 2217


@pytest.fixture(params=["rfc2217", "socket"])
def remote_cable(request):
    meter = PtyPair()
    server = PortServer(meter.path, request.param).start()
    proxy = LinkProxy(server.url).start()
    driver = serial.Serial(proxy.path, timeout=0)
    os.set_blocking(driver.fileno(), False)
    yield meter, server, proxy, driver
    driver.close()
    proxy.close()
    server.close()
    meter.close()


def test_bytes_cross_both_ways_through_the_network(remote_cable):
    meter, _, proxy, driver = remote_cable
    driver.write(REQUEST)
    assert read_exactly(meter.master, len(REQUEST)) == REQUEST
    os.write(meter.master, ANSWER)
    assert read_exactly(driver.fileno(), len(ANSWER)) == ANSWER
    # the forwarder counts a chunk after writing it: the driver can read it a moment before it is counted
    expected = {"to_meter": len(REQUEST), "to_driver": len(ANSWER)}
    wait_until(lambda: proxy.stats["forwarded"] == expected, 5, "the forwarder to count what it passed on")
    assert proxy.stats["forwarded"] == expected


def test_the_cut_works_as_on_a_local_port(remote_cable):
    meter, _, proxy, driver = remote_cable
    proxy.cut()
    driver.write(REQUEST)
    wait_until(lambda: proxy.stats["dropped"]["to_meter"] == len(REQUEST))
    proxy.restore()
    driver.write(REQUEST)
    assert read_exactly(meter.master, len(REQUEST)) == REQUEST


def test_the_proxy_reopens_the_url_when_the_server_comes_back():
    """ser2net restarted: the proxy's meter side reconnects by itself; bytes meanwhile are lost."""
    with PtyPair() as meter:
        server = PortServer(meter.path, "rfc2217").start()
        port = server.port
        proxy = LinkProxy(server.url).start()
        driver = serial.Serial(proxy.path, timeout=0)
        os.set_blocking(driver.fileno(), False)
        try:
            server.close()
            wait_until(lambda: not proxy._meter.connected)
            with PortServer(meter.path, "rfc2217", port=port) as again:
                wait_until(lambda: again.client_connected and proxy._meter.connected, timeout=10)
                driver.write(REQUEST)
                assert read_exactly(meter.master, len(REQUEST)) == REQUEST
                os.write(meter.master, ANSWER)
                assert read_exactly(driver.fileno(), len(ANSWER)) == ANSWER
                assert proxy._meter.reconnects == 1
        finally:
            driver.close()
            proxy.close()
            server.close()


def test_close_stops_the_bridge_threads():
    with PtyPair() as meter, PortServer(meter.path, "socket") as server:
        proxy = LinkProxy(server.url).start()
        assert any(t.name.startswith("UrlPort(") for t in threading.enumerate())
        proxy.close()
        assert not any(t.name.startswith("UrlPort(") for t in threading.enumerate())
        wait_until(lambda: not server.client_connected)


def test_a_url_with_nothing_behind_it_is_a_port_error():
    with pytest.raises(PortError, match=r"socket://127\.0\.0\.1:9"):
        LinkProxy("socket://127.0.0.1:9")
