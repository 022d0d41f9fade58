"""Helpers shared by the simulator tests: register encoding, independent OCMF checks, a meter-sim process."""

import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymodbus.client import ModbusSerialClient

from simulator import ControlClient, ControlError

ROOT = Path(__file__).resolve().parents[2]


def text_words(text, regs):
    raw = text.encode("ascii").ljust(regs * 2, b"\0")
    return list(struct.unpack(f">{regs}H", raw))


def words_bytes(words):
    return struct.pack(f">{len(words)}H", *words)


def u32(words):
    return (words[0] << 16) | words[1]


def split_record(record):
    assert record.startswith("OCMF|")
    payload, signature = record[5:].rsplit("|", 1)
    return payload, json.loads(signature)


def verify_record(record, public_key_der):
    """True when the record's signature verifies over the exact payload bytes."""
    payload, signature = split_record(record)
    key = serialization.load_der_public_key(public_key_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    digest = hashes.SHA384() if signature["SA"].endswith("SHA384") else hashes.SHA256()
    try:
        key.verify(bytes.fromhex(signature["SD"]), payload.encode("ascii"), ec.ECDSA(digest))
    except InvalidSignature:
        return False
    return True


def read_exactly(fd, n, timeout=2.0):
    """Read n bytes from a non-blocking fd, waiting with select up to timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                data += os.read(fd, n - len(data))
            except BlockingIOError:
                continue
    return data


def nothing_arrives(fd, within=0.3):
    ready, _, _ = select.select([fd], [], [], within)
    return not ready


def wait_until(predicate, timeout=10.0, what="condition", interval=0.05):
    """Poll predicate until it is truthy; fail when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def modbus_client(path, timeout=0.5, retries=2):
    """A pymodbus serial client on a pty path (parity N: this Linux refuses PARENB on a pty)."""
    client = ModbusSerialClient(path, baudrate=19200, parity="N", timeout=timeout, retries=retries)
    assert client.connect()
    return client


class MeterSimProcess:
    """A meter-sim subprocess on a pty; close() always reaps it."""

    def __init__(self, *args, state_dir, control=None, timeout=15.0, pty=True):
        self.state_dir = Path(state_dir)
        self.control = control
        cmd = [
            sys.executable,
            "-m",
            "simulator.cli",
            *(["--pty"] if pty else []),
            "--state-dir",
            str(state_dir),
        ]
        cmd += args
        if control:
            cmd += ["--control", str(control)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        try:
            self.path = self._first_line(deadline)
            if control:
                wait_until(self._control_answers, deadline - time.monotonic(), "the control socket")
        except BaseException:
            self.close()
            raise

    def _first_line(self, deadline):
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError("meter-sim printed no path")
            chunk = os.read(self.proc.stdout.fileno(), 1)
            if not chunk:
                raise RuntimeError(f"meter-sim exited: {self.proc.stderr.read().decode()}")
            line += chunk
        return line.decode().strip()

    def _control_answers(self):
        try:
            ControlClient(self.control).status()
        except ControlError:
            return False
        return True

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_pipes()

    def terminate(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=10)
        self._close_pipes()
        return code

    def _close_pipes(self):
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe and not pipe.closed:
                pipe.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_pipes()
