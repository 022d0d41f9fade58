"""meter-hil's EVerest powermeter driver for Eichrecht meters over Modbus RTU.

Usable on its own against a physical meter: `PowermeterDriver(DriverConfig(port="/dev/ttyUSB0"))`.
"""

from driver.errors import (
    CommunicationError,
    ConfigurationError,
    DriverError,
    MeterExceptionError,
    OcmfError,
    OcmfFormatError,
    RequestError,
)
from driver.legacy import LegacyDriver, LegacyTransactionReq, LegacyTransactionStopResponse
from driver.powermeter import DriverConfig, ErrorEvent, ErrorType, PowermeterDriver
from driver.types import (
    Current,
    Energy,
    Frequency,
    OCMFIdentificationFlags,
    OCMFIdentificationLevel,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    Power,
    Powermeter,
    ReactivePower,
    SignedMeterValue,
    TransactionReq,
    TransactionRequestStatus,
    TransactionStartResponse,
    TransactionStopResponse,
    Voltage,
)

__all__ = [
    "CommunicationError",
    "ConfigurationError",
    "Current",
    "DriverConfig",
    "DriverError",
    "Energy",
    "ErrorEvent",
    "ErrorType",
    "Frequency",
    "LegacyDriver",
    "LegacyTransactionReq",
    "LegacyTransactionStopResponse",
    "MeterExceptionError",
    "OCMFIdentificationFlags",
    "OCMFIdentificationLevel",
    "OCMFIdentificationType",
    "OCMFUserIdentificationStatus",
    "OcmfError",
    "OcmfFormatError",
    "Power",
    "Powermeter",
    "PowermeterDriver",
    "ReactivePower",
    "RequestError",
    "SignedMeterValue",
    "TransactionReq",
    "TransactionRequestStatus",
    "TransactionStartResponse",
    "TransactionStopResponse",
    "Voltage",
]
