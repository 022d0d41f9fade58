"""Every built-in profile against its page in docs/meters/, table by table: address, name, type, regs,
access and exp of each documented register (the plain meter is documented on the reference page)."""

import re
from pathlib import Path

import pytest

from simulator import known_models, load_model

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"reference": "reference", "plain": "reference", "iskra-wm3m4c": "iskra-wm3m4c",
         "eastron-sdm630": "eastron-sdm630", "reference-sr": "reference",
         "carlo-gavazzi-em580": "carlo-gavazzi-em580", "carlo-gavazzi-em580-p384": "carlo-gavazzi-em580"}


def documented(page):
    """(table, name) -> the row's columns, from every register table of docs/meters/<page>.md."""
    rows = {}
    table, access, header = "holding", "r", []
    for line in (ROOT / "docs" / "meters" / f"{page}.md").read_text().splitlines():
        if line.startswith("#"):
            table = "input" if "Input registers" in line else "holding"
            access = "r" if "read-only" in line else None
            header = []
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "address":
            header = cells
            continue
        if not header or not re.fullmatch(r"0x[0-9A-F]{4}|\d+", cells[0]):
            continue
        row = dict(zip(header, cells, strict=True))
        row.setdefault("access", access)
        rows[(table, row["name"])] = row
    return rows


def test_every_built_in_model_has_a_page():
    assert set(known_models()) == set(PAGES)


@pytest.mark.parametrize("model", sorted(PAGES))
def test_the_profile_matches_its_page_table_by_table(model):
    profile = load_model(model)
    rows = documented(PAGES[model])
    served = {(r.table, r.name): r for r in profile.registers}
    undocumented = set(served) - set(rows) - {("holding", "result_buffer")}  # the reference's buffer is prose
    assert not undocumented, undocumented
    if model == "plain":
        rows = {key: row for key, row in rows.items() if key in served}
    assert set(rows) == set(served) - {("holding", "result_buffer")}
    for key, row in rows.items():
        reg = served[key]
        assert reg.address == int(row["address"], 0), key
        assert reg.type == row["type"].replace(" \u00d74", "").lower(), key
        if row.get("regs"):
            assert reg.regs == int(row["regs"]), key
        assert reg.access == row["access"], key
        if "exp" in row:
            assert reg.exp == (int(row["exp"]) if row["exp"] else None), key


def test_iskra_tables_and_function_codes():
    profile = load_model("iskra-wm3m4c")
    assert profile.function_codes == (3, 4, 6, 16)
    assert {r.table for r in profile.registers if r.address < 1000} == {"input"}
    assert {r.table for r in profile.registers if r.address >= 7000} == {"holding"}
    assert load_model("reference").function_codes == (3, 6, 16)
    assert profile.serial_number(33) == "W4100033"
    assert profile.energy_resolution_wh == 10.0 and load_model("reference").energy_resolution_wh == 0.1
