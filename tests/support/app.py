"""Plugin: the real chdb engine (one per test process), the SQL port's test analyst, and the real ingest app
over that engine with an embedded hand-off (functional tier)."""
from __future__ import annotations

import contextlib
import os

import pytest
from starlette.testclient import TestClient

from dealbeacon.app.embedded import EmbeddedHandoff, EmbeddedProcessor
from dealbeacon.core.clock import FixedClock
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import Site, SiteRegistry
from ingest.app import create_app
from sinks.schema import COLUMNS
from sinks.store import ChdbStore
from streams.alerts import alert_config

from .data import NOW_MS, SQL_AUTH

ORIGIN = "https://rooms.example.com"
SECRET = "site-secret"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"


@pytest.fixture(scope="session", autouse=True)
def sql_analyst(tmp_path_factory):
    """One analyst file for every server the tests start (scrypt runs once): DEALBEACON_ANALYSTS_FILE."""
    from dealbeacon.core.analysts import AnalystRegistry

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


@pytest.fixture
def store(chdb_store):
    """The process's chdb engine with every table emptied."""
    for table in COLUMNS:
        chdb_store.execute(f"TRUNCATE TABLE {table}")
    return chdb_store


def make_app(store, settings: Settings | None = None, clock=None, started=True, origins=(ORIGIN,),
             internal_domains=(), extra_sites=(), **app_kwargs):
    """The real ingest app over the real store and an embedded hand-off started by the app's lifespan.
    ``app_kwargs`` go to create_app (reader, hub, snippet_file, demo_page)."""
    settings = settings or Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000)
    sites = SiteRegistry({"test": Site("test", SECRET, tuple(origins), internal_domains=tuple(internal_domains)),
                          **{key: Site(key, SECRET + "-" + key, tuple(origins)) for key in extra_sites}})
    handoff = EmbeddedHandoff(store, EmbeddedProcessor(store, acfg=alert_config(settings)), linger_ms=0)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if started:
            await handoff.start()
        yield
        await handoff.stop()

    return create_app(settings, sites, handoff, clock=clock or FixedClock(NOW_MS), lifespan=lifespan, **app_kwargs)


def make_client(store, settings: Settings | None = None, clock=None, started=True, **kwargs):
    return TestClient(make_app(store, settings, clock, started, **kwargs), headers={"User-Agent": BROWSER_UA})


@pytest.fixture
def client(store):
    with make_client(store) as c:
        yield c
