"""LinkProxy and the forwarding core: bytes cross both ways; cut, corruption, delay and wire timing."""

import os
import time

import pytest
import serial
from sim_support import nothing_arrives, read_exactly, wait_until

from simulator import LinkProxy, PortError, PtyPair


@pytest.fixture
def cable():
    meter = PtyPair()
    proxy = LinkProxy(meter.path).start()
    driver = serial.Serial(proxy.path, timeout=0)
    os.set_blocking(driver.fileno(), False)
    yield meter, proxy, driver
    driver.close()
    proxy.close()
    meter.close()


def test_bytes_cross_both_ways_and_are_logged(cable):
    meter, proxy, driver = cable
    log = []
    proxy.on_bytes(lambda direction, data, t: log.append((direction, data, t)))
    driver.write(b"\x01\x03\x00\x00\x00\x01\x84\x0a")
    assert read_exactly(meter.master, 8) == b"\x01\x03\x00\x00\x00\x01\x84\x0a"
    os.write(meter.master, b"answer")
    assert read_exactly(driver.fileno(), 6) == b"answer"
    wait_until(lambda: len(log) == 2, timeout=2, what="the wire log")  # logged just after delivery
    assert [(d, b) for d, b, _ in log] == [
        ("to_meter", b"\x01\x03\x00\x00\x00\x01\x84\x0a"),
        ("to_driver", b"answer"),
    ]
    assert log[0][2] <= log[1][2]
    assert proxy.stats["forwarded"] == {"to_meter": 8, "to_driver": 6}


def test_cut_drops_both_ways_until_restore(cable):
    meter, proxy, driver = cable
    proxy.cut()
    assert proxy.is_cut
    driver.write(b"lost")
    os.write(meter.master, b"gone")
    assert nothing_arrives(meter.master) and nothing_arrives(driver.fileno())
    wait_until(lambda: proxy.stats["dropped"] == {"to_meter": 4, "to_driver": 4}, timeout=2, what="drops")
    proxy.restore()
    driver.write(b"back")
    assert read_exactly(meter.master, 4) == b"back"


def test_corruption_is_seeded_and_flips_bits(cable):
    meter, proxy, driver = cable
    payload = bytes(range(256))
    received = []
    for _ in range(2):
        proxy.set_corruption(0.5, seed=42)
        driver.write(payload)
        received.append(read_exactly(meter.master, 256))
    assert received[0] == received[1] != payload
    flipped = sum(a != b for a, b in zip(received[0], payload, strict=True))
    assert 90 < flipped < 166  # about half of the bytes, one bit each
    assert all(bin(a ^ b).count("1") <= 1 for a, b in zip(received[0], payload, strict=True))
    proxy.set_corruption(0.0)
    driver.write(payload)
    assert read_exactly(meter.master, 256) == payload
    with pytest.raises(ValueError, match="between 0 and 1"):
        proxy.set_corruption(1.5)


def test_delay_holds_bytes_back(cable):
    meter, proxy, driver = cable
    proxy.set_delay(0.2)
    start = time.monotonic()
    driver.write(b"late")
    assert read_exactly(meter.master, 4) == b"late"
    assert time.monotonic() - start >= 0.2


@pytest.mark.parametrize(("baudrate", "character_gaps", "gap_s"), [
    (9600, False, 3.5 * 11 / 9600),
    (19200, False, 3.5 * 11 / 19200),
    (115200, False, 0.00175),  # Modbus over Serial Line v1.02, 2.5.1.1: fixed above 19200 baud
    (115200, True, 3.5 * 11 / 115200),
])
def test_the_frame_gap_is_the_specs_t35(baudrate, character_gaps, gap_s):
    from simulator.forwarding import check_frame_timing

    timing = check_frame_timing(baudrate, 8, "E", 1, character_gaps)
    assert timing.gap_s == pytest.approx(gap_s)


def test_frame_timing_forwards_a_frame_once_its_bytes_crossed_the_wire(cable):
    meter, proxy, driver = cable
    proxy.set_frame_timing(9600, bytesize=8, parity="E", stopbits=1)  # 11 bits a character
    arrivals = []
    proxy.on_bytes(lambda direction, data, t: arrivals.append(t))
    frame = bytes(96)
    start = time.monotonic()
    driver.write(frame)
    assert read_exactly(meter.master, 96) == frame
    wire_time = 96 * 11 / 9600
    wait_until(lambda: len(arrivals) == 1, timeout=2, what="the wire log")
    assert arrivals[0] - start >= wire_time * 0.99
    os.write(meter.master, bytes(10))
    assert read_exactly(driver.fileno(), 10) == bytes(10)
    # half duplex: the answer starts 3.5 characters after the request ended
    wait_until(lambda: len(arrivals) == 2, timeout=2, what="the wire log")
    assert arrivals[1] - arrivals[0] >= (3.5 + 10) * 11 / 9600 * 0.99
    proxy.set_frame_timing(None)
    with pytest.raises(ValueError, match="parity"):
        proxy.set_frame_timing(9600, parity="X")


def test_a_proxy_between_two_existing_ports(tmp_path):
    with PtyPair() as meter, PtyPair() as driver_end, LinkProxy(meter.path, driver_end.path) as proxy:
        assert proxy.path == driver_end.path
        os.write(driver_end.master, b"ping")
        assert read_exactly(meter.master, 4) == b"ping"


def test_a_port_that_cannot_be_opened_is_a_clear_error(tmp_path):
    with pytest.raises(PortError, match="no-such-tty"):
        LinkProxy(str(tmp_path / "no-such-tty"))
