"""Runs campaign schedules: the real driver, through a FaultWire, against a real meter-sim process.

One meter-sim and one driver instance are reused from schedule to schedule (a charger that keeps
running); the invariants are taken per schedule against the meter's ground truth, so reuse hides
nothing: pagination and energy are compared with the values at the start of each schedule.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driver.errors import DriverError
from driver.protocols import protocol_class
from rigs.campaign_invariants import Observation, TxTrace, check
from rigs.campaign_schedule import FaultPlan, Schedule
from rigs.campaign_wire import FaultWire
from rigs.errors import RigError
from rigs.evse_manager import EvseManager, status_name
from simulator import LaunchError, MeterSimProcess
from simulator.errors import SimulatorError

START_TIMEOUT_S = 20.0
SETTLE_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 60.0
POLL_S = 0.02


class _Abandoned:
    """The answer of a command whose driver died with the whole system (EvseManager never saw it)."""


ABANDONED = _Abandoned()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll condition until it is truthy; RigError naming what did not happen within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RigError(f"campaign: timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_S)


class MeterProcess(MeterSimProcess):
    """meter-sim on a pty (simulator.MeterSimProcess) that also notes every exit nobody asked for."""

    def __init__(self, workdir: Path, speed: float, seed: int, model: str = "reference") -> None:
        super().__init__(workdir, speed=speed, seed=seed, model=model, start_timeout=START_TIMEOUT_S)
        self.unexpected_exits: list[str] = []
        self.kills = 0

    def start(self) -> str:
        """Start meter-sim; returns its driver-side pty path once its control socket answers."""
        try:
            return super().start()
        except LaunchError as exc:
            raise RigError(f"campaign: {exc}") from None

    def check_alive(self) -> None:
        """Note an exit nobody asked for (a crash)."""
        if self.process is not None and self.process.poll() is not None:
            self.unexpected_exits.append(f"meter-sim exited by itself with code {self.process.returncode}")
            self.process = None

    def kill(self) -> None:
        """SIGKILL: the meter loses its power at whatever instruction it was running."""
        self.check_alive()
        if self.process is not None:
            super().kill()
            self.kills += 1

    def close(self) -> None:
        """Ask meter-sim to quit (SIGTERM), reap it, close the log; a bad exit code is a crash."""
        self.check_alive()
        process = self.process
        super().close()
        if process is not None and process.returncode not in (0, -signal.SIGTERM):
            self.unexpected_exits.append(f"meter-sim exited with code {process.returncode} on SIGTERM")


@dataclass
class RunnerConfig:
    """Knobs of a campaign rig; the defaults keep a schedule to a few seconds."""

    model: str = "reference"
    """The meter model (docs/meters/): the simulated meter's, and the driver's protocol."""
    speed: float = 60.0
    sim_seed: int = 11
    timeout: float = 0.1
    retries: int = 1
    publish_interval: float = 0.2
    command_timeout: float = 15.0
    busy_timeout: float = 5.0
    workdir: Path | None = None


@dataclass
class ScheduleResult:
    """What one schedule did and what the invariants found."""

    schedule: Schedule
    violations: list[str]
    faults_fired: dict[str, int] = field(default_factory=dict)
    faults_unfired: int = 0
    transactions: int = 0
    lost: int = 0
    duplicated: int = 0
    crashes: int = 0
    seconds: float = 0.0
    points_fired: dict[str, int] = field(default_factory=dict)
    """Where the fired faults hit: "<request kind>/<phase>" -> count."""

    @property
    def ok(self) -> bool:
        return not self.violations


class CampaignRunner:
    """A meter-sim, a FaultWire and a driver, reused across schedules. Use as a context manager."""

    def __init__(self, config: RunnerConfig | None = None) -> None:
        self.config = config or RunnerConfig()
        self._own_workdir = self.config.workdir is None
        self.workdir = self.config.workdir or Path(tempfile.mkdtemp(prefix="campaign-"))
        self.meter = MeterProcess(self.workdir, self.config.speed, self.config.sim_seed, self.config.model)
        # fault points are request kinds as the model's own protocol describes its requests
        self.wire = FaultWire(protocol_class(self.config.model).request_kind)
        self._faults: queue.Queue[FaultPlan | None] = queue.Queue()
        self._active_faults = 0
        self._fault_lock = threading.Lock()
        self._system_failure = threading.Event()
        self._fired: dict[str, int] = {}
        self._thread_errors: list[str] = []
        self._old_excepthook = threading.excepthook
        self._executor = threading.Thread(target=self._run_faults, name="campaign-faults", daemon=True)
        self.driver: Any = None
        self.evse: EvseManager | None = None
        self.public_key: str | None = None
        self.load_w = 0.0

    # ---- life cycle -----------------------------------------------------------------------------------
    def __enter__(self) -> CampaignRunner:
        threading.excepthook = self._excepthook
        try:
            self.wire.attach(self.meter.start())
            self._executor.start()
            self._new_driver()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the driver, the fault thread, the wire and meter-sim."""
        self._close_driver()
        if self._executor.is_alive():
            self._faults.put(None)
            self._executor.join(timeout=30)
        self.wire.close()
        self.meter.close()
        threading.excepthook = self._old_excepthook
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _excepthook(self, args: threading.ExceptHookArgs) -> None:
        self._thread_errors.append(
            f"thread {args.thread.name if args.thread else '?'} died: "
            f"{args.exc_type.__name__}: {args.exc_value}"
        )

    def _new_driver(self) -> None:
        from driver import DriverConfig, PowermeterDriver

        c = self.config
        self.driver = PowermeterDriver(
            DriverConfig(
                port=self.wire.path,
                model=c.model,
                timeout=c.timeout,
                retries=c.retries,
                publish_interval=c.publish_interval,
                command_timeout=c.command_timeout,
                busy_timeout=c.busy_timeout,
                backoff_initial=0.05,
                backoff_max=0.4,
            )
        )
        # EvseManager subscribes first, so a fault raised while the driver opens is seen too
        self.evse = EvseManager(self.driver, fail_on_powermeter_errors=False)
        self.driver.open()
        if self.public_key is None:
            self.public_key = self.driver.public_key_ocmf

    def _close_driver(self) -> None:
        if self.evse is not None:
            self.evse.close()
            self.evse = None
        if self.driver is not None:
            self.driver.close()
            self.driver = None

    # ---- faults ---------------------------------------------------------------------------------------
    def _arm(self, plan: FaultPlan) -> None:
        def fire() -> None:  # on the wire thread: hand over at once
            with self._fault_lock:
                self._active_faults += 1
            self._fired[plan.kind] = self._fired.get(plan.kind, 0) + 1
            self._faults.put(plan)

        self.wire.arm(plan.trigger, fire)

    @property
    def faults_active(self) -> bool:
        """True while a fired fault has not healed."""
        with self._fault_lock:
            return self._active_faults > 0

    def _run_faults(self) -> None:
        """The fault thread: one fault at a time, each healed before the next (the wire is blocked anyway)."""
        while (plan := self._faults.get()) is not None:
            try:
                self._do_fault(plan)
            except Exception as exc:  # the rig itself failed: recorded as a violation of the schedule
                self._thread_errors.append(f"fault {plan.kind} could not be carried out: {exc}")
            finally:
                with self._fault_lock:
                    self._active_faults -= 1

    def _do_fault(self, plan: FaultPlan) -> None:
        pause = threading.Event()
        if plan.kind == "link":
            pause.wait(plan.duration_s)
        elif plan.kind == "power":
            self.meter.control.power_off()
            self.wire.release()  # the meter itself is silent now
            pause.wait(plan.duration_s)
            self.meter.control.power_on()
        else:  # kill, system: meter-sim dies at once
            self.meter.kill()
            self.wire.detach()
            if plan.kind == "system":
                self._system_failure.set()
            pause.wait(plan.duration_s)
            self.wire.attach(self.meter.start())
            # the car is still plugged in: a restarted meter-sim starts with no load, give it back
            self.meter.control.set_load(power_w=self.load_w)
        self.wire.release()

    # ---- driver calls ---------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one driver command; ABANDONED when the whole system failed meanwhile (driver gone)."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = fn(*args)
            except Exception as exc:
                box["error"] = exc

        worker = threading.Thread(target=work, name="campaign-command", daemon=True)
        worker.start()
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while worker.is_alive():
            if self._system_failure.is_set():
                return self._abandon(worker)
            if time.monotonic() > deadline:
                raise RigError(f"campaign: a driver command did not return within {CALL_TIMEOUT_S:g} s")
            worker.join(timeout=POLL_S)
        if self._system_failure.is_set():
            return self._abandon(worker)
        if "error" in box:
            raise _DriverRaised(f"driver raised {type(box['error']).__name__}: {box['error']}")
        return box["result"]

    def _abandon(self, worker: threading.Thread) -> _Abandoned:
        """The charger lost power: its driver is gone mid-command. Close it, let the command thread run
        out, and close again (a request made meanwhile may have reopened the port)."""
        driver = self.driver
        self._close_driver()
        worker.join(timeout=CALL_TIMEOUT_S)
        if driver is not None:
            driver.close()
        return ABANDONED

    def _settle(self) -> None:
        """Wait for every fired fault to heal and the meter to answer its control socket with power on."""
        wait_until(lambda: not self.faults_active, SETTLE_TIMEOUT_S, "the faults to heal")
        wait_until(self._powered, SETTLE_TIMEOUT_S, "the meter to be powered and booted")

    def _powered(self) -> bool:
        try:
            status = self.meter.control.status()
        except Exception:
            return False
        return "energy_register" in status and status.get("power") == "on"

    def _set_load(self, power_w: float) -> None:
        self.load_w = power_w
        self.meter.control.set_load(power_w=power_w)

    def _energy(self) -> int:
        """The meter's energy register now (in the model's counter units)."""
        self._settle()
        return int(self.meter.control.status()["energy_register"])

    def _energy_wh(self) -> float:
        self._settle()
        return float(self.meter.control.status()["energy_wh"])

    # ---- one schedule ---------------------------------------------------------------------------------
    def run(self, schedule: Schedule) -> ScheduleResult:
        """Run the sessions with the faults armed; then check every invariant."""
        began = time.monotonic()
        self._fired = {}
        errors_before = len(self._thread_errors)
        self.meter.check_alive()
        exits_before = len(self.meter.unexpected_exits)
        self._settle()
        truth0 = self.meter.control.status()
        obs = Observation(pagination_before=int(truth0["pagination"]), public_key=self.public_key or "")
        self.wire.reset_counts()
        for plan in schedule.faults:
            self._arm(plan)
        try:
            for number, session in enumerate(schedule.sessions):
                self._session(schedule, number, session.power_w, session.charge_register, obs)
        except _DriverRaised as exc:
            obs.crashes.append(str(exc))
        except (RigError, SimulatorError, DriverError) as exc:
            obs.failures.append(f"the rig could not carry the schedule on: {exc}")
        left = self.wire.disarm_all()
        unfired = len(left)
        points: dict[str, int] = {}
        for plan in schedule.faults:
            if plan.trigger in left:
                left.remove(plan.trigger)
            else:
                where = f"{plan.trigger.kind}/{plan.trigger.phase}"
                points[where] = points.get(where, 0) + 1
        self._settle()
        self._set_load(0.0)
        self._finish(obs)
        self.meter.check_alive()
        obs.crashes += self.meter.unexpected_exits[exits_before:] + self._thread_errors[errors_before:]
        truth = self.meter.control.status()
        violations = check(obs, truth)
        lost = sum(1 for v in violations if v.startswith("lost"))
        duplicated = sum(1 for v in violations if v.startswith("duplicated"))
        return ScheduleResult(
            schedule,
            violations,
            dict(self._fired),
            unfired,
            len(obs.traces),
            lost,
            duplicated,
            len(obs.crashes),
            time.monotonic() - began,
            points,
        )

    def _session(
        self, schedule: Schedule, number: int, power_w: float, charge: int, obs: Observation
    ) -> None:
        from driver import TransactionReq

        tx_id = f"c{schedule.seed}-{schedule.index}-{number}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        self._settle()
        self._set_load(power_w)
        trace = TxTrace(tx_id, begin_low=self._energy())
        obs.traces.append(trace)
        obs.last_id = tx_id  # EvseManager stores the session id before it asks for the start
        req = TransactionReq.from_dict(
            {
                "evse_id": "DE*MHL*E0001*1",
                "transaction_id": tx_id,
                "identification_status": "ASSIGNED",
                "identification_flags": ["RFID_PLAIN"],
                "identification_type": "ISO14443",
                "identification_level": "HEARSAY",
                "identification_data": f"TAG{schedule.index:08d}",
            }
        )
        assert self.evse is not None
        started = self._call(self.evse.start_session, req)
        if started is ABANDONED:
            self._recover(obs)
            trace.begin_high = trace.begin_high or self._energy()
            trace.note("start abandoned by a whole-system failure; recovered by the boot sequence")
            return
        trace.begin_high = self._energy()
        charged_from = self._energy_wh()
        if status_name(started.start_response) != "OK":
            obs.failures.append(
                f"start of {tx_id} answered {status_name(started.start_response)}: "
                f"{started.start_response.error}"
            )
        # the schedule's charge counts 0.1 Wh whatever the meter's own resolution
        wait_until(
            lambda: self._energy_wh() >= charged_from + charge * 0.1,
            SETTLE_TIMEOUT_S,
            f"{charge * 0.1:g} Wh of charging",
        )
        trace.end_low = self._energy()
        assert self.evse is not None
        response = self._call(self.evse.stop_session, started)
        if response is ABANDONED:
            self._recover(obs)
            return
        trace.end_high = self._energy()
        obs.received.append(("stop", tx_id, response))

    def _recover(self, obs: Observation) -> None:
        """The charger boots again: a new driver, then EvseManager's stop(last id), stop("")."""
        while self._system_failure.is_set():
            self._system_failure.clear()
            self._settle()
            self._new_driver()
            low = self._energy()
            for trace in obs.traces:
                if trace.end_low is None:
                    trace.end_low = low
                if trace.begin_high is None:
                    trace.begin_high = low
            assert self.evse is not None
            boot = self._call(self.evse.boot, obs.last_id)
            if boot is ABANDONED:
                continue  # the power went again during the boot: boot once more
            high = self._energy()
            for trace in obs.traces:
                if trace.end_high is None:
                    trace.end_high = high
            if boot.stop_last is not None:
                obs.received.append(("boot stop(last id)", obs.last_id, boot.stop_last))
            obs.received.append(('boot stop("")', "", boot.clear_pending))

    def _finish(self, obs: Observation) -> None:
        """Wait for the publisher to clear the faults it raised; collect the errors of live drivers."""
        assert self.evse is not None
        evse = self.evse

        def cleared() -> bool:
            return "CommunicationFault" not in evse.active_errors()

        try:
            wait_until(cleared, SETTLE_TIMEOUT_S, "the CommunicationFault to clear")
        except RigError:
            pass  # reported by the invariant below
        events = evse.events.errors
        taken = len(events)  # an event appended meanwhile stays for the next schedule
        obs.errors = [(e.type, e.raised) for e in events[:taken]]
        del events[:taken]


class _DriverRaised(RigError):
    """A driver command raised instead of answering: a crash as far as EvseManager is concerned."""
