"""The serial Modbus RTU link to one meter: pymodbus underneath, the driver's errors on top.

One lock serialises every request, so the publisher thread and the commands can share the port.
A missing answer (timeout, bad CRC, port gone) becomes CommunicationError; a Modbus exception
answer becomes MeterExceptionError with its code. pymodbus reopens the port on the next request
after the port failed, which is what lets the driver carry on after a link loss.
"""

from __future__ import annotations

import logging
import os
import stat
import threading

import serial
from pymodbus import FramerType, ModbusException
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse

from driver.errors import CommunicationError, ConfigurationError, MeterExceptionError
from driver.registers import MAX_REGISTERS_PER_READ, MAX_REGISTERS_PER_WRITE, MODBUS_EXCEPTIONS

log = logging.getLogger(__name__)
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}

# pymodbus logs every timeout at ERROR; the driver reports them itself as CommunicationFault.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def check_port(port: str) -> None:
    """Refuse a device path that does not exist, naming it (pyserial URLs are left to pyserial)."""
    if not port:
        raise ConfigurationError("port: no serial port given")
    if "://" not in port and not os.path.exists(port):
        raise ConfigurationError(f"port: serial port {port} does not exist")


def is_pseudo_terminal(port: str) -> bool:
    """True for a Unix98 pty slave (character device, major 136..143), as a simulated meter serves."""
    if "://" in port:
        return False
    try:
        info = os.stat(port)
    except OSError:
        return False
    return stat.S_ISCHR(info.st_mode) and 136 <= os.major(info.st_rdev) <= 143


class ModbusLink:
    """Holding-register reads and writes to one unit on one serial port."""

    def __init__(
        self,
        port: str,
        *,
        unit: int,
        baudrate: int,
        parity: str,
        stopbits: int,
        bytesize: int,
        timeout: float,
        retries: int,
    ) -> None:
        self.port = port
        self.unit = unit
        self._timeout = timeout
        self._attempts = retries + 1
        self._lock = threading.Lock()
        if parity != "N" and is_pseudo_terminal(port):
            # A pty carries bytes, not bits: parity means nothing there, and some kernels refuse PARENB
            # on a pty with EINVAL. The meter on the far side sees the same bytes either way.
            log.info("%s is a pseudo-terminal: parity %s not applied", port, parity)
            parity = "N"
        self._client = ModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            parity=PARITIES[parity],
            stopbits=stopbits,
            bytesize=bytesize,
            timeout=timeout,
            retries=retries,
        )

    def open(self) -> None:
        """Open the port; ConfigurationError naming it when it does not exist or will not open."""
        check_port(self.port)
        with self._lock:
            try:
                opened = self._client.connect()
            except (serial.SerialException, OSError, ValueError) as exc:
                raise ConfigurationError(f"port: cannot open serial port {self.port}: {exc}") from None
        if not opened:
            raise ConfigurationError(f"port: cannot open serial port {self.port}")

    def close(self) -> None:
        """Close the port; safe to call twice."""
        with self._lock:
            self._client.close()

    def read(self, address: int, count: int) -> list[int]:
        """Read holding registers (FC03), in chunks the protocol allows."""
        registers: list[int] = []
        while count > 0:
            chunk = min(count, MAX_REGISTERS_PER_READ)
            response = self._execute(
                "read",
                address,
                0x03,
                lambda a=address, c=chunk: self._client.read_holding_registers(
                    a, count=c, device_id=self.unit
                ),
            )
            if len(response.registers) != chunk:
                raise CommunicationError(
                    f"meter answered {len(response.registers)} registers at 0x{address:04X}, asked {chunk}"
                )
            registers += response.registers
            address += chunk
            count -= chunk
        return registers

    def write(self, address: int, values: list[int]) -> None:
        """Write one register (FC06) or several (FC16, in chunks the protocol allows)."""
        if len(values) == 1:
            self._execute(
                "write",
                address,
                0x06,
                lambda: self._client.write_register(address, values[0], device_id=self.unit),
            )
            return
        for start in range(0, len(values), MAX_REGISTERS_PER_WRITE):
            chunk = values[start : start + MAX_REGISTERS_PER_WRITE]
            at = address + start
            self._execute(
                "write",
                at,
                0x10,
                lambda a=at, c=chunk: self._client.write_registers(a, c, device_id=self.unit),
            )

    def _execute(self, what: str, address: int, function_code: int, request: object) -> object:
        with self._lock:
            try:
                response = request()  # type: ignore[operator]
            except ModbusIOException:
                raise CommunicationError(
                    f"no answer from unit {self.unit} on {self.port} to {what} at 0x{address:04X} "
                    f"({self._attempts} attempt{'s' if self._attempts > 1 else ''} of {self._timeout:g} s)"
                ) from None
            except (ModbusException, serial.SerialException, OSError) as exc:
                raise CommunicationError(
                    f"no answer from unit {self.unit} on {self.port} to {what} at 0x{address:04X}: {exc}"
                ) from None
        if isinstance(response, ExceptionResponse) or response.isError():  # type: ignore[attr-defined]
            code = getattr(response, "exception_code", 0)
            text = MODBUS_EXCEPTIONS.get(code, "unknown exception")
            raise MeterExceptionError(
                code, f"meter answered exception {code:02d} ({text}) to {what} at 0x{address:04X}"
            )
        answered = getattr(response, "function_code", None)
        if answered != function_code:
            # An answer to another function (e.g. FC04 input registers to an FC03 read) carries other data.
            raise CommunicationError(
                f"unit {self.unit} on {self.port} answered function code {answered} to {what} at "
                f"0x{address:04X}, which used function code {function_code}"
            )
        return response
