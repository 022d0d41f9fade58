"""The conformance suite's pytest plugin: --rig, the official scenarios, the rig each scenario runs on,
capability skips, the report.

Installed as the `pytest11` entry point `meter_hil`, so it is loaded in every pytest run of an
environment holding meter-hil, but it only acts when a rig is named (`--rig FILE` or $METER_HIL_RIG):
then it adds the official scenarios (meter_hil_suite/scenarios.py, collected by module name) to
whatever else pytest collects, a vendor's own feature files and steps included. The official steps
are registered for all of them. The rig file is loaded and checked once at start-up; a bad one (or a
physical meter whose port does not exist) ends the run at once with one line naming the problem.
Each scenario gets a fresh rig: its own meter-sim, state dir, link proxy and driver, all closed
when the scenario ends.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from meter_hil_suite import SCENARIOS_MODULE
from meter_hil_suite.identities import base_seed, identities
from meter_hil_suite.report import NOT_APPLICABLE, REQUIREMENTS, ConformanceReport, RunInfo, versions
from meter_hil_suite.steps import STEP_MODULES
from rigs import CAPABILITIES, GROUND_TRUTH, Rig, RigError, RigFileError, RigSpec, load_rig
from rigs.meter_side import check_port
from rigs.rig import MODEL_FEATURES, PLAIN_METER, driver_factory, model_capabilities
from rigs.spec import with_model
from rigs.wirelog import WireLog

RIG_ENV = "METER_HIL_RIG"
pytest_plugins = list(STEP_MODULES)  # every official step, visible to official and vendor scenarios
MODEL_TAGS = {*MODEL_FEATURES, PLAIN_METER}
CAPABILITY_TAGS = (*CAPABILITIES, GROUND_TRUTH, *MODEL_TAGS)

_RIG_KEY = pytest.StashKey[RigSpec]()
_REPORT_KEY = pytest.StashKey[ConformanceReport]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meter-hil conformance")
    group.addoption("--rig", default=None,
                    help=f"rig file (TOML), or ${RIG_ENV}: runs the official conformance scenarios on it "
                         "(the virtual rig: the rig file virtual.toml shipped in the rigs package)")
    group.addoption("--model", default=None,
                    help="meter model (docs/meters/), instead of the rig file's meter.model")
    group.addoption("--conformance-reports", default=None, metavar="DIR",
                    help="write summary.md, summary.json and wire.log into DIR")


def pytest_configure(config: pytest.Config) -> None:
    for tag in REQUIREMENTS:
        config.addinivalue_line("markers", f"{tag}: scenario checks requirement {tag} (docs/conformance.md)")
    for tag in CAPABILITY_TAGS:
        config.addinivalue_line("markers", f"{tag}: scenario needs the rig capability {tag}")
    path = config.getoption("--rig") or os.environ.get(RIG_ENV)
    if not path:
        return  # no rig named: the plugin stays out of the way
    path = shipped_rig(path)
    if str(SCENARIOS_MODULE) not in {str(Path(a).resolve()) for a in config.args}:
        config.args.append(str(SCENARIOS_MODULE))
    try:
        spec = load_rig(path)
        if config.getoption("--model"):
            spec = with_model(spec, config.getoption("--model"))
        driver_factory(spec)  # the driver class and its settings are part of the rig file
        if spec.meter.kind == "physical":
            check_port(spec.meter)
    except RigError as exc:
        # One clear line and a non-zero exit, before any scenario starts. A RigFileError names the file.
        message = str(exc) if isinstance(exc, RigFileError) else f"rig {path}: {exc}"
        raise pytest.UsageError(message) from None
    config.stash[_RIG_KEY] = spec
    reports = config.getoption("--conformance-reports")
    out_dir = Path(reports) if reports else None
    info = RunInfo(rig_file=str(spec.path), rig_name=spec.name, rig_sha256=spec.sha256,
                   model=spec.meter.model,
                   capabilities=sorted(spec.capabilities | model_capabilities(spec.meter.model)),
                   driver_class=spec.driver.described,
                   versions=versions(spec.driver.class_path), seed=base_seed())
    report = ConformanceReport(config, info, out_dir)
    config.stash[_REPORT_KEY] = report
    config.pluginmanager.register(report, "meter-hil-conformance-report")


def shipped_rig(path: str) -> str:
    """A rig file by path, or one shipped in the rigs package by name (`virtual.toml`)."""
    if Path(path).exists() or os.sep in path:
        return path
    shipped = Path(importlib.import_module("rigs").__file__ or "").parent / path
    return str(shipped) if shipped.exists() else path


class OfficialScenarios(pytest.Module):
    """The official scenarios' module, imported by its package name (not by path), so the steps and
    the plugin see one copy of it whether meter-hil is installed or an editable source tree."""

    def _getobj(self) -> ModuleType:
        return importlib.import_module("meter_hil_suite.scenarios")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if module_path.resolve() == SCENARIOS_MODULE:
        return OfficialScenarios.from_parent(parent, path=module_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with the capability named, every scenario needing something this rig lacks."""
    if _RIG_KEY not in config.stash:
        return
    spec = config.stash[_RIG_KEY]
    have = spec.capabilities | model_capabilities(spec.meter.model)
    for item in items:
        missing = [tag for tag in CAPABILITY_TAGS if item.get_closest_marker(tag) and tag not in have]
        if missing and set(missing) <= MODEL_TAGS:
            # what the meter model cannot do (a meter without transactions): the scenario does not apply
            reason = f"{NOT_APPLICABLE}: model {spec.meter.model} lacks {', '.join(missing)}"
            item.add_marker(pytest.mark.skip(reason=reason))
        elif missing:
            reason = f"rig '{spec.name}' (model {spec.meter.model}) lacks capability: {', '.join(missing)}"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def rig_spec(pytestconfig: pytest.Config) -> RigSpec:
    if _RIG_KEY not in pytestconfig.stash:
        pytest.fail(f"no rig named: run pytest with --rig FILE (or set ${RIG_ENV})", pytrace=False)
    return pytestconfig.stash[_RIG_KEY]


@pytest.fixture(scope="session")
def wire_log(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireLog]:
    """One wire log for the whole run, scenario boundaries marked in it."""
    reports = pytestconfig.getoption("--conformance-reports")
    path = Path(reports) / "wire.log" if reports else tmp_path_factory.mktemp("wire") / "wire.log"
    if path.exists():
        path.unlink()
    log = WireLog(path)
    # Without a link proxy no bytes pass the rig: the file then holds only the scenario marks.
    pytestconfig.stash[_REPORT_KEY].wire_log = path if pytestconfig.stash[_RIG_KEY].link_proxy else None
    yield log
    log.close()


@pytest.fixture
def rig(rig_spec: RigSpec, wire_log: WireLog, request: pytest.FixtureRequest) -> Iterator[Rig]:
    """A fresh rig for one scenario; closed (meter-sim stopped, ports closed) when it ends."""
    # Short path: a unix socket path must stay under 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="rig-"))
    wire_log.mark(f"scenario {request.node.nodeid}")
    try:
        with Rig(rig_spec, workdir, wire_log, driver_log=driver_log_path(request)) as running:
            yield running
            failure = running.unreported_driver_failure()  # e.g. it crashed while no step called it
            if failure:
                pytest.fail(f"rig {rig_spec.name}: {failure}", pytrace=False)
    except RigError as exc:
        pytest.fail(f"rig {rig_spec.name}: {exc}", pytrace=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def driver_log_path(request: pytest.FixtureRequest) -> Path | None:
    """reports/driver-logs/<scenario>.log for an out-of-process driver, when reports are written."""
    reports = request.config.getoption("--conformance-reports")
    if not reports:
        return None
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    return Path(reports) / "driver-logs" / f"{name}.log"


@pytest.fixture
def fake(request: pytest.FixtureRequest):
    """Identities seeded from METER_HIL_SEED (or the default) and this scenario's name."""
    return identities(request.node.name)
