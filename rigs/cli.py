"""meter-hil: certification bundles of the conformance suite (docs/conformance.md).

    meter-hil certify [--rig FILE] [--model M] [--out DIR] [-k EXPR] [-- PYTEST ARGS]
    meter-hil verify-bundle FILE
    meter-hil report (SUMMARY.json | BUNDLE.tar.gz) [-o report.html]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rigs.bundle import ROOT, Verification, certify, read_summary, verify_bundle
from rigs.certify_html import render
from rigs.errors import RigError

DEFAULT_RIG = ROOT / "rigs" / "virtual.toml"

EPILOG = """exit status:
  certify        0 verdict PASS, 1 FAIL or INCOMPLETE (the bundle is written either way),
                 2 nothing to certify (a bad rig file, the suite wrote no summary)
  verify-bundle  0 intact, 1 tampered (each file that differs, is missing or is extra is named),
                 2 unreadable (not a .tar.gz, no manifest.json)
  report         0 written, 2 unreadable input
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meter-hil", description="Certification bundles of the meter-hil conformance suite: run the "
        "suite into one archive a lab can keep, and check such an archive later.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "certify", help="run the conformance suite and write one certification archive",
        description="Run the official conformance suite (the installed meter_hil_suite package) on a "
        "rig into a fresh directory DIR/certification-<rig>-<model>-<UTC time>/ (junit.xml, "
        "cucumber.json, wire.log, summary.md, summary.json, report.html, rig/<rig file>, manifest.json) "
        "and pack it into "
        "DIR/certification-<rig>-<model>-<UTC time>.tar.gz. Prints the archive's path, its sha256 and "
        "the verdict.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--rig", type=Path, default=DEFAULT_RIG, help="rig file (default: rigs/virtual.toml)")
    run.add_argument("--model", default=None, help="meter model, instead of the rig file's meter.model")
    run.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                     help="where the directory and archive go (default: reports)")
    run.add_argument("-k", dest="keyword", default=None, metavar="EXPR",
                     help="only the scenarios matching EXPR (pytest -k); the verdict is then INCOMPLETE "
                     "unless every requirement still has a passing scenario")
    run.add_argument("pytest_args", nargs="*", metavar="-- PYTEST ARGS", help="more pytest arguments")

    check = commands.add_parser(
        "verify-bundle", help="check a certification archive against its manifest",
        description="Check a certification archive: every file the manifest lists is present with its "
        "sha256, nothing else is in it, the rig file's sha256 is the manifest's and summary.json's, and "
        "the manifest's verdicts are summary.json's. Prints the rig, versions and verdicts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("file", type=Path, help="certification-*.tar.gz")

    report = commands.add_parser(
        "report", help="write report.html from a summary.json or a bundle",
        description="Rebuild the self-contained report.html from a run's summary.json or a bundle's.")
    report.add_argument("source", type=Path, help="summary.json or certification-*.tar.gz")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        help="default: report.html")
    return parser


def _print_verdicts(manifest: dict[str, object]) -> None:
    requirements = manifest.get("requirements")
    if isinstance(requirements, dict):
        for requirement, verdict in requirements.items():
            print(f"  {requirement:12} {verdict}")
    print(f"verdict: {manifest.get('verdict')}")


def _verify(path: Path) -> int:
    result: Verification = verify_bundle(path)
    manifest = result.manifest
    rig = manifest.get("rig") if isinstance(manifest.get("rig"), dict) else {}
    run = manifest.get("run") if isinstance(manifest.get("run"), dict) else {}
    print(f"bundle {path.name}: {manifest.get('bundle')}, made {manifest.get('created_utc')} "
          f"with meter-hil {manifest.get('meter_hil')}")
    print(f"rig {rig.get('name')} ({rig.get('file')}, sha256 {rig.get('sha256')}), model {run.get('model')}, "
          f"driver {run.get('driver_class')}, identity seed {manifest.get('identity_seed')}")
    _print_verdicts(manifest)
    if result.intact:
        print(f"INTACT: {result.files_checked} files match the manifest")
        return 0
    print(f"TAMPERED: {len(result.problems)} problem(s)")
    for problem in result.problems:
        print(f"  {problem}")
    return 1


def _certify(args: argparse.Namespace) -> int:
    extra = list(args.pytest_args)
    if args.keyword:
        extra = ["-k", args.keyword, *extra]
    result = certify(args.rig, args.model, args.out, extra)
    print(f"bundle: {result.archive}")
    print(f"sha256: {result.sha256}")
    _print_verdicts(result.manifest)
    return 0 if result.verdict == "PASS" else 1


def _report(source: Path, output: Path) -> int:
    if source.name.endswith((".tar.gz", ".tgz")):
        summary = read_summary(source)
    else:
        try:
            summary = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"meter-hil: {source}: {exc}", file=sys.stderr)
            return 2
    output.write_text(render(summary), encoding="utf-8")
    print(output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "certify":
            return _certify(args)
        if args.command == "verify-bundle":
            return _verify(args.file)
        return _report(args.source, args.output)
    except RigError as exc:
        print(f"meter-hil: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"meter-hil: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
