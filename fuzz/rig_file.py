"""Fuzz target: the rig-file loader (rigs/spec.py load_rig) on fuzzed TOML text.

The input is the file's bytes, written to a rig file in an otherwise empty scratch directory (on
/dev/shm when there is one) and loaded by load_rig as it is: what a rig file names relative to itself
(a labgrid environment) is not found there, as for a rig file alone in a directory.

Crashes: any exception that is not a RigError (docs/errors.md: a wrong rig file raises RigFileError
naming the file and the field), and a loaded rig that breaks what load_rig promises to have checked:
numbers finite and positive where they must be, the unit id 1..247, a known meter kind and power switch,
the claimed capabilities deliverable.
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import atheris

from fuzz.common import Finding, main

with atheris.instrument_imports(include=["rigs", "tomllib"]):
    from rigs.errors import RigError
    from rigs.spec import CAPABILITIES, GROUND_TRUTH, METER_KINDS, POWER_SWITCHES, RigSpec, load_rig

TARGET = "rig_file"
RIGS = Path(__file__).resolve().parents[1] / "rigs"
_SCRATCH = tempfile.TemporaryDirectory(prefix="fuzz-rig-",
                                       dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
PATH = Path(_SCRATCH.name) / "fuzzed.toml"


def check(spec: RigSpec) -> None:
    """What load_rig promises about a rig it returns."""
    meter = spec.meter
    numbers = {"meter.speed": meter.speed, "meter.start_timeout": meter.start_timeout,
               "driver.ready_timeout": spec.driver.ready_timeout,
               "driver.call_timeout": spec.driver.call_timeout, "driver.stop_grace": spec.driver.stop_grace}
    for name, value in numbers.items():
        if not (math.isfinite(value) and value > 0):
            raise Finding(f"{name} = {value!r} loaded: not a positive finite number")
    if not (math.isfinite(spec.power.boot_wait) and spec.power.boot_wait >= 0):
        raise Finding(f"power.boot_wait = {spec.power.boot_wait!r} loaded")
    if not 1 <= meter.unit <= 247 or meter.baudrate <= 0:
        raise Finding(f"meter.unit {meter.unit} / baudrate {meter.baudrate} loaded")
    if meter.kind not in METER_KINDS or spec.power.switch not in POWER_SWITCHES:
        raise Finding(f"meter.kind {meter.kind!r} / power.switch {spec.power.switch!r} loaded")
    if not spec.capabilities <= {*CAPABILITIES, GROUND_TRUTH}:
        raise Finding(f"capabilities {sorted(spec.capabilities)} loaded")
    if "power_control" in spec.capabilities and spec.power.switch == "none":
        raise Finding("power_control claimed without a power switch")
    if "link_control" in spec.capabilities and not spec.link_proxy:
        raise Finding("link_control claimed without the link proxy")


def test_one(data: bytes) -> None:
    """One input: load it as a rig file, then check the rig loaded."""
    PATH.write_bytes(data)
    check(load_rig(PATH))


def seeds() -> Iterator[bytes]:
    """The project's rig files, and a few variants that reach the fields they leave out."""
    files = sorted(RIGS.glob("*.toml"))
    for path in files:
        yield path.read_bytes()
    physical = (b'[rig]\nname = "bench"\n[meter]\nkind = "physical"\nmodel = "auto"\nport = "/dev/ttyUSB0"\n'
                b'baudrate = 9600\nparity = "N"\nunit = 3\nstart_timeout = 2.5\n[power]\nswitch = "command"\n'
                b'off_command = "relay off"\non_command = "relay on"\nboot_wait = 1.5\n'
                b'[capabilities]\npower_control = true\n')
    yield physical
    yield physical.replace(b"[power]", b'[labgrid]\nenv = "env.yaml"\ntarget = "main"\n[power]')
    yield (b'[rig]\nname = "p"\n[meter]\nkind = "simulator"\nmodel = "iskra-wm3m4c"\n[driver]\n'
           b'command = ["python", "-m", "driver", "{port}"]\nready_timeout = 5\ncall_timeout = 9.5\n'
           b'stop_grace = 1\n[link]\nproxy = false\nremote = "rfc2217"\n')


if __name__ == "__main__":
    main(TARGET, test_one, (RigError,), seeds)
    sys.exit(0)
