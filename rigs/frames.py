"""Recognising one Modbus RTU request in the byte stream a link proxy sees.

The rig uses this to cut the link at an exact moment (e.g. right after the stop command went to the
meter, before its answer comes back), which a timer could not hit reliably.
"""

from __future__ import annotations

from collections.abc import Callable


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (polynomial 0xA001, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


RequestKind = Callable[[int, int, list[int]], str | None]
"""A protocol's classifier: (function code, address, registers written) -> request kind or None."""


def parse_request(frame: bytes) -> tuple[int, int, list[int]] | None:
    """(function code, address, registers written) of one whole CRC-correct request; None otherwise.
    Reads (FC03, FC04) write nothing: their list is empty."""
    if len(frame) < 8 or not _crc_ok(frame):
        return None
    fc, address = frame[1], int.from_bytes(frame[2:4], "big")
    if fc in (0x03, 0x04):
        return (fc, address, []) if len(frame) == 8 else None
    if fc == 0x06:
        return (fc, address, [int.from_bytes(frame[4:6], "big")]) if len(frame) == 8 else None
    if fc == 0x10:
        count = int.from_bytes(frame[4:6], "big")
        if frame[6] != count * 2 or len(frame) != 9 + count * 2:
            return None
        return fc, address, [int.from_bytes(frame[7 + 2 * i : 9 + 2 * i], "big") for i in range(count)]
    return None


def request_length(buffer: bytes) -> int | None:
    """Length of the RTU request at the start of buffer; None while too short to tell, 0 if unknown."""
    if len(buffer) < 2:
        return None
    fc = buffer[1]
    if fc in (0x03, 0x04, 0x06):
        return 8
    if fc == 0x10:
        return None if len(buffer) < 7 else 9 + buffer[6]
    return 0


def find_request(stream: bytes, unit: int, kind_of: RequestKind, kind: str) -> int:
    """End offset in `stream` of a CRC-correct request to `unit` that kind_of calls `kind`, or -1."""
    for start in range(len(stream)):
        if stream[start] != unit:
            continue
        length = request_length(stream[start:])
        if not length or start + length > len(stream):
            continue
        parsed = parse_request(stream[start : start + length])
        if parsed is not None and kind_of(*parsed) == kind:
            return start + length
    return -1
