"""meter-sim's live meters: simulated time tied to the wall clock, power, faults and persistence.

No blocking realtime loop: before every register access, status and control command, sync() runs the
simpy Environment up to wall_elapsed x speed. Power off discards RAM (the models); power on rebuilds
them from the state files, which is a boot.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simpy

from .errors import ControlError
from .forwarding import Forwarder
from .grid import check_phase_order
from .load import LoadProfile
from .meter import MeterModel
from .nvram import Nvram
from .profile import Profile
from .registers import RegisterMap
from .transceiver import Transceiver

POWER = "power"
LINK = "link"
PERSIST_INTERVAL_S = 0.25


@dataclass(frozen=True)
class LoadSpec:
    """The load a control command asked for: a fixed power or the EV profile."""

    power_w: float | None = None
    profile: str | None = None

    def build(self, voltage_v: float) -> LoadProfile:
        """The LoadProfile this spec stands for."""
        if self.profile == "ev":
            return LoadProfile.ev(voltage_v=voltage_v)
        return LoadProfile.fixed(self.power_w or 0.0)

    def describe(self) -> str:
        """Short text for the status line."""
        return "ev" if self.profile == "ev" else f"{self.power_w or 0.0:g} W"


def check_load(power_w: object = None, profile: object = None) -> LoadSpec:
    """A LoadSpec from control arguments; ControlError names what is wrong."""
    if profile is not None:
        if profile != "ev":
            raise ControlError(f"set_load: unknown profile {profile!r} (known: 'ev')")
        if power_w is not None:
            raise ControlError("set_load: give either power_w or profile, not both")
        return LoadSpec(profile="ev")
    if isinstance(power_w, bool) or not isinstance(power_w, int | float) or not 0 <= power_w <= 1e6:
        raise ControlError(f"set_load: power_w must be a number of watts between 0 and 1e6, not {power_w!r}")
    return LoadSpec(power_w=float(power_w))


class MeterSim:
    """The meters on one bus (unit ids `units`), their power supply and their transceiver."""

    def __init__(
        self,
        profile: Profile,
        units: list[int],
        state_dir: str | Path,
        speed: float = 1.0,
        seed: int = 0,
        load: LoadSpec | None = None,
        phase_order: str = "cw",
        initial_utc: float | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, not {speed!r}")
        self.profile = profile
        self.units = list(units)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.speed = float(speed)
        self.seed = seed
        self.load = load or LoadSpec(power_w=0.0)
        self.phase_order = check_phase_order(phase_order)
        self.initial_utc = time.time() if initial_utc is None else initial_utc
        self.bridge: Forwarder | Transceiver | None = None
        self.answer_delay_s = 0.0
        self.corruption = 0.0
        self.device_state = 0
        """Device-state bits (set_device_state), read by a model's device_state register."""
        self._t0 = time.monotonic()
        self._power = "off"
        self._boot_until = 0.0
        self._signing_until: dict[int, float] = {}
        self.env = simpy.Environment()
        self.models: dict[int, MeterModel] = {}
        self.maps: dict[int, RegisterMap] = {}
        self._power_on(boot_delay=0.0)

    # ---- time -----------------------------------------------------------------------------------------
    def sim_now(self) -> float:
        """Simulated seconds since meter-sim started."""
        return (time.monotonic() - self._t0) * self.speed

    def sync(self) -> None:
        """Run the simulation up to now; finish boots and signatures that are due."""
        target = self.sim_now()
        env = self.env
        if target > env.now:
            queue = env._queue
            while queue and queue[0][0] <= target and not queue[0][3].callbacks:
                # An event nothing waits for (simpy 4.1 leaves the stop event of every run(until) in the
                # queue): stepping it would only mark it processed.
                heapq.heappop(queue)[3].callbacks = None
            if env.peek() > target:
                # No event is due before target: where run(until=target) ends, without scheduling and
                # processing a stop event (about 15 us of every Modbus request).
                env._now = target
            else:
                env.run(until=target)
        now = time.monotonic()
        if self._power == "booting" and now >= self._boot_until:
            self._power = "on"
            if self.bridge is not None:
                self.bridge.unblock(POWER)
        for unit, model in self.models.items():
            if model.protocol.busy:
                deadline = self._signing_until.setdefault(unit, now + self.profile.signing_delay_s)
                if now >= deadline:
                    model.finish_signing()
                    del self._signing_until[unit]

    # ---- what the server sees -------------------------------------------------------------------------
    def register_map(self, unit: int) -> RegisterMap | None:
        """The live map of unit, or None while the meter has no power or boots (no answer)."""
        if self._power != "on":
            return None
        return self.maps.get(unit)

    def tick(self) -> None:
        """Periodic work: sync and persist energy (call at least every PERSIST_INTERVAL_S)."""
        self.sync()
        for model in self.models.values():
            model.persist()

    # ---- power ----------------------------------------------------------------------------------------
    @property
    def power(self) -> str:
        """ "on", "booting" or "off"."""
        return self._power

    def power_off(self) -> None:
        """Cut the supply: energy persisted, RAM lost, no answers until power_on()."""
        self.sync()
        if self._power == "off":
            return
        if self.bridge is not None:
            self.bridge.block(POWER)
        for model in self.models.values():
            model.stop_metering()
            model.persist()
        self.models, self.maps, self._signing_until = {}, {}, {}
        self._power = "off"

    def power_on(self) -> None:
        """Restore the supply: the meters boot from their state files (boot delay without answers)."""
        self.sync()
        if self._power != "off":
            return
        self._power_on(self.profile.boot_delay_s)

    def _power_on(self, boot_delay: float) -> None:
        if self.bridge is not None:
            self.bridge.block(POWER)
        self.env = simpy.Environment(initial_time=self.sim_now())
        for unit in self.units:
            model = MeterModel(
                self.env,
                self.profile,
                unit,
                Nvram(self.state_path(unit)),
                seed=self.seed,
                load=self.load.build(self.profile.grid.nominal_voltage_v),
                clock_rate=1.0 / self.speed,
                phase_order=self.phase_order,
                initial_utc=self.initial_utc,
            )
            model.device_state = self.device_state
            self.models[unit] = model
            self.maps[unit] = model.register_map()
        self._power = "booting"
        self._boot_until = time.monotonic() + boot_delay
        self.sync()

    def state_path(self, unit: int) -> Path:
        """The state file of the meter at unit."""
        return self.state_dir / f"meter-{unit}.json"

    # ---- faults and load ------------------------------------------------------------------------------
    def _need_bridge(self, what: str) -> Forwarder | Transceiver:
        if self.bridge is None:
            raise ControlError(f"{what}: only on meter-sim's own pty bridge (not with --port)")
        return self.bridge

    def link_down(self) -> None:
        """Cut the bus at the meter's transceiver."""
        self._need_bridge("link_down").block(LINK)

    def link_up(self) -> None:
        """Reconnect the bus."""
        self._need_bridge("link_up").unblock(LINK)

    def set_corruption(self, rate: float, seed: int | None = None) -> None:
        """Flip bits at `rate` per byte on the bus (seeded)."""
        bridge = self._need_bridge("set_corruption")
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ControlError(f"set_corruption: rate must be a number between 0 and 1, not {rate!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ControlError(f"set_corruption: seed must be an integer, not {seed!r}")
        try:
            bridge.set_corruption(rate, self.seed if seed is None else seed)
        except ValueError as exc:
            raise ControlError(f"set_corruption: {exc}") from None
        self.corruption = rate

    def set_answer_delay(self, seconds: float) -> None:
        """Answer every request `seconds` late (a slow meter)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 60:
            raise ControlError(f"set_answer_delay: seconds must be between 0 and 60, not {seconds!r}")
        self.answer_delay_s = float(seconds)

    def set_device_state(self, bits: int) -> None:
        """Set the device-state bits of every meter (a model with such a register: the EM580)."""
        if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= 0xFFFF:
            raise ControlError(f"set_device_state: bits must be an integer 0..0xFFFF, not {bits!r}")
        if not self.profile.has("device_state"):
            raise ControlError(f"set_device_state: model {self.profile.name!r} has no device state register")
        self.sync()
        self.device_state = bits
        for model in self.models.values():
            model.device_state = bits

    def set_phase_order(self, order: str) -> None:
        """Rewire the phases ("cw" or "ccw")."""
        try:
            self.phase_order = check_phase_order(order)
        except ValueError as exc:
            raise ControlError(f"set_phase_order: {exc}") from None
        self.sync()
        for model in self.models.values():
            model.grid.set_phase_order(order)

    def set_load(self, spec: LoadSpec) -> None:
        """Change the load of every meter from now on."""
        self.sync()
        self.load = spec
        for model in self.models.values():
            model.set_load(spec.build(self.profile.grid.nominal_voltage_v))

    # ---- ground truth ---------------------------------------------------------------------------------
    def status(self, unit: int | None = None) -> dict[str, Any]:
        """Ground truth of one meter (the first by default) plus the supply and link state."""
        self.sync()
        unit = self.units[0] if unit is None else unit
        if unit not in self.units:
            raise ControlError(f"status: no meter at unit {unit} (units: {self.units})")
        model = self.models.get(unit)
        if model is not None:
            model.persist_if_ahead()
            meter = model.status()
        else:
            meter = self._stored_status(unit)
        meter.update(
            {
                "power": self._power,
                "link": "down" if self.bridge is not None and LINK in self.bridge.blocked else "up",
                "corruption": self.corruption,
                "answer_delay_s": self.answer_delay_s,
                "load": self.load.describe(),
                "speed": self.speed,
                "sim_time_s": self.env.now,
                "units": self.units,
            }
        )
        return meter

    def _stored_status(self, unit: int) -> dict[str, Any]:
        """What the state file of a meter without power says."""
        stored = Nvram(self.state_path(unit)).load() or {}
        tx = stored.get("tx") or {}
        energy = math.fsum(stored.get("energy_wh", [0.0]))
        return {
            "unit": unit,
            "energy_wh": energy,
            "model": self.profile.name,
            "energy_register": math.floor(energy / self.profile.energy_resolution_wh + 1e-9),
            "energy_resolution_wh": self.profile.energy_resolution_wh,
            "power_w": 0.0,
            "boot_count": stored.get("boot_count", 0),
            "pagination": tx.get("pagination", 0),
            "open_transaction_id": (tx.get("open") or {}).get("id", ""),
        }

    def status_line(self) -> str:
        """One line for a terminal."""
        parts = [f"t={self.env.now:9.0f}s", f"power={self._power}"]
        for unit, model in self.models.items():
            parts.append(
                f"[{unit}] E={model.energy_wh() / 1000:10.4f}kWh P={sum(model.power_w) / 1000:6.2f}kW "
                f"tx={model.protocol.transaction_state} boots={model.boot_count}"
            )
        if self.bridge is not None and LINK in self.bridge.blocked:
            parts.append("LINK DOWN")
        if self.corruption:
            parts.append(f"corrupt={self.corruption:g}")
        if self.answer_delay_s:
            parts.append(f"delay={self.answer_delay_s:g}s")
        return " ".join(parts)

    def shutdown(self) -> None:
        """Persist everything (clean exit)."""
        self.sync()
        for model in self.models.values():
            model.persist()
