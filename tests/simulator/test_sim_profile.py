"""Profiles: reference.toml is docs/meters/reference.md as data; bad profile files name the file and field."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from simulator import ProfileError, load_profile

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "meters" / "reference.md").read_text()


def doc_registers():
    """Every register row of the documented map: name -> dict of the columns given."""
    rows = {}
    section_access = "r"
    header = []
    for line in DOC.splitlines():
        if line.startswith("## ") or line.startswith("### "):
            section_access = "r" if "read-only" in line else None
            header = []
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "address":
            header = cells
            continue
        if not header or not re.fullmatch(r"0x[0-9A-F]{4}", cells[0]):
            continue
        row = dict(zip(header, cells, strict=True))
        if "access" not in row:
            row["access"] = section_access
        rows[row["name"]] = row
    return rows


def test_reference_profile_matches_the_documented_register_map_exactly():
    profile = load_profile("reference")
    documented = doc_registers()
    by_name = {r.name: r for r in profile.registers}
    assert set(documented) == set(by_name) - {"result_buffer"}
    for name, row in documented.items():
        reg = by_name[name]
        assert f"0x{reg.address:04X}" == row["address"], name
        doc_type = row["type"].replace(" \u00d74", "")  # "u16 x4": four u16
        assert reg.type == doc_type, name
        if "regs" in row:
            assert reg.regs == int(row["regs"]), name
        if row.get("scale"):
            assert reg.scale == float(row["scale"]), name
        if "unit" in row and " " in row["unit"]:
            assert row["unit"] in reg.description, name  # the doc put the meaning in the unit column
        elif "unit" in row:
            assert reg.unit == row["unit"], name
        assert reg.access == row["access"], name
    # the result buffer: 0x0500 to 0x06FF, read-only
    assert "Result buffer (0x0500 to 0x06FF), read-only" in DOC
    buffer = by_name["result_buffer"]
    assert (buffer.address, buffer.end - 1, buffer.access) == (0x0500, 0x06FF, "r")
    # the measurement block is 60 contiguous registers
    measurements = [r for r in profile.registers if 0x0100 <= r.address < 0x0200]
    assert sum(r.regs for r in measurements) == 60
    assert all(r.description for r in profile.registers)
    raw = tomllib.loads((ROOT / "simulator" / "profiles" / "reference.toml").read_text())
    for entry in raw["register"]:
        assert {"address", "type", "scale", "unit", "access", "description"} <= set(entry), entry["name"]


def test_plain_profile_drops_the_transaction_block_and_the_key():
    plain = load_profile("plain")
    assert plain.capabilities == 0 and not plain.transactions
    assert not any(0x0400 <= r.address < 0x0B00 for r in plain.registers)
    reference = {r.name for r in load_profile("reference").registers}
    assert {r.name for r in plain.registers} < reference


def write(tmp_path, text, name="bad.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = '[meter]\nname = "x"\n'
REG = '[[register]]\nname = "a"\naddress = 0\ntype = "u16"\naccess = "r"\n'


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[meter\n", "not valid TOML"),
        ("[meter]\n", "meter.name"),
        (MINIMAL + "boot_delay_s = -1\n", "meter.boot_delay_s"),
        (MINIMAL + 'curve = "p999"\n', "meter.curve"),
        (MINIMAL + "transactions = 3\n", "meter.transactions"),
        (MINIMAL + "colour = 1\n", "meter.colour"),
        (MINIMAL + "[grid]\npower_factor = 2.0\n", "grid.power_factor"),
        (MINIMAL + REG.replace('type = "u16"', 'type = "u128"'), "register[0] (a).type"),
        (MINIMAL + REG.replace("address = 0", 'address = "zero"'), "register[0] (a).address"),
        (MINIMAL + REG.replace('access = "r"', 'access = "w"'), "register[0] (a).access"),
        (MINIMAL + REG + REG.replace('"a"', '"b"'), "overlaps a"),
        (MINIMAL + REG + REG.replace("address = 0", "address = 5"), "the name is used twice"),
        (MINIMAL + REG.replace('type = "u16"', 'type = "u32"\nregs = 3'), "register[0] (a).regs"),
        ('base = "reference"\ndrop_registers = ["nope"]\n' + MINIMAL, "drop_registers"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_field(tmp_path, text, field):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(path) in str(caught.value)
    assert field in str(caught.value)


def test_a_missing_profile_is_a_clear_error():
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile("no-such-meter")


def test_meter_sim_exits_2_on_a_bad_profile_naming_file_and_field(tmp_path):
    path = write(tmp_path, MINIMAL + "records_kept = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "--pty", "--profile", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert str(path) in result.stderr and "meter.records_kept" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_meter_sim_help_describes_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 0
    for option in (
        "--pty",
        "--port",
        "--speed",
        "--state-dir",
        "--control",
        "--profile",
        "--unit",
        "--meters",
        "--seed",
        "--load-w",
        "--phase-order",
        "--baudrate",
        "--parity",
        "--status-interval",
    ):
        assert option in result.stdout


@pytest.mark.parametrize("content", ["{not json", '{"version": 1, "energy_wh": [1, 2]}', "[]"])
def test_meter_sim_names_a_damaged_state_file(tmp_path, content):
    state = tmp_path / "state"
    state.mkdir()
    (state / "meter-1.json").write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "--pty", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert str(state / "meter-1.json") in result.stderr
    assert "Traceback" not in result.stderr
