"""rigs.remote.PortServer: a pty served on a loopback TCP port as RFC 2217 or raw bytes, as ser2net does."""

import os
import select
import socket
import threading
import time

import pytest
import serial

from rigs import RigError, RigPortError
from rigs.remote import PortServer
from simulator import PtyPair

EVERY_BYTE = bytes(range(256)) * 2  # 0xFF is Telnet's IAC: RFC 2217 must escape it both ways


def read_fd(fd, n, timeout=5.0):
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            data += os.read(fd, 4096)
    return data


def read_port(port, n, timeout=5.0):
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        data += port.read(n - len(data))
    return data


@pytest.fixture
def pty():
    pair = PtyPair()
    yield pair
    pair.close()


@pytest.mark.parametrize("protocol", ["rfc2217", "socket"])
def test_bytes_cross_both_ways(pty, protocol):
    with PortServer(pty.path, protocol) as server:
        assert server.url.startswith(f"{protocol}://127.0.0.1:")
        client = serial.serial_for_url(server.url, baudrate=19200, parity="E", timeout=0.2)
        try:
            client.write(EVERY_BYTE)
            assert read_fd(pty.master, len(EVERY_BYTE)) == EVERY_BYTE
            os.write(pty.master, EVERY_BYTE)
            assert read_port(client, len(EVERY_BYTE)) == EVERY_BYTE
        finally:
            client.close()
        assert server.to_port == server.to_client == len(EVERY_BYTE)


def test_rfc2217_line_settings_are_acknowledged_on_a_pty(pty):
    """A pty has no line: the server records the settings the client asks for and reports them back."""
    with PortServer(pty.path, "rfc2217") as server:
        client = serial.serial_for_url(server.url, baudrate=9600, parity="O", stopbits=2, timeout=0.2)
        try:
            assert client.is_open and client.cts and client.dsr
            client.write(b"\x01\x03")
            assert read_fd(pty.master, 2) == b"\x01\x03"
        finally:
            client.close()


@pytest.mark.parametrize("protocol", ["rfc2217", "socket"])
def test_a_client_that_disconnects_is_dropped_and_the_next_one_served(pty, protocol):
    with PortServer(pty.path, protocol) as server:
        first = serial.serial_for_url(server.url, timeout=0.2)
        assert server.wait_for(lambda s: s.connections == 1 and s.client_connected, 5)
        first.close()
        assert server.wait_for(lambda s: not s.client_connected, 5)
        os.write(pty.master, b"nobody listens")  # dropped, not kept for the next client
        assert server.wait_for(lambda s: s.dropped == len(b"nobody listens"), 5)
        second = serial.serial_for_url(server.url, timeout=0.2)
        try:
            os.write(pty.master, b"\x11\x22")
            assert read_port(second, 2) == b"\x11\x22"
            second.write(b"\x33")
            assert read_fd(pty.master, 1) == b"\x33"
        finally:
            second.close()


def test_a_new_client_replaces_one_still_connected(pty):
    """A driver reconnecting after a failure must not be locked out by its own stale connection."""
    with PortServer(pty.path, "socket") as server:
        stale = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        assert server.wait_for(lambda s: s.connections == 1, 5)
        fresh = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            assert server.wait_for(lambda s: s.connections == 2, 5)
            assert stale.recv(16) == b""  # the server closed the stale one
            os.write(pty.master, b"\x44")
            assert fresh.recv(16) == b"\x44"
        finally:
            stale.close()
            fresh.close()


def test_a_client_sending_garbage_telnet_does_not_stop_the_server(pty):
    with PortServer(pty.path, "rfc2217") as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        raw.sendall(b"\xff\xfa\x2c\x01\xff\xff\xff\xf0" + b"\xff\xfd\x99" + b"\xff\xfa\x2c\x05\x07\xff\xf0")
        raw.close()
        assert server.wait_for(lambda s: not s.client_connected, 5)
        client = serial.serial_for_url(server.url, timeout=0.2)
        try:
            client.write(b"\x55")
            assert read_fd(pty.master, 1) == b"\x55"
        finally:
            client.close()


def test_close_releases_everything(pty):
    server = PortServer(pty.path, "rfc2217").start()
    client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    assert server.wait_for(lambda s: s.client_connected, 5)
    before = {t.name for t in threading.enumerate()}
    assert f"PortServer({pty.path})" in before
    server.close()
    server.close()  # idempotent
    assert f"PortServer({pty.path})" not in {t.name for t in threading.enumerate()}
    while client.recv(4096):  # the Telnet option requests the server sent first, then the end
        pass
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    assert not server._port.is_open


def test_only_loopback_and_known_protocols(pty):
    with pytest.raises(RigError, match="not a loopback address"):
        PortServer(pty.path, "rfc2217", host="0.0.0.0")
    with pytest.raises(RigError, match=r"protocol 'telnet'"):
        PortServer(pty.path, "telnet")
    with pytest.raises(RigPortError, match="/dev/nonexistent-tty"):
        PortServer("/dev/nonexistent-tty")
