"""The driver's exceptions: one tree rooted in DriverError, so a caller can catch everything at once."""


class DriverError(Exception):
    """Base of every error the driver raises."""


class ConfigurationError(DriverError, ValueError):
    """A setting is wrong (port, baud rate, parity, unit id); the message names it.

    Also a ValueError, like RequestError, so code that builds a DriverConfig from a file can catch
    bad values the usual way.
    """


class RequestError(DriverError, ValueError):
    """A TransactionReq breaks its type; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class CommunicationError(DriverError):
    """The meter did not answer, or answered garbage, within the retry budget."""


class MeterExceptionError(DriverError):
    """The meter answered with a Modbus exception; `code` is the exception code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class OcmfError(DriverError):
    """Base of OCMF parsing and verification errors."""


class OcmfFormatError(OcmfError, ValueError):
    """An OCMF record or public key is malformed; the message says where."""


class OcppError(DriverError, ValueError):
    """An OCPP payload cannot be built from the data given, or breaks its schema; `problems` names fields."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message if not problems else message + "\n  " + "\n  ".join(problems))
        self.problems = problems or [message]
