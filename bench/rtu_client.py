"""A minimal Modbus RTU master on a pty: hand-made FC03 frames with CRC, replies read with poll().

Its own overhead is a write and a few reads, so the time it measures is the server's turnaround, not a
client's polling interval (pymodbus's sync client samples the port every few milliseconds).
"""

from __future__ import annotations

import os
import select
import struct
import time
import tty

from benchlib import BenchError

from rigs.frames import crc16


def read_request(unit: int, address: int, count: int, function: int = 3) -> bytes:
    """An FC03 (read holding registers) or FC04 (read input registers) frame with its CRC."""
    body = struct.pack(">BBHH", unit, function, address, count)
    return body + crc16(body).to_bytes(2, "little")


def check_read_reply(reply: bytes, unit: int, count: int, function: int = 3) -> list[int]:
    """The registers of a good FC03 reply; BenchError naming what is wrong otherwise."""
    if len(reply) >= 5 and reply[1] & 0x80:
        raise BenchError(f"unit {unit} answered exception {reply[2]:02d}")
    if len(reply) != 5 + 2 * count or reply[0] != unit or reply[1] != function or reply[2] != 2 * count:
        raise BenchError(f"unit {unit}: malformed reply {reply.hex()}")
    if crc16(reply[:-2]) != int.from_bytes(reply[-2:], "little"):
        raise BenchError(f"unit {unit}: bad CRC in reply {reply.hex()}")
    return list(struct.unpack(f">{count}H", reply[3:-2]))


class RtuClient:
    """FC03 reads on one pty path; every reply is checked (after the clock stops)."""

    def __init__(self, path: str, timeout_s: float = 1.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise BenchError(f"cannot open {path}: {exc.strerror}") from None
        tty.setraw(self.fd)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)

    def timed_read(self, unit: int, address: int, count: int, frame: bytes | None = None,
                   function: int = 3) -> float:
        """Seconds from the request's write to the reply's last byte; the reply is checked."""
        reply, elapsed = self._exchange(frame or read_request(unit, address, count, function), 5 + 2 * count)
        check_read_reply(reply, unit, count, function)
        return elapsed

    def read(self, unit: int, address: int, count: int, function: int = 3) -> list[int]:
        """The registers (for setting up a benchmark)."""
        reply, _ = self._exchange(read_request(unit, address, count, function), 5 + 2 * count)
        return check_read_reply(reply, unit, count, function)

    def receive(self, size: int) -> bytes:
        """Exactly `size` bytes (waiting with poll); BenchError when they do not come in time."""
        deadline = time.perf_counter() + self.timeout_s
        data = b""
        while len(data) < size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise BenchError(f"{self.path}: {len(data)} of {size} bytes within {self.timeout_s} s")
            if self._poll.poll(remaining * 1000):
                data += os.read(self.fd, size - len(data))
        return data

    def _exchange(self, frame: bytes, expected: int) -> tuple[bytes, float]:
        start = time.perf_counter()
        os.write(self.fd, frame)
        deadline = start + self.timeout_s
        reply = b""
        while len(reply) < expected and not (len(reply) >= 5 and reply[1] & 0x80):  # exception: 5 bytes
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise BenchError(f"no complete reply from {self.path} within {self.timeout_s} s "
                                 f"(got {reply.hex() or 'nothing'})")
            if self._poll.poll(remaining * 1000):
                reply += os.read(self.fd, 512)
        return reply, time.perf_counter() - start

    def close(self) -> None:
        """Close the port (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RtuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
