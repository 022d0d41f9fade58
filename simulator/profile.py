"""Meter profiles: what a simulated meter is, and its register map, read from a TOML file.

A profile is data so that people can read it next to its page in docs/meters/. It names the
transaction protocol (simulator/models/) that gives its registers their meaning. Every field is checked
on load; a mistake raises ProfileError naming the file and the field.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .codec import EXPONENT_TYPES, PADS, TEXT_TYPES, WIDTHS, WORD_ORDERS
from .errors import ProfileError
from .models import PROTOCOLS

PROFILE_DIR = Path(__file__).parent / "profiles"
REGISTER_TYPES = WIDTHS
ACCESS = ("r", "rw")
TABLES = ("holding", "input")
CURVES = ("secp256r1", "secp384r1", "brainpoolP256r1", "brainpoolP384r1")


@dataclass(frozen=True)
class Register:
    """One named register (or run of registers) of the map."""

    name: str
    address: int
    type: str
    regs: int
    access: str
    scale: float = 1.0
    unit: str = ""
    description: str = ""
    min: int | None = None
    max: int | None = None
    unset: int | None = None
    table: str = "holding"
    exp: int | None = None
    word_order: str = "high_first"
    pad: str = "nul"

    @property
    def end(self) -> int:
        """First address after this register."""
        return self.address + self.regs

    @property
    def writable(self) -> bool:
        """True for read-write registers."""
        return self.access == "rw"


@dataclass(frozen=True)
class GridSettings:
    """Nominal grid and its noise."""

    nominal_voltage_v: float = 230.0
    nominal_frequency_hz: float = 50.0
    voltage_noise_v: float = 0.5
    frequency_noise_hz: float = 0.01
    noise_interval_s: float = 1.0
    power_factor: float = 0.99


@dataclass(frozen=True)
class Profile:
    """A meter model: identity, behaviour timings and the register map."""

    name: str
    source: str
    vendor: str
    model: str
    firmware: str
    serial_prefix: str
    map_version: int
    transactions: bool
    separate_begin_end: bool
    curve: str
    boot_delay_s: float
    signing_delay_s: float
    records_kept: int
    min_duration_s: float
    grid: GridSettings
    registers: tuple[Register, ...] = field(default_factory=tuple)
    protocol: str = "reference"
    energy_resolution_wh: float = 0.1
    serial_digits: int = 0
    max_duration_s: float = 0.0
    """Longest transaction (simulated seconds) the meter allows; 0: no limit (max_stop_time 0)."""
    write_table: str = "holding"
    """The table writes go to: "input" for a meter with one register space read by FC04 (the EM580)."""
    only_functions: tuple[int, ...] = ()
    """The function codes the meter implements when not those its tables imply (the EM580: 04 and 16)."""
    fill_input: tuple[tuple[int, int], ...] = ()
    """Input-register spans [start, end) whose unnamed addresses read 0 (a meter serving a whole block)."""

    @property
    def function_codes(self) -> tuple[int, ...]:
        """Modbus function codes the meter implements: 03/06/16 for holding, 04 for input registers."""
        if self.only_functions:
            return tuple(sorted(self.only_functions))
        tables = {reg.table for reg in self.registers}
        codes = (3, 6, 16) if "holding" in tables else ()
        return tuple(sorted(codes + ((4,) if "input" in tables else ())))

    @property
    def capabilities(self) -> int:
        """The capabilities register: bit 0 signed transactions, bit 1 separate begin/end records."""
        return (1 if self.transactions else 0) | (2 if self.separate_begin_end else 0)

    def register(self, name: str) -> Register:
        """The register called name (KeyError when the map has none)."""
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(name)

    def has(self, name: str) -> bool:
        """True when the map has a register called name."""
        return any(reg.name == name for reg in self.registers)

    def serial_number(self, unit: int) -> str:
        """Serial number of the meter at this unit id: the prefix and the unit id, zero padded to
        serial_digits digits (0: to 12 characters in all)."""
        digits = self.serial_digits or max(1, 12 - len(self.serial_prefix))
        return f"{self.serial_prefix}{unit:0{digits}d}"


METER_DEFAULTS: dict[str, Any] = {
    "vendor": "meter-hil",
    "model": "EICH-REF-3",
    "firmware": "1.0.0",
    "serial_prefix": "MHIL",
    "map_version": 1,
    "transactions": True,
    "separate_begin_end": False,
    "curve": "secp256r1",
    "boot_delay_s": 1.0,
    "signing_delay_s": 0.2,
    "records_kept": 16,
    "min_duration_s": 0.0,
    "protocol": "reference",
    "energy_resolution_wh": 0.1,
    "serial_digits": 0,
    "max_duration_s": 0.0,
    "write_table": "holding",
    "only_functions": [],
    "fill_input": [],
}


def known_models() -> list[str]:
    """The built-in meter models: one profile file each in simulator/profiles/."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.toml"))


def load_model(name: str) -> Profile:
    """The built-in model called name ("reference", "plain", "iskra-wm3m4c")."""
    check_model_name(name)
    return load_profile(PROFILE_DIR / f"{name}.toml")


def check_model_name(name: str) -> str:
    """name when it is a built-in model, else ProfileError listing the known models."""
    if name not in known_models():
        raise ProfileError(f"unknown meter model {name!r} (known models: {', '.join(known_models())})")
    return name


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """A bare name means simulator/profiles/NAME.toml; anything else is a path."""
    text = str(name_or_path)
    if "/" not in text and not text.endswith(".toml"):
        return PROFILE_DIR / f"{text}.toml"
    return Path(text)


def load_profile(name_or_path: str | Path = "reference") -> Profile:
    """Load and check a profile by name ("reference", "plain") or by path."""
    path = resolve_profile_path(name_or_path)
    data = _read_toml(path)
    return _build(path, data, depth=0)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ProfileError(
            f"{path}: no such profile file (built-in models: {', '.join(known_models())})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None


def _build(path: Path, data: dict[str, Any], depth: int) -> Profile:
    known = {"base", "drop_registers", "meter", "grid", "register"}
    for key in data:
        if key not in known:
            raise ProfileError(f"{path}: unknown top-level field {key!r}")
    meter: dict[str, Any] = dict(METER_DEFAULTS)
    grid: dict[str, Any] = {}
    registers: list[dict[str, Any]] = []
    if "base" in data:
        if depth > 3:
            raise ProfileError(f"{path}: field 'base': profiles nest too deep")
        base_path = resolve_profile_path(_typed(path, "base", data["base"], str))
        base_data = _read_toml(base_path)
        base_meter = dict(base_data.get("meter", {}))
        meter.update(base_meter)
        grid.update(base_data.get("grid", {}))
        registers = list(base_data.get("register", []))
        _build(base_path, base_data, depth + 1)  # the base must be valid on its own
    drop = data.get("drop_registers", [])
    if not isinstance(drop, list) or not all(isinstance(n, str) for n in drop):
        raise ProfileError(f"{path}: field 'drop_registers' must be a list of register names")
    present = {r.get("name") for r in registers}
    for name in drop:
        if name not in present:
            raise ProfileError(f"{path}: field 'drop_registers': no register called {name!r} to drop")
    registers = [r for r in registers if r.get("name") not in drop]
    meter.update(_table(path, "meter", data.get("meter", {})))
    grid.update(_table(path, "grid", data.get("grid", {})))
    registers.extend(data.get("register", []) if isinstance(data.get("register", []), list) else [])
    if not isinstance(data.get("register", []), list):
        raise ProfileError(f"{path}: field 'register' must be an array of tables ([[register]])")
    return _profile(path, meter, grid, registers)


def _table(path: Path, name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{path}: field {name!r} must be a table")
    return value


def _typed(path: Path, where: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kind is not bool and kind != (bool,):
        raise ProfileError(f"{path}: field {where!r} must be {_kind_name(kind)}, not a boolean")
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        raise ProfileError(f"{path}: field {where!r} must be {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _profile(path: Path, meter: dict[str, Any], grid: dict[str, Any], regs: list[dict[str, Any]]) -> Profile:
    kinds: dict[str, type] = {
        "name": str,
        "vendor": str,
        "model": str,
        "firmware": str,
        "serial_prefix": str,
        "map_version": int,
        "transactions": bool,
        "separate_begin_end": bool,
        "curve": str,
        "boot_delay_s": float,
        "signing_delay_s": float,
        "records_kept": int,
        "min_duration_s": float,
        "protocol": str,
        "energy_resolution_wh": float,
        "serial_digits": int,
        "max_duration_s": float,
        "write_table": str,
        "only_functions": list,
        "fill_input": list,
    }
    for key in meter:
        if key not in kinds:
            raise ProfileError(f"{path}: unknown field 'meter.{key}'")
    if "name" not in meter:
        raise ProfileError(f"{path}: field 'meter.name' is missing")
    values = {k: _typed(path, f"meter.{k}", v, kinds[k]) for k, v in meter.items()}
    if values["curve"] not in CURVES:
        raise ProfileError(f"{path}: field 'meter.curve' must be one of {', '.join(CURVES)}")
    for key in ("boot_delay_s", "signing_delay_s", "min_duration_s", "max_duration_s"):
        if values[key] < 0:
            raise ProfileError(f"{path}: field 'meter.{key}' must not be negative")
    if values["protocol"] not in PROTOCOLS:
        raise ProfileError(f"{path}: field 'meter.protocol' must be one of {', '.join(PROTOCOLS)}")
    if not values["energy_resolution_wh"] > 0:
        raise ProfileError(f"{path}: field 'meter.energy_resolution_wh' must be positive")
    if not 0 <= values["serial_digits"] <= 12:
        raise ProfileError(f"{path}: field 'meter.serial_digits' must be 0..12")
    if values["write_table"] not in ("holding", "input"):
        raise ProfileError(f"{path}: field 'meter.write_table' must be 'holding' or 'input'")
    if not all(code in (3, 4, 6, 16) for code in values["only_functions"]):
        raise ProfileError(f"{path}: field 'meter.only_functions' may hold 3, 4, 6 and 16 only")
    values["only_functions"] = tuple(values["only_functions"])
    spans = values["fill_input"]
    if not all(isinstance(sp, list) and len(sp) == 2 and all(isinstance(a, int) for a in sp)
               and 0 <= sp[0] < sp[1] <= 0x10000 for sp in spans):
        raise ProfileError(f"{path}: field 'meter.fill_input' must be a list of [start, end] address pairs")
    values["fill_input"] = tuple((sp[0], sp[1]) for sp in spans)
    if not 1 <= values["records_kept"] <= 1000:
        raise ProfileError(f"{path}: field 'meter.records_kept' must be between 1 and 1000")
    grid_fields = {f: float for f in GridSettings.__dataclass_fields__}
    for key in grid:
        if key not in grid_fields:
            raise ProfileError(f"{path}: unknown field 'grid.{key}'")
    grid_values = {k: _typed(path, f"grid.{k}", v, float) for k, v in grid.items()}
    settings = GridSettings(**grid_values)
    if settings.nominal_voltage_v <= 0 or settings.nominal_frequency_hz <= 0:
        raise ProfileError(f"{path}: field 'grid.nominal_voltage_v/nominal_frequency_hz' must be positive")
    if settings.noise_interval_s <= 0:
        raise ProfileError(f"{path}: field 'grid.noise_interval_s' must be positive")
    if not 0 < settings.power_factor <= 1:
        raise ProfileError(f"{path}: field 'grid.power_factor' must be in (0, 1]")
    registers = tuple(_register(path, i, r) for i, r in enumerate(regs))
    writes_to = values.get("write_table", "holding")
    for reg in registers:
        if reg.writable and reg.table != writes_to:
            raise ProfileError(f"{path}: field 'register ({reg.name}).access': only {writes_to} registers "
                               "can be written (meter.write_table)")
    _check_overlaps(path, registers)
    return Profile(source=str(path), grid=settings, registers=registers, **values)


def _register(path: Path, index: int, raw: Any) -> Register:
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: field 'register[{index}]' must be a table")
    label = f"register[{index}]" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")
    allowed = {
        "name",
        "address",
        "type",
        "regs",
        "access",
        "scale",
        "unit",
        "description",
        "min",
        "max",
        "unset",
        "table",
        "exp",
        "word_order",
        "pad",
    }
    for key in raw:
        if key not in allowed:
            raise ProfileError(f"{path}: unknown field '{label}.{key}'")
    for key in ("name", "address", "type", "access"):
        if key not in raw:
            raise ProfileError(f"{path}: field '{label}.{key}' is missing")
    name = _typed(path, f"{label}.name", raw["name"], str)
    address = _typed(path, f"{label}.address", raw["address"], int)
    if not 0 <= address <= 0xFFFF:
        raise ProfileError(f"{path}: field '{label}.address' must be 0..0xFFFF")
    kind = _typed(path, f"{label}.type", raw["type"], str)
    if kind not in REGISTER_TYPES:
        raise ProfileError(f"{path}: field '{label}.type' must be one of {', '.join(REGISTER_TYPES)}")
    width = REGISTER_TYPES[kind]
    regs = _typed(path, f"{label}.regs", raw.get("regs", width), int)
    if regs < width or regs % width or address + regs > 0x10000:
        raise ProfileError(
            f"{path}: field '{label}.regs' must be a positive multiple of {width} within the map"
        )
    access = _typed(path, f"{label}.access", raw["access"], str)
    if access not in ACCESS:
        raise ProfileError(f"{path}: field '{label}.access' must be 'r' or 'rw'")
    scale = _typed(path, f"{label}.scale", raw.get("scale", 1.0), float)
    if scale <= 0:
        raise ProfileError(f"{path}: field '{label}.scale' must be positive")
    limits = {k: _typed(path, f"{label}.{k}", raw[k], int) for k in ("min", "max", "unset") if k in raw}
    layout = _layout(path, label, kind, raw)
    return Register(
        name=name,
        address=address,
        type=kind,
        regs=regs,
        access=access,
        scale=scale,
        unit=_typed(path, f"{label}.unit", raw.get("unit", ""), str),
        description=_typed(path, f"{label}.description", raw.get("description", ""), str),
        **limits,
        **layout,
    )


def _layout(path: Path, label: str, kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    """table, exp, word_order and pad of one register, each checked against its type."""
    table = _typed(path, f"{label}.table", raw.get("table", "holding"), str)
    if table not in TABLES:
        raise ProfileError(f"{path}: field '{label}.table' must be one of {', '.join(TABLES)}")
    out: dict[str, Any] = {"table": table}
    if "exp" in raw:
        if kind not in EXPONENT_TYPES:
            raise ProfileError(f"{path}: field '{label}.exp' is only for types {', '.join(EXPONENT_TYPES)}")
        exp = _typed(path, f"{label}.exp", raw["exp"], int)
        if not -128 <= exp <= 127:
            raise ProfileError(f"{path}: field '{label}.exp' must be -128..127")
        out["exp"] = exp
    elif kind in EXPONENT_TYPES:
        raise ProfileError(f"{path}: field '{label}.exp' is missing (type {kind} needs its exponent)")
    if "word_order" in raw:
        if WIDTHS[kind] < 2:
            raise ProfileError(f"{path}: field '{label}.word_order' is only for 32- and 64-bit types")
        order = _typed(path, f"{label}.word_order", raw["word_order"], str)
        if order not in WORD_ORDERS:
            raise ProfileError(f"{path}: field '{label}.word_order' must be one of {', '.join(WORD_ORDERS)}")
        out["word_order"] = order
    if "pad" in raw:
        if kind not in TEXT_TYPES:
            raise ProfileError(f"{path}: field '{label}.pad' is only for string and bytes")
        pad = _typed(path, f"{label}.pad", raw["pad"], str)
        if pad not in PADS:
            raise ProfileError(f"{path}: field '{label}.pad' must be one of {', '.join(PADS)}")
        out["pad"] = pad
    return out


def _check_overlaps(path: Path, registers: tuple[Register, ...]) -> None:
    names: set[str] = set()
    for reg in registers:
        if reg.name in names:
            raise ProfileError(f"{path}: field 'register' ({reg.name}): the name is used twice")
        names.add(reg.name)
    ordered = sorted(registers, key=lambda r: (r.table, r.address))
    for before, after in itertools.pairwise(ordered):
        if after.table == before.table and after.address < before.end:
            raise ProfileError(
                f"{path}: field 'register' ({after.name}): "
                f"address 0x{after.address:04X} overlaps {before.name}"
            )
