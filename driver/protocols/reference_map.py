"""The driver's own description of the reference meter's registers (docs/meters/reference.md).

Kept apart from the simulator's profile on purpose: a mistake on either side then shows up as a
failing test instead of two copies agreeing with themselves. Addresses are protocol addresses (0-based).
"""

from __future__ import annotations

from driver.blocks import Block, Field, decode_block
from driver.codec import decode_string, encode_string, encode_u32, registers_to_bytes
from driver.types import (
    OCMFIdentificationFlags,
    OCMFIdentificationLevel,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    TransactionReq,
)

__all__ = ["Block", "Field", "decode_block", "decode_string", "encode_string", "encode_u32",
           "registers_to_bytes"]

NOT_GIVEN = 0xFFFF
SUPPORTED_MAP_VERSION = 1


def _u32(name: str, offset: int, scale: float = 1.0) -> Field:
    return Field(name, offset, "u32", 2, scale)


def _s32(name: str, offset: int, scale: float = 1.0) -> Field:
    return Field(name, offset, "s32", 2, scale)


IDENTITY = Block(
    0x0000,
    30,
    (
        Field("serial_number", 0x00, "string", 8),
        Field("vendor", 0x08, "string", 8),
        Field("model", 0x10, "string", 8),
        Field("firmware", 0x18, "string", 4),
        Field("capabilities", 0x1C, "u16"),
        Field("map_version", 0x1D, "u16"),
    ),
)

MEASUREMENTS = Block(
    0x0100,
    60,
    (
        _u32("voltage_l1", 0x00, 0.01),
        _u32("voltage_l2", 0x02, 0.01),
        _u32("voltage_l3", 0x04, 0.01),
        _s32("current_l1", 0x06, 0.001),
        _s32("current_l2", 0x08, 0.001),
        _s32("current_l3", 0x0A, 0.001),
        _s32("current_n", 0x0C, 0.001),
        _s32("power_l1", 0x0E, 0.1),
        _s32("power_l2", 0x10, 0.1),
        _s32("power_l3", 0x12, 0.1),
        _s32("power_total", 0x14, 0.1),
        _s32("reactive_power_l1", 0x16, 0.1),
        _s32("reactive_power_l2", 0x18, 0.1),
        _s32("reactive_power_l3", 0x1A, 0.1),
        _s32("reactive_power_total", 0x1C, 0.1),
        _u32("frequency", 0x1E, 0.001),
        _u32("energy_import_total", 0x20, 0.1),
        _u32("energy_import_l1", 0x22, 0.1),
        _u32("energy_import_l2", 0x24, 0.1),
        _u32("energy_import_l3", 0x26, 0.1),
        _u32("energy_export_total", 0x28, 0.1),
        Field("power_factor_l1", 0x2A, "s16", 1, 0.001),
        Field("power_factor_l2", 0x2B, "s16", 1, 0.001),
        Field("power_factor_l3", 0x2C, "s16", 1, 0.001),
        _s32("apparent_power_l1", 0x2D, 0.1),
        _s32("apparent_power_l2", 0x2F, 0.1),
        _s32("apparent_power_l3", 0x31, 0.1),
        _s32("apparent_power_total", 0x33, 0.1),
        _u32("voltage_l1_l2", 0x35, 0.01),
        _u32("voltage_l2_l3", 0x37, 0.01),
        _u32("voltage_l3_l1", 0x39, 0.01),
        Field("phase_sequence", 0x3B, "u16"),
    ),
)

STATUS = Block(
    0x0200,
    8,
    (
        Field("status_flags", 0, "u16"),
        Field("transaction_state", 1, "u16"),
        Field("last_error", 2, "u16"),
        Field("boot_count", 3, "u16"),
        _u32("pagination", 4),
        _u32("uptime", 6),
    ),
)

CLOCK = Block(
    0x0300,
    4,
    (_u32("clock_time", 0), Field("clock_utc_offset", 2, "s16"), Field("clock_synchronised", 3, "u16")),
)
CLOCK_TIME = 0x0300

# Written before a start: identification status .. transaction_id, 192 registers from 0x0400.
IDENTIFICATION_ADDRESS = 0x0400
IDENTIFICATION_COUNT = 0x04C0 - 0x0400
TRANSACTION_ID = 0x04AC
TRANSACTION_ID_REGS = 20

TRANSACTION_STATE = Block(
    0x04C0,
    0x04DD - 0x04C0,
    (
        Field("open_transaction_id", 0x00, "string", 20),
        Field("command", 0x14, "u16"),
        Field("command_status", 0x15, "u16"),
        Field("result_length", 0x16, "u16"),
        _u32("result_pagination", 0x17),
        _u32("min_stop_time", 0x19),
        _u32("max_stop_time", 0x1B),
    ),
)
COMMAND = 0x04D4
RESULT_BUFFER = 0x0500
RESULT_BUFFER_BYTES = 0x0200 * 2
PUBLIC_KEY = Block(
    0x0A00,
    0x49,
    (Field("public_key_length", 0, "u16"), Field("public_key_curve", 1, "string", 8)),
)
PUBLIC_KEY_BYTES_OFFSET = 0x09

# Capabilities bits, status flags, transaction states, commands, command status.
CAP_TRANSACTIONS = 0x0001
CAP_SEPARATE_BEGIN = 0x0002
FLAG_CLOCK_UNSYNCHRONISED = 0x0001
FLAG_PHASE_SEQUENCE_ERROR = 0x0002
FLAG_INTERRUPTED_BY_POWER_FAILURE = 0x0004
FLAG_ERROR_PRESENT = 0x0008
STATE_IDLE, STATE_ACTIVE, STATE_ACTIVE_AFTER_POWER_FAILURE = 0, 1, 2
CMD_START, CMD_STOP, CMD_CLEAR_ALL, CMD_FETCH, CMD_FETCH_BEGIN = 1, 2, 3, 4, 5
ERROR_TOO_SHORT = 5
CMD_DONE, CMD_BUSY, CMD_FAILED = 0, 1, 2

METER_ERRORS = {
    0: "no error",
    1: "a transaction is already active",
    2: "unknown transaction id",
    3: "no transaction is active",
    4: "identification data invalid",
    5: "minimum transaction duration not reached",
    6: "meter not ready (booting or signing)",
}

def meter_error_text(code: int) -> str:
    """The register map's meaning of a last_error code."""
    return METER_ERRORS.get(code, f"meter error code {code}")


# --- the identification block -------------------------------------------------------------


def _index(member: object, table: type) -> int:
    return list(table).index(member)


def encode_identification(req: TransactionReq) -> list[int]:
    """The 192 registers from 0x0400 (identification .. transaction_id) for a validated request."""
    flags = [_index(f, OCMFIdentificationFlags) for f in req.identification_flags]
    flags += [NOT_GIVEN] * (4 - len(flags))
    registers = [
        1 if req.identification_status is OCMFUserIdentificationStatus.ASSIGNED else 0,
        NOT_GIVEN
        if req.identification_level is None
        else _index(req.identification_level, OCMFIdentificationLevel),
        *flags,
        _index(req.identification_type, OCMFIdentificationType),
        *encode_string(req.identification_data or "", 20),
        *encode_string(req.tariff_text or "", 125),
        *encode_string(req.evse_id, 20),
        *encode_string(req.transaction_id, TRANSACTION_ID_REGS),
    ]
    assert len(registers) == IDENTIFICATION_COUNT, len(registers)
    return registers
