"""Modbus RTU server: pymodbus's ModbusSerialServer with one SimDevice a meter, its action hook serving
the live register map.

pymodbus is made to behave like a meter on a bus: only the function codes of the profile's tables are
known (03/06/16 for holding registers, 04 for input registers; every other function code in a frame with a
good CRC gets exception 01), a frame for another unit id or arriving while the meter
has no power gets no answer, a bad CRC or garbage gets silence.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .errors import PortError, SimulatorError
from .profile import Profile
from .registers import ModbusException, RegisterMap

OPEN_TIMEOUT_S = 3.0
SILENCE_S = 0.05  # longer than 3.5 characters at any usual baud rate, and than a USB adapter's latency
Resolver = Callable[[int], RegisterMap | None]


class SilenceResetFramer(FramerRTU):
    """RTU framer that forgets a partial frame after a silence, as a meter's UART does after 3.5 characters.

    pymodbus keeps a partial frame (garbage that looks like the start of a long request) until enough
    bytes arrive, swallowing the requests behind it. Here bytes left over from before a silence of
    SILENCE_S are dropped before the new bytes are framed.
    """

    def __init__(self, decoder: DecodePDU) -> None:
        super().__init__(_MeterDecoder(decoder))  # type: ignore[arg-type]
        self._pending = 0
        self._last_rx = 0.0

    def handleFrame(self, data: bytes, exp_devid: int, exp_tid: int) -> tuple[int, ModbusPDU | None]:
        """Frame `data` (the whole receive buffer), first dropping a stale partial frame."""
        now = time.monotonic()
        stale = self._pending if now - self._last_rx >= SILENCE_S and self._pending <= len(data) else 0
        self._last_rx = now
        self._pending = 0  # stays 0 when a ModbusIOException empties the buffer
        used, pdu = super().handleFrame(data[stale:], exp_devid, exp_tid)
        used += stale
        self._pending = len(data) - used
        return used, pdu


class _IllegalFunction(ModbusPDU):
    """A request with a function code the meter does not implement: answered with exception 01.

    Its length is unknown, so the frame is everything received (a pty delivers a frame in one piece).
    """

    @classmethod
    def calculateRtuFrameSize(cls, data: bytes) -> int:
        """The whole buffer is taken as the frame; its CRC decides whether it is one."""
        return len(data)

    def decode(self, data: bytes) -> None:
        """Nothing to decode."""

    async def datastore_update(self, context: object, device_id: int) -> ModbusPDU:
        """Exception 01 whatever the device."""
        return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_FUNCTION)


class _IllegalValue(ModbusPDU):
    """A request of a function the meter has whose fields break Modbus's limits (a read of 0 or more than
    125 registers, a write of more than 123 or a byte count that disagrees): exception 03.

    pymodbus's decoder refuses such a request, and its server then answers exception 01 under function
    code 0 (`01 80 01`), which no meter sends.
    """

    def __init__(self, function_code: int) -> None:
        super().__init__()
        self.function_code = function_code

    async def datastore_update(self, context: object, device_id: int) -> ModbusPDU:
        """Exception 03 whatever the device."""
        return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_VALUE)


class _MeterDecoder:
    """pymodbus's request decoder, deciding as a meter does what the requests it refuses are.

    A function code with bit 7 set (0x80-0xFF) is a request's too: pymodbus takes it for an exception
    answer (a 5-byte frame, then answered 04 as its datastore cannot serve one, or not at all when the
    frame is longer); a meter answers exception 01, as for any function it lacks. A request of a known
    function that does not decode is answered exception 03 (_IllegalValue).
    """

    def __init__(self, decoder: DecodePDU) -> None:
        self._decoder = decoder

    def __getattr__(self, name: str) -> object:
        return getattr(self._decoder, name)

    def lookupPduClass(self, data: bytes) -> type[ModbusPDU] | None:
        """The request class that sizes the frame starting at data (unit id, function code, ...)."""
        if data[1] & 0x80:
            return _IllegalFunction
        return self._decoder.lookupPduClass(data)

    def decode(self, frame: bytes) -> ModbusPDU | None:
        """The request in frame (function code, data); None when the function code is none at all (0)."""
        if frame[0] & 0x80:
            pdu = _IllegalFunction()
            pdu.function_code = frame[0]
            return pdu
        pdu = self._decoder.decode(frame)
        if pdu is None and self._decoder.pdu_table.get(frame[0], (None,))[0] is not None:
            return _IllegalValue(frame[0])
        return pdu


def _illegal_function_classes(supported: tuple[int, ...]) -> list[type[ModbusPDU]]:
    return [
        type(f"IllegalFunction{code:02X}", (_IllegalFunction,), {"function_code": code})
        for code in range(1, 0x80)
        if code not in supported
    ]


def _direct_read_classes(server: MeterServer) -> list[type[ModbusPDU]]:
    """FC03/FC04 requests (those the profile has) answered from the register map straight away.

    pymodbus's own path for a read goes through its simulator runtime: a per-register flag check of the
    SimData block, then the action hook, then a copy into and a slice out of the block. The map checks
    addresses itself, so these PDUs skip all three; the answer is the same (words, exception 02 for an
    address the map does not have, silence for a unit not on the bus)."""

    def make(code: int) -> type[ModbusPDU]:
        response = ReadHoldingRegistersResponse if code == 3 else ReadInputRegistersResponse

        async def datastore_update(self: ModbusPDU, context: object, device_id: int) -> ModbusPDU:
            values = await server.read_values(device_id, code, self.address, self.count)  # type: ignore[attr-defined]
            if isinstance(values, ExcCodes):
                return ExceptionResponse(code, values)
            return response(registers=values, dev_id=device_id, transaction_id=self.transaction_id)

        return type(f"DirectRead{code:02X}", (ReadHoldingRegistersRequest,),
                    {"function_code": code, "datastore_update": datastore_update})

    return [make(code) for code in (3, 4) if code in server.functions]


class MeterServer:
    """Serves the meters at `units` on one serial port (a pty slave path or a real device)."""

    def __init__(
        self,
        port: str,
        profile: Profile,
        units: list[int],
        resolve: Resolver,
        before_access: Callable[[], None] = lambda: None,
        answer_delay: Callable[[], float] = lambda: 0.0,
        baudrate: int = 19200,
        parity: str = "E",
        stopbits: int = 1,
    ) -> None:
        self.port = port
        self.units = list(units)
        self.resolve = resolve
        self.before_access = before_access
        self.answer_delay = answer_delay
        self.requests = 0
        self.failures = 0
        self.functions = profile.function_codes
        end = max(r.end for r in profile.registers)
        devices = [
            SimDevice(0, simdata=[SimData(0, count=1, datatype=DataType.REGISTERS)], action=self._ignore)
        ]
        for unit in self.units:
            devices.append(
                SimDevice(
                    unit,
                    simdata=[SimData(0, count=end, values=0, datatype=DataType.REGISTERS)],
                    action=self._action_for(unit),
                )
            )
        self._devices = devices
        self._baudrate, self._parity, self._stopbits = baudrate, parity, stopbits
        self._server: ModbusSerialServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the port and serve (returns once serving has started)."""
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self._server = ModbusSerialServer(
            self._devices,
            framer=FramerType.RTU,
            port=self.port,
            baudrate=self._baudrate,
            parity=self._parity,
            stopbits=self._stopbits,
            ignore_missing_devices=True,
            trace_packet=self._trace_packet,
            custom_pdu=_illegal_function_classes(self.functions) + _direct_read_classes(self),
        )
        self._server.framer = SilenceResetFramer  # used for the connection serve_forever makes
        self._task = asyncio.create_task(self._server.serve_forever())
        deadline = asyncio.get_running_loop().time() + OPEN_TIMEOUT_S
        while not self._server.active_connections:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise PortError(f"cannot serve Modbus on {self.port}: the port did not open")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and close the port."""
        if self._server is not None:
            await self._server.shutdown()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Silence every answer for a unit we do not serve or whose meter has no power."""
        if sending and data and (data[0] not in self.units or self.resolve(data[0]) is None):
            return b""
        return data

    async def _ignore(self, *_args: object) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_FUNCTION  # unit 0 / unknown units: the answer is silenced anyway

    def _action_for(self, unit: int) -> Callable[..., Awaitable[ExcCodes | None]]:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            return await self._serve(
                unit, function_code, start_address, address, count, registers, set_values
            )

        return action

    async def read_values(
        self, unit: int, function_code: int, address: int, count: int
    ) -> list[int] | ExcCodes:
        """A read for `unit` (FC03/FC04 the profile has): the words or the exception; NoSuchIdException
        (pymodbus then sends nothing) for a unit not on this bus, as for a device it does not know."""
        if unit not in self.units:
            raise NoSuchIdException(f"unit {unit} is not on this bus")
        registers = [0] * count
        outcome = await self._serve(unit, function_code, address, address, count, registers, None)
        return registers if outcome is None else outcome

    async def _serve(
        self,
        unit: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if function_code not in self.functions:
            return ExcCodes.ILLEGAL_FUNCTION
        delay = self.answer_delay()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            self.before_access()
            regmap = self.resolve(unit)
            if regmap is None:
                return ExcCodes.DEVICE_BUSY  # no power: the answer is silenced by _trace_packet
            if set_values is None:
                result = regmap.read(address, count, function_code)
                if isinstance(result, ModbusException):
                    return ExcCodes(int(result))
                registers[address - start_address : address - start_address + count] = result
                return None
            outcome = regmap.write(address, [int(v) for v in set_values], function_code)
            return None if outcome is None else ExcCodes(int(outcome))
        except SimulatorError as exc:
            self.failures += 1
            print(f"meter-sim: unit {unit}: {exc}", file=sys.stderr, flush=True)
            return ExcCodes.DEVICE_FAILURE
        except Exception as exc:  # a bug: report it, answer 04 as a meter with an internal fault would
            self.failures += 1
            print(
                f"meter-sim: unit {unit}: internal error {type(exc).__name__}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            return ExcCodes.DEVICE_FAILURE
