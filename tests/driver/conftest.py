"""Fixtures for the driver's integration tests: a real meter-sim on a pty, a LinkProxy, drivers.

Everything opened here is closed by a finalizer; waits are poll loops with deadlines (drv_support.wait_for).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from drv_support import SimMeter

from driver import DriverConfig, PowermeterDriver


@pytest.fixture(scope="module")
def sim() -> Iterator[SimMeter]:
    """One reference meter for a test module (tests leave it idle)."""
    meter = SimMeter()
    yield meter
    meter.close()


@pytest.fixture
def fresh_sim() -> Iterator[SimMeter]:
    """A reference meter of the test's own, for tests that break it."""
    meter = SimMeter()
    yield meter
    meter.close()


@pytest.fixture
def proxy_to(request: pytest.FixtureRequest) -> Callable[[SimMeter], Any]:
    """LinkProxy between a meter and a new pty; closed at the end of the test."""
    from simulator import LinkProxy

    def make(meter: SimMeter) -> Any:
        link = LinkProxy(meter.path).start()
        request.addfinalizer(link.close)
        return link

    return make


@pytest.fixture
def make_driver(request: pytest.FixtureRequest) -> Callable[..., PowermeterDriver]:
    """An opened PowermeterDriver on a port, fast test timings; closed at the end of the test."""

    def make(port: str, **overrides: Any) -> PowermeterDriver:
        settings: dict[str, Any] = {
            "timeout": 0.3,
            "retries": 0,
            "publish_interval": 0,
            "command_timeout": 3.0,
            "busy_timeout": 5.0,
            "backoff_initial": 0.05,
            "backoff_max": 0.4,
        }
        settings.update(overrides)
        driver = PowermeterDriver(DriverConfig(port=port, **settings))
        request.addfinalizer(driver.close)
        return driver.open()

    return make
