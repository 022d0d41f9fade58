"""The errors the driver raises and clears, as EVerest's powermeter interface names them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorType(StrEnum):
    """The EVerest powermeter error types this driver raises."""

    COMMUNICATION_FAULT = "CommunicationFault"
    VENDOR_ERROR = "VendorError"
    VENDOR_WARNING = "VendorWarning"


@dataclass(frozen=True)
class ErrorEvent:
    """An error raised (raised=True) or cleared (raised=False), as the subscribers see it."""

    type: ErrorType
    raised: bool
    message: str
    namespace: str = "powermeter"

    @property
    def everest_type(self) -> str:
        """The type as EVerest's error framework spells it, e.g. "generic/CommunicationFault"."""
        return f"{self.namespace}/{self.type}"
