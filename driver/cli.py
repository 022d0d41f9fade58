"""meter-driver: the driver on a bench, one command at a time.

`meter-driver serve --port P ...` runs the driver as an out-of-process driver instead: JSON-RPC 2.0 on
stdin/stdout (driver/rpc_server.py, docs/driver-protocol.md).

Exit status: 0 done (status OK), 1 the meter did not do it (not OK, or no answer), 2 a usage or
configuration error (the message names what is wrong). Results are JSON on stdout, errors one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from driver.config import AUTO, DriverConfig
from driver.errors import (
    CommunicationError,
    ConfigurationError,
    DriverError,
    MeterExceptionError,
    RequestError,
)
from driver.powermeter import PowermeterDriver
from driver.protocols import PROTOCOLS
from driver.types import (
    OCMFIdentificationFlags,
    OCMFIdentificationLevel,
    OCMFIdentificationType,
    OCMFUserIdentificationStatus,
    Powermeter,
    TransactionReq,
    TransactionRequestStatus,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """A command-line mistake; printed as one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (public so the documentation and tests can look at it)."""
    parser = argparse.ArgumentParser(prog="meter-driver", description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, help="device path (/dev/ttyUSB0) or pyserial URL")
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--parity", choices=["N", "E", "O"], default="E")
    parser.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    parser.add_argument("--unit", type=int, default=1, help="Modbus unit id (1..247)")
    parser.add_argument(
        "--model",
        choices=[*PROTOCOLS, AUTO],
        default=AUTO,
        help="the meter's protocol; auto (the default) identifies the meter from its identity registers",
    )
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds to wait for one answer")
    parser.add_argument(
        "--command-timeout", type=float, default=10.0, help="seconds start/stop wait for an unreachable meter"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the driver does on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    read = commands.add_parser("read", help="print one Powermeter dataset as JSON")
    read.add_argument("--watch", action="store_true", help="keep reading: a live line (JSON lines if piped)")
    read.add_argument("--interval", type=float, default=1.0, help="seconds between readings with --watch")
    read.add_argument("--count", type=int, default=0, help="with --watch: stop after this many (0: never)")

    start = commands.add_parser("start", help="start a transaction; prints a TransactionStartResponse")
    start.add_argument(
        "--json", metavar="REQ", help="TransactionReq as JSON text, a file path, or - for stdin"
    )
    start.add_argument("--transaction-id")
    start.add_argument("--evse-id", default="")
    start.add_argument("--id-status", choices=list(OCMFUserIdentificationStatus), default="NOT_ASSIGNED")
    start.add_argument("--id-level", choices=list(OCMFIdentificationLevel))
    start.add_argument(
        "--id-flag",
        action="append",
        default=[],
        choices=list(OCMFIdentificationFlags),
        help="repeatable, at most 4",
    )
    start.add_argument("--id-type", choices=list(OCMFIdentificationType), default="NONE")
    start.add_argument("--id-data")
    start.add_argument("--tariff-text")

    stop = commands.add_parser(
        "stop", help='stop a transaction ("" clears all); prints a TransactionStopResponse'
    )
    stop.add_argument("transaction_id", help='the id, or "" to clear every pending transaction')

    commands.add_parser("public-key", help="print the meter's OCMF public key (hex DER)")
    commands.add_parser("identify", help="print which model the meter is, and what it says of itself (JSON)")
    return parser


def _request_from_args(args: argparse.Namespace) -> TransactionReq:
    if args.json is not None:
        text = args.json
        if text == "-":
            text = sys.stdin.read()
        elif not text.lstrip().startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise _UsageError(f"--json: {text} is neither JSON text nor a readable file")
            text = path.read_text(encoding="utf-8")
        return TransactionReq.from_json(text)
    if not args.transaction_id:
        raise _UsageError("start: give --transaction-id or --json REQ")
    data = {
        "evse_id": args.evse_id,
        "transaction_id": args.transaction_id,
        "identification_status": args.id_status,
        "identification_flags": args.id_flag,
        "identification_type": args.id_type,
    }
    for key, value in (
        ("identification_level", args.id_level),
        ("identification_data", args.id_data),
        ("tariff_text", args.tariff_text),
    ):
        if value is not None:
            data[key] = value
    return TransactionReq.from_dict(data)


def _live_line(dataset: Powermeter) -> str:
    power = dataset.power_W.total if dataset.power_W else None
    return (
        f"{dataset.timestamp}  {dataset.energy_Wh_import.total:12.1f} Wh  "
        f"{power if power is not None else float('nan'):9.1f} W  "
        f"{'PHASE SEQUENCE ERROR' if dataset.phase_seq_error else ''}"
    )


def _watch(driver: PowermeterDriver, interval: float, count: int) -> int:
    live = sys.stdout.isatty()
    done = 0
    stop = threading.Event()
    while count == 0 or done < count:
        try:
            dataset = driver.read_powermeter()
        except CommunicationError as exc:
            print(f"meter-driver: {exc}", file=sys.stderr)
        else:
            if live:
                print("\r" + _live_line(dataset), end="", flush=True)
            else:
                print(dataset.to_json(), flush=True)
            done += 1
        if count == 0 or done < count:
            stop.wait(interval)
    if live:
        print()
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    config = DriverConfig(
        port=args.port,
        model=args.model,
        baudrate=args.baudrate,
        parity=args.parity,
        stopbits=args.stopbits,
        unit=args.unit,
        timeout=args.timeout,
        command_timeout=args.command_timeout,
        publish_interval=0,
    )
    request = _request_from_args(args) if args.command == "start" else None
    with PowermeterDriver(config) as driver:
        if args.command == "read":
            if args.watch:
                return _watch(driver, args.interval, args.count)
            print(driver.read_powermeter().to_json())
            return EXIT_OK
        if args.command == "identify":
            identity = driver.meter_identity()
            found = {"model": driver.model, "found_by": "auto" if args.model == AUTO else "--model"}
            if driver.model_found:
                found["description"] = driver.model_found
            print(json.dumps({**found, "meter": dataclasses.asdict(identity)}))
            return EXIT_OK
        if args.command == "public-key":
            key = driver.public_key_ocmf
            if key is None:
                print("meter-driver: the meter reports no public key", file=sys.stderr)
                return EXIT_FAILED
            print(key)
            return EXIT_OK
        if args.command == "start":
            assert request is not None
            response = driver.start_transaction(request)
        else:
            response = driver.stop_transaction(args.transaction_id)
        print(response.to_json())
        return EXIT_OK if response.status is TransactionRequestStatus.OK else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        from driver.rpc_server import main as serve

        return serve(arguments[1:])
    parser = build_parser()
    parser.epilog = "meter-driver serve --port P [...]: the driver behind JSON-RPC on stdin/stdout (serve -h)"
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return _run(args)
    except (ConfigurationError, RequestError, _UsageError) as exc:
        print(f"meter-driver: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommunicationError, MeterExceptionError) as exc:
        print(f"meter-driver: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except DriverError as exc:
        print(f"meter-driver: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
