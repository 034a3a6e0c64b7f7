"""Functional tier: the real Starlette app and the real chdb engine (one store per test process; chdb binds
one path per process), tables truncated between tests."""
import contextlib

import pytest
from starlette.testclient import TestClient

from dealbeacon.core.clock import FixedClock
from dealbeacon.app.embedded import EmbeddedHandoff, EmbeddedProcessor
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import Site, SiteRegistry
from ingest.app import create_app
from sinks.schema import COLUMNS
from streams.alerts import alert_config
from tests.helpers import NOW_MS

ORIGIN = "https://rooms.example.com"
SECRET = "site-secret"


@pytest.fixture
def store(chdb_store):
    for table in COLUMNS:
        chdb_store.execute(f"TRUNCATE TABLE {table}")
    return chdb_store


def make_app(store, settings: Settings | None = None, clock=None, started=True, origins=(ORIGIN,), **app_kwargs):
    """The real ingest app over the real store and an embedded hand-off started by the app's lifespan.
    ``app_kwargs`` go to create_app (reader, hub, snippet_file, demo_page)."""
    settings = settings or Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000)
    sites = SiteRegistry({"test": Site("test", SECRET, tuple(origins))})
    handoff = EmbeddedHandoff(store, EmbeddedProcessor(store, acfg=alert_config(settings)), linger_ms=0)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if started:
            await handoff.start()
        yield
        await handoff.stop()

    return create_app(settings, sites, handoff, clock=clock or FixedClock(NOW_MS), lifespan=lifespan, **app_kwargs)


def make_client(store, settings: Settings | None = None, clock=None, started=True, **kwargs):
    return TestClient(make_app(store, settings, clock, started, **kwargs),
                      headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"})


@pytest.fixture
def client(store):
    with make_client(store) as c:
        yield c
