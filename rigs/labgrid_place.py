"""A rig's serial port and power switch taken from a labgrid environment file (`[labgrid]` in the rig file).

Labs that describe their places in labgrid reuse them: the target's RawSerialPort (a local device) or
NetworkSerialPort (ser2net on another host: rfc2217:// or socket://) becomes meter.port, and its power
driver (any labgrid PowerProtocol: ExternalPowerDriver, NetworkPowerDriver, ...) switches the meter's
supply. labgrid is imported only when a rig file has the section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigs.errors import RigError, RigFileError

INSTALL_HINT = "pip install 'meter-hil[labgrid]'"


@dataclass(frozen=True)
class LabgridSpec:
    """The `[labgrid]` section: the environment file (resolved relative to the rig file) and the target."""

    env: Path
    target: str = "main"


@dataclass(frozen=True)
class Place:
    """What the rig takes from the labgrid target."""

    port: str
    """A device path (RawSerialPort) or a pyserial URL (NetworkSerialPort)."""
    speed: int
    resource: str
    """The labgrid resource the port came from, for messages."""
    power_driver: str | None
    """The class name of the target's power driver, None when it has none."""


def _labgrid(rig_path: Path) -> Any:
    try:
        import labgrid
    except ImportError as exc:
        raise RigFileError(f"{rig_path}: [labgrid]: labgrid is not installed ({INSTALL_HINT}): "
                           f"{exc}") from None
    return labgrid


def _target(rig_path: Path, spec: LabgridSpec) -> tuple[Any, Any]:
    """The labgrid Environment and the named target; RigFileError naming the file or the target."""
    labgrid = _labgrid(rig_path)
    if not spec.env.is_file():
        raise RigFileError(f"{rig_path}: labgrid.env: {spec.env}: no such file")
    try:
        env = labgrid.Environment(str(spec.env))
    except Exception as exc:  # labgrid's config errors, YAML errors: its message says what
        raise RigFileError(f"{rig_path}: labgrid.env {spec.env}: {type(exc).__name__}: {exc}") from None
    try:
        target = env.get_target(spec.target)
    except Exception as exc:  # a resource or driver labgrid cannot build (e.g. RawSerialPort without port)
        raise RigFileError(f"{rig_path}: labgrid.target {spec.target!r} in {spec.env}: "
                           f"{type(exc).__name__}: {exc}") from None
    if target is None:
        known = ", ".join(sorted(env.config.get_targets())) or "none"
        raise RigFileError(f"{rig_path}: labgrid.target: no target {spec.target!r} in {spec.env} "
                           f"(targets: {known})")
    return env, target


def network_url(host: str, port: int, protocol: str) -> str:
    """A NetworkSerialPort as the pyserial URL the driver and the link proxy open."""
    schemes = {"rfc2217": "rfc2217", "raw": "socket"}
    if protocol not in schemes:
        raise ValueError(f"protocol {protocol!r} (labgrid knows rfc2217 and raw)")
    host = f"[{host}]" if ":" in host else host
    return f"{schemes[protocol]}://{host}:{port}"


def read_place(rig_path: Path, spec: LabgridSpec) -> Place:
    """The serial port and the power driver of the labgrid target, checked; RigFileError naming what is
    missing."""
    env, target = _target(rig_path, spec)
    try:
        from labgrid.exceptions import NoResourceFoundError
        from labgrid.protocol import PowerProtocol
        from labgrid.resource import NetworkSerialPort, RawSerialPort

        where = f"labgrid target {spec.target!r} in {spec.env}"
        found = []
        for cls in (RawSerialPort, NetworkSerialPort):
            try:
                found.append(target.get_resource(cls, wait_avail=False))
            except NoResourceFoundError as exc:
                if getattr(exc, "found", None):  # several of one kind: labgrid cannot tell which
                    raise RigFileError(f"{rig_path}: {where}: {exc}; keep one serial port") from None
        if not found:
            raise RigFileError(f"{rig_path}: {where} has no RawSerialPort or NetworkSerialPort "
                               "(meter.port comes from it)")
        if len(found) > 1:
            raise RigFileError(f"{rig_path}: {where} has both a RawSerialPort and a NetworkSerialPort; "
                               "keep the one the meter is on")
        resource = found[0]
        if isinstance(resource, NetworkSerialPort):
            if resource.port is None:
                raise RigFileError(f"{rig_path}: {where}: NetworkSerialPort has no port")
            try:
                port = network_url(resource.host, resource.port, resource.protocol)
            except ValueError as exc:
                raise RigFileError(f"{rig_path}: {where}: NetworkSerialPort {exc}") from None
        else:
            port = str(resource.port)
        power = [d for d in target.drivers if isinstance(d, PowerProtocol)]
        if len(power) > 1:
            names = ", ".join(type(d).__name__ for d in power)
            raise RigFileError(f"{rig_path}: {where} has several power drivers ({names}); keep one")
        return Place(port=port, speed=int(resource.speed), resource=type(resource).__name__,
                     power_driver=type(power[0]).__name__ if power else None)
    finally:
        env.cleanup()


class LabgridPower:
    """The meter's supply switched by the labgrid target's power driver (PowerProtocol on() / off())."""

    def __init__(self, rig_path: Path, spec: LabgridSpec) -> None:
        self.rig_path = rig_path
        self.spec = spec
        self._env: Any = None
        self._driver: Any = None

    def _power(self) -> Any:
        if self._driver is None:
            self._env, target = _target(self.rig_path, self.spec)
            try:
                self._driver = target.get_driver("PowerProtocol")  # activates it and what it binds
            except Exception as exc:
                raise RigError(f"labgrid target {self.spec.target!r}: no power driver to use: "
                               f"{exc}") from None
        return self._driver

    def _switch(self, how: str) -> None:
        driver = self._power()
        try:
            getattr(driver, how)()
        except Exception as exc:  # labgrid's ExecutionError, a network power switch's error, ...
            raise RigError(f"labgrid {type(driver).__name__}.{how}() failed: {type(exc).__name__}: "
                           f"{exc}") from None

    def off(self) -> None:
        self._switch("off")

    def on(self) -> None:
        self._switch("on")

    def close(self) -> None:
        """Deactivate the labgrid drivers (idempotent)."""
        env, self._env, self._driver = self._env, None, None
        if env is not None:
            env.cleanup()
