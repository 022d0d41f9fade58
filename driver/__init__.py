"""meter-hil's EVerest powermeter driver for Eichrecht meters over Modbus RTU.

Usable on its own against a physical meter: `PowermeterDriver(DriverConfig(port="/dev/ttyUSB0"))`.
"""

from driver.api import PowermeterAPI
from driver.config import DriverConfig
from driver.errors import (
    CommunicationError,
    ConfigurationError,
    DriverError,
    MeterExceptionError,
    OcmfError,
    OcmfFormatError,
    RequestError,
)
from driver.events import ErrorEvent, ErrorType
from driver.legacy import LegacyDriver, LegacyTransactionReq, LegacyTransactionStopResponse
from driver.powermeter import PowermeterDriver
from driver.protocol import MeterProtocol
from driver.protocols import PROTOCOLS
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
    "PROTOCOLS",
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
    "MeterProtocol",
    "OCMFIdentificationFlags",
    "OCMFIdentificationLevel",
    "OCMFIdentificationType",
    "OCMFUserIdentificationStatus",
    "OcmfError",
    "OcmfFormatError",
    "Power",
    "Powermeter",
    "PowermeterAPI",
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
