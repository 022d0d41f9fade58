"""The rig file's fields of an out-of-process driver: driver.command and its timeouts.

Kept apart from rigs/spec.py so the two evolve without stepping on each other; spec.py hands the
[driver] table here when it has a `command`.
"""

from __future__ import annotations

from typing import Any

from rigs.process_driver import placeholders
from rigs.spec import DriverSpec, _Fields

PROCESS_DRIVER_CLASS = "rigs.process_driver.ProcessDriver"


def process_driver_spec(f: _Fields, table: dict[str, Any]) -> DriverSpec:
    """A DriverSpec for `driver.command = [...]`; RigFileError naming the field when it is wrong."""
    for key in ("class", "config", "settings"):
        if key in table:
            f.fail(key, "not with driver.command: a driver is either a class in this process or a "
                        "command (pass its settings as arguments in driver.command)")
    command = f.get("command", list, required=True)
    if not command:
        f.fail("command", "empty: give the program and its arguments, e.g. "
                          '["meter-driver", "serve", "--port", "{port}"]')
    for index, argument in enumerate(command):
        if not isinstance(argument, str) or not argument:
            f.fail(f"command[{index}]", f"expected a non-empty string, got {argument!r}")
        try:
            placeholders(argument)
        except ValueError as exc:
            f.fail(f"command[{index}]", str(exc))
    return DriverSpec(
        class_path=PROCESS_DRIVER_CLASS,
        config_path="",
        command=tuple(command),
        ready_timeout=float(f.positive("ready_timeout", (int, float), 10.0)),
        call_timeout=float(f.positive("call_timeout", (int, float), 30.0)),
        stop_grace=float(f.positive("stop_grace", (int, float), 3.0)),
    )
