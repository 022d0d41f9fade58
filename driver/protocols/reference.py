"""meter-hil's reference meter (docs/meters/reference.md): holding registers only, a command register
with a command status, the transaction id kept in the meter, a result buffer holding the whole record."""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

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
    TooEarly,
    dataset,
)
from driver.protocols import reference_map as reg
from driver.types import (
    Energy,
    Powermeter,
    TransactionReq,
    rfc3339,
)

log = logging.getLogger(__name__)
VENDOR = "meter-hil"



class ReferenceProtocol(MeterProtocol):
    """The reference register map; notices a reboot by its boot counter."""

    model: ClassVar[str] = "reference"
    requests: ClassVar[tuple[RequestPattern, ...]] = (
        *(RequestPattern(kind, fc, reg.COMMAND, command)
          for fc in (0x06, 0x10)
          for kind, command in (("start", reg.CMD_START), ("stop", reg.CMD_STOP),
                                ("clear", reg.CMD_CLEAR_ALL), ("fetch", reg.CMD_FETCH),
                                ("fetch", reg.CMD_FETCH_BEGIN))),
        RequestPattern("txid", 0x10, reg.TRANSACTION_ID),
        RequestPattern("ident", 0x10, reg.IDENTIFICATION_ADDRESS),
        RequestPattern("state", 0x03, reg.TRANSACTION_STATE.address),
        RequestPattern("record", 0x03, reg.RESULT_BUFFER),
    )

    def __init__(self, link: RegisterLink, services: Any) -> None:
        super().__init__(link, services)
        self._public_key: bytes | None = None
        self._boot_count: int | None = None

    @classmethod
    def request_kind(cls, function_code: int, address: int, values: list[int]) -> str | None:
        """As MeterProtocol's; a read anywhere in the result buffer is a "record" read."""
        result_end = reg.RESULT_BUFFER + reg.RESULT_BUFFER_BYTES // 2
        if function_code == 0x03 and reg.RESULT_BUFFER <= address < result_end:
            return "record"
        if function_code == 0x03:
            return "state" if address == reg.TRANSACTION_STATE.address else None
        return super().request_kind(function_code, address, values)

    @classmethod
    def probe(cls, link: RegisterLink) -> tuple[bool, str]:
        try:
            registers = link.read_holding(reg.IDENTITY.address, reg.IDENTITY.count)
        except MeterExceptionError as exc:
            return False, str(exc)
        try:
            identity = reg.decode_block(reg.IDENTITY, registers)
        except CommunicationError as exc:  # a string that is not ASCII: another meter's registers
            return False, f"FC03 {reg.IDENTITY.address}: {exc}"
        described = f"{identity['vendor']} {identity['model']}, serial {identity['serial_number']}"
        if identity["map_version"] != reg.SUPPORTED_MAP_VERSION or identity["vendor"] != VENDOR:
            version = identity["map_version"]
            return False, f"FC03 {reg.IDENTITY.address} reads {described!r}, map version {version}"
        return True, described

    def _block(self, block: reg.Block) -> dict[str, Any]:
        return reg.decode_block(block, self.link.read_holding(block.address, block.count))

    # --- what the meter is ---------------------------------------------------------------------

    def identify(self) -> MeterIdentity:
        with self.status_lock:
            return self._identify()

    def _identify(self) -> MeterIdentity:
        identity = self._block(reg.IDENTITY)
        if identity["map_version"] != reg.SUPPORTED_MAP_VERSION:
            self.services.raise_error(
                ErrorType.VENDOR_WARNING,
                f"meter register map version {identity['map_version']}, "
                f"driver knows version {reg.SUPPORTED_MAP_VERSION}",
            )
        capabilities = identity["capabilities"]
        self.identity = MeterIdentity(
            vendor=identity["vendor"],
            model=identity["model"],
            serial_number=identity["serial_number"],
            firmware=identity["firmware"],
            transactions=bool(capabilities & reg.CAP_TRANSACTIONS),
            separate_begin_end=bool(capabilities & reg.CAP_SEPARATE_BEGIN),
            evidence=f"capabilities bit 0 {'set' if capabilities & reg.CAP_TRANSACTIONS else 'clear'}",
        )
        if self.identity.transactions:
            self._public_key = self._read_public_key()
        self._read_status()
        return self.identity

    def _read_public_key(self) -> bytes:
        registers = self.link.read_holding(reg.PUBLIC_KEY.address, reg.PUBLIC_KEY.count)
        length = registers[0]
        key_bytes = reg.registers_to_bytes(registers[reg.PUBLIC_KEY_BYTES_OFFSET :])
        if not 0 < length <= len(key_bytes):
            raise CommunicationError(
                f"meter reports a public key of {length} bytes, outside 1..{len(key_bytes)}"
            )
        return key_bytes[:length]

    def public_key_der(self) -> bytes | None:
        return self._public_key

    def _read_status(self) -> dict[str, Any]:
        """Read the status block; notice a reboot (boot_count changed) and set an unsynchronised clock."""
        with self.status_lock:
            return self._status_once()

    def _status_once(self) -> dict[str, Any]:
        status = self._block(reg.STATUS)
        boot_count = status["boot_count"]
        if self._boot_count is not None and boot_count != self._boot_count:
            self.reboots_seen += 1
            log.warning("meter rebooted (boot_count %s -> %s)", self._boot_count, boot_count)
            self._boot_count = boot_count
            self._identify()  # reads identity and key again, then this status once more
            return self._block(reg.STATUS)
        self._boot_count = boot_count
        if status["status_flags"] & reg.FLAG_CLOCK_UNSYNCHRONISED and self.services.config.sync_clock:
            self._set_clock()
            status = self._block(reg.STATUS)
        return status

    def _set_clock(self) -> None:
        """Write the host's UTC time at a whole-second boundary, so the meter's clock is not set behind.

        The register has whole seconds; writing a truncated time would put the clock up to a second
        behind, and a second setting (after a reboot) could then date an end reading before its begin.
        """
        config = self.services.config
        try:
            if config.utc_offset_minutes is not None:
                self.link.write(reg.CLOCK.address + 2, [config.utc_offset_minutes & 0xFFFF])
            second = self.clock_second()
            if second is None:
                return
            self.link.write_multiple(reg.CLOCK_TIME, reg.encode_u32(second))
        except MeterExceptionError as exc:
            self.services.raise_error(
                ErrorType.VENDOR_WARNING, f"meter clock is unsynchronised and cannot be set: {exc}"
            )
            return
        log.info("meter clock set from this host")

    # --- the live dataset ----------------------------------------------------------------------

    def read_dataset(self) -> Powermeter:
        values = self._block(reg.MEASUREMENTS)
        status = self._read_status()
        clock = self._block(reg.CLOCK)
        assert self.identity is not None
        return dataset(
            values,
            timestamp=rfc3339(clock["clock_time"]),
            meter_id=self.services.config.meter_id or self.identity.serial_number,
            phase_seq_error=bool(status["status_flags"] & reg.FLAG_PHASE_SEQUENCE_ERROR),
            energy_import=Energy(total=values["energy_import_total"], L1=values["energy_import_l1"],
                                 L2=values["energy_import_l2"], L3=values["energy_import_l3"]),
            energy_export=Energy(total=values["energy_export_total"]),
        )

    # --- commands ------------------------------------------------------------------------------

    def _run_command(self, command: int, what: str) -> dict[str, Any]:
        """Write a command and wait while the meter is busy; CommandFailed with the meter's reason."""
        try:
            self.link.write(reg.COMMAND, [command])
        except MeterExceptionError as exc:
            if exc.code in (2, 6):
                raise  # not supported / busy: the policy handles them
            raise CommandFailed(f"{what} refused: {exc}{self._last_error_suffix()}") from None
        state: dict[str, Any] = {}

        def read() -> int:
            state.update(self._block(reg.TRANSACTION_STATE))
            return int(state["command_status"])

        def failed(status: int) -> str | None:
            if status != reg.CMD_FAILED:
                return None
            code = self._block(reg.STATUS)["last_error"]
            reason = f"{reg.meter_error_text(code)} (meter error {code})"
            if code == reg.ERROR_TOO_SHORT:
                earliest = self._block(reg.TRANSACTION_STATE)["min_stop_time"]
                raise TooEarly(f"{what} refused: {reason}; the meter takes it from {rfc3339(earliest)}",
                               earliest)
            return reason

        self.poll(what, read, lambda status: status == reg.CMD_DONE, failed)
        return state

    def _last_error_suffix(self) -> str:
        try:
            code = self._block(reg.STATUS)["last_error"]
        except (CommunicationError, MeterExceptionError):
            return ""
        return f"; meter says: {reg.meter_error_text(code)} (meter error {code})" if code else ""

    def open_transaction(self) -> str | None:
        self._read_status()
        state = self._block(reg.TRANSACTION_STATE)
        return state["open_transaction_id"] or None

    def notice_reboot(self) -> None:
        self._read_status()

    def start(self, req: TransactionReq) -> Started:
        return self.again_after_reboot(f"start of {req.transaction_id!r}", lambda: self._start_once(req))

    def _start_once(self, req: TransactionReq) -> Started:
        status = self._read_status()
        state = self._block(reg.TRANSACTION_STATE)
        if status["transaction_state"] != reg.STATE_IDLE:
            if state["open_transaction_id"] == req.transaction_id:
                log.info("transaction %r is already open in the meter (start answer lost?)",
                         req.transaction_id)
                return self._started(state, fresh=False)
            raise CommandFailed(
                f"start of {req.transaction_id!r} refused: transaction {state['open_transaction_id']!r} "
                "is still active in the meter; stop it first"
            )
        self.link.write(reg.IDENTIFICATION_ADDRESS, reg.encode_identification(req))
        try:
            state = self._run_command(reg.CMD_START, f"start of {req.transaction_id!r}")
        except CommandFailed:
            # The link layer repeats a write whose answer was lost; a start the meter already ran then
            # fails "already active". If the open transaction is the one asked for, the start worked.
            state = self._block(reg.TRANSACTION_STATE)
            if state["open_transaction_id"] != req.transaction_id:
                raise
            log.info("start of %r: the meter runs it (a repeated start was refused)", req.transaction_id)
        return self._started(state, fresh=True)

    def _started(self, state: dict[str, Any], *, fresh: bool) -> Started:
        begin_record = None
        assert self.identity is not None
        if fresh and self.identity.separate_begin_end and state["result_length"]:
            # Only a record made by this start counts: the buffer may still hold the last stop's record.
            if state["result_pagination"] == self._block(reg.STATUS)["pagination"]:
                begin_record = self._read_record(state)
            else:
                log.info("meter signs begin records separately but left none for this start")
        return Started(
            min_stop_time=state["min_stop_time"] or None,
            max_stop_time=state["max_stop_time"] or None,
            begin_record=begin_record,
        )

    def stop(self, transaction_id: str) -> Stopped:
        return self.again_after_reboot(f"stop of {transaction_id!r}",
                                        lambda: self._stop_once(transaction_id))

    def _stop_once(self, transaction_id: str) -> Stopped:
        self._read_status()  # notices a reboot before the command
        self.link.write(reg.TRANSACTION_ID, reg.encode_string(transaction_id, reg.TRANSACTION_ID_REGS))
        state = self._run_command(reg.CMD_STOP, f"stop of {transaction_id!r}")
        return Stopped(transaction_id, self._read_record(state), self._begin_record(transaction_id))

    def close_all(self) -> Stopped | None:
        self._run_command(reg.CMD_CLEAR_ALL, "clear of every pending transaction")
        return None  # the record is fetched by the id the policy saw open

    def fetch(self, transaction_id: str) -> Stopped | None:
        return self.again_after_reboot(f"fetch of {transaction_id!r}",
                                        lambda: self._fetch_once(transaction_id))

    def _fetch_once(self, transaction_id: str) -> Stopped | None:
        self.link.write(reg.TRANSACTION_ID, reg.encode_string(transaction_id, reg.TRANSACTION_ID_REGS))
        state = self._run_command(reg.CMD_FETCH, f"fetch of the record of {transaction_id!r}")
        return Stopped(transaction_id, self._read_record(state), self._begin_record(transaction_id))

    def fetch_begin(self, transaction_id: str) -> str | None:
        return self.again_after_reboot(f"fetch of the begin record of {transaction_id!r}",
                                       lambda: self._begin_record(transaction_id))

    def _begin_record(self, transaction_id: str) -> str | None:
        """The begin record of a meter that signs it apart (command 5), None for one record holding both."""
        assert self.identity is not None
        if not self.identity.separate_begin_end:
            return None
        self.link.write(reg.TRANSACTION_ID, reg.encode_string(transaction_id, reg.TRANSACTION_ID_REGS))
        state = self._run_command(reg.CMD_FETCH_BEGIN, f"fetch of the begin record of {transaction_id!r}")
        return self._read_record(state)

    def _read_record(self, state: dict[str, Any]) -> str:
        """The OCMF record in the result buffer, exactly as the meter wrote it."""
        length = state["result_length"]
        if not 0 < length <= reg.RESULT_BUFFER_BYTES:
            raise CommandFailed(
                f"meter reports a record of {length} bytes, outside 1..{reg.RESULT_BUFFER_BYTES}"
            )
        registers = self.link.read_holding(reg.RESULT_BUFFER, math.ceil(length / 2))
        data = reg.registers_to_bytes(registers)[:length]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommandFailed(f"the meter's record is not UTF-8 text ({exc})") from None


class ReferenceSRProtocol(ReferenceProtocol):
    """The reference map on a meter that signs begin and end as separate records (capabilities bit 1)
    and imposes a minimum and a maximum transaction duration (the simulator's `reference-sr`)."""

    model: ClassVar[str] = "reference-sr"
    features: ClassVar[frozenset[str]] = frozenset(
        {"transactions", "phase_sequence", "separate_begin_end", "stop_time_limits"})
