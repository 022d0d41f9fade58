"""The transaction engine of an Eichrecht meter: start, stop, clear all, fetch; pagination; signed records.

Every state change is persisted before the command is acknowledged, so a power cut loses nothing that
was acknowledged. Signing happens after the stop is acknowledged (the meter is busy meanwhile); a record
left unsigned by a power cut is signed at the next boot.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .ocmf import Identification, Reading


class TxState(enum.IntEnum):
    """transaction_state register."""

    IDLE = 0
    ACTIVE = 1
    ACTIVE_AFTER_POWER_FAILURE = 2


class Command(enum.IntEnum):
    """command register."""

    START = 1
    STOP = 2
    CLEAR_ALL = 3
    FETCH = 4
    FETCH_BEGIN = 5


class CommandStatus(enum.IntEnum):
    """command_status register."""

    DONE = 0
    BUSY = 1
    FAILED = 2


class TxError(enum.IntEnum):
    """last_error register."""

    NONE = 0
    ALREADY_ACTIVE = 1
    UNKNOWN_ID = 2
    NOT_ACTIVE = 3
    INVALID_IDENTIFICATION = 4
    TOO_SHORT = 5
    NOT_READY = 6


@dataclass(frozen=True)
class Transaction:
    """An open or closed transaction."""

    id: str
    pagination: int
    identification: Identification
    begin: Reading
    begin_sim_s: float
    end: Reading | None = None
    interrupted: bool = False
    begin_record: str = ""
    """The begin record, when the meter signs begin and end apart ("" otherwise)."""
    end_pagination: int = 0
    """The end record's pagination number when signed apart (0: one record, `pagination`)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (for the state file)."""
        return {
            "id": self.id,
            "pagination": self.pagination,
            "ident": self.identification.to_json(),
            "begin": self.begin.to_json(),
            "begin_sim_s": self.begin_sim_s,
            "end": None if self.end is None else self.end.to_json(),
            "interrupted": self.interrupted,
            "begin_record": self.begin_record,
            "end_pagination": self.end_pagination,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Transaction:
        """Inverse of to_json."""
        return cls(
            str(d["id"]),
            int(d["pagination"]),
            Identification.from_json(d["ident"]),
            Reading.from_json(d["begin"]),
            float(d["begin_sim_s"]),
            None if d["end"] is None else Reading.from_json(d["end"]),
            bool(d["interrupted"]),
            str(d.get("begin_record", "")),
            int(d.get("end_pagination", 0)),
        )


@dataclass(frozen=True)
class Record:
    """A closed, signed transaction as the meter keeps it."""

    transaction: Transaction
    ocmf: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (for the state file)."""
        return {"tx": self.transaction.to_json(), "ocmf": self.ocmf}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Record:
        """Inverse of to_json."""
        return cls(Transaction.from_json(d["tx"]), str(d["ocmf"]))


class TransactionEngine:
    """State machine of the transaction block. Callers pass readings in; the engine calls persist()."""

    def __init__(
        self,
        persist: Callable[[], None],
        sign: Callable[[Transaction], str],
        records_kept: int = 16,
        min_duration_s: float = 0.0,
        sign_begin: Callable[[Transaction], str] | None = None,
        max_duration_s: float = 0.0,
    ) -> None:
        self._persist = persist
        self._sign = sign
        self._sign_begin = sign_begin
        """Set for a meter that signs begin and end as separate records (each its own pagination)."""
        self.max_duration_s = max_duration_s
        self.records_kept = records_kept
        self.min_duration_s = min_duration_s
        self.pagination = 0
        self.open: Transaction | None = None
        self.unsigned: list[Transaction] = []
        self.records: list[Record] = []
        self.last_error = TxError.NONE
        self.last_command = 0
        self.result: Record | None = None
        self._failed = False

    # ---- persistence ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The engine's part of the state file."""
        return {
            "pagination": self.pagination,
            "open": None if self.open is None else self.open.to_json(),
            "unsigned": [t.to_json() for t in self.unsigned],
            "records": [r.to_json() for r in self.records],
        }

    def restore(self, d: dict[str, Any]) -> None:
        """Rebuild from the state file at boot: an open transaction was interrupted by the power failure."""
        self.pagination = int(d["pagination"])
        self.open = None if d["open"] is None else Transaction.from_json(d["open"])
        self.unsigned = [Transaction.from_json(t) for t in d["unsigned"]]
        self.records = [Record.from_json(r) for r in d["records"]]
        if self.open is not None:
            self.open = replace(self.open, interrupted=True)

    # ---- registers ------------------------------------------------------------------------------------
    @property
    def state(self) -> TxState:
        """transaction_state."""
        if self.open is None:
            return TxState.IDLE
        return TxState.ACTIVE_AFTER_POWER_FAILURE if self.open.interrupted else TxState.ACTIVE

    @property
    def busy(self) -> bool:
        """True while a closed transaction waits for its signature."""
        return bool(self.unsigned)

    @property
    def command_status(self) -> CommandStatus:
        """command_status."""
        if self.busy:
            return CommandStatus.BUSY
        return CommandStatus.FAILED if self._failed else CommandStatus.DONE

    def max_stop_sim_s(self) -> float | None:
        """Latest stop of the open transaction in simulated seconds, None when the meter imposes none."""
        if self.open is None or self.open.interrupted or self.max_duration_s <= 0:
            return None
        return self.open.begin_sim_s + self.max_duration_s

    def min_stop_sim_s(self) -> float | None:
        """Earliest stop of the open transaction in simulated seconds, None when the meter imposes none.

        A transaction interrupted by a power failure may stop at once (and its begin time belongs to an
        earlier power-up's clock)."""
        if self.open is None or self.open.interrupted or self.min_duration_s <= 0:
            return None
        return self.open.begin_sim_s + self.min_duration_s

    # ---- commands -------------------------------------------------------------------------------------
    def start(self, tx_id: str, ident: Identification, reading: Reading, now_sim_s: float) -> TxError:
        """Command 1: open a transaction; persisted before this returns."""
        if self.open is not None:
            return self._fail(Command.START, TxError.ALREADY_ACTIVE)
        if not tx_id or self._find(tx_id) is not None:
            return self._fail(Command.START, TxError.INVALID_IDENTIFICATION)
        self.pagination += 1
        self.open = Transaction(tx_id, self.pagination, ident, reading, now_sim_s)
        if self._sign_begin is not None:
            # signed at once and kept with the open transaction: the begin record is in the result
            # buffer when the start is answered
            self.open = replace(self.open, begin_record=self._sign_begin(self.open))
            self.result = Record(self.open, self.open.begin_record)
        self._persist()
        return self._ok(Command.START)

    def stop(self, tx_id: str, reading: Reading, now_sim_s: float) -> TxError:
        """Command 2: close the open transaction (end reading persisted first), or reload the record
        of a closed one."""
        if not tx_id:
            return self._fail(Command.STOP, TxError.INVALID_IDENTIFICATION)
        if self.open is not None and self.open.id == tx_id:
            earliest = self.min_stop_sim_s()
            if earliest is not None and now_sim_s < earliest:
                return self._fail(Command.STOP, TxError.TOO_SHORT)
            self._close(reading)
            return self._ok(Command.STOP)
        record = self._find(tx_id)
        if record is None:
            return self._fail(Command.STOP, TxError.UNKNOWN_ID)
        self.result = record
        return self._ok(Command.STOP)

    def clear_all(self, reading: Reading) -> TxError:
        """Command 3: close the open transaction if any (its record is signed and kept)."""
        if self.open is not None:
            self._close(reading)
        return self._ok(Command.CLEAR_ALL)

    def fetch(self, tx_id: str) -> TxError:
        """Command 4: load the stored record of tx_id into the result buffer."""
        record = self._find(tx_id)
        if record is None:
            return self._fail(Command.FETCH, TxError.UNKNOWN_ID)
        self.result = record
        return self._ok(Command.FETCH)

    def fetch_begin(self, tx_id: str) -> TxError:
        """Command 5: load the begin record of tx_id (open or closed; a meter signing begin and end apart)."""
        found = self.open if self.open is not None and self.open.id == tx_id else None
        if found is None:
            record = self._find(tx_id)
            found = None if record is None else record.transaction
        if found is None or not found.begin_record:
            return self._fail(Command.FETCH_BEGIN, TxError.UNKNOWN_ID)
        self.result = Record(found, found.begin_record)
        return self._ok(Command.FETCH_BEGIN)

    def finish_signing(self) -> None:
        """Sign every closed transaction still waiting; the last one lands in the result buffer."""
        if not self.unsigned:
            return
        for tx in self.unsigned:
            self.records.append(Record(tx, self._sign(tx)))
        self.records = self.records[-self.records_kept :]
        self.result = self.records[-1]
        self.unsigned = []
        self._persist()

    def refuse(self, command: int, error: TxError) -> TxError:
        """A command refused before it reached the engine (busy meter, unusable identification)."""
        return self._fail(command, error)

    # ---- internals ------------------------------------------------------------------------------------
    def _close(self, reading: Reading) -> None:
        assert self.open is not None
        end_pagination = 0
        if self._sign_begin is not None:
            self.pagination += 1  # the end record is a record of its own: the next pagination number
            end_pagination = self.pagination
        self.unsigned.append(replace(self.open, end=reading, end_pagination=end_pagination))
        self.open = None
        self.result = None
        self._persist()

    def _find(self, tx_id: str) -> Record | None:
        for record in reversed(self.records):
            if record.transaction.id == tx_id:
                return record
        return None

    def _ok(self, command: int) -> TxError:
        self.last_command, self.last_error, self._failed = int(command), TxError.NONE, False
        return TxError.NONE

    def _fail(self, command: int, error: TxError) -> TxError:
        self.last_command, self.last_error, self._failed = int(command), error, True
        return error
