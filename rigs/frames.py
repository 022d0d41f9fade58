"""Recognising one Modbus RTU request in the byte stream a link proxy sees.

The rig uses this to cut the link at an exact moment (e.g. right after the stop command went to the
meter, before its answer comes back), which a timer could not hit reliably.
"""

from __future__ import annotations


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


def _frame_writes(frame: bytes, unit: int, address: int, value: int) -> bool:
    """True when `frame` is a complete, CRC-correct FC06/FC16 request writing `value` to `address`."""
    if len(frame) < 8 or frame[0] != unit:
        return False
    if frame[1] == 0x06:
        return (len(frame) == 8 and _crc_ok(frame) and int.from_bytes(frame[2:4], "big") == address
                and int.from_bytes(frame[4:6], "big") == value)
    if frame[1] == 0x10 and len(frame) >= 9:
        start = int.from_bytes(frame[2:4], "big")
        count = int.from_bytes(frame[4:6], "big")
        if frame[6] != count * 2 or len(frame) != 9 + count * 2 or not _crc_ok(frame):
            return False
        if not start <= address < start + count:
            return False
        offset = 7 + (address - start) * 2
        return int.from_bytes(frame[offset:offset + 2], "big") == value
    return False


def find_register_write(stream: bytes, unit: int, address: int, value: int) -> int:
    """End offset in `stream` of a request writing `value` to `address`, or -1 when there is none."""
    for start in range(len(stream)):
        if stream[start] != unit or start + 1 >= len(stream):
            continue
        fc = stream[start + 1]
        if fc == 0x06:
            end = start + 8
        elif fc == 0x10 and start + 6 < len(stream):
            end = start + 9 + stream[start + 6]
        else:
            continue
        if end <= len(stream) and _frame_writes(stream[start:end], unit, address, value):
            return end
    return -1
