"""The register codec: round trips, limits, negative T6, word orders, padding."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import codec


@pytest.mark.parametrize("kind", ["u16", "s16", "u32", "s32", "i32", "u64", "s64"])
@pytest.mark.parametrize("order", ["high_first", "low_first"])
def test_integers_round_trip_at_their_limits(kind, order):
    low, high = codec.LIMITS[kind]
    for raw in (low, high, 0 if low == 0 else -1, 1):
        words = codec.encode_int(kind, raw, order)
        assert len(words) == codec.WIDTHS[kind] and all(0 <= w <= 0xFFFF for w in words)
        assert codec.decode_int(kind, words, order) == raw


def test_word_orders_are_each_others_reverse():
    assert codec.encode_int("i32", 0x12345678) == [0x1234, 0x5678]
    assert codec.encode_int("i32", 0x12345678, "low_first") == [0x5678, 0x1234]
    assert codec.encode_int("u64", 0x0102030405060708, "low_first") == [0x0708, 0x0506, 0x0304, 0x0102]
    assert codec.encode_int("i32", -2) == [0xFFFF, 0xFFFE]
    with pytest.raises(ValueError, match="word order"):
        codec.encode_int("u32", 1, "middle")


def test_numbers_saturate_instead_of_wrapping():
    assert codec.encode_number("u16", 70000.0) == [0xFFFF]
    assert codec.encode_number("s32", -1e12, 0.1) == [0x8000, 0x0000]
    assert codec.encode_number("u32", float("nan")) == [0, 0]
    assert codec.encode_number("t5", -5.0, 0, exp=-2) == [0xFE00, 0x0000]  # unsigned: no negatives
    assert codec.encode_number("t6", 1e12, exp=-1) == [0xFF7F, 0xFFFF]


def test_t5_and_t6_by_hand():
    # 230.45 V at exponent -2: mantissa 23045 = 0x005A05, exponent 0xFE
    assert codec.encode_t("t5", 230.45, -2) == [0xFE00, 0x5A05]
    assert codec.decode_t("t5", [0xFE00, 0x5A05]) == (23045, -2)
    # -1.5 A at exponent -3: mantissa -1500 = 0xFFFA24 (24-bit two's complement)
    assert codec.encode_t("t6", -1.5, -3) == [0xFDFF, 0xFA24]
    assert codec.decode_t("t6", [0xFDFF, 0xFA24]) == (-1500, -3)
    assert codec.decode_t("t5", [0xFDFF, 0xFA24]) == (0xFFFA24, -3)  # the same words unsigned
    assert codec.decode_number("t6", [0xFDFF, 0xFA24]) == pytest.approx(-1.5)
    assert codec.encode_t("t5", 1.0, 1) == [0x0100, 0x0000]  # 1.0 at exponent 1 rounds to 0
    with pytest.raises(ValueError):
        codec.encode_t("t5", 1.0, 200)


@given(st.integers(-0x800000, 0x7FFFFF), st.integers(-6, 3))
def test_t6_round_trips_every_mantissa(mantissa, exp):
    words = codec.encode_t("t6", mantissa * 10.0**exp, exp)
    assert codec.decode_t("t6", words) == (mantissa, exp)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(codec.WORD_ORDERS))
def test_f32_round_trips(value, order):
    assert codec.decode_f32(codec.encode_f32(value, order), order) == value


def test_f32_words():
    assert codec.encode_f32(1.0) == [0x3F80, 0x0000]
    assert codec.encode_f32(1.0, "low_first") == [0x0000, 0x3F80]


def test_text_padding_with_nul_or_spaces():
    assert codec.encode_text(b"WM3M4C", 4, "space") == [0x574D, 0x334D, 0x3443, 0x2020]
    assert codec.encode_text(b"abc", 3) == [0x6162, 0x6300, 0x0000]
    assert codec.encode_text(b"abcdefgh", 2) == [0x6162, 0x6364]  # cut to fit
    assert codec.decode_text([0x574D, 0x334D, 0x3443, 0x2020], "space") == b"WM3M4C"
    assert codec.decode_text([0x6162, 0x6300, 0x0000]) == b"abc"
