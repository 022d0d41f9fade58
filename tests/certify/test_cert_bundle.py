"""Certification bundles from a report directory: the manifest, verify-bundle on an intact archive and on
each kind of tampering, and an unreadable one. (test_cert_run.py makes one from a real run.)"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from cert_support import make_run_dir

from rigs.bundle import FORMAT, make_bundle, verify_bundle
from rigs.cli import main
from rigs.errors import BundleError

NOW = 1717200000.0  # 2024-06-01T00:00:00Z


@pytest.fixture
def bundle(tmp_path) -> Path:
    directory, rig = make_run_dir(tmp_path)
    return make_bundle(directory, rig, NOW)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}


def rewrite(archive: Path, change) -> None:
    """Rebuild the archive with `change(dict name -> bytes)` applied (a dir entry holds None)."""
    with tarfile.open(archive, "r:gz") as tar:
        entries = {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()}
    change(entries)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(gzip.compress(buffer.getvalue()))


def test_the_bundle_holds_everything_under_one_directory(bundle):
    stem = "certification-virtual-reference-20240601T000000Z"
    assert bundle.name == stem + ".tar.gz"
    names = set(members(bundle))
    expected = {"junit.xml", "cucumber.json", "report.html", "wire.log", "summary.md", "summary.json",
                "rig/virtual.toml", "manifest.json"}
    assert {n for n in names if not n.endswith("/") and "." in n.rsplit("/", 1)[-1]} == {
        f"{stem}/{n}" for n in expected}


def test_the_manifest(bundle):
    data = members(bundle)
    stem = bundle.name.removesuffix(".tar.gz")
    manifest = json.loads(data[f"{stem}/manifest.json"])
    assert manifest["format"] == FORMAT and manifest["bundle"] == stem
    assert manifest["created_utc"] == "2024-06-01T00:00:00Z"
    assert manifest["identity_seed"] == 20240601
    rig_sha = hashlib.sha256(data[f"{stem}/rig/virtual.toml"]).hexdigest()
    assert manifest["rig"] == {"name": "virtual", "file": "rig/virtual.toml", "sha256": rig_sha}
    assert manifest["verdict"] == "FAIL"
    assert manifest["requirements"]["R-RECONNECT"] == "FAIL"
    assert manifest["requirements"]["R-OCPP"] == "NOT RUN"
    assert manifest["scenarios"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert manifest["python"]["version"] and manifest["meter_hil"]
    assert {"pymodbus", "pytest-bdd", "cryptography", "simpy"} <= set(manifest["dependencies"])
    assert "hypothesis" not in manifest["dependencies"]  # a dev extra, not a dependency
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256(data[f"{stem}/{name}"]).hexdigest()
    assert "manifest.json" not in manifest["files"] and len(manifest["files"]) == 7


def test_the_same_run_makes_the_same_archive(tmp_path):
    first = tmp_path / "a"
    second = tmp_path / "b"
    first.mkdir()
    second.mkdir()
    one = make_bundle(*make_run_dir(first), NOW)
    two = make_bundle(*make_run_dir(second), NOW)
    assert one.read_bytes() == two.read_bytes()


def test_an_intact_bundle_verifies(bundle, capsys):
    result = verify_bundle(bundle)
    assert result.intact and result.files_checked == 7
    assert main(["verify-bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "INTACT: 7 files" in out and "verdict: FAIL" in out and "R-RECONNECT  FAIL" in out
    assert "rig virtual (rig/virtual.toml, sha256" in out


def stem_of(bundle: Path) -> str:
    return bundle.name.removesuffix(".tar.gz")


@pytest.mark.parametrize(("change", "named"), [
    (lambda e, s: e.__setitem__(f"{s}/summary.md", b"PASS everything\n"), "differs: summary.md"),
    (lambda e, s: e.pop(f"{s}/wire.log"), "missing: wire.log"),
    (lambda e, s: e.__setitem__(f"{s}/extra.txt", b"hello"), "extra: extra.txt"),
    (lambda e, s: e.__setitem__(f"{s}/rig/virtual.toml", b"[rig]\nname = 'other'\n"),
     "differs: rig/virtual.toml"),
])
def test_tampering_is_named(bundle, change, named, capsys):
    rewrite(bundle, lambda entries: change(entries, stem_of(bundle)))
    result = verify_bundle(bundle)
    assert not result.intact
    assert any(p.startswith(named) for p in result.problems), result.problems
    assert main(["verify-bundle", str(bundle)]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and named in out


def test_a_consistently_rewritten_manifest_still_fails_on_the_summary(bundle):
    """Changing the verdict in the manifest (and nothing else) is caught against summary.json."""
    stem = stem_of(bundle)

    def forge(entries):
        manifest = json.loads(entries[f"{stem}/manifest.json"])
        manifest["verdict"] = "PASS"
        entries[f"{stem}/manifest.json"] = json.dumps(manifest).encode()

    rewrite(bundle, forge)
    assert "differs: manifest.json (its verdicts are not summary.json's)" in verify_bundle(bundle).problems


def test_a_second_copy_of_a_file_is_named(bundle):
    stem = stem_of(bundle)
    with tarfile.open(bundle, "r:gz") as tar:
        entries = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, data in entries:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
        info = tarfile.TarInfo(f"{stem}/summary.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    bundle.write_bytes(gzip.compress(buffer.getvalue()))
    assert "extra: summary.json (a second copy in the archive)" in verify_bundle(bundle).problems


@pytest.mark.parametrize("content", [b"", b"not a tarball", gzip.compress(b"garbage")])
def test_an_unreadable_bundle_exits_2(tmp_path, content, capsys):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=r"x\.tar\.gz"):
        verify_bundle(path)
    assert main(["verify-bundle", str(path)]) == 2
    assert "meter-hil:" in capsys.readouterr().err


def test_no_manifest_or_no_file_exits_2(bundle, tmp_path):
    rewrite(bundle, lambda entries: entries.pop(f"{stem_of(bundle)}/manifest.json"))
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        verify_bundle(bundle)
    assert main(["verify-bundle", str(tmp_path / "absent.tar.gz")]) == 2


def test_report_is_rebuilt_from_a_bundle(bundle, tmp_path):
    out = tmp_path / "again.html"
    assert main(["report", str(bundle), "-o", str(out)]) == 0
    assert out.read_text().count('<svg class="timeline"') == 2
