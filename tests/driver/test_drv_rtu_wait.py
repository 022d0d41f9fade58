"""The driver's client waits for an answer by its RTU length: the rule that tells the length."""

from __future__ import annotations

import pytest

from driver.modbus_link import rtu_answer_length


@pytest.mark.parametrize(
    ("head", "length"),
    [
        (b"", None),
        (b"\x01", None),
        (b"\x01\x83", 5),  # exception answer to FC03
        (b"\x01\x90\x06", 5),  # exception answer to FC16
        (b"\x01\x03", None),  # FC03 needs its byte count first
        (b"\x01\x03\x78", 5 + 0x78),  # 60 registers
        (b"\x01\x06", 8),
        (b"\x01\x10", 8),
        (b"\x01\x2b", None),  # a function the driver never asks for: ends at silence
    ],
)
def test_the_answer_length_follows_the_function_code(head: bytes, length: int | None):
    assert rtu_answer_length(head) == length
