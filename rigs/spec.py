"""The rig file: a TOML description of one test bench, loaded and checked before anything starts.

A rig file says which meter is under test, which driver talks to it, whether a link proxy sits
between them, how power is switched, and what the rig can do. Every field is checked here so a
mistake is reported once, naming the file and the field, instead of failing later in a scenario.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from rigs.errors import RigFileError
from rigs.labgrid_place import LabgridSpec, Place, read_place

CAPABILITIES = ("power_control", "link_control", "phase_control", "load_control")
# Not set in the file: a rig has ground truth (exact energy, transaction state from the meter side)
# only when the meter is simulated. Scenarios that compare against it carry the tag @ground_truth.
GROUND_TRUTH = "ground_truth"
METER_KINDS = ("simulator", "physical")
POWER_SWITCHES = ("simulator", "command", "labgrid", "none")
PARITIES = ("N", "E", "O")
LINK_REMOTES = ("none", "rfc2217", "socket")  # how the virtual rig serves its meter (rigs/remote.py)
DEFAULT_DRIVER_CLASS = "driver.PowermeterDriver"
DEFAULT_DRIVER_CONFIG = "driver.DriverConfig"

_SECTIONS = ("rig", "meter", "driver", "link", "power", "capabilities", "labgrid")
PROCESS_FIELDS = ("command", "ready_timeout", "call_timeout", "stop_grace")
"""driver.* fields of an out-of-process driver (rigs/process_spec.py, docs/driver-protocol.md)."""


@dataclass(frozen=True)
class MeterSpec:
    """The meter under test: the simulator (with its profile and speed) or a physical meter on a port."""

    kind: str
    model: str = "reference"
    """The meter model (docs/meters/): the simulated meter's model and the driver's protocol."""
    profile: str = "reference"
    """The simulator's profile: the model's own unless a profile file is named."""
    speed: float = 60.0
    seed: int = 1
    port: str | None = None
    baudrate: int = 19200
    parity: str = "E"
    unit: int = 1
    start_timeout: float = 10.0


@dataclass(frozen=True)
class DriverSpec:
    """The driver under test: import paths of its class and config class, and its settings."""

    class_path: str = DEFAULT_DRIVER_CLASS
    config_path: str = DEFAULT_DRIVER_CONFIG
    settings: dict[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    """An out-of-process driver (docs/driver-protocol.md) instead of a class: argv with placeholders."""
    ready_timeout: float = 10.0
    call_timeout: float = 30.0
    stop_grace: float = 3.0

    @property
    def described(self) -> str:
        """The driver under test as a report names it: its command line, or its class."""
        return shlex.join(self.command) if self.command is not None else self.class_path


@dataclass(frozen=True)
class PowerSpec:
    """How the meter's supply is switched: the simulator's control, a shell command, or not at all."""

    switch: str = "none"
    off_command: str | None = None
    on_command: str | None = None
    boot_wait: float = 0.0


@dataclass(frozen=True)
class RigSpec:
    """A checked rig file. `sha256` identifies the exact file a report was made with."""

    path: Path
    sha256: str
    name: str
    description: str
    meter: MeterSpec
    driver: DriverSpec
    link_proxy: bool
    power: PowerSpec
    capabilities: frozenset[str]
    fail_on_powermeter_errors: bool = True
    link_remote: str = "none"
    labgrid: LabgridSpec | None = None
    """[labgrid]: meter.port and the power driver come from this labgrid target (rigs/labgrid_place.py)."""
    """"rfc2217" or "socket": the rig serves the simulated meter on a loopback TCP port (rigs/remote.py)."""

    def has(self, capability: str) -> bool:
        """True when the rig can do `capability` (one of CAPABILITIES)."""
        return capability in self.capabilities


class _Fields:
    """Reads typed fields out of one TOML table, naming `file: section.key` in every error."""

    def __init__(self, path: Path, section: str, table: dict[str, Any], known: tuple[str, ...]) -> None:
        self.path = path
        self.section = section
        self.table = table
        for key in table:
            if key not in known:
                self.fail(key, f"unknown field (known: {', '.join(known)})")

    def fail(self, key: str, message: str) -> NoReturn:
        raise RigFileError(f"{self.path}: {self.section}.{key}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        if key not in self.table:
            if required:
                self.fail(key, "missing")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a rig file saying `speed = true` is still wrong.
        if isinstance(value, bool) and bool not in kinds:
            self.fail(key, f"expected {_type_names(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            self.fail(key, f"expected {_type_names(kinds)}, got {type(value).__name__} {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key, str, default, required=default is None)
        if value not in choices:
            self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def positive(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.get(key, kind, default)
        if not math.isfinite(value):  # TOML has nan and inf
            self.fail(key, f"must be a finite number, got {value!r}")
        if value <= 0:
            self.fail(key, f"must be positive, got {value!r}")
        return value


def _type_names(kinds: tuple[type, ...]) -> str:
    return " or ".join("number" if k is float else k.__name__ for k in kinds)


def _table(path: Path, data: dict[str, Any], name: str, required: bool = True) -> dict[str, Any]:
    if name not in data:
        if required:
            raise RigFileError(f"{path}: [{name}]: missing section")
        return {}
    value = data[name]
    if not isinstance(value, dict):
        raise RigFileError(f"{path}: {name}: expected a [{name}] table, got {type(value).__name__}")
    return value


def _meter(path: Path, table: dict[str, Any]) -> MeterSpec:
    f = _Fields(path, "meter", table, ("kind", "model", "profile", "speed", "seed", "port", "baudrate",
                                        "parity", "unit", "start_timeout"))
    kind = f.choice("kind", METER_KINDS)
    model = f.get("model", str, "reference")
    if not model.strip():
        f.fail("model", "empty model name")
    unit = f.get("unit", int, 1)
    if not 1 <= unit <= 247:
        f.fail("unit", f"Modbus unit id must be 1..247, got {unit}")
    baudrate = f.positive("baudrate", int, 19200)
    parity = f.choice("parity", PARITIES, "E")
    start_timeout = f.positive("start_timeout", (int, float), 10.0)
    if kind == "physical":
        port = f.get("port", str, required=True)
        if not port.strip():
            f.fail("port", "empty device path")
        for key in ("profile", "speed", "seed"):
            if key in table:
                f.fail(key, "only a simulated meter has this (meter.kind is 'physical')")
        return MeterSpec(kind=kind, model=model, port=port, baudrate=baudrate, parity=parity, unit=unit,
                         start_timeout=float(start_timeout))
    if "port" in table:
        f.fail("port", "a simulated meter makes its own pty; remove meter.port or set kind = 'physical'")
    if model == "auto":
        f.fail("model", "a simulated meter needs a model by name ('auto' is for a physical meter)")
    profile = f.get("profile", str, model)
    if not profile.strip():
        f.fail("profile", "empty profile name")
    speed = f.positive("speed", (int, float), 60.0)
    seed = f.get("seed", int, 1)
    return MeterSpec(kind=kind, model=model, profile=profile, speed=float(speed), seed=seed,
                     baudrate=baudrate, parity=parity, unit=unit, start_timeout=float(start_timeout))


def with_model(spec: RigSpec, model: str) -> RigSpec:
    """The rig with another meter model (make conformance MODEL=...): a simulated meter takes that
    model's own profile."""
    meter = dataclasses.replace(spec.meter, model=model)
    if spec.meter.kind == "simulator":
        if model == "auto":
            raise RigFileError(f"{spec.path}: --model auto: a simulated meter needs a model by name")
        meter = dataclasses.replace(meter, profile=model)
    return dataclasses.replace(spec, meter=meter)


def _import_path(f: _Fields, key: str, default: str) -> str:
    value = f.get(key, str, default)
    module, _, attr = value.rpartition(".")
    if not module or not attr or not all(part.isidentifier() for part in value.split(".")):
        f.fail(key, f"expected an import path like 'package.module.Class', got {value!r}")
    return value


def _driver(path: Path, table: dict[str, Any]) -> DriverSpec:
    f = _Fields(path, "driver", table, ("class", "config", "settings", *PROCESS_FIELDS))
    if "command" in table:
        from rigs.process_spec import process_driver_spec  # the out-of-process driver's own fields

        return process_driver_spec(f, table)
    for key in PROCESS_FIELDS:
        if key in table:
            f.fail(key, "only with driver.command (an out-of-process driver)")
    settings = f.get("settings", dict, {})
    for key in ("port",):
        if key in settings:
            raise RigFileError(f"{path}: driver.settings.{key}: set by the rig (the meter side decides it)")
    return DriverSpec(class_path=_import_path(f, "class", DEFAULT_DRIVER_CLASS),
                      config_path=_import_path(f, "config", DEFAULT_DRIVER_CONFIG),
                      settings=dict(settings))


def _power(path: Path, table: dict[str, Any], meter: MeterSpec, place: Place | None = None) -> PowerSpec:
    f = _Fields(path, "power", table, ("switch", "off_command", "on_command", "boot_wait"))
    switch = f.choice("switch", POWER_SWITCHES, "labgrid" if place and place.power_driver else "none")
    if switch == "labgrid" and place is None:
        f.fail("switch", "'labgrid' needs a [labgrid] section naming the environment file and target")
    if switch == "labgrid" and place is not None and place.power_driver is None:
        f.fail("switch", "the labgrid target has no power driver (a PowerProtocol such as "
                         "ExternalPowerDriver)")
    boot_wait = f.get("boot_wait", (int, float), 0.0)
    if not math.isfinite(boot_wait):  # TOML has nan and inf
        f.fail("boot_wait", f"must be a finite number, got {boot_wait}")
    if boot_wait < 0:
        f.fail("boot_wait", f"must not be negative, got {boot_wait}")
    if switch == "simulator" and meter.kind != "simulator":
        f.fail("switch", "'simulator' needs meter.kind = 'simulator'; use 'command' for a bench relay")
    off = on = None
    if switch == "command":
        off = f.get("off_command", str, required=True)
        on = f.get("on_command", str, required=True)
        for key, value in (("off_command", off), ("on_command", on)):
            if not value.strip():
                f.fail(key, "empty command")
    else:
        for key in ("off_command", "on_command"):
            if key in table:
                f.fail(key, "only used with switch = 'command'")
    return PowerSpec(switch=switch, off_command=off, on_command=on, boot_wait=float(boot_wait))


def _capabilities(path: Path, table: dict[str, Any], meter: MeterSpec, proxy: bool,
                  power: PowerSpec) -> frozenset[str]:
    f = _Fields(path, "capabilities", table, CAPABILITIES)
    have = {name for name in CAPABILITIES if f.get(name, bool, False)}
    # A capability the rig claims must be one it can deliver, or scenarios would fail instead of skip.
    if "power_control" in have and power.switch == "none":
        f.fail("power_control", "needs power.switch = 'simulator', 'command' or 'labgrid' (a labgrid "
                                "target with a power driver)")
    if "link_control" in have and not proxy:
        f.fail("link_control", "needs link.proxy = true (the proxy is what cuts the link)")
    for name in ("phase_control", "load_control"):
        if name in have and meter.kind != "simulator":
            f.fail(name, "only a simulated meter can change its phase order or load")
    if meter.kind == "simulator":
        have.add(GROUND_TRUTH)
    return frozenset(have)


def load_rig(path: str | Path) -> RigSpec:
    """Read and check a rig file; raise RigFileError naming the file and the field when it is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RigFileError(f"{path}: rig file not found") from None
    except OSError as exc:
        raise RigFileError(f"{path}: cannot read rig file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RigFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RigFileError(f"{path}: not valid TOML: {exc}") from None
    for key in data:
        if key not in _SECTIONS:
            raise RigFileError(f"{path}: [{key}]: unknown section (known: {', '.join(_SECTIONS)})")
    rig = _Fields(path, "rig", _table(path, data, "rig"),
                  ("name", "description", "fail_on_powermeter_errors"))
    name = rig.get("name", str, required=True)
    if not name.strip():
        rig.fail("name", "empty name")
    meter_table = _table(path, data, "meter")
    labgrid, place = None, None
    if "labgrid" in data:
        labgrid, place, meter_table = _labgrid(path, _table(path, data, "labgrid"), meter_table)
    meter = _meter(path, meter_table)
    driver = _driver(path, _table(path, data, "driver", required=False))
    link = _Fields(path, "link", _table(path, data, "link", required=False), ("proxy", "remote"))
    proxy = link.get("proxy", bool, False)
    remote = link.choice("remote", LINK_REMOTES, "none")
    if remote != "none" and meter.kind != "simulator":
        link.fail("remote", "the rig serves only a simulated meter; a physical meter behind ser2net "
                            "names its URL in meter.port (e.g. 'rfc2217://bench-host:3333')")
    power = _power(path, _table(path, data, "power", required=False), meter, place)
    capabilities = _capabilities(path, _table(path, data, "capabilities", required=False),
                                 meter, proxy, power)
    return RigSpec(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        name=name,
        description=rig.get("description", str, ""),
        meter=meter,
        driver=driver,
        link_proxy=proxy,
        power=power,
        capabilities=capabilities,
        fail_on_powermeter_errors=rig.get("fail_on_powermeter_errors", bool, True),
        link_remote=remote,
        labgrid=labgrid,
    )


def _labgrid(path: Path, table: dict[str, Any],
             meter: dict[str, Any]) -> tuple[LabgridSpec, Place, dict[str, Any]]:
    """[labgrid]: the target's serial port becomes meter.port (its speed the baud rate unless the file
    sets meter.baudrate); its power driver becomes power.switch = "labgrid"."""
    f = _Fields(path, "labgrid", table, ("env", "target"))
    env = f.get("env", str, required=True)
    target = f.get("target", str, "main")
    if not env.strip():
        f.fail("env", "empty path")
    spec = LabgridSpec(env=(path.parent / env).resolve(), target=target)
    if meter.get("kind") != "physical":
        raise RigFileError(f"{path}: meter.kind: a [labgrid] place is a physical meter; "
                           "set kind = 'physical'")
    if "port" in meter:
        raise RigFileError(f"{path}: meter.port: comes from labgrid target {target!r} in {env}; remove it")
    place = read_place(path, spec)
    meter = {**meter, "port": place.port}
    meter.setdefault("baudrate", place.speed)
    return spec, place, meter
