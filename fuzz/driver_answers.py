"""Fuzz target: the driver's parsing of what a meter answers, for every protocol in driver/protocols.

Two layers, as the driver has them:

- protocol (first byte < 0x80, protocol number first byte % 5): a protocol object of that model on a
  link that answers every read from the input. Each read takes a byte: below 12 the meter answers a
  Modbus exception (MeterExceptionError) or nothing (CommunicationError), else the registers come
  from the next 2 x count bytes (zeros past the end); each write takes a byte the same way. An exhausted
  input answers nothing. probe() and identify() run first, then up to 8 operations by the next bytes:
  read_dataset, open_transaction, start, stop, close_all, fetch. The link keeps the promise the real
  ModbusLink keeps (exactly the registers asked for, or a documented error); everything the protocol
  decodes from them is fuzzed.
- frame (first byte >= 0x80): the real ModbusLink (FrameWaitingSerialClient, pymodbus's RTU framer)
  on a serial port whose answer to one request is the rest of the input. A result must come from a
  well-formed answer in those bytes: a read's registers from a CRC-correct FC03/FC04 frame of unit 1
  with exactly those words, an exception's code from a CRC-correct exception frame.

Crashes: any exception that is not a DriverError (docs/errors.md), and a broken promise above (Finding).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import atheris

from fuzz.common import Finding, main

with atheris.instrument_imports(include=["driver", "pymodbus"]):
    from pymodbus.framer.rtu import FramerRTU

    import driver.modbus_link as modbus_link
    from driver.codec import bytes_to_registers, encode_string, registers_to_bytes
    from driver.config import DriverConfig
    from driver.errors import CommunicationError, DriverError, MeterExceptionError
    from driver.protocol import MeterProtocol
    from driver.protocols import PROTOCOLS
    from driver.types import (
        OCMFIdentificationFlags,
        OCMFIdentificationLevel,
        OCMFIdentificationType,
        OCMFUserIdentificationStatus,
        TransactionReq,
    )

TARGET = "driver_answers"
logging.disable(logging.CRITICAL)  # a fuzzed meter reboots or loses its clock at every other read
MODELS = tuple(PROTOCOLS)
UNIT = 1
MAX_OPERATIONS = 8
OPERATIONS = ("read_dataset", "open_transaction", "start", "stop", "close_all", "fetch")
TRANSACTION_ID = "fuzz-tx-1"
REQUEST = TransactionReq(
    evse_id="DE*ABC*E1234", transaction_id=TRANSACTION_ID,
    identification_status=OCMFUserIdentificationStatus.ASSIGNED,
    identification_flags=[OCMFIdentificationFlags.RFID_PLAIN],
    identification_type=OCMFIdentificationType.ISO14443,
    identification_level=OCMFIdentificationLevel.VERIFIED, identification_data="04A1B2C3", tariff_text="T1",
)


def crc(body: bytes) -> bytes:
    """The RTU CRC of body, as it goes on the wire."""
    return FramerRTU.compute_CRC(body).to_bytes(2, "big")


class Reader:
    """The input, consumed front to back."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int | None:
        if self.at >= len(self.data):
            return None
        self.at += 1
        return self.data[self.at - 1]

    def take(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += len(chunk)
        return chunk


# --- protocol layer -------------------------------------------------------------------------------

class FuzzedLink:
    """A RegisterLink whose meter answers from the input."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def _outcome(self, what: str, address: int) -> None:
        kind = self.reader.byte()
        if kind is None or 6 <= kind < 12:
            raise CommunicationError(f"no answer to {what} at 0x{address:04X}")
        if kind < 6:
            raise MeterExceptionError(kind + 1, f"meter answered exception {kind + 1:02d} to {what}")

    def _read(self, what: str, address: int, count: int) -> list[int]:
        if not 1 <= count:
            raise Finding(f"the protocol asked for {count} registers at 0x{address:04X}")
        self._outcome(what, address)
        words = bytes_to_registers(self.reader.take(2 * count))
        return words + [0] * (count - len(words))

    def read_holding(self, address: int, count: int) -> list[int]:
        return self._read("read", address, count)

    def read_input(self, address: int, count: int) -> list[int]:
        return self._read("input read", address, count)

    def write(self, address: int, values: list[int]) -> None:
        self.write_multiple(address, values)

    def write_multiple(self, address: int, values: list[int]) -> None:
        if not values or any(not 0 <= v <= 0xFFFF for v in values):
            raise Finding(f"the protocol wrote {values!r} at 0x{address:04X}: not register words")
        self._outcome("write", address)


class Services:
    """What the policy offers a protocol, doing nothing: errors noted, no pauses."""

    def __init__(self, model: str) -> None:
        self.config = DriverConfig(port="/dev/null", model=model, busy_timeout=10.0)
        self.errors: list[tuple[object, str]] = []

    def raise_error(self, kind: object, message: str) -> None:
        self.errors.append((kind, message))

    def clear_error(self, kind: object) -> None:
        pass

    def pause(self, seconds: float, what: str) -> None:
        pass

    def wait(self, seconds: float) -> bool:
        return False


def run_protocol(model: str, reader: Reader) -> None:
    """probe, identify, then the operations the input names, on one protocol object."""
    cls = PROTOCOLS[model]
    link = FuzzedLink(reader)
    try:
        cls.probe(link)
    except DriverError:
        pass
    protocol: MeterProtocol = cls(link, Services(model))  # type: ignore[arg-type]
    protocol.identify()
    for _ in range(MAX_OPERATIONS):
        choice = reader.byte()
        if choice is None:
            return
        run_operation(protocol, OPERATIONS[choice % len(OPERATIONS)])


def run_operation(protocol: Any, operation: str) -> None:
    """One of OPERATIONS on the protocol, with the fixed request and id; a documented error is an answer."""
    try:
        if operation == "start":
            protocol.start(REQUEST)
        elif operation in ("stop", "fetch"):
            getattr(protocol, operation)(TRANSACTION_ID)
        else:
            getattr(protocol, operation)()
    except DriverError:
        pass


# --- frame layer ----------------------------------------------------------------------------------

class _Clock:
    """modbus_link's clock: real time, until the port runs dry; then every deadline has passed, as it
    would have after the timeout with nothing more coming (no real waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


class FuzzedPort:
    """A serial port (pyserial's interface as FrameWaitingSerialClient uses it) whose answer to the
    request written is `answer`, in reads of the size asked for."""

    def __init__(self, answer: bytes, clock: _Clock) -> None:
        self.answer = answer
        self.clock = clock
        self.sent = b""

    @property
    def in_waiting(self) -> int:
        return len(self.answer) if self.sent else 0

    def write(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self.sent:
            return b""
        chunk, self.answer = self.answer[:size], self.answer[size:]
        if not chunk:
            self.clock.offset += 3600.0
        return chunk

    def close(self) -> None:
        pass


class FrameBench:
    """One ModbusLink for every input (a socket:// port, so the client reads instead of select()ing)."""

    def __init__(self) -> None:
        self.clock = _Clock()
        modbus_link.time = self.clock  # type: ignore[assignment]  # undone by close()
        self.link = modbus_link.ModbusLink("socket://fuzz:1", unit=UNIT, baudrate=115200, parity="N",
                                           stopbits=1, bytesize=8, timeout=0.05, retries=0)

    def close(self) -> None:
        """Give modbus_link its clock back and close the link (tests call it)."""
        modbus_link.time = time
        self.link.close()

    def run(self, reader: Reader) -> None:
        op = (reader.byte() or 0) % 4
        address = int.from_bytes(reader.take(2).ljust(2, b"\0"), "big")
        count_byte = reader.byte() or 0
        count = (1 + count_byte % 125, 1 + count_byte % 125, 1, 1 + count_byte % 123)[op]
        values: list[int] = []
        if op >= 2:
            values = bytes_to_registers(reader.take(2 * count).ljust(2 * count, b"\0"))
        answer = reader.data[reader.at :]
        port = FuzzedPort(answer, self.clock)
        self.link._client.socket = port  # type: ignore[assignment]
        fc = (3, 4, 6, 16)[op]
        try:
            if op == 0:
                result = self.link.read_holding(address, count)
            elif op == 1:
                result = self.link.read_input(address, count)
            elif op == 2:
                self.link.write(address, values)
                result = None
            else:
                self.link.write_multiple(address, values)
                result = None
        except MeterExceptionError as exc:
            frame = bytes([UNIT, fc | 0x80, exc.code])
            if frame + crc(frame) not in answer:
                raise Finding(f"exception {exc.code} to FC{fc:02d} taken from {answer.hex()}, which holds "
                              "no such exception frame") from None
            raise
        if result is not None:
            if len(result) != count:
                raise Finding(f"FC{fc:02d} of {count} registers returned {len(result)}")
            body = bytes([UNIT, fc, 2 * count]) + registers_to_bytes(result)
            if body + crc(body) not in answer:
                raise Finding(f"FC{fc:02d} of {count} registers returned {result} from {answer.hex()}, "
                              "which holds no such answer frame")
        elif not any(answer[i : i + 2] == bytes([UNIT, fc])
                     for i in range(len(answer) - 7)):
            raise Finding(f"FC{fc:02d} write taken as done from {answer.hex()}, which holds no answer to it")


FRAMES: FrameBench | None = None


def test_one(data: bytes) -> None:
    """One input: a protocol's decoding of fuzzed registers, or the link's parsing of a fuzzed answer."""
    global FRAMES
    if not data:
        return
    reader = Reader(data[1:])
    if data[0] & 0x80:
        if FRAMES is None:
            FRAMES = FrameBench()
        FRAMES.run(reader)
    else:
        run_protocol(MODELS[data[0] % len(MODELS)], reader)


def _answer(fc: int, words: list[int]) -> bytes:
    body = bytes([UNIT, fc, 2 * len(words)]) + registers_to_bytes(words)
    return body + crc(body)


def seeds() -> Iterator[bytes]:
    """Inputs that get each protocol past identify (its identity registers as the simulator's profile
    has them, read back from a real meter-sim), and a few answer frames of each kind."""
    from fuzz.driver_answers_seeds import protocol_seeds

    yield from protocol_seeds()
    for op, fc in ((0, 3), (1, 4)):
        for count in (1, 2, 8, 125):
            words = [(0x4142 + i) & 0xFFFF for i in range(count)]
            yield bytes([0x80, op, 0, 0, count - 1]) + _answer(fc, words)
        yield bytes([0x80, op, 0, 0, 0]) + bytes([UNIT, fc | 0x80, 2]) + crc(bytes([UNIT, fc | 0x80, 2]))
    single = bytes([UNIT, 6, 0, 1, 0, 7])
    yield bytes([0x80, 2, 0, 1, 0, 0, 7]) + single + crc(single)
    multiple = bytes([UNIT, 16, 0, 1, 0, 2])
    yield bytes([0x80, 3, 0, 1, 1, 0, 7, 0, 8]) + multiple + crc(multiple)
    text = encode_string("x", 1)
    yield bytes([0x80, 0, 0, 0, 0]) + _answer(3, text)[:-1]  # cut short


def expected() -> tuple[type[BaseException], ...]:
    return (DriverError,)


if __name__ == "__main__":
    main(TARGET, test_one, expected(), seeds)
    sys.exit(0)

