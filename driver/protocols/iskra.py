"""Iskra WM3M4C (docs/meters/iskra-wm3m4c.md): measurements on input registers in Iskra's T5/T6 format,
a command register taking ASCII 'B' and 'r', a signature status to poll, the OCMF metadata written by
the driver as JSON, and the signed dataset and signature read back apart.

Unlike EVerest's RsIskraMeter this honours the transaction id: it travels in the metadata's TT as
`<tariff text><=><transaction id>`, so a stop of a transaction the meter does not run is refused, and a
repeated stop finds its record again after a lost answer or a power cut.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, ClassVar

from driver.blocks import INPUT, Block, decode_block, field
from driver.codec import bytes_to_registers, decode_string, registers_to_bytes
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
    Powermeter,
    TransactionReq,
    rfc3339,
)

log = logging.getLogger(__name__)

IDENTITY_ADDRESS, IDENTITY_COUNT = 1, 12  # model (8 registers), then the serial number (4)
MEASUREMENT_BLOCKS = (
    Block(105, 8, (field("frequency", 0, "t5"), field("voltage_l1", 2, "t5"), field("voltage_l2", 4, "t5"),
                   field("voltage_l3", 6, "t5")), INPUT),
    Block(126, 6, (field("current_l1", 0, "t6"), field("current_l2", 2, "t6"), field("current_l3", 4, "t6")),
          INPUT),
    Block(140, 17, (field("power_total", 0, "t6"), field("power_l1", 2, "t6"), field("power_l2", 4, "t6"),
                    field("power_l3", 6, "t6"), field("reactive_power_total", 8, "t6"),
                    field("reactive_power_l1", 10, "t6"), field("reactive_power_l2", 12, "t6"),
                    field("reactive_power_l3", 14, "t6"), field("phase_sequence", 16, "u16")), INPUT),
    Block(414, 2, (field("import_exponent", 0, "s16"), field("export_exponent", 1, "s16")), INPUT),
    Block(418, 4, (field("import_counter", 0, "s32"), field("export_counter", 2, "s32")), INPUT),
)

CHARGING_STATE = 7000
COMMAND = 7051
STATUS = Block(7052, 7, (field("signature_status", 0, "u16"), field("metadata_length", 4, "u16"),
                         field("dataset_length", 5, "u16"), field("signature_length", 6, "u16")))
UTC_OFFSET, UTC_TIME, METADATA_LENGTH = 7053, 7054, 7056
SIGNATURE_FORMAT = 7059
TIME_STATUS = 7071
METADATA, SIGNED_DATASET, PUBLIC_KEY, SIGNATURE = 7100, 7612, 8124, 8188
BUFFER_BYTES = 1024  # metadata and dataset: 512 registers each
SIGNATURE_BYTES = 128

CMD_BEGIN, CMD_END = ord("B") << 8, ord("r") << 8
IDLE = 0
CHARGING_STATES = (IDLE, 1, 2, 3)  # idle, active, active after a power failure, active after a reset
TIME_NOT_SYNCHRONISED, TIME_SET = 0, 2
SIGNATURE_OK, IN_PROGRESS = 15, 2
WAITING = (0, 1, IN_PROGRESS)  # not initialised, idle, in progress: keep polling
SIGNATURE_STATUS = {
    0: "not initialised", 1: "idle", 2: "in progress", 15: "signature OK", 128: "invalid date/time",
    129: "checksum error", 130: "invalid command", 131: "invalid state", 132: "invalid measurement",
    133: "test mode error", 243: "verify state error", 244: "signature state error",
    245: "key pair generation error", 246: "SHA failed", 247: "init failed", 248: "data not locked",
    249: "config not locked", 250: "verify error", 251: "public key error", 252: "invalid message format",
    253: "invalid message size", 254: "signature error", 255: "undefined error",
}
SPKI_P256_PREFIX = bytes.fromhex("3059301306072A8648CE3D020106082A8648CE3D03010703420004")
MAX_TT = 250
OCMF_VERSION = "1.0"


ENERGY_REGISTERS = {"import": (418, 414), "export": (420, 415)}  # counter (s32), exponent (s16)


def energy_wh(values: dict[str, Any], direction: str, registers: tuple[int, int]) -> float:
    """An energy counter times ten to its exponent; CommunicationError naming the registers and values
    when that is no finite number (an s16 exponent of garbage such as 32767 overflows a float)."""
    counter, exponent = values[f"{direction}_counter"], values[f"{direction}_exponent"]
    try:
        energy = counter * 10.0**exponent
    except OverflowError:
        energy = math.inf
    if not math.isfinite(energy):
        raise CommunicationError(
            f"meter sent {direction} energy counter {counter} (input register {registers[0]}) with "
            f"exponent {exponent} (input register {registers[1]}): {counter} x 10^{exponent} Wh is out "
            "of range"
        )
    return energy


def status_text(code: int) -> str:
    """The manual's name of a signature status."""
    return f"{SIGNATURE_STATUS.get(code, 'unknown status')} (signature status {code})"


def metadata_json(req: TransactionReq) -> str:
    """The OCMF metadata for req, keys in the meter's order, no whitespace; CommandFailed naming
    tariff_text when it leaves no room for the transaction id in TT."""
    tt = tariff_with_id(req, MAX_TT)
    metadata: dict[str, Any] = {"FV": OCMF_VERSION, "IS": req.identification_status.value == "ASSIGNED"}
    if req.identification_level is not None:
        metadata["IL"] = req.identification_level.value
    metadata["IF"] = [flag.value for flag in req.identification_flags]
    metadata["IT"] = req.identification_type.value
    metadata["ID"] = req.identification_data or ""
    metadata["TT"] = tt
    metadata["CT"] = "EVSEID"
    metadata["CI"] = req.evse_id
    metadata["RD"] = []
    return json.dumps(metadata, separators=(",", ":"))


class IskraProtocol(MeterProtocol):
    """The WM3M4C's wire protocol. A time status of 0 tells a power-up: the clock is set again."""

    model: ClassVar[str] = "iskra-wm3m4c"
    requests: ClassVar[tuple[RequestPattern, ...]] = (
        *(RequestPattern(kind, fc, COMMAND, command)
          for fc in (0x06, 0x10) for kind, command in (("start", CMD_BEGIN), ("stop", CMD_END))),
        RequestPattern("ident", 0x10, METADATA),
        RequestPattern("state", 0x03, CHARGING_STATE),
        RequestPattern("record", 0x03, SIGNED_DATASET),
        RequestPattern("record", 0x03, SIGNATURE),
    )

    def __init__(self, link: RegisterLink, services: Any) -> None:
        super().__init__(link, services)
        self._public_key: bytes | None = None
        self._clock_set_once = False

    @classmethod
    def probe(cls, link: RegisterLink) -> tuple[bool, str]:
        try:
            model = decode_string(link.read_input(1, 8))
        except MeterExceptionError as exc:
            return False, f"FC04 1: {exc}"
        except CommunicationError as exc:
            if "not ASCII" not in str(exc):
                raise
            return False, f"FC04 1: {exc}"
        if not model.startswith("WM3M4"):
            return False, f"FC04 1 reads model {model!r}"
        serial = decode_string(link.read_input(9, 4))
        return True, f"Iskra {model}, serial {serial}"

    # --- what the meter is ---------------------------------------------------------------------

    def identify(self) -> MeterIdentity:
        registers = self.link.read_input(IDENTITY_ADDRESS, IDENTITY_COUNT)
        self.identity = MeterIdentity(
            vendor="Iskra",
            model=decode_string(registers[0:8]),
            serial_number=decode_string(registers[8:12]),
            firmware="",
            transactions=True,
        )
        raw = registers_to_bytes(self.link.read_holding(PUBLIC_KEY, 32))
        if not any(raw):
            raise CommunicationError("meter reports an empty public key at 8124")
        self._public_key = SPKI_P256_PREFIX + raw
        self._check_clock()
        return self.identity

    def public_key_der(self) -> bytes | None:
        return self._public_key

    def _check_clock(self) -> None:
        with self.status_lock:
            self._check_clock_once()

    def _check_clock_once(self) -> None:
        """Set the clock when the time status says it is not synchronised (after every power-up)."""
        if self.link.read_holding(TIME_STATUS, 1)[0] != TIME_NOT_SYNCHRONISED:
            return
        if self._clock_set_once:
            self.reboots_seen += 1
            log.warning("meter lost its time (power-up): setting the clock again")
        if not self.services.config.sync_clock:
            return
        config = self.services.config
        try:
            self.link.write(UTC_OFFSET, [(config.utc_offset_minutes or 0) & 0xFFFF])
            second = self.clock_second()
            if second is None:
                return
            self.link.write_multiple(UTC_TIME, [second >> 16, second & 0xFFFF])
            self.link.write(TIME_STATUS, [TIME_SET])
        except MeterExceptionError as exc:
            self.services.raise_error(
                ErrorType.VENDOR_WARNING, f"meter clock is unsynchronised and cannot be set: {exc}"
            )
            return
        self._clock_set_once = True
        log.info("meter clock set from this host")

    # --- the live dataset ----------------------------------------------------------------------

    def read_dataset(self) -> Powermeter:
        values: dict[str, Any] = {}
        for block in MEASUREMENT_BLOCKS:
            values.update(decode_block(block, self.link.read_input(block.address, block.count)))
        self._check_clock()
        assert self.identity is not None
        return dataset(
            values,
            timestamp=rfc3339(time.time()),
            meter_id=self.services.config.meter_id or self.identity.serial_number,
            phase_seq_error=values["phase_sequence"] == 1,
            energy_import=Energy(total=energy_wh(values, "import", ENERGY_REGISTERS["import"])),
            energy_export=Energy(total=energy_wh(values, "export", ENERGY_REGISTERS["export"])),
        )

    # --- commands ------------------------------------------------------------------------------

    def _state(self) -> int:
        """Register 7000; a value the meter does not have is an answer to another request (RTU answers
        carry no request id: a late one-register answer has the same shape), so the read is repeated."""
        state = self.link.read_holding(CHARGING_STATE, 1)[0]
        if state not in CHARGING_STATES:
            known = ", ".join(map(str, CHARGING_STATES))
            raise CommunicationError(f"the meter answered charging state {state}, which it does not have "
                                     f"({known}): an answer to another request?")
        return state

    def _status(self) -> dict[str, Any]:
        return decode_block(STATUS, self.link.read_holding(STATUS.address, STATUS.count))

    def _read_text(self, address: int, length: int, what: str) -> str:
        if not 0 < length <= BUFFER_BYTES:
            raise CommandFailed(f"meter reports {what} of {length} bytes, outside 1..{BUFFER_BYTES}")
        data = registers_to_bytes(self.link.read_holding(address, math.ceil(length / 2)))[:length]
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise CommandFailed(f"the meter's {what} is not ASCII text: {data[:40]!r}") from None

    def _metadata(self) -> dict[str, Any]:
        """The metadata now in the meter ({} when there is none or it is not a JSON object)."""
        length = self.link.read_holding(METADATA_LENGTH, 1)[0]
        if length == 0:
            return {}
        try:
            metadata = json.loads(self._read_text(METADATA, length, "metadata"))
        except (ValueError, CommandFailed):
            return {}
        return metadata if isinstance(metadata, dict) else {}

    def open_transaction(self) -> str | None:
        return self._active()[1]

    def _active(self) -> tuple[bool, str | None]:
        """Whether the meter runs a transaction, and its id from the metadata's TT (None without one).

        The state is read again after the metadata, and metadata that is not JSON is read once more: a
        late answer taken for one of these reads (finding 15, docs/reliability.md) must not pass for a
        transaction without an id, which start and stop refuse and a record would be lost for. Only the
        driver ends a transaction, so an idle state after an active one is such a misread: the policy
        repeats the command (CommunicationError)."""
        state = self._state()
        if state == IDLE:
            return False, None
        metadata = self._metadata()
        if not metadata:
            metadata = self._metadata()
        again = self._state()
        if again == IDLE:
            raise CommunicationError(f"the meter's charging state read {state}, then {again}: one of the "
                                     "answers was to another request")
        return True, transaction_id_of(metadata.get("TT"))

    def _command(self, command: int, what: str, state_after: set[int]) -> None:
        """Write a command, wait for the charging state it leads to and for the signature."""
        try:
            self.link.write(COMMAND, [command])
        except MeterExceptionError as exc:
            if exc.code == 6:
                raise  # busy signing: the policy repeats the attempt
            reason = ""
            try:
                reason = f"; {status_text(self._status()['signature_status'])}"
            except (CommunicationError, MeterExceptionError):
                pass
            raise CommandFailed(f"{what} refused: {exc}{reason}") from None
        self.poll(what, self._state, lambda state: state in state_after, lambda _state: None)
        self.poll(
            what,
            lambda: int(self._status()["signature_status"]),
            lambda status: status == SIGNATURE_OK,
            lambda status: None if status in WAITING else status_text(status),
        )

    def start(self, req: TransactionReq) -> Started:
        what = f"start of {req.transaction_id!r}"
        active, open_id = self._active()
        if active:
            if open_id == req.transaction_id:
                log.info("transaction %r is already active in the meter (start answer lost?)", open_id)
                return Started()
            raise CommandFailed(f"{what} refused: transaction {open_id or '(without an id)'!r} is still "
                                "active in the meter; stop it first")
        metadata = metadata_json(req).encode("ascii")
        if len(metadata) > BUFFER_BYTES:
            raise CommandFailed(f"{what} refused: its metadata takes {len(metadata)} bytes, the meter "
                                f"takes {BUFFER_BYTES}")
        # a reboot between the clock check and the 'B' (a link-layer repeat reached the rebooted meter,
        # which refuses it: time not set): the clock is set and everything written again, once
        self.again_after_reboot(what, lambda: self._begin(req.transaction_id, metadata, what))
        return Started()

    def _begin(self, transaction_id: str, metadata: bytes, what: str) -> None:
        self._check_clock()
        self.link.write(SIGNATURE_FORMAT, [0])
        self.link.write_multiple(METADATA, bytes_to_registers(metadata))
        self.link.write(METADATA_LENGTH, [len(metadata)])
        try:
            self._command(CMD_BEGIN, what, state_after={1})
        except CommandFailed:
            # A 'B' repeated by the link layer after a lost answer is refused (invalid state): if the
            # meter runs this very transaction, the start worked.
            if self.open_transaction() != transaction_id:
                raise
            log.info("%s: the meter runs it (a repeated begin was refused)", what)

    def notice_reboot(self) -> None:
        self._check_clock()

    def stop(self, transaction_id: str) -> Stopped:
        what = f"stop of {transaction_id!r}"
        active, open_id = self._active()
        if active:
            if open_id != transaction_id:
                raise CommandFailed(f"{what} refused: the meter runs transaction "
                                    f"{open_id or '(without an id)'!r}, not {transaction_id!r}")
            return self._end(transaction_id, what)
        stored = self.fetch(transaction_id)
        if stored is None:
            if self._state() != IDLE:
                raise CommunicationError("the meter's charging state read idle, then active: one of the "
                                         "answers was to another request")
            raise CommandFailed(f"{what} refused: no transaction is active in the meter, and the last "
                                f"record it holds is not the end of {transaction_id!r}")
        return stored

    def _end(self, transaction_id: str, what: str) -> Stopped:
        self._check_clock()  # after a power failure the meter ends nothing until its time is set
        try:
            self.again_after_reboot(what, lambda: self._command(CMD_END, what, state_after={IDLE}))
        except CommandFailed:
            # An 'r' repeated by the link layer after a lost answer is refused once the meter has ended
            # the transaction (invalid state): if its last record is the end of this one, the stop worked.
            stored = self.fetch(transaction_id)
            if stored is None:
                raise
            log.info("%s: the meter ended it (a repeated end was refused)", what)
            return stored
        return Stopped(transaction_id, self._read_record(what))

    def close_all(self) -> Stopped | None:
        open_id = self.open_transaction()
        if open_id is None:
            return None
        return self._end(open_id, "stop of every pending transaction")

    def fetch(self, transaction_id: str) -> Stopped | None:
        status = self._status()
        if status["signature_status"] == IN_PROGRESS:
            self.poll(f"fetch of {transaction_id!r}", lambda: int(self._status()["signature_status"]),
                      lambda s: s != IN_PROGRESS, lambda _s: None)
            status = self._status()
        if not status["dataset_length"] or not status["signature_length"]:
            return None
        record = self._read_record(f"fetch of {transaction_id!r}")
        payload = json.loads(record.split("|")[1])  # a JSON object without '|' (_read_record)
        readings = payload.get("RD")
        readings = readings if isinstance(readings, list) else []
        ended = any(isinstance(r, dict) and r.get("TX") == "E" for r in readings)
        if not ended or transaction_id_of(payload.get("TT")) != transaction_id:
            return None
        return Stopped(transaction_id, record)

    def _read_record(self, what: str) -> str:
        """`OCMF|<signed dataset>|{"SD":"<signature hex>"}`, the dataset exactly as the meter wrote it."""
        status = self._status()
        dataset = self._read_text(SIGNED_DATASET, status["dataset_length"], "signed dataset")
        length = status["signature_length"]
        if not 0 < length <= SIGNATURE_BYTES:
            raise CommandFailed(f"{what}: the meter reports a signature of {length} bytes")
        signature = registers_to_bytes(self.link.read_holding(SIGNATURE, math.ceil(length / 2)))[:length]
        try:
            payload = json.loads(dataset)
        except ValueError as exc:
            raise CommandFailed(f"{what}: the meter's signed dataset is not JSON ({exc})") from None
        if not isinstance(payload, dict) or "|" in dataset:
            # OCMF's payload is an object, and no section may hold '|': the record would not split again.
            raise CommandFailed(f"{what}: the meter's signed dataset is not an OCMF payload (a JSON object "
                                f"without '|'): {dataset[:40]!r}")
        return f'OCMF|{dataset}|{{"SD":"{signature.hex().upper()}"}}'
