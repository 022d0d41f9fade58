"""Eastron SDM630 (docs/meters/eastron-sdm630.md): a three-phase meter without Eichrecht transactions.
float32 input registers, high word first, at the addresses EVerest's GenericPowermeter reads; start and
stop answer NOT_SUPPORTED; no public key; no phase-sequence register."""

from __future__ import annotations

import time
from typing import ClassVar

from driver.blocks import INPUT, Block, Field, decode_block, field
from driver.errors import MeterExceptionError
from driver.protocol import (
    MeterIdentity,
    MeterProtocol,
    RegisterLink,
    Started,
    Stopped,
    TransactionsNotSupported,
    dataset,
)
from driver.types import (
    Energy,
    Powermeter,
    TransactionReq,
    rfc3339,
)

SERIAL_NUMBER, METER_CODE, SDM630_CODE = 0xFC00, 0xFC02, 0x0070


def _f32(name: str, offset: int) -> Field:
    return field(name, offset, "f32")


MEASUREMENTS = Block(0x0000, 0x4C, (
    _f32("voltage_l1", 0x00), _f32("voltage_l2", 0x02), _f32("voltage_l3", 0x04),
    _f32("current_l1", 0x06), _f32("current_l2", 0x08), _f32("current_l3", 0x0A),
    _f32("power_l1", 0x0C), _f32("power_l2", 0x0E), _f32("power_l3", 0x10),
    _f32("reactive_power_l1", 0x18), _f32("reactive_power_l2", 0x1A), _f32("reactive_power_l3", 0x1C),
    _f32("power_total", 0x34), _f32("reactive_power_total", 0x3C), _f32("frequency", 0x46),
    _f32("energy_import_kwh", 0x48), _f32("energy_export_kwh", 0x4A),
), INPUT)
PHASE_ENERGY = Block(0x015A, 6, (_f32("import_l1", 0), _f32("import_l2", 2), _f32("import_l3", 4)),
                     INPUT)
NO_TRANSACTIONS = "the SDM630 has no Eichrecht transaction registers"


class Sdm630Protocol(MeterProtocol):
    """Readings only; the policy answers start and stop NOT_SUPPORTED from the identity."""

    model: ClassVar[str] = "eastron-sdm630"
    features: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def probe(cls, link: RegisterLink) -> tuple[bool, str]:
        try:
            code = link.read_holding(METER_CODE, 1)[0]
        except MeterExceptionError as exc:
            return False, f"FC03 0x{METER_CODE:04X}: {exc}"
        if code != SDM630_CODE:
            return False, f"FC03 0x{METER_CODE:04X} reads meter code 0x{code:04X}"
        words = link.read_holding(SERIAL_NUMBER, 2)
        return True, f"Eastron SDM630, serial {(words[0] << 16) | words[1]}"

    def identify(self) -> MeterIdentity:
        words = self.link.read_holding(SERIAL_NUMBER, 3)
        serial = str((words[0] << 16) | words[1])
        self.identity = MeterIdentity(vendor="Eastron", model="SDM630", serial_number=serial, firmware="",
                                      transactions=False, evidence=NO_TRANSACTIONS)
        return self.identity

    def public_key_der(self) -> bytes | None:
        return None

    def read_dataset(self) -> Powermeter:
        v = decode_block(MEASUREMENTS, self.link.read_input(MEASUREMENTS.address, MEASUREMENTS.count))
        e = decode_block(PHASE_ENERGY, self.link.read_input(PHASE_ENERGY.address, PHASE_ENERGY.count))
        assert self.identity is not None

        def wh(kwh: float | int | str) -> float:
            return round(float(kwh) * 1000, 3)

        return dataset(
            v,
            timestamp=rfc3339(time.time()),
            meter_id=self.services.config.meter_id or self.identity.serial_number,
            phase_seq_error=None,  # the SDM630 has no phase-sequence register
            energy_import=Energy(total=wh(v["energy_import_kwh"]), L1=wh(e["import_l1"]),
                                 L2=wh(e["import_l2"]), L3=wh(e["import_l3"])),
            energy_export=Energy(total=wh(v["energy_export_kwh"])),
        )

    def start(self, req: TransactionReq) -> Started:
        raise TransactionsNotSupported(NO_TRANSACTIONS)

    def stop(self, transaction_id: str) -> Stopped:
        raise TransactionsNotSupported(NO_TRANSACTIONS)

    def open_transaction(self) -> str | None:
        raise TransactionsNotSupported(NO_TRANSACTIONS)

    def close_all(self) -> Stopped | None:
        raise TransactionsNotSupported(NO_TRANSACTIONS)

    def fetch(self, transaction_id: str) -> Stopped | None:
        raise TransactionsNotSupported(NO_TRANSACTIONS)
