"""meter-ocmf: verify an OCMF record or show its readings, from the command line.

Exit status of ``verify``: 0 valid, 1 the signature or a check failed (each named), 2 malformed input
(saying where). ``show`` prints the readings as a table and exits 0, or 2 on malformed input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from driver.errors import OcmfFormatError
from driver.ocmf import OcmfRecord, parse, verify, verify_pair

EXIT_VALID, EXIT_INVALID, EXIT_MALFORMED = 0, 1, 2


def _read_argument(value: str, what: str, stdin: TextIO) -> str | bytes:
    """`-` reads standard input, `@path` a file (bytes when not text); anything else is the value itself."""
    if value == "-":
        return stdin.read()
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise OcmfFormatError(f"{what}: cannot read {path}: {exc.strerror}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data  # a binary (DER) key file
    return value


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_record(record: OcmfRecord) -> str:
    """The identifying fields and the readings of a record, for people."""
    p = record.payload
    model = " ".join(str(p[k]) for k in ("MV", "MM") if p.get(k)) or "-"
    status = {True: "assigned", False: "not assigned"}.get(p.get("IS"), "-")
    header = [
        f"gateway:        {p.get('GI', '-')} (serial {p.get('GS', '-')}, version {p.get('GV', '-')})",
        f"meter:          {model} (serial {p.get('MS', '-')})",
        f"pagination:     {p.get('PG', '-')}",
        f"identification: {status}, level {p.get('IL', '-')}, "
        f"type {p.get('IT', '-')}, data {p.get('ID') or '-'}",
        f"signature:      {record.algorithm.text}, {record.signature_encoding}, {record.signature_format}",
    ]
    rows = [["#", "time", "sync", "TX", "value", "unit", "RI", "RT", "ST", "EF"]]
    for r in record.readings:
        time_text = r.time_text.split(" ")[0] if r.time_text else "-"
        rows.append(
            [
                str(r.index),
                time_text,
                r.time_status or "-",
                r.tx or "-",
                r.value_text or "-",
                r.ru or "-",
                r.ri or "-",
                r.rt or "-",
                r.st or "-",
                r.ef or "-",
            ]
        )
    return "\n".join(header) + "\n\n" + _table(rows)


def _verify(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    record = _read_argument(args.record, "record", stdin)
    key = _read_argument(args.public_key, "public key", stdin)
    if args.begin is not None:
        result = verify_pair(_read_argument(args.begin, "begin record", stdin), record, key)
        kind = "begin and end record"
    else:
        result = verify(record, key, transaction=args.transaction)
        kind = "transaction" if result.transaction_checked else "single reading"
    if result.valid:
        print(f"VALID: signature ({result.record.algorithm.text}) and {kind} checks passed", file=out)
        return EXIT_VALID
    print(f"INVALID ({kind} checks):", file=out)
    for failure in result.failures:
        print(f"  {failure}", file=out)
    return EXIT_INVALID


def _show(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    print(format_record(parse(_read_argument(args.record, "record", stdin))), file=out)
    return EXIT_VALID


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meter-ocmf", description="Verify and show OCMF records.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify the signature and the reading/transaction checks")
    check.add_argument(
        "--public-key", required=True, help="the meter's public key: hex, base64 or PEM text, or @file"
    )
    mode = check.add_mutually_exclusive_group()
    mode.add_argument(
        "--transaction",
        dest="transaction",
        action="store_const",
        const=True,
        default=None,
        help="always run the transaction checks (begin and end reading required)",
    )
    mode.add_argument(
        "--no-transaction",
        dest="transaction",
        action="store_const",
        const=False,
        help="never run the transaction checks",
    )
    mode.add_argument(
        "--begin",
        metavar="RECORD",
        help="the separately signed begin record (@file or -); RECORD is then the end record",
    )
    check.add_argument("record", help="the OCMF record, @file, or - for standard input")
    check.set_defaults(run=_verify)
    show = commands.add_parser("show", help="print the record's readings as a table")
    show.add_argument("record", help="the OCMF record, @file, or - for standard input")
    show.set_defaults(run=_show)
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None, stdin: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args, out or sys.stdout, stdin or sys.stdin))
    except OcmfFormatError as exc:
        print(f"meter-ocmf: malformed input: {exc}", file=sys.stderr)
        return EXIT_MALFORMED


if __name__ == "__main__":
    sys.exit(main())
