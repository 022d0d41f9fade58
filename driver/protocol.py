"""The meter protocol: what one meter model's registers and commands are, beneath the EVerest policy.

PowermeterDriver (driver/powermeter.py) is the policy, written once: commands never raise, errors are
raised and cleared, a lost link is retried with backoff, records are verified. A MeterProtocol is one
meter model's back end (as python-can's BusABC has one back end an interface): it knows the registers,
reads the dataset, runs start and stop the way that meter wants them, and fetches a pending record.
A protocol raises; the policy turns what it raises into EVerest's answers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from driver.errors import CommunicationError, DriverError, MeterExceptionError
from driver.types import (
    Current,
    Energy,
    Frequency,
    Power,
    Powermeter,
    ReactivePower,
    TransactionReq,
    Voltage,
)

if TYPE_CHECKING:
    from driver.config import DriverConfig
    from driver.events import ErrorType

log = logging.getLogger(__name__)
T = TypeVar("T")


class CommandFailed(DriverError):
    """The meter cannot do a command; the policy answers UNEXPECTED_ERROR with this message."""


class TooEarly(CommandFailed):
    """The meter refuses a stop before its minimum transaction duration; it takes one from `earliest`
    (UTC seconds). The policy waits for it when that is within the command's time budget."""

    def __init__(self, message: str, earliest: float) -> None:
        super().__init__(message)
        self.earliest = earliest


class TransactionsNotSupported(DriverError):
    """The meter has no signed transactions; the policy answers NOT_SUPPORTED with this message."""


class RegisterLink(Protocol):
    """The Modbus operations a protocol may use (ModbusLink, watched by the policy for link faults)."""

    def read_holding(self, address: int, count: int) -> list[int]: ...
    def read_input(self, address: int, count: int) -> list[int]: ...
    def write(self, address: int, values: list[int]) -> None: ...
    def write_multiple(self, address: int, values: list[int]) -> None: ...


class DriverServices(Protocol):
    """What the policy offers a protocol: its settings, error reporting and an interruptible pause."""

    config: DriverConfig

    def raise_error(self, kind: ErrorType, message: str) -> None: ...
    def clear_error(self, kind: ErrorType) -> None: ...
    def pause(self, seconds: float, what: str) -> None: ...
    def wait(self, seconds: float) -> bool: ...


@dataclass(frozen=True)
class MeterIdentity:
    """What a meter says it is."""

    vendor: str
    model: str
    serial_number: str
    firmware: str
    transactions: bool
    separate_begin_end: bool = False
    evidence: str = ""
    """Where the meter says whether it has transactions, for the NOT_SUPPORTED answer."""


@dataclass(frozen=True)
class Started:
    """A start the meter accepted: its stop-time limits (UTC seconds) and a begin record if it signs one."""

    min_stop_time: int | None = None
    max_stop_time: int | None = None
    begin_record: str | None = None


@dataclass(frozen=True)
class Stopped:
    """A closed transaction's record as the meter wrote it, and its begin record when signed apart."""

    transaction_id: str
    record: str
    begin_record: str | None = None


@dataclass(frozen=True)
class RequestPattern:
    """How one kind of request looks on the wire, for rigs and fault campaigns that act at exact points."""

    kind: str
    function_code: int
    address: int
    value: int | None = None  # the first register written, when the kind is told by the value


class MeterProtocol(ABC):
    """One meter model's back end. Subclasses set `model` and `requests`, and register themselves in
    driver/protocols/__init__.py."""

    model: ClassVar[str]
    """The model's name, as rig files and --model spell it (e.g. "iskra-wm3m4c")."""
    requests: ClassVar[tuple[RequestPattern, ...]] = ()
    """The command path's requests by kind: start, stop, clear, fetch, ident, txid, state, record.
    A command written with FC06 also counts when an FC16 writes it."""
    features: ClassVar[frozenset[str]] = frozenset({"transactions", "phase_sequence"})
    """What the model can do that scenarios depend on: transactions, phase_sequence, separate_begin_end
    (begin and end signed as two records), stop_time_limits (min/max stop time in the start answer),
    ends_on_power_loss (a power loss ends the running transaction at that instant; it is not kept open)."""
    max_read: ClassVar[int] = 125
    max_write: ClassVar[int] = 123

    def __init__(self, link: RegisterLink, services: DriverServices) -> None:
        self.link = link
        self.services = services
        self.identity: MeterIdentity | None = None
        self.status_lock = threading.RLock()
        """Held while noticing a reboot and setting the clock: the publisher and a command both look."""
        self.reboots_seen = 0
        """Reboots of the meter this driver noticed (each time its clock was set again, or its boot
        count moved)."""

    @classmethod
    def request_kind(cls, function_code: int, address: int, values: list[int]) -> str | None:
        """The kind of a request (values: the registers it writes, [] for a read), None for any other.

        A pattern with a value (a command) matches any write that puts that value at its address; one
        without matches requests that start at its address."""
        for pattern in cls.requests:
            if pattern.function_code != function_code:
                continue
            if pattern.value is None:
                if pattern.address == address:
                    return pattern.kind
                continue
            offset = pattern.address - address
            if 0 <= offset < len(values) and values[offset] == pattern.value:
                return pattern.kind
        return None

    @classmethod
    @abstractmethod
    def probe(cls, link: RegisterLink) -> tuple[bool, str]:
        """Read the identity registers: (True, the meter's description) when it is this model, else
        (False, what was read). CommunicationError when nothing answers; an exception is "not this model"."""

    @abstractmethod
    def identify(self) -> MeterIdentity:
        """Read identity and public key (again after a reboot); sets self.identity."""

    @abstractmethod
    def public_key_der(self) -> bytes | None:
        """The meter's public key as DER SubjectPublicKeyInfo, None when it has none."""

    @abstractmethod
    def read_dataset(self) -> Powermeter:
        """One Powermeter dataset read now; also notices a reboot and sets an unsynchronised clock."""

    @abstractmethod
    def start(self, req: TransactionReq) -> Started:
        """Start req's transaction. Idempotent: a repeat of a start that worked (lost answer) succeeds."""

    @abstractmethod
    def stop(self, transaction_id: str) -> Stopped:
        """Stop the transaction and return its record; a repeat of a stop that worked returns the
        same record (never a second one). CommandFailed when the meter does not run that transaction."""

    @abstractmethod
    def open_transaction(self) -> str | None:
        """The id of the transaction the meter runs ("" when it cannot tell), None when it is idle."""

    @abstractmethod
    def close_all(self) -> Stopped | None:
        """Close whatever is open and clear what is pending; the closed transaction's record when this
        call closed one and could read it, else None."""

    @abstractmethod
    def fetch(self, transaction_id: str) -> Stopped | None:
        """The stored record of a closed transaction, None when the meter holds none for it."""

    def fetch_begin(self, transaction_id: str) -> str | None:
        """The begin record of a transaction whose meter signs begin and end apart, read again from the
        meter; None for a model without separate begin records (the default)."""
        return None

    def notice_reboot(self) -> None:
        """Read what tells that the meter rebooted, count it in reboots_seen and set the clock again; a
        protocol whose meter can tell overrides this (the default notices nothing)."""
        return None

    # --- helpers for subclasses ----------------------------------------------------------------

    def again_after_reboot(self, what: str, attempt: Callable[[], T]) -> T:
        """Run attempt; when the meter refused it because it rebooted meanwhile (what was written before
        the command, or the clock, is gone with its power), run it once more. A campaign found each
        model refusing a command whose first writes reached the meter before its power loss."""
        reboots = self.reboots_seen
        try:
            return attempt()
        except CommandFailed:
            try:
                self.notice_reboot()
            except (CommunicationError, MeterExceptionError):
                raise CommandFailed(f"{what} failed, and the meter did not answer after it") from None
            if self.reboots_seen == reboots:
                raise
            log.warning("%s: the meter rebooted during it; once more", what)
            return attempt()

    def poll(self, what: str, read: Callable[[], int], done: Callable[[int], bool],
             failed: Callable[[int], str | None], timeout: float | None = None) -> int:
        """Read a status until done(value); CommandFailed with failed(value) or after the busy timeout."""
        limit = self.services.config.busy_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            value = read()
            if done(value):
                return value
            reason = failed(value)
            if reason is not None:
                raise CommandFailed(f"{what} failed: {reason}")
            if time.monotonic() >= deadline:
                raise CommandFailed(f"{what} failed: the meter did not finish within {limit:g} s")
            self.services.pause(self.services.config.busy_poll, what)

    def clock_second(self) -> int | None:
        """The host's time as the whole second to write to a meter clock that holds whole seconds, once
        that second begins, so the meter's clock is exact; None when the driver closes meanwhile.

        Any other instant leaves the clock off by a fraction of a second, and a second setting (after a
        reboot) off by another: an end reading can then be dated before its begin, and the record fails
        verification. A fault campaign found this when the clock was written at once, a second ahead at
        most (docs/reliability.md), so the wait of up to a second after every power-up stays."""
        now = time.time()
        second = math.ceil(now)
        if self.services.wait(second - now):
            return None
        return second


def dataset(values: dict[str, Any], *, timestamp: str, meter_id: str, energy_import: Energy,
            energy_export: Energy, phase_seq_error: bool | None) -> Powermeter:
    """A Powermeter from decoded values named as the protocols name them (voltage_l1, current_l1,
    power_total, power_l1, reactive_power_total, reactive_power_l1, ..., frequency; current_n if any)."""
    return Powermeter(
        timestamp=timestamp,
        meter_id=meter_id,
        phase_seq_error=phase_seq_error,
        energy_Wh_import=energy_import,
        energy_Wh_export=energy_export,
        power_W=Power(total=values["power_total"], L1=values["power_l1"], L2=values["power_l2"],
                      L3=values["power_l3"]),
        voltage_V=Voltage(L1=values["voltage_l1"], L2=values["voltage_l2"], L3=values["voltage_l3"]),
        VAR=ReactivePower(total=values["reactive_power_total"], L1=values["reactive_power_l1"],
                          L2=values["reactive_power_l2"], L3=values["reactive_power_l3"]),
        current_A=Current(L1=values["current_l1"], L2=values["current_l2"], L3=values["current_l3"],
                          N=values.get("current_n")),
        frequency_Hz=Frequency(L1=values["frequency"]),
    )

