"""Carlo Gavazzi EM580 (docs/meters/carlo-gavazzi-em580.md): every read FC04, every write FC16, 32- and
64-bit values least significant word first, the identification written register by register, a command
in the low byte of 0x7040, and an OCMF state machine holding the whole signed record until the driver
confirms it.

Unlike EVerest's CarloGavazzi_EM580 this never answers a start OK without starting: a running or an
unconfirmed transaction of another id refuses the start naming it (nothing is confirmed away), and the
device state bits are raised as VendorError and cleared when they clear.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, ClassVar

from driver.blocks import INPUT, Block, decode_block, field
from driver.codec import decode_string, encode_number, encode_string, registers_to_bytes
from driver.errors import CommunicationError, MeterExceptionError
from driver.events import ErrorType
from driver.protocol import (
    CommandFailed,
    MeterIdentity,
    MeterProtocol,
    RegisterLink,
    RequestPattern,
    Started,
    Stopped,
    dataset,
)
from driver.protocols.tariff_id import tariff_with_id, transaction_id_of
from driver.types import (
    Energy,
    OCMFIdentificationFlags,
    OCMFIdentificationLevel,
    Powermeter,
    TransactionReq,
    rfc3339,
)

log = logging.getLogger(__name__)
LOW = "low_first"


def _s32(name: str, offset: int, scale: float) -> Any:
    return field(name, offset, "s32", scale, LOW)


MEASUREMENTS = Block(0x0000, 0x34, (
    _s32("voltage_l1", 0x00, 0.1), _s32("voltage_l2", 0x02, 0.1), _s32("voltage_l3", 0x04, 0.1),
    _s32("current_l1", 0x0C, 0.001), _s32("current_l2", 0x0E, 0.001), _s32("current_l3", 0x10, 0.001),
    _s32("power_l1", 0x12, 0.1), _s32("power_l2", 0x14, 0.1), _s32("power_l3", 0x16, 0.1),
    _s32("reactive_power_l1", 0x1E, 0.1), _s32("reactive_power_l2", 0x20, 0.1),
    _s32("reactive_power_l3", 0x22, 0.1), _s32("power_total", 0x28, 0.1),
    _s32("reactive_power_total", 0x2C, 0.1), field("phase_sequence", 0x32, "s16"),
    field("frequency", 0x33, "s16", 0.1),
), INPUT)
ENERGY = Block(0x0500, 0x20, (field("energy_import", 0x00, "s64", 1.0, LOW),
                              field("energy_export", 0x1C, "s64", 1.0, LOW)), INPUT)
FIRMWARE, SIGNATURE_TYPE, PUBLIC_KEY_DER, SERIAL, DEVICE_STATE = 0x0302, 0x24FF, 0x2600, 0x5000, 0x5012
TARIFF_TEXT, IDENTIFICATION, IDENTIFICATION_DATA, CHARGE_POINT = 0x6900, 0x7000, 0x7007, 0x701B
UTC_OFFSET, UTC_TIME, MODALITY, COMMAND, TIME_SYNC = 0x7031, 0x7032, 0x7036, 0x7040, 0x7060
OCMF_STATE, OCMF_FILE = 0x7100, 0x7110
OCMF_BLOCK = Block(OCMF_STATE, 4, (field("state", 0, "u16"), field("size", 1, "u16")), INPUT)
MAX_FILE_REGISTERS = 2031

CMD_BEGIN, CMD_END = ord("B"), ord("E")
NOT_READY, RUNNING, READY, CORRUPTED = 0, 1, 2, 3
STATE_NAMES = {NOT_READY: "NOT_READY", RUNNING: "RUNNING", READY: "READY", CORRUPTED: "CORRUPTED"}
CURVES = {0: "brainpoolP256r1", 1: "brainpoolP384r1"}
NOT_GIVEN = 0xFFFF
TEXT_REGISTERS = 20  # ID and CI: 39 characters and the NUL
TT_REGISTERS = 126
FLAG_FAMILIES = ("RFID_", "OCPP_", "ISO15118_", "PLMN_")
TYPE_CODES = {
    "NONE": 0, "DENIED": 1, "UNDEFINED": 2, "ISO14443": 10, "ISO15693": 11, "EMAID": 20, "EVCCID": 21,
    "EVCOID": 30, "ISO7812": 40, "CARD_TXN_NR": 50, "CENTRAL": 60, "CENTRAL_1": 61, "CENTRAL_2": 62,
    "LOCAL": 70, "LOCAL_1": 71, "LOCAL_2": 72, "PHONE_NUMBER": 80, "KEY_CODE": 90,
}
DEVICE_STATE_BITS = {
    0: "V1N over range", 1: "V2N over range", 2: "V3N over range", 3: "V12 over range",
    4: "V23 over range", 5: "V31 over range", 6: "I1 over range", 7: "I2 over range", 8: "I3 over range",
    9: "frequency out of range", 12: "EVCS module internal fault", 13: "measure module internal fault",
}


def flag_slots(flags: list[OCMFIdentificationFlags]) -> list[int]:
    """The four flag registers: slot n holds the flag of family n (its index in the family), or NOT_GIVEN.
    CommandFailed naming identification_flags when two flags share a family."""
    slots = [NOT_GIVEN] * 4
    members = list(OCMFIdentificationFlags)
    for flag in flags:
        family = next(i for i, prefix in enumerate(FLAG_FAMILIES) if flag.value.startswith(prefix))
        if slots[family] != NOT_GIVEN:
            raise CommandFailed(f"identification_flags: {flag.value} and another {FLAG_FAMILIES[family]}* "
                                "flag: this meter takes one flag of each family")
        first = next(i for i, m in enumerate(members) if m.value.startswith(FLAG_FAMILIES[family]))
        slots[family] = members.index(flag) - first
    return slots


def device_state_text(bits: int) -> str:
    """The names of the set device state bits."""
    names = [text for bit, text in DEVICE_STATE_BITS.items() if bits & (1 << bit)]
    unknown = bits & ~sum(1 << bit for bit in DEVICE_STATE_BITS)
    if unknown:
        names.append(f"unknown bits 0x{unknown:04X}")
    return ", ".join(names)


def _named(transaction_id: str) -> str:
    return repr(transaction_id) if transaction_id else "(one without an id)"


def _text(value: str, what: str) -> list[int]:
    if len(value) > TEXT_REGISTERS * 2 - 1:
        limit = TEXT_REGISTERS * 2 - 1
        raise CommandFailed(f"{what}: {len(value)} characters; this meter takes at most {limit}")
    return encode_string(value, TEXT_REGISTERS)


class Em580Protocol(MeterProtocol):
    """The EM580's wire protocol. A time sync status of 0 tells a power-up: the clock is set again."""

    model: ClassVar[str] = "carlo-gavazzi-em580"
    # A power loss ends the running transaction at that instant (READY after the power-up), unlike
    # meters that keep it open after a power failure until it is stopped.
    features: ClassVar[frozenset[str]] = frozenset({"transactions", "phase_sequence", "ends_on_power_loss"})
    max_write: ClassVar[int] = 123
    requests: ClassVar[tuple[RequestPattern, ...]] = (
        RequestPattern("start", 0x10, COMMAND, CMD_BEGIN),
        RequestPattern("stop", 0x10, COMMAND, CMD_END),
        RequestPattern("ident", 0x10, IDENTIFICATION),
        RequestPattern("txid", 0x10, TARIFF_TEXT),
        RequestPattern("state", 0x04, OCMF_STATE),
        RequestPattern("record", 0x04, OCMF_FILE),
        RequestPattern("clear", 0x10, OCMF_STATE, 0),
    )

    def __init__(self, link: RegisterLink, services: Any) -> None:
        super().__init__(link, services)
        self._public_key: bytes | None = None
        self._year = 0
        self._clock_set_once = False
        self._delivered: Stopped | None = None
        """The last READY record this driver answered with: confirmed away only at the next start, so a
        charger that dies between reading it and passing it on finds it again at its boot."""

    @classmethod
    def probe(cls, link: RegisterLink) -> tuple[bool, str]:
        try:
            serial = decode_string(link.read_input(SERIAL, 7))
            signature_type = link.read_input(SIGNATURE_TYPE, 1)[0]
        except MeterExceptionError as exc:
            return False, f"FC04 0x{SERIAL:04X}: {exc}"
        except CommunicationError as exc:
            if "not ASCII" not in str(exc):
                raise
            return False, f"FC04 0x{SERIAL:04X}: {exc}"
        if signature_type not in CURVES or not serial:
            return False, f"FC04 0x{SERIAL:04X} reads serial {serial!r}, signature type {signature_type}"
        return True, f"Carlo Gavazzi EM580, serial {serial}, {CURVES[signature_type]}"

    # --- what the meter is ---------------------------------------------------------------------

    def identify(self) -> MeterIdentity:
        identity = self.link.read_input(SERIAL, 8)
        firmware = self.link.read_input(FIRMWARE, 2)
        signature_type = self.link.read_input(SIGNATURE_TYPE, 1)[0]
        if signature_type not in CURVES:
            raise CommandFailed(f"signature type {signature_type} at 0x{SIGNATURE_TYPE:04X}: the meter is "
                                "not Eichrecht compliant (0 brainpoolP256r1, 1 brainpoolP384r1)")
        words = 46 if signature_type == 0 else 62
        der = registers_to_bytes(self.link.read_input(PUBLIC_KEY_DER, words))
        if der[0] != 0x30 or 2 + der[1] > len(der):
            raise CommunicationError(f"the public key at 0x{PUBLIC_KEY_DER:04X} is not DER: {der[:4].hex()}")
        self._public_key = der[: 2 + der[1]]
        self._year = identity[7]
        major, minor, revision = firmware[0] >> 12, (firmware[0] >> 8) & 0xF, firmware[0] & 0xFF
        self.identity = MeterIdentity(vendor="Carlo Gavazzi", model="EM580",
                                      serial_number=decode_string(identity[:7]),
                                      firmware=f"{major}.{minor}.{revision}", transactions=True)
        self._check_clock()
        return self.identity

    def public_key_der(self) -> bytes | None:
        return self._public_key

    def _check_clock(self) -> None:
        with self.status_lock:
            self._check_clock_once()

    def _check_clock_once(self) -> None:
        """Set the clock when the meter says it is not synchronised (after every power-up)."""
        if self.link.read_input(TIME_SYNC, 1)[0] != 0:
            return
        if self._clock_set_once:
            self.reboots_seen += 1
            log.warning("meter lost its time (power-up): setting the clock again")
        config = self.services.config
        if not config.sync_clock:
            return
        try:
            self.link.write_multiple(UTC_OFFSET, [(config.utc_offset_minutes or 0) & 0xFFFF])
            second = self.clock_second()
            if second is None:
                return
            self.link.write_multiple(UTC_TIME, encode_number("u64", second, LOW))
        except MeterExceptionError as exc:
            self.services.raise_error(
                ErrorType.VENDOR_WARNING, f"meter clock is unsynchronised and cannot be set: {exc}")
            return
        self._clock_set_once = True

    def _check_device_state(self) -> None:
        bits = self.link.read_input(DEVICE_STATE, 1)[0]
        if bits:
            self.services.raise_error(ErrorType.VENDOR_ERROR,
                                      f"DeviceStateError: {device_state_text(bits)} (0x{bits:04X})")
        else:
            self.services.clear_error(ErrorType.VENDOR_ERROR)

    # --- the live dataset ----------------------------------------------------------------------

    def read_dataset(self) -> Powermeter:
        values = decode_block(MEASUREMENTS, self.link.read_input(MEASUREMENTS.address, MEASUREMENTS.count))
        values.update(decode_block(ENERGY, self.link.read_input(ENERGY.address, ENERGY.count)))
        self._check_device_state()
        self._check_clock()
        assert self.identity is not None
        return dataset(
            values,
            timestamp=rfc3339(time.time()),
            meter_id=self.services.config.meter_id or f"{self.identity.serial_number}.{self._year}",
            phase_seq_error=values["phase_sequence"] == -1,
            energy_import=Energy(total=float(values["energy_import"])),
            energy_export=Energy(total=float(values["energy_export"])),
        )

    # --- commands ------------------------------------------------------------------------------

    def _ocmf(self) -> dict[str, Any]:
        return decode_block(OCMF_BLOCK, self.link.read_input(OCMF_BLOCK.address, OCMF_BLOCK.count))

    def _running_id(self) -> str:
        return transaction_id_of(decode_string(self.link.read_input(TARIFF_TEXT, TT_REGISTERS)))

    def _record(self, size: int, what: str) -> str:
        """The OCMF file, read once more when it does not look like a record: a chunk of it can be a late
        answer to the chunk before (a slow meter on a loaded bus; a campaign saw it), the file itself is
        read-only while READY. CommandFailed when the meter gives the same malformed file again."""
        try:
            return self._record_once(size, what)
        except CommandFailed:
            log.info("%s: the OCMF file read is malformed; reading it again", what)
            return self._record_once(size, what)

    def _record_once(self, size: int, what: str) -> str:
        if not 0 < size <= MAX_FILE_REGISTERS:
            raise CommandFailed(f"{what}: the meter reports an OCMF file of {size} registers")
        data = registers_to_bytes(self.link.read_input(OCMF_FILE, size)).rstrip(b"\x00")
        try:
            record = data.decode("ascii")
        except UnicodeDecodeError:
            raise CommandFailed(f"{what}: the meter's OCMF file is not ASCII: {data[:40]!r}") from None
        if not record.startswith("OCMF|") or record.count("|") != 2:
            raise CommandFailed(f"{what}: the meter's OCMF file is not an OCMF record: {record[:40]!r}")
        return record

    @staticmethod
    def _record_id(record: str) -> str:
        try:
            payload = json.loads(record.split("|")[1])
        except ValueError:
            return ""
        return transaction_id_of(payload.get("TT")) if isinstance(payload, dict) else ""

    def _read_ready(self, what: str) -> Stopped:
        """Read the READY file, leaving it READY: it is confirmed only once the record was answered (at the
        next start), so a repeated command, or a rebooted charger's stop(last id), gets the same record."""
        ocmf = self._ocmf()
        record = self._record(ocmf["size"], what)
        stopped = Stopped(self._record_id(record), record)
        self._delivered = stopped
        return stopped

    def _confirm(self, what: str) -> None:
        """Confirm the READY record away (OCMF state 0): the meter takes a new transaction only then."""
        try:
            self.link.write_multiple(OCMF_STATE, [NOT_READY])
        except MeterExceptionError as exc:
            # a confirmation the link layer repeated after its answer was lost is refused (the file is
            # no longer READY): the first one went through
            if exc.code == 6 or self._ocmf()["state"] != NOT_READY:
                raise
            log.info("%s: the meter took the confirmation (a repeated one was refused)", what)

    def open_transaction(self) -> str | None:
        return self._running_id() if self._ocmf()["state"] == RUNNING else None

    def notice_reboot(self) -> None:
        self._check_clock()

    def start(self, req: TransactionReq) -> Started:
        return self.again_after_reboot(f"start of {req.transaction_id!r}", lambda: self._start_once(req))

    def _start_once(self, req: TransactionReq) -> Started:
        what = f"start of {req.transaction_id!r}"
        state = self._ocmf()["state"]
        if state == RUNNING:
            running = self._running_id()
            if running == req.transaction_id:
                log.info("transaction %r already runs in the meter (start answer lost?)", running)
                return Started()
            raise CommandFailed(f"{what} refused: transaction {_named(running)} still runs in "
                                "the meter; stop it first")
        if state == READY:
            record = self._record(self._ocmf()["size"], what)
            pending = self._record_id(record)
            if self._delivered is None or self._delivered.record != record:
                if pending == req.transaction_id:  # began, then ended by a power loss before the answer
                    raise CommandFailed(f"{what}: the meter began it, but a power loss ended it; its record "
                                        f"waits for a stop of {pending!r}")
                raise CommandFailed(f"{what} refused: the meter holds the record of transaction "
                                    f"{_named(pending)}, not passed on yet; a stop of it or stop(\"\") "
                                    "takes it first")
            self._confirm(what)  # the record was answered: the meter may forget it now
            state = self._ocmf()["state"]
        if state != NOT_READY:
            raise CommandFailed(f"{what} refused: OCMF state {STATE_NAMES.get(state, state)}")
        level = NOT_GIVEN if req.identification_level is None else list(OCMFIdentificationLevel).index(
            req.identification_level)
        identification = [1 if req.identification_status.value == "ASSIGNED" else 0, level,
                          *flag_slots(req.identification_flags), TYPE_CODES[req.identification_type.value]]
        data = _text(req.identification_data or "", "identification_data")
        charge_point = [0, *_text(req.evse_id, "evse_id")]
        tariff = tariff_with_id(req, TT_REGISTERS * 2 - 1)
        self._check_clock()
        self.link.write_multiple(IDENTIFICATION, identification)
        self.link.write_multiple(IDENTIFICATION_DATA, data)
        self.link.write_multiple(CHARGE_POINT, charge_point)
        self.link.write_multiple(TARIFF_TEXT, encode_string(tariff, math.ceil((len(tariff) + 1) / 2)))
        self.link.write_multiple(MODALITY, [0])
        try:
            self.link.write_multiple(COMMAND, [CMD_BEGIN])
        except MeterExceptionError as exc:
            if exc.code == 6:
                raise
            # a 'B' repeated by the link layer after a lost answer: fine if the meter runs this transaction
            if self.open_transaction() != req.transaction_id:
                raise CommandFailed(f"{what} refused: {exc}") from None
        self.poll(what, lambda: int(self._ocmf()["state"]), lambda s: s == RUNNING,
                  lambda s: None if s == NOT_READY else f"OCMF state {STATE_NAMES.get(s, s)}")
        return Started()

    def stop(self, transaction_id: str) -> Stopped:
        return self.again_after_reboot(f"stop of {transaction_id!r}", lambda: self._stop_once(transaction_id))

    def _stop_once(self, transaction_id: str) -> Stopped:
        what = f"stop of {transaction_id!r}"
        state = self._ocmf()["state"]
        if state == RUNNING:
            running = self._running_id()
            if running != transaction_id:
                raise CommandFailed(f"{what} refused: the meter runs transaction {_named(running)}, not "
                                    f"{transaction_id!r}")
            return self._end(what)
        if state == READY:
            pending = self._record_id(self._record(self._ocmf()["size"], what))
            if pending != transaction_id:
                raise CommandFailed(f"{what} refused: transaction id mismatch: the meter's pending record "
                                    f"is of {_named(pending)}")
            return self._read_ready(what)
        if self._delivered is not None and self._delivered.transaction_id == transaction_id:
            return self._delivered  # confirmed by a later start: the record is the one answered before
        raise CommandFailed(f"{what} refused: no transaction runs in the meter and it holds no record of "
                            f"{transaction_id!r} (OCMF state {STATE_NAMES.get(state, state)})")

    def _end(self, what: str) -> Stopped:
        self._check_clock()
        try:
            self.link.write_multiple(COMMAND, [CMD_END])
        except MeterExceptionError as exc:
            if exc.code == 6:
                raise
            if self._ocmf()["state"] not in (RUNNING, READY):  # a repeated 'E' after a lost answer is fine
                raise CommandFailed(f"{what} refused: {exc}") from None
        self.poll(what, lambda: int(self._ocmf()["state"]), lambda s: s == READY,
                  lambda s: "OCMF state CORRUPTED" if s == CORRUPTED else None)
        return self._read_ready(what)

    def close_all(self) -> Stopped | None:
        state = self._ocmf()["state"]
        if state == RUNNING:
            return self._end("stop of every pending transaction")
        if state == READY:
            return self._read_ready("stop of every pending transaction")
        return None

    def fetch(self, transaction_id: str) -> Stopped | None:
        if self._ocmf()["state"] == READY:
            record = self._record(self._ocmf()["size"], f"fetch of {transaction_id!r}")
            if self._record_id(record) == transaction_id:
                return self._read_ready(f"fetch of {transaction_id!r}")
        if self._delivered is not None and self._delivered.transaction_id == transaction_id:
            return self._delivered
        return None
