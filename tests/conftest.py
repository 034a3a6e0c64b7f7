import os

import pytest

from sinks.store import ChdbStore

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


@pytest.fixture(scope="session", autouse=True)
def sql_analyst(tmp_path_factory):
    """One analyst file for every server the tests start (scrypt runs once): DEALBEACON_ANALYSTS_FILE."""
    from dealbeacon.core.analysts import AnalystRegistry
    from tests.helpers import SQL_AUTH

    path = str(tmp_path_factory.mktemp("analysts") / "analysts.json")
    reg = AnalystRegistry()
    reg.add(SQL_AUTH[0], ["*"], SQL_AUTH[1])
    reg.save(path)
    old = os.environ.get("DEALBEACON_ANALYSTS_FILE")
    os.environ["DEALBEACON_ANALYSTS_FILE"] = path
    yield path
    if old is None:
        os.environ.pop("DEALBEACON_ANALYSTS_FILE", None)
    else:
        os.environ["DEALBEACON_ANALYSTS_FILE"] = old


@pytest.fixture(scope="session")
def chdb_store(tmp_path_factory):
    """The pytest process's one chdb engine (chdb binds one data directory per process)."""
    store = ChdbStore(str(tmp_path_factory.mktemp("chdb")))
    store.migrate()
    yield store
    store.close()
