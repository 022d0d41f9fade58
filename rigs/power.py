"""How a rig switches the meter's supply: the simulator's control, a bench relay command, a labgrid power
driver, or not at all."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any, Protocol

from rigs.errors import CapabilityMissing, RigError
from rigs.spec import PowerSpec, RigSpec


class PowerSwitch(Protocol):
    def off(self) -> None: ...
    def on(self) -> None: ...


class SimulatorPower:
    """Power the simulated meter off and on through its control socket."""

    def __init__(self, control: Any) -> None:
        self.control = control

    def off(self) -> None:
        self.control.power_off()

    def on(self) -> None:
        self.control.power_on()


class CommandPower:
    """Run the rig file's shell commands (e.g. a relay tool) to cut and restore the supply."""

    def __init__(self, spec: PowerSpec) -> None:
        assert spec.off_command is not None and spec.on_command is not None
        self.off_command = spec.off_command
        self.on_command = spec.on_command

    def _run(self, field: str, command: str) -> None:
        try:
            done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RigError(f"power.{field} {command!r} failed: {exc}") from None
        if done.returncode != 0:
            raise RigError(f"power.{field} {command!r} exited {done.returncode}: {done.stderr.strip()[:200]}")

    def off(self) -> None:
        self._run("off_command", self.off_command)

    def on(self) -> None:
        # No sleep here: the steps poll until the meter answers again, allowing power.boot_wait extra.
        self._run("on_command", self.on_command)


class NoPower:
    """A rig that cannot switch power; scenarios tagged @power_control are skipped before they get here."""

    def off(self) -> None:
        raise CapabilityMissing("power_control")

    def on(self) -> None:
        raise CapabilityMissing("power_control")


def power_switch(spec: PowerSpec, control: Any, rig: RigSpec | None = None) -> PowerSwitch:
    """The switch the rig file asks for (a labgrid one needs the rig file's [labgrid] section)."""
    if spec.switch == "labgrid":
        from rigs.labgrid_place import LabgridPower

        assert rig is not None and rig.labgrid is not None
        return LabgridPower(rig.path, rig.labgrid)
    if spec.switch == "simulator":
        return SimulatorPower(control)
    if spec.switch == "command":
        return CommandPower(spec)
    return NoPower()
