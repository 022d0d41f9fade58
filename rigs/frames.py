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


def _request_end(stream: bytes, start: int) -> tuple[int, list[int]] | None:
    """End offset and written registers of a well-formed request at `start`, None when there is none."""
    if start + 1 >= len(stream):
        return None
    fc = stream[start + 1]
    if fc in (0x03, 0x04, 0x06):
        end = start + 8
    elif fc == 0x10 and start + 6 < len(stream):
        end = start + 9 + stream[start + 6]
    else:
        return None
    frame = stream[start:end]
    if end > len(stream) or not _crc_ok(frame):
        return None
    if fc == 0x06:
        return end, [int.from_bytes(frame[4:6], "big")]
    if fc == 0x10:
        count = int.from_bytes(frame[4:6], "big")
        if frame[6] != count * 2:
            return None
        return end, [int.from_bytes(frame[7 + 2 * i : 9 + 2 * i], "big") for i in range(count)]
    return end, []


def find_request(stream: bytes, unit: int, kind_of: RequestKind, kind: str) -> int:
    """End offset in `stream` of a CRC-correct request to `unit` that kind_of calls `kind`, or -1."""
    for start in range(len(stream)):
        if stream[start] != unit:
            continue
        found = _request_end(stream, start)
        if found is None:
            continue
        end, values = found
        if kind_of(stream[start + 1], int.from_bytes(stream[start + 2 : start + 4], "big"), values) == kind:
            return end
    return -1
