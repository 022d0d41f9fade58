"""The driver's codec: the number and string encodings of real meters, checked by hand-made words."""

import pytest

from driver import codec
from driver.blocks import INPUT, Block, decode_block, field
from driver.errors import CommunicationError


def test_word_orders_of_32_and_64_bit_integers():
    assert codec.decode_number("u32", [0x0001, 0x0002]) == 0x00010002
    assert codec.decode_number("u32", [0x0002, 0x0001], "low_first") == 0x00010002
    assert codec.decode_number("s32", [0xFFFF, 0xFFFE]) == -2
    assert codec.decode_number("s32", [0xFFFE, 0xFFFF], "low_first") == -2
    words = [0x0004, 0x0003, 0x0002, 0x0001]  # Carlo Gavazzi's INT64: least significant word first
    assert codec.decode_number("u64", words, "low_first") == 0x0001000200030004
    assert codec.decode_number("s64", [0xFFFF] * 4) == -1


@pytest.mark.parametrize("kind", ["u16", "s16", "u32", "s32", "u64", "s64"])
@pytest.mark.parametrize("order", codec.WORD_ORDERS)
def test_integers_round_trip_at_their_limits(kind, order):
    bits = 16 * codec.WIDTHS[kind]
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if kind[0] == "s" else (0, (1 << bits) - 1)
    for value in (low, high, 0, 1):
        assert codec.decode_number(kind, codec.encode_number(kind, value, order), order) == value
    with pytest.raises(ValueError, match=f"does not fit in {kind}"):
        codec.encode_number(kind, high + 1, order)


def test_float32_high_word_first_as_eastron_sends_it():
    assert codec.encode_number("f32", 230.5) == [0x4366, 0x8000]
    assert codec.decode_number("f32", [0x4366, 0x8000]) == 230.5
    assert codec.decode_number("f32", [0x8000, 0x4366], "low_first") == 230.5


def test_iskra_t5_and_t6():
    # exponent -2 in the high byte (0xFE), mantissa 23012: 230.12
    assert codec.decode_number("t5", [0xFE00, 23012]) == 230.12
    # T6: a negative 24-bit mantissa (-1500 = 0xFFFA24), exponent -3: -1.5 A
    assert codec.decode_number("t6", [0xFDFF, 0xFA24]) == -1.5
    # the same bits as T5 are a large unsigned mantissa
    assert codec.decode_number("t5", [0xFDFF, 0xFA24]) == pytest.approx(16775.716)
    assert codec.decode_number("t6", [0x0100, 7333]) == 73330.0  # exponent +1


def test_a_value_of_the_wrong_width_is_a_garbled_answer():
    with pytest.raises(CommunicationError, match="takes 2 registers"):
        codec.decode_number("u32", [1])


def test_strings_padded_with_nul_or_spaces():
    assert codec.encode_string("WM3M4C", 4, b" ") == [0x574D, 0x334D, 0x3443, 0x2020]
    assert codec.decode_string([0x574D, 0x334D, 0x3443, 0x2020]) == "WM3M4C"
    assert codec.decode_string([0x4142, 0x4300, 0x4444]) == "ABC"
    assert codec.bytes_to_registers(b"abc") == [0x6162, 0x6300]
    assert codec.registers_to_bytes([0x6162, 0x6300]) == b"abc\x00"


def test_blocks_decode_scaled_fields_from_the_input_table():
    block = Block(105, 4, (field("frequency", 0, "t5"), field("energy", 2, "u32", scale=0.1)), INPUT)
    values = decode_block(block, [0xFE00, 5001, 0x0000, 12345])
    assert values == {"frequency": 50.01, "energy": 1234.5}
    with pytest.raises(CommunicationError, match="expected 4"):
        decode_block(block, [0, 0])
