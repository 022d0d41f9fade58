"""Fuzz target: meter-sim's Modbus RTU request handling, for every meter model.

The real request path runs in-process: MeterServer.start() builds its pymodbus server exactly as
meter-sim does (SilenceResetFramer, the illegal-function PDUs, the silence for other units), only the
serial port is replaced by a transport that records what the meter sends. Bytes go in through the
handler's data_received(), as from a serial port, and through the model's register map and protocol.

An input is one model byte (an index into MODELS) then chunks: a header byte (bit 7: append the
CRC, bit 6: no silence before the chunk, bits 0-5: length) and that many bytes. A silence before a
chunk is the 3.5-character gap that ends a frame.

Crashes: an internal error in the server (any exception but a SimulatorError), an answer that is not a
well-formed RTU frame for unit 1, an exception code a meter may not give, a device-failure answer
without a documented simulator error, no answer (or the wrong one) to a well-formed request, and
anything other than exception 01 to a function code the model does not implement.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import atheris

from fuzz.common import Finding, main

with atheris.instrument_imports(include=["simulator", "pymodbus"]):
    from pymodbus.framer.rtu import FramerRTU
    from pymodbus.server import ModbusSerialServer

    import simulator.server as server_module
    from simulator.errors import SimulatorError
    from simulator.profile import Profile, load_model
    from simulator.registers import RegisterMap
    from simulator.runtime import LoadSpec, MeterSim

TARGET = "sim_rtu"
MODELS = ("reference", "reference-sr", "iskra-wm3m4c", "carlo-gavazzi-em580", "carlo-gavazzi-em580-p384",
          "eastron-sdm630")
UNIT = 1
MAX_CHUNKS = 16
ALLOWED_EXCEPTIONS = {1, 2, 3, 4, 6}  # 04 only with a documented simulator error (checked apart)


def crc(body: bytes) -> bytes:
    """The RTU CRC of body, as it goes on the wire."""
    return FramerRTU.compute_CRC(body).to_bytes(2, "big")


class _Wire:
    """The serial transport's stand-in: each write() is one answer the meter sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        if data:  # a silenced answer (another unit, no power) is an empty write: nothing goes on the wire
            self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class _InProcessServer(ModbusSerialServer):
    """pymodbus's serial server without the port: serve_forever makes the connection at once."""

    async def serve_forever(self, *, background: bool = False) -> None:
        handler = self.handle_new_connection()
        handler.transport = _Wire()  # type: ignore[assignment]
        await self.serving


class Bench:
    """One model's meter-sim (a fresh state directory) behind its MeterServer, fed in-process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self.loop = loop
        self.profile: Profile = load_model(name)
        self.dir = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-", dir=_scratch()))
        self.sim = self._fresh_sim()
        self.sim.power_off()
        self.pristine = self.sim.state_path(UNIT).read_bytes()
        self.sim = self._fresh_sim()
        self.dirty = False
        self.server = server_module.MeterServer("fuzz", self.profile, [UNIT], self._resolve, self._sync)
        original = server_module.ModbusSerialServer
        server_module.ModbusSerialServer = _InProcessServer  # type: ignore[misc]
        try:
            loop.run_until_complete(self.server.start())
        finally:
            server_module.ModbusSerialServer = original  # type: ignore[misc]
        assert self.server._server is not None
        (self.handler,) = self.server._server.active_connections.values()
        self.wire: _Wire = self.handler.transport  # type: ignore[assignment]
        self.functions = set(self.profile.function_codes)
        self.scheduled: list[None] = []
        self.handler.handle_later = lambda: self.scheduled.append(None)  # see feed()

    def _fresh_sim(self) -> MeterSim:
        return MeterSim(self.profile, [UNIT], self.dir, seed=1, load=LoadSpec(power_w=11000.0))

    def _resolve(self, unit: int) -> RegisterMap | None:
        regmap = self.sim.register_map(unit)
        if regmap is not None and "write" not in regmap.__dict__:
            write = regmap.write

            def marking(address: int, values: list[int], function_code: int = 16) -> object:
                # RAM or the transaction state may change: a fresh meter next time. A write to
                # registers the map does not have, or cannot write, is refused by write()'s first
                # check, before anything changes: those (most fuzzed writes) keep the meter, and save
                # the 4 ms a fresh one takes.
                regs = regmap._covered(regmap.profile.write_table, address, len(values))
                if regs is not None and all(r.writable for r in regs):
                    self.dirty = True
                return write(address, values, function_code)

            regmap.write = marking  # type: ignore[method-assign]
        return regmap

    def _sync(self) -> None:
        self.sim.sync()

    def reset(self) -> None:
        """A fresh meter when the last input wrote to it: every input starts from the same state."""
        if self.dirty:
            self.sim.power_off()
            self.sim.state_path(UNIT).write_bytes(self.pristine)
            self.sim = self._fresh_sim()
            self.dirty = False
        self.handler.recv_buffer = b""
        self.handler.framer._pending = 0  # type: ignore[attr-defined]
        self.wire.sent.clear()  # the last input's answers (kept, they grew by a few per input)

    async def feed(self, chunks: list[tuple[bytes, bool]]) -> list[list[bytes]]:
        """Each chunk's answers (what the meter sent before the next chunk came).

        The handler schedules each request it frames with call_soon(handle_later), which hands
        handle_request() to the loop as a task of its own; here handle_later only notes it and feed
        awaits handle_request() itself: the same order, without a task and its loop steps each time."""
        answers = []
        for data, silence in chunks:
            if silence:
                self.handler.framer._last_rx -= 1.0  # type: ignore[attr-defined]  # the line was quiet
            before = len(self.wire.sent)
            self.handler.data_received(data)
            await self._drain()
            answers.append(self.wire.sent[before:])
        return answers

    async def _drain(self) -> None:
        """Run the requests the last chunk scheduled, each to its answer."""
        await asyncio.sleep(0)  # the loop runs the handle_later calls the chunk scheduled
        while self.scheduled:
            self.scheduled.pop(0)
            await self.handler.handle_request()


def _scratch() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def parse(data: bytes) -> tuple[int, list[tuple[bytes, bool]]]:
    """The model index and the chunks (bytes, silence before) of an input."""
    if not data:
        return 0, []
    model = data[0] % len(MODELS)
    chunks: list[tuple[bytes, bool]] = []
    i = 1
    while i < len(data) and len(chunks) < MAX_CHUNKS:
        header = data[i]
        body = data[i + 1 : i + 1 + (header & 0x3F)]
        i += 1 + (header & 0x3F)
        chunks.append((body + crc(body) if header & 0x80 else body, not header & 0x40))
    return model, chunks


def expected_answer_size(frame: bytes, functions: set[int]) -> int | None:
    """The size of the normal answer to a well-formed request frame for unit 1 (whole, CRC right),
    0 when only an exception answer is right, None when the frame is not such a request."""
    if len(frame) < 4 or frame[0] != UNIT or crc(frame[:-2]) != frame[-2:]:
        return None
    fc = frame[1]
    if fc == 0:
        return None  # not a function code: a meter may keep silent
    if fc not in functions:
        return 0
    if fc in (3, 4) and len(frame) == 8:
        count = int.from_bytes(frame[4:6], "big")
        return 5 + 2 * count if 1 <= count <= 125 else 0
    if fc == 6 and len(frame) == 8:
        return 8
    if fc == 16 and len(frame) >= 9 and len(frame) == 9 + frame[6]:
        count = int.from_bytes(frame[4:6], "big")
        return 8 if 1 <= count <= 123 and frame[6] == 2 * count else 0
    return None


def check(bench: Bench, chunks: list[tuple[bytes, bool]], answers: list[list[bytes]], errors: str) -> None:
    """Every promise of the module docstring, on one input's answers."""
    if "internal error" in errors:
        raise Finding(f"meter-sim reported an internal error: {errors.strip()[:300]}")
    for index, (sent, (data, silence)) in enumerate(zip(answers, chunks, strict=True)):
        for answer in sent:
            if len(answer) < 5 or answer[0] != UNIT or crc(answer[:-2]) != answer[-2:]:
                raise Finding(f"answer {answer.hex()} is not a well-formed RTU frame of unit {UNIT}")
            if answer[1] & 0x80:
                code = answer[2]
                if len(answer) != 5 or code not in ALLOWED_EXCEPTIONS:
                    raise Finding(f"exception answer {answer.hex()}: code {code} is no meter's answer")
                if code == 4 and "meter-sim: unit" not in errors:
                    raise Finding(f"exception 04 (device failure) {answer.hex()} without a simulator error")
            elif answer[1] not in bench.functions:
                raise Finding(f"normal answer {answer.hex()} for function code {answer[1]} the model lacks")
        # A whole request alone on the line (silence before and after) gets exactly its answer.
        alone = silence and (index + 1 == len(chunks) or chunks[index + 1][1])
        size = expected_answer_size(data, bench.functions) if alone else None
        if size is None:
            continue
        fc = data[1]
        if len(sent) != 1:
            raise Finding(f"request {data.hex()} got {len(sent)} answers: {[a.hex() for a in sent]}")
        answer = sent[0]
        if fc not in bench.functions:
            if answer != bytes([UNIT, fc | 0x80, 1]) + crc(bytes([UNIT, fc | 0x80, 1])):
                raise Finding(f"function code {fc:#04x} (not implemented) answered {answer.hex()}, "
                              "not exception 01")
        elif answer[1] == fc:
            if size == 0 or len(answer) != size:
                raise Finding(f"request {data.hex()} answered {answer.hex()}: {len(answer)} bytes, "
                              f"not {size}")
            if fc in (3, 4) and answer[2] != size - 5:
                raise Finding(f"request {data.hex()} answered {answer.hex()}: byte count {answer[2]}")
        elif answer[1] != fc | 0x80:
            raise Finding(f"request {data.hex()} answered {answer.hex()}: another function code")


class Harness:
    """The six benches, built on first use (one event loop for all of them)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.benches: dict[int, Bench] = {}

    def bench(self, model: int) -> Bench:
        if model not in self.benches:
            with contextlib.redirect_stderr(io.StringIO()):
                self.benches[model] = Bench(self.loop, MODELS[model])
        return self.benches[model]

    def close(self) -> None:
        """Stop every server, close the loop, remove the state directories (tests call it)."""
        for bench in self.benches.values():
            with contextlib.redirect_stderr(io.StringIO()):
                self.loop.run_until_complete(bench.server.stop())
            bench.sim.power_off()
            shutil.rmtree(bench.dir, ignore_errors=True)
        self.benches.clear()
        self.loop.close()
        asyncio.set_event_loop(None)


HARNESS: Harness | None = None


def test_one(data: bytes) -> None:
    """One input: chunks onto one model's meter, then every answer checked."""
    global HARNESS
    if HARNESS is None:
        HARNESS = Harness()
    model, chunks = parse(data)
    bench = HARNESS.bench(model)
    bench.reset()
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        answers = bench.loop.run_until_complete(bench.feed(chunks))
    check(bench, chunks, answers, errors.getvalue())


def _request(fc: int, address: int, tail: bytes) -> bytes:
    return bytes([UNIT, fc]) + address.to_bytes(2, "big") + tail


def seeds() -> Iterator[bytes]:
    """Real requests for each model: a read of every register, a write of every writable one (its
    current words), the probes drivers send, and a few frames a noisy bus brings."""
    for index, name in enumerate(MODELS):
        profile = load_model(name)
        for reg in profile.registers:
            fc = 4 if reg.table == "input" else 3
            read = _request(fc, reg.address, reg.regs.to_bytes(2, "big"))
            yield bytes([index, 0x80 | len(read)]) + read
            if reg.writable and reg.table == profile.write_table:
                count = min(reg.regs, 24)
                body = count.to_bytes(2, "big") + bytes([2 * count]) + b"\0" * 2 * count
                write = _request(16, reg.address, body)
                yield bytes([index, 0x80 | min(len(write), 0x3F)]) + write[:0x3F]
                if 6 in profile.function_codes:
                    single = _request(6, reg.address, b"\x00\x01")
                    yield bytes([index, 0x80 | len(single)]) + single
        unknown = _request(0x2B, 0, b"\x00\x01")
        exception_like = bytes([UNIT, 0x83, 0x02])
        yield bytes([index, 0x80 | len(unknown), *unknown, 0x80 | len(exception_like), *exception_like])
        other_unit = bytes([7, 3, 0, 0, 0, 1])
        yield bytes([index, 0x80 | len(other_unit), *other_unit, 0x03, 0x01, 0x03, 0x00])


if __name__ == "__main__":
    main(TARGET, test_one, (SimulatorError,), seeds)
    sys.exit(0)
