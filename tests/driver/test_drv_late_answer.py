"""A meter that answers after the driver's timeout: its late answers must not pair with later requests.

RTU answers carry no request id. A meter that stalls past the timeout answers the request and then its
repeat, one after the other; without care the driver takes the second for its next request's answer
and stays one answer behind (finding 15, docs/reliability.md). The far side here is a hand-made meter on
a pty pair, so the stall is exact: real RTU frames with CRCs, each register's value is its address."""

from __future__ import annotations

import os
import pty
import select
import threading
import tty

import pytest
from pymodbus.framer import FramerRTU

from driver.errors import CommunicationError
from driver.modbus_link import ModbusLink, whole_answers

TIMEOUT = 0.2


def crc(body: bytes) -> bytes:
    return FramerRTU.compute_CRC(body).to_bytes(2, "big")


class SlowMeter:
    """Answers FC03 reads of unit 1 with each register's address as its value. The first request's
    answer comes `stall` s late; every answer after a stall waits `gap` s more (a meter catching up)."""

    def __init__(self, stall: float, gap: float, lose_first: bool = False, cut_first: bool = False) -> None:
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.stall, self.gap, self.lose_first, self.cut_first = stall, gap, lose_first, cut_first
        self.requests: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _frames(self):
        buffer = b""
        while not self._stop.is_set():
            if len(buffer) >= 8:
                frame, buffer = buffer[:8], buffer[8:]
                yield frame
                continue
            if select.select([self.master], [], [], 0.05)[0]:
                buffer += os.read(self.master, 256)

    def _run(self) -> None:
        stalled = False
        for frame in self._frames():
            address, count = int.from_bytes(frame[2:4], "big"), int.from_bytes(frame[4:6], "big")
            self.requests.append(address)
            words = b"".join((address + i).to_bytes(2, "big") for i in range(count))
            body = bytes([1, 3, 2 * count]) + words
            if len(self.requests) == 1:
                if self.lose_first:
                    continue  # this answer is lost on the wire
                if self.cut_first:
                    os.write(self.master, body[:3])  # a link drop cuts it after its third byte
                    continue
                self._stop.wait(self.stall)
                stalled = True
            elif stalled:
                self._stop.wait(self.gap)
            os.write(self.master, body + crc(body))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def link_to():
    made: list[tuple[SlowMeter, ModbusLink]] = []

    def make(**meter) -> ModbusLink:
        slow = SlowMeter(**meter)
        link = ModbusLink(slow.path, unit=1, baudrate=19200, parity="N", stopbits=1, bytesize=8,
                          timeout=TIMEOUT, retries=1)
        made.append((slow, link))
        link.open()
        return link

    yield make
    for slow, link in made:
        link.close()
        slow.close()


def test_the_answers_to_a_stalled_request_and_its_repeat_go_to_that_request(link_to):
    # the first answer comes after the timeout, once the repeat is sent; the repeat's answer comes
    # 20 ms later, after the driver would have sent its next request
    link = link_to(stall=1.5 * TIMEOUT, gap=0.02)
    assert link.read_holding(100, 1) == [100]
    assert link.read_holding(200, 1) == [200]  # not the repeat's answer [100]
    assert link.read_holding(300, 1) == [300]


@pytest.mark.parametrize("fault", ["lose_first", "cut_first"])
def test_after_a_lost_or_cut_answer_the_repeat_and_the_next_request_are_answered(link_to, fault):
    slow = link_to(stall=0.0, gap=0.0, **{fault: True})
    assert slow.read_holding(100, 1) == [100]  # the repeat is answered
    assert slow.read_holding(200, 1) == [200]


def test_a_meter_that_never_answers_is_still_a_communication_error(link_to):
    link = link_to(stall=30.0, gap=0.0)
    with pytest.raises(CommunicationError, match="no answer from unit 1"):
        link.read_holding(100, 1)


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"", 0),
        (b"\x01\x03\x02\x00\x64\xb9\xaf", 1),
        (b"\x01\x03\x02\x00\x64\xb9\xaf" * 2, 2),
        (b"\x01\x03\x02\x00\x64\xb9\xaf\x01\x03", 1),  # a second answer begun
        (b"\x01\x83\x02\xc0\xf1", 1),  # an exception answer
    ],
)
def test_whole_answers_counts_the_answers_a_read_took_in(data: bytes, count: int):
    assert whole_answers(data) == count
