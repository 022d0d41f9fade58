"""Runs campaign schedules on a rig file's rig: its driver (a class or driver.command), through a
FaultWire, against a real meter-sim of the rig's model, with EvseManager as the rig file sets it.

One meter-sim and one driver instance are reused from schedule to schedule (a charger that keeps
running); the invariants are taken per schedule against the meter's ground truth, so reuse hides
nothing: pagination and energy are compared with the values at the start of each schedule.
"""

from __future__ import annotations

import logging
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

from campaign.invariants import Observation, TxTrace, check, record_of
from campaign.schedule import CHARGE, FAULT_SECONDS, POWER_LOSSES, FaultPlan, Schedule
from campaign.wire import FaultWire
from driver.errors import DriverError
from rigs.errors import RigError
from rigs.evse_manager import EvseManager, Session, status_name
from rigs.rig import driver_factory
from rigs.spec import RigSpec
from simulator import LaunchError, MeterSimProcess
from simulator.errors import ControlError, SimulatorError

START_TIMEOUT_S = 20.0
SETTLE_TIMEOUT_S = 20.0
SET_LOAD_ATTEMPTS = 3  # set_load meeting meter-sim down (a fault fired meanwhile): repeated once it healed
CALL_TIMEOUT_S = 60.0
POLL_S = 0.005


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


@dataclass(frozen=True)
class Timing:
    """How fast the meter side runs and how long faults last. The driver's own timing is the rig file's."""

    speed: float
    """meter-sim's speed factor (simulated seconds a wall second): how fast the sessions charge."""
    boot_delay: float | None
    """Wall seconds without answers after power-up; None: the profile's."""
    signing_delay: float | None
    """Wall seconds the meter signs after a stop; None: the profile's."""
    fault_seconds: tuple[float, float, float] = FAULT_SECONDS
    """The shortest fault, the longest link cut, the longest power loss (wall s), for generate()."""


TIMINGS = {
    # the campaign as it ran before (rigs/campaign*.py): speed 60, the profiles' 1 s boot, 0.2 s signing,
    # faults of 0.05-0.8 s (link) and 0.05-0.3 s (power)
    "today": Timing(60.0, None, None),
    # ten times the speed-up, the boot delay scaled with it (1 s x 60/600); the signing delay only to
    # 0.02 s, so a power loss fired at the stop's answer still lands while the meter signs (the fault
    # thread needs 1-3 ms to reach meter-sim's control socket). Faults of 0.02-0.3 s (link) and
    # 0.02-0.15 s (power): still either side of rigs/campaign.toml's 0.2 s of repeats (0.1 s x 2), so
    # some heal unseen and some raise CommunicationFault.
    "fast": Timing(600.0, 0.1, 0.02, (0.02, 0.3, 0.15)),
}


class CampaignMeter(MeterSimProcess):
    """meter-sim on the wire's stable pty, noting every exit nobody asked for."""

    def __init__(self, workdir: Path, spec: RigSpec, timing: Timing, port: str, standby: bool) -> None:
        extra: list[str] = []
        if timing.boot_delay is not None:
            extra += ["--boot-delay", f"{timing.boot_delay:g}"]
        if timing.signing_delay is not None:
            extra += ["--signing-delay", f"{timing.signing_delay:g}"]
        super().__init__(workdir, speed=timing.speed, seed=spec.meter.seed, profile=spec.meter.profile,
                         unit=spec.meter.unit, extra_args=tuple(extra), start_timeout=START_TIMEOUT_S,
                         port=port, standby=standby)
        self.unexpected_exits: list[str] = []

    def start(self) -> str:
        try:
            return super().start()
        except LaunchError as exc:
            raise RigError(f"campaign: {exc}") from None

    def check_alive(self) -> None:
        """Note an exit nobody asked for (a crash), and any traceback in its log."""
        if self.process is not None and self.process.poll() is not None:
            self.unexpected_exits.append(f"meter-sim exited by itself with code {self.process.returncode}")
            self.process = None

    def close(self) -> None:
        self.check_alive()
        process = self.process
        super().close()
        if process is not None and process.returncode not in (0, -signal.SIGTERM):
            self.unexpected_exits.append(f"meter-sim exited with code {process.returncode} on SIGTERM")


@dataclass
class RunnerConfig:
    """A campaign rig: the rig file (with its model), how fast the meter side runs, EvseManager."""

    rig: RigSpec
    timing: Timing = TIMINGS["fast"]
    fail_on_powermeter_errors: bool | None = None
    """EvseManager's setting; None: the rig file's."""
    workdir: Path | None = None
    standby_meter: bool = True
    """Keep the next meter-sim loaded and waiting, so a kill's restart costs no Python start (~0.3 s)."""

    @property
    def model(self) -> str:
        return self.rig.meter.model

    @property
    def stop_on_errors(self) -> bool:
        if self.fail_on_powermeter_errors is None:
            return self.rig.fail_on_powermeter_errors
        return self.fail_on_powermeter_errors


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
    stopped_on_error: int = 0
    """Sessions EvseManager stopped itself on a CommunicationFault (fail_on_powermeter_errors)."""
    while_signing: int = 0
    """Power losses (power, kill, system) that hit while the meter was signing."""
    repeated: int = 0
    """Records of earlier schedules answered again (byte for byte): not new records."""
    log: list[str] = field(default_factory=list)
    """What the driver logged and EvseManager got during the schedule (kept for a failing one)."""

    @property
    def ok(self) -> bool:
        return not self.violations


class _Recorder:
    """EvseManager's timeline as the campaign needs it: every start and stop answer, whoever asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commands: list[tuple[str, str, str, Any]] = []
        """(name, transaction id, reason, response)."""
        self.off = False
        """True from a whole-system failure until the charger booted: an answer then reached nobody."""

    def command(self, name: str, transaction_id: str, response: Any, started: float,
                reason: str = "") -> None:
        with self.lock:
            if not self.off:
                self.commands.append((name, transaction_id, reason, response))

    def take(self) -> list[tuple[str, str, str, Any]]:
        with self.lock:
            taken, self.commands = self.commands, []
        return taken

    def reading(self, *args: Any, **kwargs: Any) -> None:
        """Readings are not kept."""

    def error(self, *args: Any, **kwargs: Any) -> None:
        """Errors are kept by EvseManager itself."""

    def fault(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to keep."""


class _ScheduleLog(logging.Handler):
    """The driver's log lines of one schedule, with seconds since it began: a failing schedule's report
    shows what the driver did (an out-of-process driver's log file is read instead)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.began = time.monotonic()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{time.monotonic() - self.began:7.3f} {record.levelname} {record.name}: "
                          f"{record.getMessage()}")


def campaign_protocol(config: RunnerConfig) -> Any:
    """The driver protocol of the campaign's model; RigError when the rig cannot carry a campaign (a
    physical meter: the ground truth is meter-sim's control socket) or the model has no transactions."""
    from driver.protocols import PROTOCOLS

    protocol = PROTOCOLS.get(config.model)
    if protocol is None or "transactions" not in protocol.features:
        with_tx = [name for name, p in PROTOCOLS.items() if "transactions" in p.features]
        raise RigError(f"model {config.model!r}: not a meter model with transactions (models with "
                       f"transactions: {', '.join(with_tx)})")
    if config.rig.meter.kind != "simulator":
        raise RigError(f"{config.rig.path}: meter.kind is {config.rig.meter.kind!r}: the campaign needs a "
                       "simulated meter, whose control socket gives the ground truth")
    return protocol


class CampaignRunner:
    """A meter-sim, a FaultWire and the rig's driver, reused across schedules. Use as a context manager."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        spec = config.rig
        protocol = campaign_protocol(config)
        self.features = protocol.features
        self.request_kinds = tuple(sorted({p.kind for p in protocol.requests}))
        self._make_driver = driver_factory(spec)
        self._process_driver = spec.driver.command is not None
        self._own_workdir = config.workdir is None
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="campaign-"))
        # fault points are request kinds as the model's own protocol describes its requests
        self.wire = FaultWire(protocol.request_kind)
        self.meter = CampaignMeter(self.workdir, spec, config.timing, self.wire.meter_path,
                                   config.standby_meter)
        self._faults: queue.Queue[FaultPlan | None] = queue.Queue()
        self._active_faults = 0
        self._fault_lock = threading.Lock()
        self._system_failure = threading.Event()
        self._fired: dict[str, int] = {}
        self._while_signing = 0
        self._thread_errors: list[str] = []
        self._old_excepthook = threading.excepthook
        self._executor = threading.Thread(target=self._run_faults, name="campaign-faults", daemon=True)
        self._recorder = _Recorder()
        self._delivered_texts: set[str] = set()
        """Every record EvseManager got on this rig, for the invariants: an unconfirmed record a meter
        answers again later (the EM580's READY file, to stop("")) is a repeat, not a new record."""
        self._worker: threading.Thread | None = None
        """The thread of the driver command running now (_call), for a whole-system failure to wait out."""
        self._obs: Observation | None = None
        self._tracebacks = 0
        self._drivers = 0
        self.driver: Any = None
        self.evse: EvseManager | None = None
        self.public_key: str | None = None
        self.load_w = 0.0

    # ---- life cycle -----------------------------------------------------------------------------------
    def __enter__(self) -> CampaignRunner:
        threading.excepthook = self._excepthook
        try:
            self.meter.start()
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
        self.meter.close()
        self.wire.close()
        threading.excepthook = self._old_excepthook
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _excepthook(self, args: threading.ExceptHookArgs) -> None:
        self._thread_errors.append(
            f"thread {args.thread.name if args.thread else '?'} died: "
            f"{args.exc_type.__name__}: {args.exc_value}"
        )

    def _new_driver(self) -> None:
        self._drivers += 1
        options = {"log_path": self.workdir / f"driver-{self._drivers}.log"} if self._process_driver else {}
        try:
            self.driver = self._make_driver(self.wire.path, **options)
        except RigError:
            raise
        # EvseManager subscribes first, so a fault raised while the driver opens is seen too
        self._recorder.off = False
        self.evse = EvseManager(self.driver, fail_on_powermeter_errors=self.config.stop_on_errors,
                                on_charging_disabled=self._charging_disabled,
                                timeline=self._recorder)  # type: ignore[arg-type]
        self.driver.open()
        if self.public_key is None:
            self.public_key = wait_until(lambda: self.driver.public_key_ocmf, SETTLE_TIMEOUT_S,
                                         "the driver's public_key_ocmf")

    def _close_driver(self, power_lost: bool = False) -> None:
        if self.evse is not None:
            self.evse.close()
            self.evse = None
        if self.driver is not None:
            kill = getattr(self.driver, "kill", None) if power_lost else None
            (kill or self.driver.close)()
            self.driver = None

    def _charging_disabled(self) -> None:
        """EvseManager stopped the session on a meter error: the car stops drawing power."""
        self.load_w = 0.0
        try:
            self.meter.control.set_load(power_w=0.0)
        except Exception:  # meter-sim may be down right now: it restarts with load_w (0)
            pass

    # ---- faults ---------------------------------------------------------------------------------------
    def _arm(self, plan: FaultPlan) -> Callable[[], None]:
        def fire() -> None:  # on the wire thread (or the runner's, for a charge fault): hand over at once
            with self._fault_lock:
                self._active_faults += 1
            self._fired[plan.kind] = self._fired.get(plan.kind, 0) + 1
            if plan.kind == "system":
                # the charger is off from this byte on: what its driver answers now reaches nobody, and
                # the command running now is abandoned (set here, not when the fault thread gets to it:
                # a whole answer let through could otherwise end the command as if the charger lived)
                self._recorder.off = True
                self._system_failure.set()
            if plan.kind in POWER_LOSSES and self._obs is not None:
                for trace in self._obs.traces:
                    if trace.end_high is None:
                        trace.power_lost = True
            self._faults.put(plan)

        if plan.trigger.kind != CHARGE:
            self.wire.arm(plan.trigger, fire)
        return fire

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

    def _charger_off(self) -> None:
        """The whole charger lost its power: its driver stops before the meter comes back. A process
        driver is killed; an in-process one is closed and its running command let run out (its next
        pause ends it), so that no repeat of the dead charger's reaches the rebooted meter (one did:
        it confirmed an EM580's READY record, which the booting charger then never got)."""
        evse, driver, worker = self.evse, self.driver, self._worker
        if evse is not None:
            evse.close()
        if driver is not None:
            kill = getattr(driver, "kill", None)
            (kill or driver.close)()
        if worker is not None:
            worker.join(timeout=CALL_TIMEOUT_S)

    def _signing_now(self) -> None:
        try:
            if self.meter.control.status().get("signing"):
                self._while_signing += 1
        except Exception:
            pass

    def _do_fault(self, plan: FaultPlan) -> None:
        pause = threading.Event()
        if plan.kind == "link":
            pause.wait(plan.duration_s)
        elif plan.kind == "power":
            self._signing_now()
            self.meter.control.power_off()
            pause.wait(plan.duration_s)
            self.meter.control.power_on()
        else:  # kill, system: meter-sim dies at once
            self._signing_now()
            self.meter.kill()
            if plan.kind == "system":
                self._charger_off()
            self.wire.flush()  # what the killed meter had not read dies with it
            pause.wait(plan.duration_s)
            self.meter.start()
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
        self._worker = worker
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

    def _abandon(self, worker: threading.Thread | None) -> _Abandoned:
        """The charger lost power: its driver is gone mid-command. Close it, let the command thread run
        out, and close again (a request made meanwhile may have reopened the port)."""
        driver = self.driver
        self._close_driver(power_lost=True)
        if worker is not None:
            worker.join(timeout=CALL_TIMEOUT_S)
        if driver is not None:
            driver.close()
        return ABANDONED

    def _settle(self) -> None:
        """Wait for every fired fault to heal and the meter to answer its control socket with power on."""
        wait_until(lambda: not self.faults_active, SETTLE_TIMEOUT_S, "the faults to heal")
        wait_until(self._powered, SETTLE_TIMEOUT_S, "the meter to be powered and booted")

    def _powered(self) -> dict[str, Any] | None:
        try:
            status = self.meter.control.status()
        except Exception:
            return None
        return status if "energy_register" in status and status.get("power") == "on" else None

    def _truth(self) -> dict[str, Any]:
        """Ground truth once the faults healed, taken while none is active (a fault the publisher's
        traffic fires meanwhile, say, makes it wait again)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            self._settle()
            status = self._powered()
            if status is not None and not self.faults_active:
                return status
            if time.monotonic() >= deadline:
                raise RigError(f"campaign: no ground truth within {SETTLE_TIMEOUT_S:g} s: faults kept firing")

    def _set_load(self, power_w: float) -> None:
        """The car draws power_w. A kill or system fault the driver's traffic fires between the settle and
        this call takes the control socket down with meter-sim; the fault thread restarts it with
        load_w, so the call is repeated once the fault healed (1 schedule in 5,000 hit this window)."""
        self.load_w = power_w
        for attempt in range(SET_LOAD_ATTEMPTS):
            try:
                self.meter.control.set_load(power_w=power_w)
                return
            except ControlError:
                if attempt + 1 == SET_LOAD_ATTEMPTS:
                    raise
            self._settle()

    def _energy(self) -> int:
        """The meter's energy register now (in the model's counter units)."""
        return int(self._truth()["energy_register"])

    # ---- one schedule ---------------------------------------------------------------------------------
    def run(self, schedule: Schedule) -> ScheduleResult:
        """Run the sessions with the faults armed; then check every invariant."""
        began = time.monotonic()
        log = _ScheduleLog()
        logger = logging.getLogger("driver")
        level, propagate = logger.level, logger.propagate
        logger.addHandler(log)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # kept for the report, not printed by the thousand
        log_files = {path: path.stat().st_size for path in self.workdir.glob("driver-*.log")}
        try:
            result = self._run(schedule)
        finally:
            logger.removeHandler(log)
            logger.setLevel(level)
            logger.propagate = propagate
        result.seconds = time.monotonic() - began
        if not result.ok:
            result.log = log.lines + self._driver_log_files(log_files) + self._commands_seen
        return result

    def _driver_log_files(self, sizes: dict[Path, int]) -> list[str]:
        """What out-of-process drivers wrote to their log files since the sizes were taken."""
        lines = []
        for path in sorted(self.workdir.glob("driver-*.log")):
            with path.open("rb") as f:
                f.seek(sizes.get(path, 0))
                lines += [f"{path.name}: {line}" for line in f.read().decode(errors="replace").splitlines()]
        return lines

    def _run(self, schedule: Schedule) -> ScheduleResult:
        self._commands_seen: list[str] = []
        self._fired = {}
        self._while_signing = 0
        errors_before = len(self._thread_errors)
        self.meter.check_alive()
        exits_before = len(self.meter.unexpected_exits)
        truth0 = self._truth()
        obs = Observation(pagination_before=int(truth0["pagination"]), public_key=self.public_key or "",
                          delivered_before=self._delivered_texts)
        self._obs = obs
        self._recorder.take()
        self.wire.triggers.reset_counts()
        charge_faults: dict[int, list[Callable[[], None]]] = {}
        for plan in schedule.faults:
            fire = self._arm(plan)
            if plan.trigger.kind == CHARGE:
                charge_faults.setdefault(plan.trigger.occurrence, []).append(fire)
        fired_charges = 0
        try:
            for number, session in enumerate(schedule.sessions):
                due = charge_faults.pop(number + 1, [])
                fired_charges += len(due)
                self._session(schedule, number, session.power_w, session.charge_register, obs, due)
        except _DriverRaised as exc:
            obs.crashes.append(str(exc))
        except (RigError, SimulatorError, DriverError) as exc:
            obs.failures.append(f"the rig could not carry the schedule on: {exc}")
        left = self.wire.triggers.disarm_all()
        unfired = len(left) + sum(len(v) for v in charge_faults.values())
        points: dict[str, int] = {}
        for plan in schedule.faults:
            if plan.trigger in left:
                left.remove(plan.trigger)
            elif plan.trigger.kind == CHARGE and plan.trigger.occurrence in charge_faults:
                continue
            else:
                where = f"{plan.trigger.kind}/{plan.trigger.phase}"
                points[where] = points.get(where, 0) + 1
        try:
            self._settle()
            self._set_load(0.0)
            self._finish(obs)
        except (RigError, SimulatorError) as exc:
            obs.failures.append(f"the rig could not finish the schedule: {exc}")
        self._collect(obs)
        self._delivered_texts |= {text for _, _, r in obs.received if (text := record_of(r)) is not None}
        self.meter.check_alive()
        obs.crashes += self.meter.unexpected_exits[exits_before:] + self._thread_errors[errors_before:]
        tracebacks = self.meter.tracebacks()
        obs.crashes += [f"meter-sim wrote a traceback: {t}" for t in tracebacks[self._tracebacks:]]
        self._tracebacks = len(tracebacks)
        failure = self._driver_failure()
        if failure:
            obs.crashes.append(failure)
        truth = self._truth()
        self._obs = None
        violations = check(obs, truth, self.features, schedule.describe_faults())
        lost = sum(1 for v in violations if v.startswith("lost"))
        duplicated = sum(1 for v in violations if v.startswith("duplicated"))
        return ScheduleResult(
            schedule, violations, dict(self._fired), unfired, len(obs.traces), lost, duplicated,
            len(obs.crashes), 0.0, points, obs.stopped_on_error, self._while_signing, obs.repeated,
        )

    def _driver_failure(self) -> str | None:
        """What an out-of-process driver did wrong that no call ran into (it crashed while idle)."""
        failure = getattr(self.driver, "failure", None)
        return f"the driver failed: {failure}" if failure else None

    def _collect(self, obs: Observation) -> None:
        """Every start and stop answer EvseManager got, in order."""
        for name, tx_id, reason, response in self._recorder.take():
            self._commands_seen.append(f"EvseManager {name}({tx_id!r}) {reason}: {status_name(response)} "
                                       f"{getattr(response, 'error', '') or ''}".rstrip())
            if name == "stop":
                obs.received.append((f"stop({reason or 'Local'})", tx_id, response))
            # a meter that signs begin and end apart: the begin record comes with the start's answer,
            # or with the stop's (start_signed_meter_value, fetched again after a reboot)
            begin = getattr(response, "signed_meter_value" if name == "start" else "start_signed_meter_value",
                            None)
            if begin is not None:
                obs.begins.append((f"{name}({reason or 'Local'})", tx_id, begin.signed_meter_data))

    def _session(self, schedule: Schedule, number: int, power_w: float, charge: int, obs: Observation,
                 charge_faults: list[Callable[[], None]]) -> None:
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
        charged_from = float(self._truth()["energy_wh"])
        if status_name(started.start_response) != "OK":
            trace.start_failed = f"{status_name(started.start_response)}: {started.start_response.error}"
        # the schedule's charge counts 0.1 Wh whatever the meter's own resolution; a charge fault fires
        # at half of it, while no command runs (the driver's publisher alone talks to the meter)
        target = charged_from + charge * 0.1
        if charge_faults:
            half = charged_from + charge * 0.05
            wait_until(lambda: self._energy_wh_now() >= half or self._on_error(started),
                       SETTLE_TIMEOUT_S, f"{charge * 0.05:g} Wh of charging")
            self.wire.block()
            for fire in charge_faults:
                fire()
        wait_until(lambda: self._on_error(started) or self._system_failure.is_set()
                   or float(self._truth()["energy_wh"]) >= target,
                   SETTLE_TIMEOUT_S, f"{charge * 0.1:g} Wh of charging")
        if self._system_failure.is_set():
            self._abandon(None)
            self._recover(obs)
            return
        if self._on_error(started):
            self._stopped_on_error(started, trace, obs)
            return
        trace.end_low = self._energy()
        assert self.evse is not None
        response = self._call(self.evse.stop_session, started)
        if response is ABANDONED:
            self._recover(obs)
            return
        trace.end_high = self._energy()

    def _energy_wh_now(self) -> float:
        """The meter's energy without waiting for faults (none is due before this one)."""
        status = self._powered()
        return float(status["energy_wh"]) if status else 0.0

    @staticmethod
    def _on_error(session: Session) -> bool:
        return session.stop_reason == "PowermeterError"

    def _stopped_on_error(self, session: Session, trace: TxTrace, obs: Observation) -> None:
        """EvseManager stopped the session on a CommunicationFault; its worker asks for the signed value
        until the meter answers. The end reading is taken by that stop, after the load went off."""
        obs.stopped_on_error += 1
        trace.end_low = self._energy()
        trace.note("stopped by EvseManager on a CommunicationFault (fail_on_powermeter_errors)")
        try:
            wait_until(lambda: session.closed or self._system_failure.is_set(), SETTLE_TIMEOUT_S,
                       f"EvseManager's stop on error of {trace.transaction_id} to get its signed value")
        except RigError as exc:
            obs.failures.append(str(exc))
        if self._system_failure.is_set():
            self._abandon(None)
            self._recover(obs)
            return
        trace.end_high = self._energy()

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
            self._collect(obs)

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
        # a stop on error racing the session's own stop: its answer belongs to this schedule
        if not evse.wait_idle(SETTLE_TIMEOUT_S):
            obs.failures.append(f"EvseManager's stop-on-error worker still ran {SETTLE_TIMEOUT_S:g} s after "
                                "the schedule's last command")
        events = evse.events.errors
        taken = len(events)  # an event appended meanwhile stays for the next schedule
        obs.errors = [(str(e.type).rsplit("/", 1)[-1], e.raised) for e in events[:taken]]
        del events[:taken]


class _DriverRaised(RigError):
    """A driver command raised instead of answering: a crash as far as EvseManager is concerned."""
