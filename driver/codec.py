"""Words on the wire and the values in them: the number and string encodings real meters use.

Pure functions over lists of 16-bit registers. Bytes inside a register are always big-endian (Modbus);
the order of the registers of a 32- or 64-bit value differs between vendors ("high_first": most
significant word first, as the reference and Iskra meters send them; "low_first": as Carlo Gavazzi's).
"""

from __future__ import annotations

import math
import struct

from driver.errors import CommunicationError

WORD_ORDERS = ("high_first", "low_first")
WIDTHS = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "u64": 4, "s64": 4, "f32": 2, "t5": 2, "t6": 2}


def registers_to_bytes(registers: list[int]) -> bytes:
    """Big-endian bytes of the registers, in order."""
    return b"".join(r.to_bytes(2, "big") for r in registers)


def bytes_to_registers(data: bytes) -> list[int]:
    """Registers holding `data`, two bytes a register; an odd length leaves the last low byte 0."""
    if len(data) % 2:
        data += b"\x00"
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def _ordered(words: list[int], word_order: str) -> list[int]:
    if word_order not in WORD_ORDERS:
        raise ValueError(f"word order {word_order!r} is not one of {', '.join(WORD_ORDERS)}")
    return list(words) if word_order == "high_first" else list(reversed(words))


def decode_number(kind: str, words: list[int], word_order: str = "high_first") -> int | float:
    """The value of `kind` in `words` (exactly WIDTHS[kind] registers), unscaled."""
    width = WIDTHS.get(kind)
    if width is None:
        raise ValueError(f"unknown register type {kind!r}")
    if len(words) != width:
        raise CommunicationError(f"a {kind} takes {width} registers, the meter sent {len(words)}")
    if kind in ("t5", "t6"):
        return decode_t56(words, signed=kind == "t6")
    raw = 0
    for word in _ordered(words, word_order):
        raw = (raw << 16) | word
    if kind == "f32":
        return float(struct.unpack(">f", raw.to_bytes(4, "big"))[0])
    bits = 16 * width
    if kind.startswith("s") and raw & (1 << (bits - 1)):
        raw -= 1 << bits
    return raw


def encode_number(kind: str, value: int | float, word_order: str = "high_first") -> list[int]:
    """The registers of an integer or float value (integers must fit the type exactly)."""
    width = WIDTHS.get(kind)
    if width is None or kind in ("t5", "t6"):
        raise ValueError(f"cannot encode register type {kind!r}")
    if kind == "f32":
        raw = int.from_bytes(struct.pack(">f", float(value)), "big")
    else:
        bits = 16 * width
        signed = kind.startswith("s")
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{value!r} does not fit in {kind}")
        raw = value & ((1 << bits) - 1)
    words = [(raw >> (16 * i)) & 0xFFFF for i in reversed(range(width))]
    return _ordered(words, word_order)


def decode_t56(words: list[int], *, signed: bool) -> float:
    """Iskra's T5 (signed=False) and T6 (signed=True): an 8-bit signed decimal exponent in the high byte
    of the first register, then a 24-bit mantissa (unsigned for T5, two's complement for T6)."""
    exponent = words[0] >> 8
    if exponent & 0x80:
        exponent -= 0x100
    mantissa = ((words[0] & 0xFF) << 16) | words[1]
    if signed and mantissa & 0x800000:
        mantissa -= 0x1000000
    value = mantissa * 10.0**exponent
    return round(value, max(0, -exponent)) if math.isfinite(value) else value


def encode_string(text: str, count: int, pad: bytes = b"\x00") -> list[int]:
    """ASCII, two characters a register (first in the high byte), padded to count registers."""
    data = text.encode("ascii")
    if len(data) > count * 2:
        raise ValueError(f"{text!r} is longer than {count * 2} characters")
    return bytes_to_registers(data.ljust(count * 2, pad))


def decode_string(registers: list[int]) -> str:
    """ASCII up to the first NUL, trailing spaces dropped; a byte past ASCII means the meter sent garbage."""
    data = registers_to_bytes(registers).split(b"\x00", 1)[0]
    try:
        return data.decode("ascii").rstrip(" ")
    except UnicodeDecodeError:
        raise CommunicationError(f"meter sent a string that is not ASCII: {data!r}") from None


def encode_u32(value: int) -> list[int]:
    """High word first."""
    return encode_number("u32", value)
