"""The driver's settings: the port, the bus, the meter model and the time budgets. Checked on creation."""

from __future__ import annotations

from dataclasses import dataclass

from driver.errors import ConfigurationError
from driver.modbus_link import PARITIES
from driver.protocols import PROTOCOLS

AUTO = "auto"
ERROR_NAMESPACES = ("powermeter", "generic")


@dataclass
class DriverConfig:
    """Everything the driver needs to know: the port, the bus settings, the meter model, its time budgets."""

    port: str
    model: str = "reference"
    """The meter protocol (driver/protocols): a model name, or "auto" to identify the meter at open."""
    baudrate: int = 19200
    parity: str = "E"
    stopbits: int = 1
    bytesize: int = 8
    unit: int = 1
    timeout: float = 0.5
    """Seconds to wait for one answer."""
    retries: int = 1
    """Repeats of an unanswered request before the link counts as lost."""
    publish_interval: float = 1.0
    """Seconds between published Powermeter datasets; 0 runs no publisher thread."""
    command_timeout: float = 10.0
    """How long start/stop wait for an unreachable meter before answering UNEXPECTED_ERROR."""
    busy_timeout: float = 10.0
    """How long to wait for a meter that answers busy (signing) before giving up."""
    busy_poll: float = 0.05
    """Seconds between status reads while the meter works on a command or signs."""
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    meter_id: str | None = None
    """Published as Powermeter.meter_id; the meter's serial number when None."""
    sync_clock: bool = True
    """Set the meter's clock from this host whenever the meter reports it unsynchronised."""
    utc_offset_minutes: int | None = None
    """Written to clock_utc_offset together with the clock when given."""
    error_namespace: str = "powermeter"
    """EVerest's error namespace: "powermeter" in releases up to 2026.02, "generic" on main since #1936."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ConfigurationError naming the first setting that is wrong."""
        if not isinstance(self.port, str) or not self.port:
            raise ConfigurationError("port: no serial port given")
        if self.model != AUTO and self.model not in PROTOCOLS:
            raise ConfigurationError(
                f"model: {self.model!r} is not a known meter model (known: {', '.join(PROTOCOLS)}, or auto)"
            )
        if self.error_namespace not in ERROR_NAMESPACES:
            raise ConfigurationError(
                f"error_namespace: {self.error_namespace!r} is not one of {', '.join(ERROR_NAMESPACES)}"
            )
        if self.parity not in PARITIES:
            raise ConfigurationError(f"parity: {self.parity!r} is not one of N, E, O")
        if not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ConfigurationError(f"baudrate: {self.baudrate!r} is not a positive integer")
        if self.stopbits not in (1, 2):
            raise ConfigurationError(f"stopbits: {self.stopbits!r} is not 1 or 2")
        if self.bytesize not in (7, 8):
            raise ConfigurationError(f"bytesize: {self.bytesize!r} is not 7 or 8")
        if not isinstance(self.unit, int) or not 1 <= self.unit <= 247:
            raise ConfigurationError(f"unit: {self.unit!r} is not a Modbus unit id (1..247)")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(f"retries: {self.retries!r} is not a count")
        for name in ("timeout", "command_timeout", "busy_timeout", "busy_poll", "backoff_initial",
                     "backoff_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{name}: {value!r} is not a positive number of seconds")
        if not isinstance(self.sync_clock, bool):
            raise ConfigurationError(f"sync_clock: {self.sync_clock!r} is not true or false")
        if not isinstance(self.publish_interval, int | float) or self.publish_interval < 0:
            raise ConfigurationError(f"publish_interval: {self.publish_interval!r} is negative")
