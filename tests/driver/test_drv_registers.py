"""The driver's copy of the register map and its codec, checked against docs/register-map.md by hand."""

import pytest

from driver.errors import CommunicationError
from driver.protocols import reference_map as reg
from driver.types import TransactionReq


def test_block_addresses_match_the_register_map():
    assert (reg.IDENTITY.address, reg.IDENTITY.count) == (0x0000, 30)
    assert (reg.MEASUREMENTS.address, reg.MEASUREMENTS.count) == (0x0100, 60)
    assert {f.name: reg.MEASUREMENTS.address + f.offset for f in reg.MEASUREMENTS.fields}[
        "phase_sequence"
    ] == 0x013B
    assert {f.name: reg.MEASUREMENTS.address + f.offset for f in reg.MEASUREMENTS.fields}[
        "energy_import_total"
    ] == 0x0120
    assert (reg.STATUS.address, reg.STATUS.count) == (0x0200, 8)
    assert reg.TRANSACTION_STATE.address + reg.TRANSACTION_STATE.count - 1 == 0x04DC
    assert reg.COMMAND == 0x04D4
    assert reg.PUBLIC_KEY.address + reg.PUBLIC_KEY.count - 1 == 0x0A48


def test_fields_do_not_overlap_and_stay_inside_their_block():
    for block in (reg.IDENTITY, reg.MEASUREMENTS, reg.STATUS, reg.CLOCK, reg.TRANSACTION_STATE):
        used: set[int] = set()
        for spec in block.fields:
            span = set(range(spec.offset, spec.offset + spec.count))
            assert not used & span, (block.address, spec.name)
            assert max(span) < block.count, (block.address, spec.name)
            used |= span


def test_strings_are_two_characters_a_register_high_byte_first():
    assert reg.encode_string("AB", 2) == [0x4142, 0x0000]
    assert reg.encode_string("ABC", 2) == [0x4142, 0x4300]
    assert reg.decode_string([0x4142, 0x4300, 0x4444]) == "ABC"
    with pytest.raises(ValueError, match="longer than 4"):
        reg.encode_string("ABCDE", 2)


def test_a_string_that_is_not_ascii_is_a_garbled_answer():
    with pytest.raises(CommunicationError, match="not ASCII"):
        reg.decode_string([0xC3A4, 0x0000])


def test_signed_and_scaled_values_decode():
    registers = [0] * 60
    registers[0x06:0x08] = reg.encode_u32((-1500) & 0xFFFFFFFF)  # current_l1 = -1.5 A
    registers[0x20:0x22] = reg.encode_u32(123456789)  # energy_import_total = 12345678.9 Wh
    registers[0x2A] = (-950) & 0xFFFF  # power_factor_l1 = -0.95
    registers[0x00:0x02] = reg.encode_u32(23012)  # voltage_l1 = 230.12 V
    values = reg.decode_block(reg.MEASUREMENTS, registers)
    assert values["current_l1"] == -1.5
    assert values["energy_import_total"] == 12345678.9
    assert values["power_factor_l1"] == -0.95
    assert values["voltage_l1"] == 230.12


def test_a_short_answer_is_refused():
    with pytest.raises(CommunicationError, match="expected 60"):
        reg.decode_block(reg.MEASUREMENTS, [0] * 59)


def test_identification_block_layout():
    req = TransactionReq.from_dict(
        {
            "evse_id": "DE*ABC*E1",
            "transaction_id": "tx-1",
            "identification_status": "ASSIGNED",
            "identification_level": "VERIFIED",
            "identification_flags": ["RFID_PLAIN", "PLMN_SMS"],
            "identification_type": "KEY_CODE",
            "identification_data": "04AB",
            "tariff_text": "T",
        }
    )
    block = reg.encode_identification(req)
    assert len(block) == 192
    assert block[0] == 1  # 0x0400 ASSIGNED
    assert block[1] == 3  # 0x0401 VERIFIED
    assert block[2:6] == [1, 16, 0xFFFF, 0xFFFF]  # 0x0402 flags
    assert block[6] == 17  # 0x0406 KEY_CODE
    assert reg.decode_string(block[0x07:0x1B]) == "04AB"  # 0x0407
    assert reg.decode_string(block[0x1B:0x98]) == "T"  # 0x041B
    assert reg.decode_string(block[0x98:0xAC]) == "DE*ABC*E1"  # 0x0498
    assert reg.decode_string(block[0xAC:0xC0]) == "tx-1"  # 0x04AC


def test_level_not_given_is_ffff():
    req = TransactionReq.from_dict(
        {
            "evse_id": "",
            "transaction_id": "t",
            "identification_status": "NOT_ASSIGNED",
            "identification_flags": [],
            "identification_type": "NONE",
        }
    )
    block = reg.encode_identification(req)
    assert block[:7] == [0, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0]
