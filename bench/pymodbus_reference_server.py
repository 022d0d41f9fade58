"""The baseline a user would reach for: pymodbus's own simulator server with a plain datastore.

A ModbusSerialServer with one SimDevice whose SimData holds fixed register values (no action hook),
behind exactly the pty plumbing meter-sim uses, so a client sees the same path to both: by default one pty
whose master the server reads through simulator.transceiver (meter-sim --pty), with --bridge-thread a meter
pty, a driver pty and the shared Forwarder thread between them (meter-sim --pty --bridge-thread). Prints
the driver-side device path as its first line and serves until SIGTERM.

    python bench/pymodbus_reference_server.py --address 256 --values 1,2,3,... [--bridge-thread]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulator import Forwarder, PtyPair
from simulator.transceiver import Transceiver

OPEN_TIMEOUT_S = 5.0


def parse_values(text: str) -> list[int]:
    """Comma-separated register values 0..65535; ValueError naming the bad one."""
    values = []
    for item in text.split(","):
        try:
            value = int(item)
        except ValueError:
            raise ValueError(f"{item!r} is not an integer") from None
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"register value {value} is outside 0..65535")
        values.append(value)
    return values


async def serve(unit: int, address: int, values: list[int], bridge_thread: bool = False) -> None:
    """Serve until SIGTERM/SIGINT."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    device = SimDevice(unit, simdata=[SimData(address, values=values, datatype=DataType.REGISTERS)])
    with contextlib.ExitStack() as stack:
        driver_pty = stack.enter_context(PtyPair())
        if bridge_thread:
            meter_pty = stack.enter_context(PtyPair())
            bridge: Forwarder | Transceiver = Forwarder(meter_pty.master, driver_pty.master,
                                                        name="rs485-transceiver")
            port = meter_pty.path
        else:
            bridge = Transceiver(driver_pty.master)
            port = bridge.url
        server = ModbusSerialServer(device, framer=FramerType.RTU, port=port, baudrate=19200, parity="N")
        task = asyncio.create_task(server.serve_forever())
        deadline = loop.time() + OPEN_TIMEOUT_S
        while not server.active_connections:
            if task.done() or loop.time() > deadline:
                print(f"pymodbus server: {port} did not open", file=sys.stderr)
                return
            await asyncio.sleep(0.01)
        bridge.start()
        try:
            print(driver_pty.path, flush=True)
            await stop.wait()
        finally:
            bridge.close()
            await server.shutdown()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unit", type=int, default=1, help="Modbus unit id (default 1)")
    parser.add_argument("--address", type=int, default=0x0100, help="first register (wire address)")
    parser.add_argument("--values", required=True, help="comma-separated register values")
    parser.add_argument("--bridge-thread", action="store_true",
                        help="two ptys and a Forwarder thread (meter-sim --pty --bridge-thread's plumbing)")
    args = parser.parse_args(argv)
    try:
        values = parse_values(args.values)
    except ValueError as exc:
        parser.error(f"--values: {exc}")
    asyncio.run(serve(args.unit, args.address, values, args.bridge_thread))
    return 0


if __name__ == "__main__":
    sys.exit(main())
