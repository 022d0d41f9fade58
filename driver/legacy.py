"""The older EVerest request form (seed 000) on top of the current driver, so old and new can be compared.

Mapping (documented in docs/driver.md):

- `evse_id`, `transaction_id` are passed through.
- `client_id` becomes OCMF `ID` (identification_data). Non-empty: identification_status ASSIGNED and
  identification_type UNDEFINED (the old form does not say what kind of identifier it is); empty:
  NOT_ASSIGNED and NONE. identification_flags is empty, identification_level not given.
- `tariff_id`, `cable_id`, `user_data` have no OCMF fields of their own in the reference meter; they go
  into OCMF `TT` (tariff_text) as `tariff_id=<n>;cable_id=<n>;user_data=<text>`, so they are signed too.
- The stop response's `ocmf` is the meter's record, byte for byte (signed_meter_value.signed_meter_data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from driver.errors import RequestError
from driver.powermeter import PowermeterDriver
from driver.types import (
    MAX_TARIFF_TEXT,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    TransactionReq,
    TransactionRequestStatus,
    TransactionStartResponse,
    TransactionStopResponse,
    _Json,
)


@dataclass
class LegacyTransactionReq(_Json):
    """TransactionReq of seed 000: every field required."""

    evse_id: str
    transaction_id: str
    client_id: str
    tariff_id: int
    cable_id: int
    user_data: str

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        """Check the old form's fields; RequestError names the first bad one."""
        if not isinstance(data, dict):
            raise RequestError("TransactionReq", f"expected a JSON object, got {type(data).__name__}")
        for key in data:
            if key not in cls.__dataclass_fields__:
                raise RequestError(key, "unknown field in the seed 000 TransactionReq")
        values: dict[str, Any] = {}
        for name, kind in (
            ("evse_id", str),
            ("transaction_id", str),
            ("client_id", str),
            ("tariff_id", int),
            ("cable_id", int),
            ("user_data", str),
        ):
            if name not in data:
                raise RequestError(name, "required field is missing")
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise RequestError(name, f"expected {'an integer' if kind is int else 'a string'}")
            values[name] = value
        return cls(**values)

    def to_current(self) -> TransactionReq:
        """The seed 001 request this maps to; RequestError names the old field that does not fit."""
        tariff_text = f"tariff_id={self.tariff_id};cable_id={self.cable_id};user_data={self.user_data}"
        if len(tariff_text) > MAX_TARIFF_TEXT:
            raise RequestError(
                "user_data",
                f"too long: tariff_id, cable_id and user_data together must fit in {MAX_TARIFF_TEXT} "
                "characters of OCMF TT",
            )
        assigned = bool(self.client_id)
        req = TransactionReq(
            evse_id=self.evse_id,
            transaction_id=self.transaction_id,
            identification_status=OCMFUserIdentificationStatus.ASSIGNED
            if assigned
            else OCMFUserIdentificationStatus.NOT_ASSIGNED,
            identification_flags=[],
            identification_type=OCMFIdentificationType.UNDEFINED if assigned else OCMFIdentificationType.NONE,
            identification_data=self.client_id or None,
            tariff_text=tariff_text,
        )
        try:
            req.validate()
        except RequestError as exc:
            field = "client_id" if exc.field == "identification_data" else exc.field
            raise RequestError(field, str(exc).split(": ", 1)[1]) from None
        return req


@dataclass
class LegacyTransactionStopResponse(_Json):
    """TransactionStopResponse of seed 000: the OCMF record as a plain string."""

    status: TransactionRequestStatus
    ocmf: str | None = None
    error: str | None = None

    @classmethod
    def from_current(cls, response: TransactionStopResponse) -> Self:
        """Keep the record even when the status is not OK, so nothing is lost."""
        signed = response.signed_meter_value
        return cls(
            status=response.status,
            ocmf=None if signed is None else signed.signed_meter_data,
            error=response.error,
        )


class LegacyDriver:
    """A seed 000 driver face on a current PowermeterDriver (which stays usable directly)."""

    def __init__(self, driver: PowermeterDriver) -> None:
        self.driver = driver

    def start_transaction(self, req: LegacyTransactionReq | dict[str, Any]) -> TransactionStartResponse:
        """Map the old request and start; a request that does not fit is refused before the meter."""
        try:
            legacy = req if isinstance(req, LegacyTransactionReq) else LegacyTransactionReq.from_dict(req)
            current = legacy.to_current()
        except RequestError as exc:
            return TransactionStartResponse(
                TransactionRequestStatus.UNEXPECTED_ERROR, error=f"invalid TransactionReq (seed 000): {exc}"
            )
        return self.driver.start_transaction(current)

    def stop_transaction(self, transaction_id: str) -> LegacyTransactionStopResponse:
        """Stop as the current driver does; the record comes back as the `ocmf` string."""
        return LegacyTransactionStopResponse.from_current(self.driver.stop_transaction(transaction_id))
