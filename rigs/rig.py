"""A running rig: meter side, optional link proxy, the driver under test, and EvseManager in front of it.

The rig offers operations (power_off, link_down, set_phase_order, ground_truth, restart_driver, ...);
steps call them without knowing what kind of rig this is. An operation the rig cannot do raises
CapabilityMissing; scenarios needing it are tagged so they are skipped before they start.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from rigs.errors import CapabilityMissing, RigError, RigFileError
from rigs.evse_manager import EvseManager
from rigs.frames import RequestKind, find_request
from rigs.meter_side import PhysicalMeter, SimulatedMeter
from rigs.power import PowerSwitch, power_switch
from rigs.spec import GROUND_TRUTH, RigSpec
from rigs.timeline import Timeline
from rigs.wirelog import WireLog

log = logging.getLogger(__name__)



def _import(path: str, field: str, rig_path: Path) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RigFileError(f"{rig_path}: {field}: cannot import module {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RigFileError(f"{rig_path}: {field}: module {module_name!r} has no {attr!r}") from None


def driver_factory(spec: RigSpec) -> Any:
    """Check the rig file's driver class and config class can be built; return a function port -> driver.
    With driver.command: check the command, return a function (port, log_path) -> ProcessDriver."""
    if spec.driver.command is not None:
        from rigs.process_driver import process_driver_factory

        return process_driver_factory(spec)
    driver_cls = _import(spec.driver.class_path, "driver.class", spec.path)
    config_cls = _import(spec.driver.config_path, "driver.config", spec.path)
    from driver.api import REQUIRED_MEMBERS  # late, as the driver class itself

    for name in REQUIRED_MEMBERS:
        if not hasattr(driver_cls, name):
            raise RigFileError(f"{spec.path}: driver.class: {spec.driver.class_path} has no {name} "
                               "(it must implement driver.api.PowermeterAPI, docs/architecture.md)")
    if is_dataclass(config_cls):
        known = {f.name for f in fields(config_cls)}
    else:
        known = set(inspect.signature(config_cls).parameters)
    for key in spec.driver.settings:
        if key not in known:
            raise RigFileError(f"{spec.path}: driver.settings.{key}: {spec.driver.config_path} has no such "
                               f"setting (known: {', '.join(sorted(known))})")

    # The meter model goes to a config that takes one (meter-hil's own: its protocol), unless set there.
    model = {"model": spec.meter.model} if "model" in known and "model" not in spec.driver.settings else {}

    def configure(port: str) -> Any:
        meter = spec.meter
        try:
            config = config_cls(port=port, baudrate=meter.baudrate, parity=meter.parity, unit=meter.unit,
                                **model, **spec.driver.settings)
            check = getattr(config, "validate", None)
            if callable(check):
                check()
        except Exception as exc:  # the vendor's config class decides what it raises; its message names it
            raise RigFileError(f"{spec.path}: driver.settings: {exc}") from None
        return config

    configure("rig-file-check")  # a setting of the wrong type or range is a bad rig file: say so now

    def make(port: str) -> Any:
        config = configure(port)
        try:
            return driver_cls(config)
        except Exception as exc:
            raise RigError(f"driver.class {spec.driver.class_path} could not be built: {exc}") from None

    return make


class Rig:
    """One running rig. Use as a context manager: everything it opened is closed on exit."""

    def __init__(self, spec: RigSpec, workdir: Path, wire_log: WireLog | None = None,
                 driver_log: Path | None = None) -> None:
        self.spec = spec
        self.workdir = workdir
        self.wire_log = wire_log
        self.timeline = Timeline()  # what the rig injected, EvseManager called and the driver reported
        # An out-of-process driver's stderr and calls (rigs/process_driver.py); what it did wrong.
        self._driver_options = ({"log_path": driver_log or workdir / "driver.log"}
                                if spec.driver.command is not None else {})
        self.driver_failures: list[tuple[str, bool]] = []
        self.capabilities = spec.capabilities | model_capabilities(spec.meter.model)
        self._make_driver = driver_factory(spec)
        self.meter: SimulatedMeter | PhysicalMeter
        if spec.meter.kind == "simulator":
            self.meter = SimulatedMeter(spec.meter, workdir)
        else:
            self.meter = PhysicalMeter(spec.meter)
        self.proxy: Any = None
        self.remote: Any = None  # rigs.remote.PortServer with [link] remote
        self.driver: Any = None
        self.evse: EvseManager | None = None
        self.charger_store: dict[str, Any] = {}  # EvseManager's persistent store: survives stop_driver
        self.driver_port: str | None = None
        self._power: PowerSwitch | None = None
        self._armed_cut: str | None = None  # the kind of request whose arrival at the meter cuts the link
        self._to_meter = bytearray()
        self._request_kind: RequestKind | None = None
        self._cut_done = threading.Event()

    # --- life cycle ------------------------------------------------------------------------------

    def __enter__(self) -> Rig:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the meter side, the proxy if the rig file asks for one, then the driver and EvseManager."""
        meter_port = self.meter.start()
        if self.spec.link_remote != "none":  # the meter in "another room": served on 127.0.0.1
            from rigs.remote import PortServer

            self.remote = PortServer(meter_port, self.spec.link_remote, baudrate=self.spec.meter.baudrate)
            meter_port = self.remote.start().url
        self._power = power_switch(self.spec.power, self.meter.control, self.spec)
        if self.spec.link_proxy:
            from simulator import LinkProxy

            meter = self.spec.meter
            self.proxy = LinkProxy(meter_port, baudrate=meter.baudrate, parity=meter.parity)
            self.proxy.on_bytes(self._on_bytes)
            self.proxy.start()
            self.driver_port = self.proxy.path
        else:
            self.driver_port = meter_port
        self.start_driver()

    def start_driver(self) -> EvseManager:
        """Open a fresh driver instance (it remembers nothing) and put an EvseManager in front of it."""
        assert self.driver_port is not None
        self.driver = self._make_driver(self.driver_port, **self._driver_options)
        # EvseManager subscribes before the driver opens, so an error raised while opening is seen.
        self.evse = EvseManager(self.driver, self.spec.fail_on_powermeter_errors,
                                on_charging_disabled=self._charging_disabled, timeline=self.timeline,
                                store=self.charger_store)
        try:
            self.driver.open()
        except BaseException:
            self.stop_driver()
            raise
        self.timeline.fault("driver_started")
        return self.evse

    def stop_driver(self) -> None:
        """Close the driver and its EvseManager, as when the charger loses power."""
        if self.evse is not None:
            self.evse.close()
            self.evse = None
        if self.driver is not None:
            self.driver.close()
            self._keep_driver_failure()
            self.driver = None
            self.timeline.fault("driver_stopped")

    def _keep_driver_failure(self) -> None:
        failure = getattr(self.driver, "failure", None)
        if failure:
            self.driver_failures.append((failure, bool(getattr(self.driver, "failure_raised", False))))

    def unreported_driver_failure(self) -> str | None:
        """What an out-of-process driver did wrong that no step has been shown (it crashed while no
        call was pending, say); the rig fixture fails the scenario with it."""
        self._keep_driver_failure()
        return next((failure for failure, raised in self.driver_failures if not raised), None)

    def restart_driver(self) -> EvseManager:
        """A new driver process after a system power failure: nothing survives on the charger side."""
        self.stop_driver()
        return self.start_driver()

    def close(self) -> None:
        """Close driver, proxy and meter side, each even if another fails."""
        errors: list[BaseException] = []
        for step in (self.stop_driver, self._close_proxy, self._close_remote, self._close_power,
                     self.meter.close):
            try:
                step()
            except Exception as exc:
                log.warning("closing the rig: %s raised %r", step.__name__, exc)
                errors.append(exc)
        if errors:
            raise RigError(f"closing the rig failed: {errors[0]!r}")

    def _close_power(self) -> None:
        close = getattr(self._power, "close", None)  # a labgrid power driver is deactivated
        if callable(close):
            close()

    def _close_remote(self) -> None:
        if self.remote is not None:
            self.remote.close()
            self.remote = None

    def _close_proxy(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None

    # --- operations the steps use ------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def _need(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise CapabilityMissing(capability)

    def power_off(self) -> None:
        self._need("power_control")
        assert self._power is not None
        self._power.off()
        self.timeline.fault("power_off")

    def power_on(self) -> None:
        self._need("power_control")
        assert self._power is not None
        self._power.on()
        self.timeline.fault("power_on")

    def link_down(self) -> None:
        self._need("link_control")
        self.proxy.cut()
        self.timeline.fault("link_down")

    def link_up(self) -> None:
        self._need("link_control")
        self.proxy.restore()
        self.timeline.fault("link_up")

    def set_link_noise(self, rate: float, seed: int) -> None:
        """Flip a bit in each byte on the link with probability `rate` (seeded); 0 makes it clean again."""
        self._need("link_control")
        self.proxy.set_corruption(rate, seed)
        self.timeline.fault("link_noise", rate=rate, seed=seed)

    def link_bytes_corrupted(self) -> int:
        """How many bytes the link has corrupted so far."""
        self._need("link_control")
        return int(self.proxy.stats["corrupted"])

    def cut_link_on_stop_command(self) -> None:
        """Arm a cut: the link goes down right after the next stop command reaches the meter, so the
        meter acts on it but its answer is lost."""
        self._need("link_control")
        self._request_kind = meter_requests(self.spec.meter.model)
        self._cut_done.clear()
        self._to_meter.clear()
        self._armed_cut = "stop"
        self.timeline.fault("link_cut_armed", on="stop command")

    def armed_cut_happened(self) -> bool:
        return self._cut_done.is_set()

    def _on_bytes(self, direction: str, data: bytes, monotonic_time: float) -> None:
        """LinkProxy callback: feed the wire log and watch for an armed cut's request.

        The proxy calls this after delivering a chunk, outside its lock, and reads the meter's answer on
        the same thread only after this returns: a cut made here always drops that answer, at any load."""
        if self.wire_log is not None:
            self.wire_log.on_bytes(direction, data, monotonic_time)
        armed = self._armed_cut
        if armed is None or not _towards_meter(direction):
            return
        self._to_meter += data
        del self._to_meter[:-512]
        if find_request(bytes(self._to_meter), self.spec.meter.unit, self._request_kind, armed) >= 0:
            self._armed_cut = None
            self.proxy.cut()
            self._cut_done.set()
            self.timeline.fault("link_down", on="stop command reached the meter")

    def set_phase_order(self, order: str) -> None:
        self._need("phase_control")
        self.meter.control.set_phase_order(order)
        self.timeline.fault("phase_order", order=order)

    def set_load(self, power_w: float) -> None:
        self._need("load_control")
        self.meter.control.set_load(power_w=power_w)
        self.timeline.fault("load", power_w=power_w)

    def ground_truth(self) -> dict[str, Any]:
        """The meter side's own account (exact energy, transaction state, closed transactions)."""
        self._need(GROUND_TRUTH)
        return self.meter.control.status()

    def _charging_disabled(self) -> None:
        """EvseManager stopped charging on a meter error: the load goes away, if the rig can do that."""
        if self.has("load_control"):
            try:
                self.set_load(0.0)
            except Exception as exc:  # the meter may be unreachable right now; charging is off anyway
                log.info("could not switch the load off: %r", exc)


MODEL_FEATURES = ("transactions", "phase_sequence", "separate_begin_end", "stop_time_limits")
PLAIN_METER = "plain_meter"
"""A capability a rig has when its meter model has no signed transactions (the NOT_SUPPORTED scenario)."""


def model_capabilities(model: str) -> frozenset[str]:
    """What the meter model can do, as capability tags: its protocol's features, and plain_meter for a
    model without transactions. A model no protocol describes ("auto", a vendor's) is taken to be an
    Eichrecht meter: transactions and a phase sequence."""
    from driver.protocols import PROTOCOLS  # late: a rig file can be checked without the serial stack

    protocol = PROTOCOLS.get(model)
    features = protocol.features if protocol is not None else frozenset({"transactions", "phase_sequence"})
    return frozenset(features) | (frozenset() if "transactions" in features else frozenset({PLAIN_METER}))


def meter_requests(model: str) -> RequestKind:
    """How the meter model's requests look on the wire (its protocol's own description)."""
    from driver.protocols import PROTOCOLS  # late: a rig file can be checked without the serial stack

    if model not in PROTOCOLS:
        raise RigError(f"meter.model {model!r}: no protocol describes its requests, so the rig cannot tell "
                       f"when a command reaches the meter (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[model].request_kind


def _towards_meter(direction: str) -> bool:
    """LinkProxy names directions like "driver->meter"; the request is the part going to the meter."""
    text = str(direction).lower()
    return text.endswith("meter") or text in ("to_meter", "d2m", "tx")
