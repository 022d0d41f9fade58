"""The driver API the rig and the conformance steps rely on, as a typing.Protocol.

A vendor's driver class named in a rig file (`driver.class`) must have these members; meter-hil's own
PowermeterDriver does. Commands follow EVerest's powermeter interface: they answer, never raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from driver.events import ErrorEvent
from driver.types import Powermeter, TransactionReq, TransactionStartResponse, TransactionStopResponse


@runtime_checkable
class PowermeterAPI(Protocol):
    """What a driver under test offers the rig (EvseManager's side of EVerest's powermeter interface)."""

    def open(self) -> Any:
        """Open the port and start publishing; a meter that does not answer yet is a fault, not a failure."""

    def close(self) -> None:
        """Stop publishing and close the port; safe to call twice."""

    def start_transaction(self, req: TransactionReq) -> TransactionStartResponse:
        """EVerest's start_transaction(value)."""

    def stop_transaction(self, transaction_id: str) -> TransactionStopResponse:
        """EVerest's stop_transaction(transaction_id); "" closes and clears every pending transaction."""

    def subscribe_powermeter(self, callback: Callable[[Powermeter], None]) -> None:
        """EVerest's powermeter variable: called with every published dataset."""

    def subscribe_errors(self, callback: Callable[[ErrorEvent], None]) -> None:
        """raise_error / clear_error: called with every raise and clear."""

    @property
    def public_key_ocmf(self) -> str | None:
        """EVerest's public_key_ocmf variable: hex of the DER SubjectPublicKeyInfo, None if unknown."""

    @property
    def publish_interval(self) -> float:
        """Seconds between published datasets, so a rig knows how long to wait for readings."""


REQUIRED_MEMBERS = ("open", "close", "start_transaction", "stop_transaction", "subscribe_powermeter",
                    "subscribe_errors", "public_key_ocmf", "publish_interval")
