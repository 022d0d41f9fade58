"""Findings of fuzz/driver_answers.py, replayed through the target's test_one under its crash rule
(a DriverError is the documented answer to bad input; anything else, or a Finding, fails)."""

import math
from pathlib import Path

import pytest

from driver.codec import registers_to_bytes
from driver.errors import CommunicationError, DriverError, MeterExceptionError
from driver.protocols import iskra
from fuzz import driver_answers as target

CRASHES = Path(__file__).parent / "crashes" / "driver_answers"
ANSWER = bytes([0xFF])


@pytest.fixture(scope="module", autouse=True)
def frame_bench():
    yield
    if target.FRAMES is not None:
        target.FRAMES.close()
        target.FRAMES = None  # the kind byte of a read or write the meter answers


def words(*values: int) -> bytes:
    return ANSWER + registers_to_bytes(list(values))


def iskra_dataset(import_exponent: int, export_exponent: int = 0, counter: int = 12345) -> bytes:
    """An Iskra input: identify (model, serial, public key, clock set), then one read_dataset whose
    energy exponents (input registers 414, 415, s16) are the ones given."""
    data = bytes([target.MODELS.index(iskra.IskraProtocol.model)])
    data += ANSWER + b"WM3M4C".ljust(16, b"\0")  # probe: model (8 registers)
    data += ANSWER + b"12345678"  # probe: serial (4 registers)
    data += ANSWER + b"WM3M4C".ljust(16, b"\0") + b"12345678"  # identify: 12 registers from 1
    data += ANSWER + bytes(range(1, 65))  # public key, 32 registers
    data += words(iskra.TIME_SET)  # time status: synchronised
    data += bytes([target.OPERATIONS.index("read_dataset")])
    for block in iskra.MEASUREMENT_BLOCKS[:3]:
        data += ANSWER + bytes(2 * block.count)
    data += words(import_exponent & 0xFFFF, export_exponent & 0xFFFF)
    data += words(counter >> 16, counter & 0xFFFF, 0, 7)
    data += words(iskra.TIME_SET)
    return data


@pytest.mark.parametrize("exponents", [(32767, 0), (0, 32767), (400, 0), (0, 308)])
def test_c_iskra_energy_exponent_out_of_range_is_a_communication_error(exponents):
    """counter x 10.0 ** exponent raised OverflowError for an exponent of 32767 (s16 register), and
    gave inf (no JSON number) for one of 308 with a large counter: now CommunicationError naming the
    registers and the value."""
    protocol_input = iskra_dataset(*exponents, counter=2**31 - 1)
    target.test_one(protocol_input[:-3])  # the record stops before read_dataset's reads: fine before too
    exponent = max(exponents)
    with pytest.raises(CommunicationError, match=f"exponent {exponent}") as caught:
        protocol = iskra.IskraProtocol(target.FuzzedLink(target.Reader(protocol_input[1:])),
                                       target.Services(iskra.IskraProtocol.model))
        protocol.probe(protocol.link)
        protocol.identify()
        protocol.link.reader.byte()  # the operation byte
        protocol.read_dataset()
    assert "41" in str(caught.value)  # names input register 414 or 415
    target.test_one(protocol_input)


def test_c_iskra_usual_exponents_still_read():
    protocol = iskra.IskraProtocol(target.FuzzedLink(target.Reader(iskra_dataset(-1, 2)[1:])),
                                   target.Services(iskra.IskraProtocol.model))
    protocol.probe(protocol.link)
    protocol.identify()
    protocol.link.reader.byte()
    reading = protocol.read_dataset()
    assert math.isclose(reading.energy_Wh_import.total, 1234.5)
    assert math.isclose(reading.energy_Wh_export.total, 700.0)


@pytest.mark.parametrize("fc,op", [(6, 2), (16, 3), (3, 0), (4, 1)])
def test_an_exception_answer_of_another_function_code_is_no_answer(fc, op):
    """The link took an exception answer to another function code (01 83 02: FC03's) for its own request's
    exception: an FC06 write was reported as 'exception 02' although the meter answered another
    request's (found by the fuzzer); the same for FC16, FC03 and FC04."""
    other = 4 if fc == 3 else 3
    frame = bytes([1, other | 0x80, 2])
    data = bytes([0x80, op, 0, 1, 0, 0, 7]) + frame + target.crc(frame)
    if op < 2:
        data = bytes([0x80, op, 0, 1, 0]) + frame + target.crc(frame)
    with pytest.raises(CommunicationError, match="function code"):
        target.test_one(data)
    mine = bytes([1, fc | 0x80, 2])
    good = data[: len(data) - 5] + mine + target.crc(mine)
    with pytest.raises(MeterExceptionError):
        target.test_one(good)


@pytest.mark.parametrize("name", sorted(p.name for p in CRASHES.iterdir()))
def test_saved_crash_inputs_pass_the_crash_rule(name):
    """Every input the fuzzer saved as a crash, as it found it."""
    try:
        target.test_one((CRASHES / name).read_bytes())
    except DriverError:
        pass


class Memory:
    """A RegisterLink over a dict of holding registers (0 where unset), for one Iskra record."""

    def __init__(self, registers):
        self.registers = registers

    def read_holding(self, address, count):
        return [self.registers.get(address + i, 0) for i in range(count)]

    read_input = read_holding

    def write(self, address, values):
        pass

    write_multiple = write


def iskra_with_dataset(dataset: str) -> iskra.IskraProtocol:
    data = dataset.encode()
    words = [int.from_bytes(data[i : i + 2].ljust(2, b"\0"), "big") for i in range(0, len(data), 2)]
    registers = {iskra.STATUS.address: iskra.SIGNATURE_OK, iskra.STATUS.address + 5: len(data),
                 iskra.STATUS.address + 6: 64}
    registers |= {iskra.SIGNED_DATASET + i: w for i, w in enumerate(words)}
    registers |= {iskra.SIGNATURE + i: 0x0101 for i in range(32)}
    return iskra.IskraProtocol(Memory(registers), target.Services(iskra.IskraProtocol.model))


@pytest.mark.parametrize("dataset", ['{"TT":"a|b<=>tx","RD":[{"TX":"E"}]}', "[1, 2]", '"text"'])
def test_iskra_fetch_of_a_dataset_that_is_no_ocmf_payload_is_command_failed(dataset):
    """Found in the reported run (crash-71a6df...): Iskra's fetch split its own record at '|' again, so
    a signed dataset holding '|' raised JSONDecodeError; a dataset that is JSON but not an object raised
    AttributeError at payload.get. Both are now refused as no OCMF payload (CommandFailed)."""
    from driver.protocol import CommandFailed

    with pytest.raises(CommandFailed, match="not an OCMF payload"):
        iskra_with_dataset(dataset).fetch("tx")


def test_iskra_fetch_with_readings_that_are_no_list_finds_no_record():
    assert iskra_with_dataset('{"TT":"T<=>tx","RD":5}').fetch("tx") is None
    assert iskra_with_dataset('{"TT":"T<=>tx","RD":[{"TX":"E"}]}').fetch("tx") is not None
