"""Register codec: numbers and texts to 16-bit Modbus words and back, as pure functions.

One place knows every register type a profile may name, so a new meter model only needs data. Words are
always big-endian bytes; only the order of the words of a 32/64-bit value varies ("high_first" as in the
reference meter and Iskra, "low_first" as Carlo Gavazzi sends them). Iskra's T5/T6 are an 8-bit signed
decimal exponent in the high byte of the first word and a 24-bit mantissa (T5 unsigned, T6 signed).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

WIDTHS = {
    "u16": 1,
    "s16": 1,
    "u32": 2,
    "s32": 2,
    "i32": 2,
    "u64": 4,
    "s64": 4,
    "f32": 2,
    "t5": 2,
    "t6": 2,
    "string": 1,
    "bytes": 1,
}
INTEGER_TYPES = ("u16", "s16", "u32", "s32", "i32", "u64", "s64")
TEXT_TYPES = ("string", "bytes")
EXPONENT_TYPES = ("t5", "t6")
WORD_ORDERS = ("high_first", "low_first")
PADS = ("nul", "space")
LIMITS = {
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "s32": (-0x80000000, 0x7FFFFFFF),
    "i32": (-0x80000000, 0x7FFFFFFF),
    "u64": (0, 0xFFFFFFFFFFFFFFFF),
    "s64": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
    "t5": (0, 0xFFFFFF),
    "t6": (-0x800000, 0x7FFFFF),
}
_STRUCT = {"u16": "H", "s16": "h", "u32": "I", "s32": "i", "i32": "i", "u64": "Q", "s64": "q", "f32": "f"}


def _order(words: list[int], word_order: str) -> list[int]:
    """Words as sent on the wire from high-first words (the reversal is its own inverse)."""
    if word_order not in WORD_ORDERS:
        raise ValueError(f"word order must be one of {', '.join(WORD_ORDERS)}, not {word_order!r}")
    return list(reversed(words)) if word_order == "low_first" else list(words)


def clamp(kind: str, raw: int) -> int:
    """raw limited to what a register of this type can hold (a meter saturates, it does not wrap)."""
    low, high = LIMITS[kind]
    return min(max(raw, low), high)


def encode_int(kind: str, raw: int, word_order: str = "high_first") -> list[int]:
    """Words of an integer register; raw must be in range (see clamp)."""
    width = WIDTHS[kind]
    packed = struct.pack(f">{_STRUCT[kind]}", raw)
    return _order(list(struct.unpack(f">{width}H", packed)), word_order)


def decode_int(kind: str, words: list[int], word_order: str = "high_first") -> int:
    """Inverse of encode_int."""
    width = WIDTHS[kind]
    if len(words) != width:
        raise ValueError(f"{kind} takes {width} registers, not {len(words)}")
    packed = struct.pack(f">{width}H", *_order(words, word_order))
    return int(struct.unpack(f">{_STRUCT[kind]}", packed)[0])


def encode_f32(value: float, word_order: str = "high_first") -> list[int]:
    """IEEE 754 single precision in two registers."""
    return _order(list(struct.unpack(">2H", struct.pack(">f", value))), word_order)


def decode_f32(words: list[int], word_order: str = "high_first") -> float:
    """Inverse of encode_f32."""
    return float(struct.unpack(">f", struct.pack(">2H", *_order(words, word_order)))[0])


def encode_t(kind: str, value: float, exp: int) -> list[int]:
    """T5 (unsigned) or T6 (signed): mantissa = value / 10^exp rounded and saturated to 24 bits."""
    if not -128 <= exp <= 127:
        raise ValueError(f"a {kind} exponent must be -128..127, not {exp}")
    mantissa = clamp(kind, round(value / 10.0**exp)) if math.isfinite(value) else 0
    return [((exp & 0xFF) << 8) | ((mantissa >> 16) & 0xFF), mantissa & 0xFFFF]


def decode_t(kind: str, words: list[int]) -> tuple[int, int]:
    """(mantissa, exponent) of a T5/T6 value; the value is mantissa x 10^exponent."""
    if len(words) != 2:
        raise ValueError(f"{kind} takes 2 registers, not {len(words)}")
    exp = (words[0] >> 8) & 0xFF
    exp = exp - 0x100 if exp >= 0x80 else exp
    mantissa = ((words[0] & 0xFF) << 16) | words[1]
    if kind == "t6" and mantissa >= 0x800000:
        mantissa -= 0x1000000
    return mantissa, exp


def encode_number(
    kind: str, value: float, scale: float = 1.0, exp: int = 0, word_order: str = "high_first"
) -> list[int]:
    """Words of one numeric value in its unit: integers are value / scale rounded and saturated."""
    if kind in EXPONENT_TYPES:
        return encode_t(kind, value, exp)
    if kind == "f32":
        return encode_f32(value, word_order)
    raw = round(value / scale) if math.isfinite(value) else 0
    return encode_int(kind, clamp(kind, raw), word_order)


def number_encoder(
    kind: str, scale: float = 1.0, exp: int = 0, word_order: str = "high_first"
) -> Callable[[float], list[int]]:
    """encode_number for one register, with its type's dispatch and struct formats done once: the words
    are the same, a read of many registers spends less on encoding them."""
    if kind in EXPONENT_TYPES:
        return lambda value: encode_t(kind, value, exp)
    if word_order not in WORD_ORDERS:
        raise ValueError(f"word order must be one of {', '.join(WORD_ORDERS)}, not {word_order!r}")
    low_first = word_order == "low_first"
    width = 2 if kind == "f32" else WIDTHS[kind]
    to_words = struct.Struct(f">{width}H").unpack
    if kind == "f32":
        pack_f = struct.Struct(">f").pack

        def f32(value: float) -> list[int]:
            words = list(to_words(pack_f(value)))
            return words[::-1] if low_first else words

        return f32
    pack = struct.Struct(f">{_STRUCT[kind]}").pack
    low, high = LIMITS[kind]
    isfinite = math.isfinite

    def integer(value: float) -> list[int]:
        raw = round(value / scale) if isfinite(value) else 0
        words = list(to_words(pack(min(max(raw, low), high))))
        return words[::-1] if low_first else words

    return integer


def decode_number(kind: str, words: list[int], scale: float = 1.0, word_order: str = "high_first") -> float:
    """A numeric register's value in its unit (T5/T6 carry their exponent)."""
    if kind in EXPONENT_TYPES:
        mantissa, exp = decode_t(kind, words)
        return mantissa * 10.0**exp
    if kind == "f32":
        return decode_f32(words, word_order)
    return decode_int(kind, words, word_order) * scale


def encode_text(raw: bytes, regs: int, pad: str = "nul") -> list[int]:
    """Two bytes a register, first in the high byte; cut to fit and padded with NUL or spaces."""
    fill = b" " if pad == "space" else b"\0"
    data = raw[: regs * 2].ljust(regs * 2, fill)
    return list(struct.unpack(f">{regs}H", data))


def decode_text(words: list[int], pad: str = "nul") -> bytes:
    """The bytes of a text register with its padding (and any NUL after it) stripped."""
    data = struct.pack(f">{len(words)}H", *words).rstrip(b"\0")
    return data.rstrip(b" ") if pad == "space" else data
