"""The serial Modbus RTU link to one meter: pymodbus underneath, the driver's errors on top.

One lock serialises every request, so the publisher thread and the commands can share the port.
A missing answer (timeout, bad CRC, port gone) becomes CommunicationError; a Modbus exception
answer becomes MeterExceptionError with its code. pymodbus reopens the port on the next request
after the port failed, which is what lets the driver carry on after a link loss.
"""

from __future__ import annotations

import logging
import os
import select
import stat
import threading
import time

import serial
from pymodbus import FramerType, ModbusException
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ExceptionResponse

from driver.errors import CommunicationError, ConfigurationError, MeterExceptionError

log = logging.getLogger(__name__)
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
MAX_REGISTERS_PER_READ = 125  # the Modbus limit for FC03/FC04
MAX_REGISTERS_PER_WRITE = 123  # the Modbus limit for FC16
MODBUS_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
}

# pymodbus logs every timeout at ERROR; the driver reports them itself as CommunicationFault.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def is_url(port: str) -> bool:
    """True for a pyserial URL (rfc2217://, socket://, loop://) rather than a device path."""
    return "://" in port


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


def rtu_answer_length(head: bytes) -> int | None:
    """Length of the RTU answer that starts with `head`, once the head tells it (None: not yet, or never).

    Exception answers are 5 bytes, FC03/FC04 answers 5 plus their byte count, FC06/FC16 answers 8."""
    if len(head) < 2:
        return None
    function_code = head[1]
    if function_code & 0x80:
        return 5
    if function_code in (0x03, 0x04):
        return 5 + head[2] if len(head) >= 3 else None
    if function_code in (0x06, 0x10):
        return 8
    return None


def whole_answers(data: bytes) -> int:
    """How many whole RTU answers `data` holds from its start (two, when a late one came with another)."""
    count = 0
    while (expected := rtu_answer_length(data)) is not None and len(data) >= expected:
        data, count = data[expected:], count + 1
    return count


class FrameWaitingSerialClient(ModbusSerialClient):
    """pymodbus's serial client, waiting for an answer by its RTU length instead of by sleeping.

    pymodbus samples the port every max(4 characters, 1 ms) and needs two equal samples to see that
    an answer ended: about 2 ms a request, more than the answer's own wire time at 115200 baud. This
    client blocks in select() until bytes come and returns as soon as the answer is as long as its
    head says; an answer whose length cannot be told ends at 3.5 characters (at least 1 ms) of
    silence, as RTU defines a frame's end. The framer still checks the CRC of whatever comes.

    A pyserial URL (rfc2217://host:port, socket://host:port: a meter behind ser2net) has no descriptor
    select() can wait on with an exact byte count (rfc2217's bytes pass through a reader thread,
    socket://'s in_waiting says only 0 or 1), so there the port itself waits: it is opened with a read
    timeout of one silence interval and read for the bytes the answer still lacks, until the answer is
    complete, the silence ends an answer of unknown length, or the request's deadline passes."""

    def connect(self) -> bool:
        """Open the port; a URL without the write timeout pymodbus sets, which RFC 2217 refuses."""
        if self.socket or not is_url(self.comm_params.host):
            return super().connect()
        params = self.comm_params
        try:
            self.socket = serial.serial_for_url(
                params.host, baudrate=params.baudrate, bytesize=params.bytesize, parity=params.parity,
                stopbits=params.stopbits, timeout=self._silence(),
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            log.info("cannot open %s: %s", params.host, exc)
            self.socket = None
        return self.socket is not None

    #: an owed answer is waited for until this many response timeouts after the last request went out: a
    #: late answer to a request and then its repeat's answer within the repeat's own timeout. More would
    #: only lengthen every recovery from a dead link, whose answers never come.
    LATE_ANSWER_TIMEOUTS = 1.0

    _sent = 0  # requests sent since the last one whose answers were all accounted for
    _answered = 0  # whole answers received for them
    _last_sent = 0.0
    _last_request = b""

    def send(self, request: bytes, addr: tuple | None = None) -> int:
        """Send a request once no earlier answer is owed, dropping the late ones, so a late answer is not
        taken for this request's.

        RTU answers carry no request id. After a timeout the meter may still answer, and that answer
        would pair with the next request: a meter that stalled answers the request and its repeat
        back to back, and every later request would get its predecessor's answer (finding 15,
        docs/reliability.md). So a new request waits until the answers owed have come, or until
        LATE_ANSWER_TIMEOUTS response timeouts have passed since the last request went out. A request
        that got nothing owes its answer; one that got part of it (cut by a link drop) owes none.
        A repeat of the same request does not wait: an answer to the first is an answer to it."""
        if self.socket is not None and request:
            owed = self._sent - self._answered
            repeat = owed > 0 and request == self._last_request
            stale = b""
            try:
                if owed > 0 and not repeat:
                    deadline = self._last_sent + self.LATE_ANSWER_TIMEOUTS * self.comm_params.timeout_connect
                    self._drain(owed, deadline)
                while waiting := self._in_waiting():
                    stale += self.socket.read(waiting)
            except OSError:
                self.close()
                raise ConnectionException(str(self)) from None
            if repeat:
                self._answered += whole_answers(stale)
            else:
                self._sent, self._answered = 0, 0
            self._last_request = bytes(request)
        sent = super().send(request, addr)
        self._sent += 1
        self._last_sent = time.monotonic()
        return sent

    def _drain(self, owed: int, deadline: float) -> None:
        """Read and drop up to `owed` answers, each as recv() reads one, until the deadline."""
        receive = self._recv_by_reading if is_url(self.comm_params.host) else self._recv_by_select
        while owed > 0:
            data = receive(deadline)
            if not data:
                return
            owed -= max(whole_answers(data), 1)

    def _silence(self) -> float:
        return max(3.5 * self._t0, 0.001)

    def recv(self, size: int | None) -> bytes:
        """Read one answer (size None), or exactly what pymodbus asks for."""
        if size is not None or self.socket is None:
            return super().recv(size)
        deadline = time.monotonic() + self.comm_params.timeout_connect
        try:
            if is_url(self.comm_params.host):
                data = self._recv_by_reading(deadline)
            else:
                data = self._recv_by_select(deadline)
        except OSError:  # serial.SerialException is an OSError: the port or the connection went away
            self.close()
            raise ConnectionException(str(self)) from None
        # an answer cut short (a link drop, noise) will not come whole any more: it is owed no longer
        self._answered += max(whole_answers(data), 1 if data else 0)
        return data

    def _recv_by_select(self, deadline: float) -> bytes:
        assert self.socket is not None
        fd = self.socket.fileno()
        silence = self._silence()
        data = b""
        while True:
            expected = rtu_answer_length(data)
            if expected is not None and len(data) >= expected:
                return data
            wait = deadline - time.monotonic()
            if data and expected is None:
                wait = min(wait, silence)
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return data  # the timeout, or silence after an answer of unknown length
            data += self.socket.read(self._in_waiting() or 1)

    def _recv_by_reading(self, deadline: float) -> bytes:
        """The URL port's own read, with its timeout of one silence interval, until the answer is whole."""
        assert self.socket is not None
        data = b""
        while True:
            expected = rtu_answer_length(data)
            if expected is not None and len(data) >= expected:
                return data
            if time.monotonic() >= deadline:
                return data
            want = expected - len(data) if expected is not None else max(self._in_waiting(), 1)
            chunk = self.socket.read(want)
            if not chunk and data and expected is None:
                return data  # silence after an answer of unknown length
            data += chunk


class ModbusLink:
    """Register reads (FC03, FC04) and writes (FC06, FC16) to one unit on one serial port, in chunks no
    longer than the meter takes (`max_read`, `max_write`: some meters take less than Modbus allows)."""

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
        max_read: int = MAX_REGISTERS_PER_READ,
        max_write: int = MAX_REGISTERS_PER_WRITE,
    ) -> None:
        if not 1 <= max_read <= MAX_REGISTERS_PER_READ or not 1 <= max_write <= MAX_REGISTERS_PER_WRITE:
            raise ConfigurationError(f"registers a request: read {max_read}, write {max_write} is outside "
                                     f"Modbus's 1..{MAX_REGISTERS_PER_READ} / 1..{MAX_REGISTERS_PER_WRITE}")
        self.max_read, self.max_write = max_read, max_write
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
        self._client = FrameWaitingSerialClient(
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

    def read_holding(self, address: int, count: int) -> list[int]:
        """Read holding registers (FC03), in chunks of at most max_read."""
        return self._read(0x03, address, count)

    def read_input(self, address: int, count: int) -> list[int]:
        """Read input registers (FC04), in chunks of at most max_read."""
        return self._read(0x04, address, count)

    def _read(self, function_code: int, address: int, count: int) -> list[int]:
        client = self._client
        call = client.read_holding_registers if function_code == 0x03 else client.read_input_registers
        what = "read" if function_code == 0x03 else "input read"
        registers: list[int] = []
        while count > 0:
            chunk = min(count, self.max_read)
            response = self._execute(
                what, address, function_code,
                lambda a=address, c=chunk: call(a, count=c, device_id=self.unit),
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
        """Write one register (FC06) or several (FC16, in chunks of at most max_write)."""
        if len(values) == 1:
            self._execute(
                "write",
                address,
                0x06,
                lambda: self._client.write_register(address, values[0], device_id=self.unit),
            )
            return
        self.write_multiple(address, values)

    def write_multiple(self, address: int, values: list[int]) -> None:
        """Write with FC16 only, even a single register (meters such as Carlo Gavazzi's know no FC06)."""
        for start in range(0, len(values), self.max_write):
            chunk = values[start : start + self.max_write]
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
        answered = getattr(response, "function_code", None)
        is_exception = isinstance(response, ExceptionResponse) or response.isError()  # type: ignore[attr-defined]
        if is_exception and answered is not None and answered & 0x7F != function_code:
            # An exception answer to another function (an FC03 exception to a write) answers another request.
            raise CommunicationError(
                f"unit {self.unit} on {self.port} answered an exception of function code {answered & 0x7F} "
                f"to {what} at 0x{address:04X}, which used function code {function_code}"
            )
        if is_exception:
            code = getattr(response, "exception_code", 0)
            text = MODBUS_EXCEPTIONS.get(code, "unknown exception")
            raise MeterExceptionError(
                code, f"meter answered exception {code:02d} ({text}) to {what} at 0x{address:04X}"
            )
        if answered != function_code:
            # An answer to another function (e.g. FC04 input registers to an FC03 read) carries other data.
            raise CommunicationError(
                f"unit {self.unit} on {self.port} answered function code {answered} to {what} at "
                f"0x{address:04X}, which used function code {function_code}"
            )
        return response
