"""The certification bundle: one .tar.gz a lab keeps and re-checks years later.

`certify` runs the conformance suite with its reports into a fresh directory
``<out>/certification-<rig>-<model>-<UTC>/``, draws report.html from summary.json, copies the rig file in
(``rig/<its name>``), writes manifest.json and packs the directory into
``<out>/certification-<rig>-<model>-<UTC>.tar.gz`` (one top-level directory of that name).

manifest.json names the versions (meter-hil, every installed dependency, Python), the identity seed, the
rig file and its sha256, the verdict per requirement and overall, the UTC time, and the sha256 and size
of every other file in the bundle. `verify_bundle` checks an archive against it: every file present with
its sha256, nothing extra, the rig file's sha256 (against the manifest and against summary.json), the
verdicts against summary.json. The manifest proves integrity, not authorship: a lab keeps the
archive's own sha256 (printed by certify) or signs the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from meter_hil_suite import SCENARIOS_MODULE
from rigs.certify_html import render, requirement_verdicts
from rigs.errors import BundleError

FORMAT = "meter-hil-certification/1"
MANIFEST = "manifest.json"
REPORT_FILES = ("junit.xml", "cucumber.json", "report.html", "wire.log", "summary.md", "summary.json")
RIG_DIR = "rig"
ROOT = Path(__file__).resolve().parent.parent
SUITE = SCENARIOS_MODULE  # the official scenarios, from the installed package
SUFFIX = ".tar.gz"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def utc_stamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def utc_iso(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _safe(text: str) -> str:
    """A name fit for a file name: letters, digits, dot, dash and underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "unnamed"


def bundle_stem(rig_name: str, model: str, now: float | None = None) -> str:
    return f"certification-{_safe(rig_name)}-{_safe(model)}-{utc_stamp(now)}"


# --- versions ----------------------------------------------------------------------------------------


def dependency_versions(distribution: str = "meter-hil") -> dict[str, str]:
    """The installed version of every run-time dependency of `distribution`, transitively (extras left
    out), by distribution name."""
    from packaging.requirements import InvalidRequirement, Requirement  # pytest's own dependency

    found: dict[str, str] = {}
    queue = [distribution]
    while queue:
        name = queue.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            found[key] = "not installed"
            continue
        found[key] = dist.version
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                queue.append(requirement.name)
    found.pop(re.sub(r"[-_.]+", "-", distribution).lower(), None)
    return dict(sorted(found.items()))


def _meter_hil_version() -> str:
    try:
        return metadata.version("meter-hil")
    except metadata.PackageNotFoundError:
        return "not installed"


# --- making a bundle ---------------------------------------------------------------------------------


def build_manifest(directory: Path, rig_in_bundle: str, summary: dict[str, Any], stem: str,
                   now: float | None = None) -> dict[str, Any]:
    """manifest.json for the files now in `directory` (all but the manifest itself)."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name != MANIFEST:
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    run = summary.get("run", {})
    counts = {outcome: sum(s.get("outcome") == outcome for s in summary.get("scenarios", []))
              for outcome in ("passed", "failed", "skipped")}
    return {
        "format": FORMAT,
        "bundle": stem,
        "created_utc": utc_iso(now),
        "meter_hil": _meter_hil_version(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "platform": platform.platform()},
        "dependencies": dependency_versions(),
        "run": {key: run.get(key) for key in ("rig_name", "model", "driver_class", "capabilities",
                                              "versions", "started_utc")},
        "identity_seed": run.get("seed"),
        "rig": {"name": run.get("rig_name"), "file": rig_in_bundle, "sha256": files[rig_in_bundle]["sha256"]},
        "verdict": summary.get("verdict"),
        "requirements": requirement_verdicts(summary),
        "scenarios": counts,
        "files": files,
    }


def _tar_info(name: str, size: int, mtime: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = mtime
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(directory: Path, archive: Path, now: float | None = None) -> Path:
    """`directory` as a .tar.gz with one top-level directory of its name; entries sorted, owners and
    times fixed, so the same files make the same archive."""
    mtime = int(time.time() if now is None else now)
    stem = directory.name
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tar_info(stem, 0, mtime, directory=True))
        for path in sorted(directory.rglob("*")):
            name = f"{stem}/{path.relative_to(directory).as_posix()}"
            if path.is_dir():
                tar.addfile(_tar_info(name, 0, mtime, directory=True))
            else:
                data = path.read_bytes()
                tar.addfile(_tar_info(name, len(data), mtime), io.BytesIO(data))
    with archive.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as out:
        out.write(buffer.getvalue())
    return archive


def make_bundle(directory: Path, rig_file: Path, now: float | None = None) -> Path:
    """Complete a run's report directory (report.html, the rig file, manifest.json) and pack it next to
    itself as <directory>.tar.gz; returns the archive."""
    summary_path = directory / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{summary_path}: cannot read the run's summary: {exc}") from None
    stem = directory.name
    created = time.time() if now is None else now
    (directory / "report.html").write_text(
        render(summary, {"name": stem, "created (UTC)": utc_iso(created)}), encoding="utf-8")
    rig_in_bundle = f"{RIG_DIR}/{rig_file.name}"
    (directory / RIG_DIR).mkdir(exist_ok=True)
    shutil.copyfile(rig_file, directory / rig_in_bundle)
    manifest = build_manifest(directory, rig_in_bundle, summary, stem, created)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return pack(directory, directory.with_name(stem + SUFFIX), created)


@dataclass
class CertifyResult:
    """What `certify` made: the archive, its sha256, the run's verdict and pytest's exit code."""

    archive: Path
    sha256: str
    verdict: str
    pytest_exit: int
    manifest: dict[str, Any] = field(default_factory=dict)


def certify(rig: Path, model: str | None, out: Path, pytest_args: Sequence[str] = (),
            now: float | None = None) -> CertifyResult:
    """Run the suite on `rig` (and `model`) with its reports into a fresh directory under `out`, and
    pack them into one archive. pytest's output goes to this process's stdout."""
    from rigs.spec import load_rig, with_model

    # pytest runs in the package's own directory: paths given relative to the caller's are made absolute
    rig, out = Path(rig).resolve(), Path(out).resolve()
    spec = load_rig(rig)  # a bad rig file: RigFileError, before anything runs
    if model:
        spec = with_model(spec, model)
    if not SUITE.exists():
        raise BundleError(f"the conformance suite {SUITE} is not there: reinstall meter-hil")
    stem = bundle_stem(spec.name, spec.meter.model, now)
    out.mkdir(parents=True, exist_ok=True)
    directory = out / stem
    for attempt in range(1, 100):
        try:
            directory.mkdir()
            break
        except FileExistsError:
            directory = out / f"{stem}-{attempt}"
    else:
        raise BundleError(f"{out}: no fresh directory for {stem}")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rig", str(rig),
               *(["--model", model] if model else []), "--conformance-reports", str(directory),
               f"--junitxml={directory / 'junit.xml'}", f"--cucumberjson={directory / 'cucumber.json'}",
               str(SUITE), *pytest_args]
    done = subprocess.run(command, cwd=ROOT, check=False)
    if not (directory / "summary.json").exists():
        raise BundleError(f"the suite (exit {done.returncode}) wrote no summary.json into {directory}: "
                          "no scenario ran, so there is nothing to certify")
    archive = make_bundle(directory, Path(rig), now)
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    return CertifyResult(archive, sha256_file(archive), str(manifest.get("verdict")), done.returncode,
                         manifest)


# --- checking a bundle -------------------------------------------------------------------------------


@dataclass
class Verification:
    """The outcome of verify_bundle: `problems` empty when the bundle is intact."""

    archive: Path
    manifest: dict[str, Any]
    problems: list[str]
    files_checked: int

    @property
    def intact(self) -> bool:
        return not self.problems


def _read_members(archive: Path) -> tuple[str, dict[str, bytes], list[str]]:
    """The archive's top-level directory, its files by path below it, and problems with its shape.
    Raises BundleError when it is no readable .tar.gz."""
    problems: list[str] = []
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
            if len(tops) != 1:
                raise BundleError(f"{archive}: not a certification bundle: expected one top-level directory, "
                                  f"found {len(tops)}")
            top = tops.pop()
            for member in members:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    problems.append(f"extra: {member.name} (a path outside the bundle)")
                    continue
                relative = "/".join(parts[1:])
                if member.isdir():
                    continue
                if not member.isfile():
                    problems.append(f"extra: {relative} (not a regular file)")
                    continue
                if relative in files:
                    problems.append(f"extra: {relative} (a second copy in the archive)")
                    continue
                handle = tar.extractfile(member)
                files[relative] = handle.read() if handle is not None else b""
    except BundleError:
        raise
    except FileNotFoundError:
        raise BundleError(f"{archive}: no such file") from None
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise BundleError(f"{archive}: not a readable .tar.gz: {exc}") from None
    return top, files, problems


def verify_bundle(archive: Path) -> Verification:
    """Check a bundle against its manifest. Raises BundleError when it cannot be read at all (not a
    .tar.gz, no manifest.json, a manifest that is not JSON); tampering is reported in `problems`."""
    _, files, problems = _read_members(archive)
    if MANIFEST not in files:
        raise BundleError(f"{archive}: no {MANIFEST} in the bundle")
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{archive}: {MANIFEST} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
            manifest.get("files"), dict):
        raise BundleError(f"{archive}: {MANIFEST} is not a {FORMAT} manifest")
    listed: dict[str, Any] = manifest["files"]
    for name, entry in sorted(listed.items()):
        if name not in files:
            problems.append(f"missing: {name}")
            continue
        actual = hashlib.sha256(files[name]).hexdigest()
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if actual != expected:
            problems.append(f"differs: {name} (sha256 {actual}, manifest {expected})")
    problems += [f"extra: {name}" for name in sorted(files) if name not in listed and name != MANIFEST]

    rig = manifest.get("rig") if isinstance(manifest.get("rig"), dict) else {}
    rig_file = str(rig.get("file", ""))
    if rig_file not in listed:
        problems.append(f"missing: the rig file {rig_file or '(none named)'} is not among the manifest's "
                        "files")
    elif isinstance(listed[rig_file], dict) and listed[rig_file].get("sha256") != rig.get("sha256"):
        problems.append(f"differs: {rig_file} (the manifest's rig sha256 is not the file's)")
    summary = _summary(files)
    if summary is not None and rig_file in files:
        recorded = summary.get("run", {}).get("rig_sha256")
        if recorded != hashlib.sha256(files[rig_file]).hexdigest():
            problems.append(f"differs: {rig_file} (not the rig file the run was made with: summary.json "
                            f"names sha256 {recorded})")
    if summary is not None and (summary.get("verdict") != manifest.get("verdict")
                                or requirement_verdicts(summary) != manifest.get("requirements")):
        problems.append(f"differs: {MANIFEST} (its verdicts are not summary.json's)")
    return Verification(archive, manifest, problems, len(listed))


def _summary(files: dict[str, bytes]) -> dict[str, Any] | None:
    try:
        data = json.loads(files["summary.json"].decode("utf-8"))
    except (KeyError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_summary(archive: Path) -> dict[str, Any]:
    """summary.json from a bundle (to rebuild report.html)."""
    _, files, _ = _read_members(archive)
    summary = _summary(files)
    if summary is None:
        raise BundleError(f"{archive}: no readable summary.json in the bundle")
    return summary
