"""meter-ocmf: verify OCMF records, as users receive them, or show their readings, from the command line.

``verify`` reads an input (a record, a file of records one a line, the Transparenzsoftware's XML, OCPP
JSON; driver/ocmf_files.py), verifies each record and pairs separate begin and end records
(driver/ocmf_batch.py), and prints both verdicts per record: authentic and billable. Exit status: 0
authentic and billable, 1 not authentic, 3 authentic but not billable, 2 malformed input (saying where).
``show`` prints the readings as a table and exits 0, or 2 on malformed input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from driver.errors import OcmfFormatError
from driver.ocmf import SIGNATURE_CHECK, OcmfRecord, Reading, Verification, parse
from driver.ocmf_batch import (
    EXIT_MALFORMED,
    EXIT_NOT_AUTHENTIC,
    EXIT_NOT_BILLABLE,
    EXIT_OK,
    BatchResult,
    RecordOutcome,
    TransactionOutcome,
    verify_input,
)
from driver.ocmf_files import FORMATS, InputFile, SignedValue, read_input

EXIT_VALID, EXIT_INVALID = EXIT_OK, EXIT_NOT_AUTHENTIC  # the names before the two verdicts


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


EXIT_CODES_HELP = """\
exit status of verify (the two verdicts, worst first):
  2  malformed input: a file that cannot be read, a record or key that cannot be parsed,
     no public key for a record (also usage errors)
  1  not authentic: a signature does not hold (the record is not what the meter signed)
  3  authentic but not billable: every signature holds, a value check failed
     (status ST, error flags EF, TX X, identification, begin/end, time status, pagination)
  0  authentic and billable: every record and transaction
"""

INPUT_HELP = (
    "a file (Transparenzsoftware XML, OCMF records one a line, OCPP 1.6/2.0.1 JSON), "
    "@file, - for standard input, or an OCMF record itself ('OCMF|...')"
)


def _load_input(value: str, stdin: TextIO, input_format: str) -> InputFile:
    """`-` standard input, `@path` or a path a file, text starting with OCMF| the record itself."""
    if value == "-":
        return read_input(stdin.read(), "standard input", input_format)
    if value.lstrip().startswith("OCMF|"):
        return read_input(value, "command line", input_format)
    path = Path(value.removeprefix("@"))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OcmfFormatError(f"cannot read {path}: {exc.strerror}") from None
    return read_input(data, str(path), input_format)


def _reading_line(r: Reading) -> str:
    parts = [
        r.tx or "-",
        r.time_text or "-",
        f"{r.value_text.strip()} {r.ru or ''}".strip() if r.value_text is not None else "(no value)",
        r.ri or "-",
        f"ST {r.st or '-'}",
    ]
    if r.ef:
        parts.append(f"EF {r.ef}")
    return f"  reading {r.index}: " + "  ".join(parts)


def _verdict_lines(result: Verification) -> list[str]:
    algorithm = result.record.algorithm.text
    if result.authentic:
        lines = [f"  authentic: yes  the {algorithm} signature holds over the payload bytes as received"]
    else:
        lines = ["  authentic: NO   the record is not what the meter signed"]
        lines += [f"    {f}" for f in result.failures if f.startswith(f"{SIGNATURE_CHECK}:")]
    billing = result.billing_failures
    if result.billable:
        lines.append("  billable:  yes  every value check passed")
    elif not billing:
        lines.append("  billable:  NO   the values are not authentic (their own checks passed)")
    else:
        reason = "" if result.authentic else "the values are not authentic, and "
        count = f"{len(billing)} check{'s' if len(billing) > 1 else ''} failed"
        lines.append(f"  billable:  NO   {reason}{count}:")
        lines += [f"    {f}" for f in billing]
    return lines


def _record_lines(outcome: RecordOutcome) -> list[str]:
    lines = [f"record {outcome.number}: {outcome.value.source}"]
    if outcome.result is None:
        return [*lines, f"  MALFORMED: {outcome.problem}"]
    result = outcome.result
    record = result.record
    kind = "transaction" if result.transaction_checked else "single reading"
    lines.append(
        f"  PG {record.pagination or '-'}, meter {record.meter_serial or '-'}, {kind}, "
        f"key from the {outcome.key_from}"
    )
    lines += _verdict_lines(result)
    lines += [f"  note: {n}" for n in outcome.notes]
    lines += [_reading_line(r) for r in record.readings]
    return lines


def _transaction_lines(t: TransactionOutcome) -> list[str]:
    begin, end = t.result.begin_record, t.result.record
    assert begin is not None
    between = f", {len(t.between)} record(s) between" if t.between else ""
    lines = [
        f"transaction: begin record {t.begin} (PG {begin.pagination}) and end record {t.end} "
        f"(PG {end.pagination}), meter {end.meter_serial or '-'}{between}"
    ]
    return lines + _verdict_lines(t.result)


def _summary(batch: BatchResult) -> str:
    records, transactions = batch.records, batch.transactions
    counted = f"{len(records)} record{'s' if len(records) != 1 else ''}"
    if transactions:
        counted += f", {len(transactions)} paired transaction{'s' if len(transactions) != 1 else ''}"
    code = batch.exit_code
    if code == EXIT_MALFORMED:
        bad = sum(1 for r in records if r.problem is not None)
        return f"RESULT: MALFORMED: {bad} of {counted} could not be verified (exit 2)"
    if code == EXIT_NOT_AUTHENTIC:
        bad = sum(1 for r in (*records, *transactions) if not r.authentic)
        return f"RESULT: NOT AUTHENTIC: {bad} not authentic ({counted}) (exit 1)"
    if code == EXIT_NOT_BILLABLE:
        bad = sum(1 for r in (*records, *transactions) if not r.billable)
        return f"RESULT: authentic but NOT BILLABLE: {bad} not billable ({counted}) (exit 3)"
    return f"RESULT: authentic and billable ({counted}) (exit 0)"


def _failures_json(failures: list[str]) -> list[dict[str, str]]:
    return [{"check": f.split(":", 1)[0], "message": f} for f in failures]


def _reading_json(r: Reading) -> dict[str, Any]:
    return {
        "index": r.index,
        "time": r.time_text,
        "time_status": r.time_status,
        "tx": r.tx,
        "value": r.value_text.strip() if r.value_text is not None else None,
        "unit": r.ru,
        "ri": r.ri,
        "rt": r.rt,
        "st": r.st,
        "ef": r.ef,
    }


def batch_json(batch: BatchResult) -> dict[str, Any]:
    """The machine-readable document `verify --json` prints."""
    records = []
    for o in batch.records:
        entry: dict[str, Any] = {"number": o.number, "source": o.value.source, "context": o.value.context}
        if o.result is None:
            entry.update(malformed=o.problem, authentic=None, billable=None)
        else:
            record = o.result.record
            entry.update(
                pagination=record.pagination,
                meter=record.meter_serial,
                signature_algorithm=record.algorithm.text,
                public_key_from=o.key_from,
                transaction_checked=o.result.transaction_checked,
                authentic=o.result.authentic,
                billable=o.result.billable,
                failures=_failures_json(o.result.failures),
                notes=list(o.notes),
                readings=[_reading_json(r) for r in record.readings],
            )
        records.append(entry)
    transactions = [
        {
            "begin_record": t.begin,
            "end_record": t.end,
            "between": list(t.between),
            "pagination": [
                t.result.begin_record.pagination if t.result.begin_record else None,
                t.result.record.pagination,
            ],
            "authentic": t.authentic,
            "billable": t.billable,
            "failures": _failures_json(t.result.failures),
            "notes": list(t.result.notes),
        }
        for t in batch.transactions
    ]
    return {
        "input": batch.input.name,
        "format": batch.input.format,
        "records": records,
        "transactions": transactions,
        "authentic": batch.authentic,
        "billable": batch.billable,
        "exit_code": batch.exit_code,
    }


def _single(source: InputFile, what: str) -> SignedValue:
    if len(source.values) != 1:
        raise OcmfFormatError(f"{source.name}: {what} must hold one record, it holds {len(source.values)}")
    return source.values[0]


def _verify(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    key = _read_argument(args.public_key, "public key", stdin) if args.public_key is not None else None
    source = _load_input(args.record, stdin, args.format)
    pair = None
    if args.begin is not None:
        begin = _single(_load_input(args.begin, stdin, args.format), "--begin")
        end = _single(source, "the end record")
        source = InputFile(f"{args.begin} + {source.name}", source.format, (begin, end))
        pair = (1, 2)
    batch = verify_input(source, key, transaction=args.transaction, pair=pair)
    for outcome in batch.records:
        if outcome.problem is not None:
            print(f"meter-ocmf: malformed input: {outcome.value.source}: {outcome.problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(batch_json(batch), indent=2), file=out)
        return batch.exit_code
    blocks = [f"{source.name}: {source.format_name}, {len(batch.records)} signed value(s)"]
    blocks += ["\n".join(_record_lines(o)) for o in batch.records]
    blocks += ["\n".join(_transaction_lines(t)) for t in batch.transactions]
    blocks.append(_summary(batch))
    print("\n\n".join(blocks), file=out)
    return batch.exit_code


def _show(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    source = _load_input(args.record, stdin, args.format)
    blocks = []
    status = EXIT_OK
    for number, value in enumerate(source.values, start=1):
        try:
            if value.record is None:
                raise OcmfFormatError(value.problem or "holds no OCMF record")
            shown = format_record(parse(value.record))
        except OcmfFormatError as exc:
            print(f"meter-ocmf: malformed input: {value.source}: {exc}", file=sys.stderr)
            status = EXIT_MALFORMED
            continue
        blocks.append(shown if len(source.values) == 1 else f"record {number}: {value.source}\n{shown}")
    if blocks:
        print("\n\n".join(blocks), file=out)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meter-ocmf",
        description="Verify and show OCMF records: is each authentic, and is it usable for billing?",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "verify",
        help="verify every record of an input: authentic? billable?",
        description="Verify every OCMF record of an input and give both verdicts: authentic (the signature "
        "holds over the payload as received) and billable (the values are usable for billing). Separate "
        "begin and end records of one meter are paired by pagination and checked as a transaction.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "--public-key",
        help="the meter's public key (hex, base64 or PEM text, or @file); overrides the keys in the input, "
        "and is needed when the input has none (a line file, OCPP 1.6)",
    )
    check.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="the input's format (default auto: '<' XML, '{' or '[' OCPP JSON, 'OCMF|' lines)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    mode = check.add_mutually_exclusive_group()
    mode.add_argument(
        "--transaction",
        dest="transaction",
        action="store_const",
        const=True,
        default=None,
        help="run the transaction checks on every record (begin and end reading required)",
    )
    mode.add_argument(
        "--no-transaction",
        dest="transaction",
        action="store_const",
        const=False,
        help="never run the transaction checks, and pair no records",
    )
    mode.add_argument(
        "--begin",
        metavar="BEGIN",
        help="the separately signed begin record (a file, @file, - or the record); RECORD is the end record",
    )
    check.add_argument("record", metavar="INPUT", help=INPUT_HELP)
    check.set_defaults(run=_verify)
    show = commands.add_parser("show", help="print each record's readings as a table")
    show.add_argument("--format", choices=("auto", *FORMATS), default="auto", help="the input's format")
    show.add_argument("record", metavar="INPUT", help=INPUT_HELP)
    show.set_defaults(run=_show)
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None, stdin: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return int(args.run(args, out, stdin or sys.stdin))
    except OcmfFormatError as exc:
        print(f"meter-ocmf: malformed input: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "exit_code": EXIT_MALFORMED}, indent=2), file=out)
        return EXIT_MALFORMED


if __name__ == "__main__":
    sys.exit(main())
