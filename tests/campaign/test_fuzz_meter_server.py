"""Fuzzing meter-sim's Modbus RTU server: random, truncated, garbled and absurd frames straight onto its pty.

The meter must never crash, must answer only well-formed frames (CRC-correct answers or exceptions), and
must answer a good request again once the garbage stops, as a meter on a noisy bus does.
"""

from __future__ import annotations

import os
import random
import select
import time
import tty
from collections.abc import Iterator

import pytest

from rigs.frames import crc16
from simulator.process import MeterSimProcess

UNIT = 1
SEED = 20261123
ROUNDS = 150


def frame(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


PROBE = frame(bytes([UNIT, 0x03, 0x00, 0x1D, 0x00, 0x01]))  # map_version
PROBE_ANSWER = frame(bytes([UNIT, 0x03, 0x02, 0x00, 0x01]))


@pytest.fixture(scope="module")
def meter(tmp_path_factory) -> Iterator[tuple[MeterSimProcess, int]]:
    proc = MeterSimProcess(tmp_path_factory.mktemp("fuzz-sim"), speed=1.0, seed=3)
    path = proc.start()
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    try:
        yield proc, fd
    finally:
        os.close(fd)
        proc.close()


def receive(fd: int, quiet_s: float = 0.05, limit_s: float = 1.0) -> bytes:
    """Bytes that arrive until the line has been quiet for quiet_s (or limit_s passed)."""
    data = b""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], quiet_s)
        if not ready:
            break
        data += os.read(fd, 4096)
    return data


def probe_until_answered(fd: int, attempts: int = 8) -> bytes:
    """Send the good request until it is answered, as a master repeats after a timeout."""
    for _ in range(attempts):
        receive(fd, quiet_s=0.02)  # drain
        os.write(fd, PROBE)
        answer = receive(fd, quiet_s=0.2)
        if answer:
            return answer
    return b""


def well_formed(answer: bytes) -> bool:
    return len(answer) >= 5 and crc16(answer[:-2]) == int.from_bytes(answer[-2:], "little")


def garbage(rng: random.Random) -> bytes:
    """One piece of bad input of a randomly chosen sort."""
    sort = rng.randrange(6)
    address, count = rng.randrange(0x0B00).to_bytes(2, "big"), rng.randint(1, 125).to_bytes(2, "big")
    good = frame(bytes([UNIT, 0x03]) + address + count)
    if sort == 0:
        return rng.randbytes(rng.randint(1, 300))
    if sort == 1:
        return good[: rng.randrange(1, len(good))]
    if sort == 2:
        flipped = bytearray(good)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    if sort == 3:  # CRC-correct but absurd: any function code, address and count
        return frame(bytes([UNIT, rng.randrange(256)]) + rng.randbytes(rng.randint(0, 10)))
    if sort == 4:  # FC16 whose byte count lies
        n = rng.randint(1, 10)
        return frame(bytes([UNIT, 0x10, 0x04, 0x00, 0x00, n, rng.randrange(256)]) + rng.randbytes(2 * n))
    return frame(bytes([rng.choice([0, 2, 247, 255]), 0x03, 0x00, 0x00, 0x00, 0x01]))  # someone else's unit


def test_garbage_never_crashes_the_meter_and_it_answers_again(meter):
    proc, fd = meter
    rng = random.Random(SEED)
    answers = 0
    for round_number in range(ROUNDS):
        bad = garbage(rng)
        os.write(fd, bad)
        answer = receive(fd, quiet_s=0.03)
        if answer:
            answers += 1
            assert well_formed(answer), f"round {round_number}: bad answer {answer.hex()} to {bad.hex()}"
        if round_number % 10 == 9:
            assert probe_until_answered(fd) == PROBE_ANSWER, f"no good answer after round {round_number}"
    assert proc.alive, f"meter-sim exited: {proc.log_tail()}"
    assert proc.tracebacks() == []
    assert answers > 0  # the CRC-correct absurd frames got exception answers
    assert proc.control.status()["power"] == "on"


@pytest.mark.parametrize("function_code", [0x01, 0x04, 0x05, 0x2B, 0x7F])
def test_an_unknown_function_code_gets_exception_01(meter, function_code):
    _, fd = meter
    receive(fd, quiet_s=0.02)
    os.write(fd, frame(bytes([UNIT, function_code, 0x00, 0x00, 0x00, 0x01])))
    assert receive(fd, quiet_s=0.2) == frame(bytes([UNIT, function_code | 0x80, 0x01]))


def test_a_read_past_the_map_gets_exception_02(meter):
    _, fd = meter
    receive(fd, quiet_s=0.02)
    os.write(fd, frame(bytes([UNIT, 0x03, 0xFF, 0xF0, 0x00, 0x05])))
    assert receive(fd, quiet_s=0.2) == frame(bytes([UNIT, 0x83, 0x02]))
