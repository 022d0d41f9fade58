"""Findings of fuzz/rig_file.py's check, replayed through the target's test_one: a rig file whose
numbers are TOML's nan or inf loaded (every comparison with nan is false, so `value <= 0` let it
through) and would have run a simulator at speed nan or waited an infinite boot_wait.

Found by the target's check on hand-made variants of rigs/virtual.toml, not by the fuzzer itself."""

from pathlib import Path

import pytest

from fuzz import rig_file as target
from rigs.errors import RigFileError

VIRTUAL = (Path(__file__).resolve().parents[2] / "rigs" / "virtual.toml").read_text()


@pytest.mark.parametrize("old,new,field", [
    ("speed = 60.0", "speed = nan", "meter.speed"),
    ("speed = 60.0", "speed = inf", "meter.speed"),
    ("seed = 1", "seed = 1\nstart_timeout = -nan", "meter.start_timeout"),
    ('switch = "simulator"', 'switch = "simulator"\nboot_wait = nan', "power.boot_wait"),
    ('switch = "simulator"', 'switch = "simulator"\nboot_wait = inf', "power.boot_wait"),
    ('config = "driver.DriverConfig"', 'command = ["meter-driver"]\ncall_timeout = inf',
     "driver.call_timeout"),
])
def test_nan_and_inf_are_refused_naming_the_field(old, new, field):
    text = VIRTUAL.replace(old, new)
    if "command" in new:
        text = text.replace('class = "driver.PowermeterDriver"\n', "").replace("[driver.settings]", "[x]")
        text = text[: text.index("[x]")] + text[text.index("[link]"):]
    assert text != VIRTUAL
    with pytest.raises(RigFileError, match=rf"{field}: must be a finite number"):
        target.test_one(text.encode())


def test_the_project_rig_files_still_load():
    for path in sorted(target.RIGS.glob("*.toml")):
        if "labgrid" not in path.read_text():
            target.test_one(path.read_bytes())
