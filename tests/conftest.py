"""The tiers' policy (one marker per tier folder; a real-parts test never skipped in CI) and the shared
support, registered as plugins: fixtures live in tests/support, and tests import helpers from there."""
import os

import pytest

pytest_plugins = ["tests.support.app", "tests.support.servers", "tests.support.browser", "tests.support.stack"]

# In CI the integration tier must run: a missing real part is an error, never a skip.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


TIERS = ("unit", "functional", "e2e", "browser", "integration")  # one marker each (pyproject, --strict-markers)
REAL_PARTS = TIERS[1:]  # the tiers that run real engines, processes, Kafka or Chromium: never skipped in CI


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath)
        tier = next((t for t in TIERS if f"/tests/{t}/" in path), None)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: every test lives in a tier folder ({', '.join(TIERS)})")
        item.add_marker(getattr(pytest.mark, tier))


_skipped_integration: list[str] = []


def pytest_runtest_logreport(report):
    # an expected failure (a known bug, marked xfail with its reason) ran and is reported; a skip did not run
    if report.skipped and not hasattr(report, "wasxfail") and any(t in report.keywords for t in REAL_PARTS):
        _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if IN_CI and _skipped_integration:
        print(f"\nCI: {len(_skipped_integration)} integration test(s) skipped; the integration tier must run:")
        for nodeid in _skipped_integration:
            print("  " + nodeid)
        session.exitstatus = 1
