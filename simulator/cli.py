"""meter-sim: simulated Eichrecht meters served over Modbus RTU on a pty (or a real serial port)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import signal
import sys
import tempfile
import time
from pathlib import Path

from .control import ControlServer
from .errors import SimulatorError
from .forwarding import Forwarder
from .link import is_pty, open_serial
from .profile import known_models, load_model, load_profile
from .ptys import PtyPair
from .runtime import PERSIST_INTERVAL_S, POWER, LoadSpec, MeterSim
from .server import MeterServer
from .transceiver import Transceiver

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="meter-sim",
        description="Simulated Eichrecht power meters answering Modbus RTU. With --pty the "
        "driver-side device path is the first line of stdout (open it with parity N: Linux refuses "
        "parity on a pty). SIGKILL and a restart on the same --state-dir is a meter that lost its power.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pty pair (default use)")
    where.add_argument("--port", metavar="DEV", help="serve a real serial device instead of a pty")
    p.add_argument(
        "--bridge-thread",
        action="store_true",
        help="with --pty: serve a pty of its own and copy bytes to the driver's through a thread (the "
        "former plumbing, one pty hop more; for comparison)",
    )
    p.add_argument("--baudrate", type=int, default=19200, help="with --port (default 19200)")
    p.add_argument("--parity", choices=["N", "E", "O"], default="E", help="with --port (default E)")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall second (600: ten hours of charging in a minute)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="non-volatile memory, one file a meter (default: a new temp dir, printed on stderr)",
    )
    p.add_argument("--control", metavar="SOCKET", help="unix socket for fault control (docs/control.md)")
    model = p.add_mutually_exclusive_group()
    model.add_argument(
        "--model",
        metavar="NAME",
        help=f"a built-in meter model: {', '.join(known_models())} (default reference)",
    )
    model.add_argument(
        "--profile",
        metavar="NAME|PATH",
        help="a profile file (TOML, docs/simulator.md), or a built-in model's name",
    )
    p.add_argument("--unit", type=int, default=1, help="Modbus unit id of the first meter (default 1)")
    p.add_argument("--meters", type=int, default=1, metavar="K", help="meters on the bus: unit..unit+K-1")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and of new meters' keys")
    p.add_argument("--load-w", type=float, default=0.0, metavar="W", help="fixed load in watts (default 0)")
    p.add_argument("--load-profile", choices=["ev"], help="an EV charging profile instead of --load-w")
    p.add_argument("--phase-order", choices=["cw", "ccw"], default="cw", help="phase rotation (default cw)")
    p.add_argument(
        "--standby",
        action="store_true",
        help="load everything, then wait for a line on stdin before the meter powers up (exit at EOF): "
        "a rig that restarts a killed meter-sim keeps one waiting, so a power-up costs no Python start",
    )
    p.add_argument(
        "--boot-delay",
        type=float,
        metavar="S",
        help="wall seconds without answers after power-up, instead of the profile's boot_delay_s",
    )
    p.add_argument(
        "--signing-delay",
        type=float,
        metavar="S",
        help="wall seconds the meter signs after a stop, instead of the profile's signing_delay_s",
    )
    p.add_argument(
        "--status-interval",
        type=float,
        metavar="S",
        help="print the status line every S seconds even when stderr is not a terminal",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the meter-sim console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.unit <= 247 or not 1 <= args.meters or args.unit + args.meters - 1 > 247:
        parser.error("--unit and --meters must give unit ids within 1..247")
    if not args.speed > 0:
        parser.error("--speed must be positive")
    if args.load_w < 0:
        parser.error("--load-w must not be negative")
    for name in ("boot_delay", "signing_delay"):
        if getattr(args, name) is not None and not getattr(args, name) >= 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    try:
        if args.model is not None:
            profile = load_model(args.model)
        else:
            profile = load_profile(args.profile or "reference")
    except SimulatorError as exc:
        print(f"meter-sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # A fault campaign compresses the meter's wall-second delays with its speed-up (docs/simulator.md).
    if args.boot_delay is not None:
        profile = dataclasses.replace(profile, boot_delay_s=args.boot_delay)
    if args.signing_delay is not None:
        profile = dataclasses.replace(profile, signing_delay_s=args.signing_delay)
    if args.standby and not sys.stdin.readline():
        return 0  # nobody needs this meter any more
    try:
        return asyncio.run(_serve(args, profile))
    except SimulatorError as exc:
        print(f"meter-sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _serve(args: argparse.Namespace, profile: object) -> int:
    state_dir = args.state_dir
    if state_dir is None:
        state_dir = tempfile.mkdtemp(prefix="meter-sim-")
        print(f"meter-sim: state directory {state_dir}", file=sys.stderr, flush=True)
    units = list(range(args.unit, args.unit + args.meters))
    load = LoadSpec(profile="ev") if args.load_profile else LoadSpec(power_w=args.load_w)
    sim = MeterSim(
        profile,
        units,
        Path(state_dir),
        speed=args.speed,
        seed=args.seed,
        load=load,  # type: ignore[arg-type]
        phase_order=args.phase_order,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    meter_pty = driver_pty = None
    bridge = None
    control = None
    server = None
    try:
        if args.pty and args.bridge_thread:
            meter_pty, driver_pty = PtyPair(), PtyPair()
            bridge = Forwarder(meter_pty.master, driver_pty.master, name="rs485-transceiver")
            sim.bridge = bridge
            if sim.power != "on":
                bridge.block(POWER)
            port, parity = meter_pty.path, "N"  # a pty has no parity (and Linux refuses PARENB on one)
        elif args.pty:  # one pty: the server reads its master through the transceiver, no copy thread
            driver_pty = PtyPair()
            bridge = Transceiver(driver_pty.master)
            sim.bridge = bridge
            if sim.power != "on":
                bridge.block(POWER)
            port, parity = bridge.url, "N"
        else:
            port, parity = args.port, "N" if is_pty(args.port) else args.parity
            open_serial(port, args.baudrate, parity).close()  # a clear PortError before pymodbus tries
        server = MeterServer(
            port,
            profile,
            units,
            sim.register_map,
            sim.sync,  # type: ignore[arg-type]
            answer_delay=lambda: sim.answer_delay_s,
            baudrate=args.baudrate,
            parity=parity,
        )
        await server.start()
        if bridge is not None:
            bridge.start()
        if args.control:
            control = ControlServer(args.control, sim, stop.set)
            await control.start()
        print(driver_pty.path if driver_pty is not None else port, flush=True)
        # Everything built so far (profiles, keys, simpy, pymodbus) lives until exit: out of the cyclic
        # collector's generations, a collection during a request has only the request's objects to scan.
        gc.freeze()
        await _run(sim, stop, args)
    finally:
        sim.shutdown()
        if control is not None:
            await control.stop()
        if server is not None:
            await server.stop()
        if bridge is not None:
            bridge.close()
        for pty in (meter_pty, driver_pty):
            if pty is not None:
                pty.close()
    return 0


async def _run(sim: MeterSim, stop: asyncio.Event, args: argparse.Namespace) -> None:
    interval = args.status_interval
    if interval is None and sys.stderr.isatty():
        interval = 0.5
    next_status = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PERSIST_INTERVAL_S)
        sim.tick()
        if interval is not None and time.monotonic() >= next_status:
            next_status = time.monotonic() + interval
            end = "\r" if sys.stderr.isatty() else "\n"
            print(sim.status_line(), file=sys.stderr, end=end, flush=True)


if __name__ == "__main__":
    sys.exit(main())
