"""The simulated meter: grid and load on a simpy Environment, energy integrated exactly, a clock,
non-volatile memory, and the model's transaction protocol (simulator/models/).

Power is piecewise constant between simpy events, so energy is committed at each load change and
read in between as committed + P x dt: no accumulation drift. A MeterModel is one power-up of the
meter: building one from an existing state file is a boot.
"""

from __future__ import annotations

import cmath
import math
import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from .errors import StateError
from .grid import Grid
from .load import LoadProfile, PhasePower
from .models import protocol_class
from .nvram import Nvram
from .ocmf import (
    Identification,
    Reading,
    derive_private_key,
    format_tm,
    load_private_key,
    private_key_pem,
    public_key_der,
)
from .profile import Profile
from .registers import RegisterMap
from .transactions import TransactionEngine, TxError

DEFAULT_UTC = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the factory setting of a fresh meter's clock
STATE_VERSION = 1


@dataclass(frozen=True)
class Measurements:
    """One consistent snapshot of what the meter measures (SI units)."""

    voltages_v: tuple[float, float, float]
    line_voltages_v: tuple[float, float, float]
    currents_a: tuple[float, float, float]
    neutral_current_a: float
    power_w: tuple[float, float, float]
    reactive_var: tuple[float, float, float]
    apparent_va: tuple[float, float, float]
    power_factor: tuple[float, float, float]
    frequency_hz: float
    phase_order: str


class MeterModel:
    """One meter (one unit id) from power-up on. Time is the simpy Environment's (simulated seconds)."""

    def __init__(
        self,
        env: simpy.Environment,
        profile: Profile,
        unit: int = 1,
        nvram: Nvram | None = None,
        seed: int = 0,
        load: LoadProfile | None = None,
        phase_order: str = "cw",
        initial_utc: float = DEFAULT_UTC,
        clock_rate: float = 1.0,
    ) -> None:
        self.env = env
        self.device_state = 0  # fault bits a model may serve (the EM580's device_state), set by runtime
        self.clock_rate = clock_rate  # clock seconds per simulated second (meter-sim: 1/speed)
        self.profile = profile
        self.unit = unit
        self.serial = profile.serial_number(unit)
        self.nvram = nvram
        self.boot_sim_s = env.now
        self.rng = random.Random(f"{seed}:{unit}:{env.now}")
        self.grid = Grid(env, profile.grid, self.rng, phase_order)
        self._counts_per_wh = 1.0 / profile.energy_resolution_wh
        self._committed_wh = [0.0, 0.0, 0.0]
        self._commit_t = env.now
        self._power_w: PhasePower = (0.0, 0.0, 0.0)
        self._persisted_registers = (0, 0, 0, 0)
        self._energy_key: tuple[object, ...] = ()
        self._energy_counters = (0, 0, 0, 0)
        self.clock_synchronised = False
        self.utc_offset_min = 0
        self._clock_base_utc = initial_utc
        self._clock_base_sim = env.now
        self.boot_count = 0
        self._load_process: simpy.Process | None = None
        self.protocol = protocol_class(profile.protocol)(self)
        stored = nvram.load() if nvram is not None else None
        if stored is None:
            self.key = derive_private_key(profile.curve, f"meter-hil:{seed}:{self.serial}")
        else:
            self._restore(stored)
        self.boot_count += 1
        self.public_key_der = public_key_der(self.key) if profile.transactions else b""
        self.protocol.boot()  # e.g. a record left unsigned by a power cut is signed at boot
        self.persist()
        self.set_load(load or LoadProfile.fixed(0.0))

    # ---- state file -----------------------------------------------------------------------------------
    def _restore(self, d: dict[str, Any]) -> None:
        where = self.nvram.path if self.nvram is not None else "state"
        try:
            if d.get("version") != STATE_VERSION:
                raise StateError(f"{where}: unknown state version {d.get('version')!r}")
            self._committed_wh = [float(x) for x in d["energy_wh"]]
            if len(self._committed_wh) != 3:
                raise StateError(f"{where}: field 'energy_wh' needs three values")
            self.boot_count = int(d["boot_count"])
            self._clock_base_utc = float(d["clock"]["utc"])
            self.utc_offset_min = int(d["clock"]["offset"])
            self.key = load_private_key(d["key"])
            self.protocol.restore(d["tx"])
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{where}: the meter state is damaged ({type(exc).__name__}: {exc})") from None
        self._persisted_registers = self.energy_registers()

    def to_json(self) -> dict[str, Any]:
        """The whole non-volatile state."""
        return {
            "version": STATE_VERSION,
            "serial": self.serial,
            "energy_wh": self.energy_phases_wh(),
            "boot_count": self.boot_count,
            "clock": {"utc": self.clock_utc(), "offset": self.utc_offset_min},
            "key": private_key_pem(self.key),
            "tx": self.protocol.to_json(),
        }

    def persist(self) -> None:
        """Write the non-volatile state now (atomically)."""
        registers = self.energy_registers()
        if self.nvram is not None:
            self.nvram.save(self.to_json())
        self._persisted_registers = registers

    def persist_if_ahead(self) -> None:
        """Persist when an energy register moved past the stored value: call before serving energy,
        so a restart never shows less energy than was served."""
        if self.energy_registers() != self._persisted_registers:
            self.persist()

    @property
    def engine(self) -> TransactionEngine:
        """The reference protocol's transaction engine (kept for callers written for that model)."""
        engine = getattr(self.protocol, "engine", None)
        if not isinstance(engine, TransactionEngine):
            raise StateError(f"profile {self.profile.name!r}: its protocol has no TransactionEngine")
        return engine

    def energy_registers(self) -> tuple[int, int, int, int]:
        """The total and per-phase energy counters (profile energy_resolution_wh) now. Kept for the
        instant it was computed at (a block read asks for it once a register and once to persist)."""
        key = (self.env.now, self._commit_t, self._power_w, *self._committed_wh)
        if key == self._energy_key:
            return self._energy_counters
        phases = self.energy_phases_wh()
        l1, l2, l3 = (self.energy_register(wh) for wh in phases)
        counters = (self.energy_register(math.fsum(phases)), l1, l2, l3)
        self._energy_key, self._energy_counters = key, counters
        return counters

    # ---- load and energy ------------------------------------------------------------------------------
    def set_load(self, load: LoadProfile) -> None:
        """Replace the load; the new profile starts now."""
        if self._load_process is not None and self._load_process.is_alive:
            self._load_process.interrupt()
        self._load_process = self.env.process(self._run_load(load))

    def _set_power(self, power: PhasePower) -> None:
        self._commit()
        self._power_w = power

    def _commit(self) -> None:
        dt = self.env.now - self._commit_t
        if dt > 0:
            self._committed_wh = [
                e + p * dt / 3600.0 for e, p in zip(self._committed_wh, self._power_w, strict=True)
            ]
        self._commit_t = self.env.now

    def _run_load(self, load: LoadProfile) -> Generator[simpy.Event, Any, None]:
        try:
            for step in load:
                self._set_power(step.power_w)
                if step.duration_s is None:
                    yield self.env.event()  # for ever (until interrupted)
                else:
                    yield self.env.timeout(step.duration_s)
        except simpy.Interrupt:
            return

    def stop_metering(self) -> None:
        """Power is going out: commit the energy up to now and stop the load."""
        self._set_power((0.0, 0.0, 0.0))
        if self._load_process is not None and self._load_process.is_alive:
            self._load_process.interrupt()

    @property
    def power_w(self) -> PhasePower:
        """Per-phase active power now."""
        return self._power_w

    def energy_phases_wh(self) -> list[float]:
        """Exact imported energy per phase (Wh) at the current simulated time."""
        dt = self.env.now - self._commit_t
        return [e + p * dt / 3600.0 for e, p in zip(self._committed_wh, self._power_w, strict=True)]

    def energy_wh(self) -> float:
        """Exact imported energy, all phases (Wh)."""
        return math.fsum(self.energy_phases_wh())

    def energy_register(self, wh: float | None = None) -> int:
        """The import energy counter in the model's units (energy_resolution_wh: 0.1 Wh for the
        reference, 10 Wh for Iskra), truncated as a counting meter does."""
        return math.floor((self.energy_wh() if wh is None else wh) * self._counts_per_wh + 1e-9)

    # ---- measurements ---------------------------------------------------------------------------------
    def measurement_key(self) -> tuple[object, ...]:
        """Everything measurements() derives from (the power, the grid's voltages, frequency and phase
        order; the power factor is the profile's): equal keys, equal measurements. The register map keeps
        a snapshot and its encoded words while the key stays the same, which is until the next simpy event
        that changes one of them."""
        grid = self.grid
        return (self._power_w, *grid.voltages_v, grid.frequency_hz, grid.phase_order)

    def measurements(self) -> Measurements:
        """Voltages, currents, powers now."""
        pf = self.profile.grid.power_factor
        volts = self.grid.voltages_v
        power = self._power_w
        apparent = tuple(p / pf for p in power)
        reactive = tuple(math.sqrt(max(s * s - p * p, 0.0)) for s, p in zip(apparent, power, strict=True))
        currents = tuple(s / v if v > 0 else 0.0 for s, v in zip(apparent, volts, strict=True))
        phi = math.acos(pf)
        angles = self.grid.angles_rad()
        neutral = abs(sum(cmath.rect(i, a - phi) for i, a in zip(currents, angles, strict=True)))
        factors = tuple(pf if p > 0 else 1.0 for p in power)
        return Measurements(
            voltages_v=(volts[0], volts[1], volts[2]),
            line_voltages_v=self.grid.line_voltages_v(),
            currents_a=(currents[0], currents[1], currents[2]),
            neutral_current_a=neutral,
            power_w=power,
            reactive_var=(reactive[0], reactive[1], reactive[2]),
            apparent_va=(apparent[0], apparent[1], apparent[2]),
            power_factor=(factors[0], factors[1], factors[2]),
            frequency_hz=self.grid.frequency_hz,
            phase_order=self.grid.phase_order,
        )

    @property
    def uptime_s(self) -> float:
        """Simulated seconds since this power-up."""
        return self.env.now - self.boot_sim_s

    # ---- clock ----------------------------------------------------------------------------------------
    def clock_utc(self) -> float:
        """The meter's clock (UTC seconds) now."""
        return self.utc_at(self.env.now)

    def utc_at(self, sim_s: float) -> float:
        """The meter's clock at simulated time sim_s. With a speed-up (clock_rate 1/speed) the clock keeps
        wall time while the physics runs faster, so a driver that sets the clock from its host stays in
        step and begin/end times stay in order across a resync."""
        return self._clock_base_utc + (sim_s - self._clock_base_sim) * self.clock_rate

    def set_clock(self, utc: float, synchronised: bool = True) -> None:
        """Set the clock; it is synchronised until the next power-up (a model whose driver reports the
        synchronisation separately passes synchronised=False and sets clock_synchronised itself)."""
        self._clock_base_utc, self._clock_base_sim = float(utc), self.env.now
        if synchronised:
            self.clock_synchronised = True

    def reading(self) -> Reading:
        """A begin/end reading now."""
        wh = self.energy_wh()
        return Reading(
            self.energy_register(wh),
            wh,
            format_tm(self.clock_utc(), self.utc_offset_min, self.clock_synchronised),
        )

    # ---- transactions ---------------------------------------------------------------------------------
    def command(self, command: int, tx_id: str = "", ident: Identification | None = None) -> TxError:
        """Run a reference transaction command as a write of the command register does."""
        if not self.profile.transactions:
            raise StateError(f"profile {self.profile.name!r} has no transactions")
        run = getattr(self.protocol, "command", None)
        if run is None:
            raise StateError(f"profile {self.profile.name!r}: its protocol takes no numbered commands")
        result: TxError = run(command, tx_id, ident)
        return result

    def finish_signing(self) -> None:
        """End the busy period: sign what waits (the record lands in the result buffer)."""
        self.protocol.finish_signing()

    def register_map(self) -> RegisterMap:
        """A new register map on this power-up (RAM cleared)."""
        return RegisterMap(self)

    def status(self) -> dict[str, Any]:
        """Ground truth for the control socket and tests."""
        wh = self.energy_wh()
        m = self.measurements()
        proto = self.protocol
        return {
            "unit": self.unit,
            "model": self.profile.name,
            "serial": self.serial,
            "energy_wh": wh,
            "energy_register": self.energy_register(wh),
            "energy_resolution_wh": self.profile.energy_resolution_wh,
            "power_w": math.fsum(self._power_w),
            "power_phases_w": list(self._power_w),
            "voltages_v": list(m.voltages_v),
            "frequency_hz": m.frequency_hz,
            "phase_order": m.phase_order,
            "transaction_state": proto.transaction_state,
            "open_transaction_id": proto.open_transaction_id,
            "signing": proto.busy,
            "pagination": proto.pagination,
            "uptime_s": self.uptime_s,
            "boot_count": self.boot_count,
            "clock_utc": self.clock_utc(),
            "clock_synchronised": self.clock_synchronised,
            "closed_transactions": proto.closed_transactions(),
        }
