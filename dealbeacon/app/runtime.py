"""``dealbeacon up``: embedded mode in one process. Composition root: the only module that wires ingest,
streams and sinks together (the stages never import each other)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable

from prometheus_client import Gauge

from dealbeacon.app import memory, serving
from dealbeacon.app.embedded import EmbeddedHandoff, EmbeddedProcessor, LoggedHandoff
from dealbeacon.app.locallog import LocalLog
from dealbeacon.app.modelfit import refit_loop
from dealbeacon.core.analysts import AnalystRegistry
from dealbeacon.core.clock import Clock, SiteClocks
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import DEMO_SITE_KEY, SiteRegistry
from ingest.app import SNIPPET_PATH, create_app
from ingest.metrics import Metrics
from ingest.sellers import AlertHub
from sinks.delivery import Deliverer
from sinks.kpi_sql import sync_stages
from sinks.notify import NotifyConfig
from sinks.schema import COLUMNS
from sinks.sqlengine import AnalystEngine, Limits
from sinks.sqlport import create_sql_app
from sinks.store import ChdbStore
from streams.alerts import alert_config

log = logging.getLogger("dealbeacon")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SNIPPET_FILE = os.path.join(ROOT, "js-snippet", "dist", "dealbeacon.js")
DEMO_PAGE = os.path.join(ROOT, "dealbeacon", "sim", "demo_room.html")


def sql_limits(s: Settings) -> Limits:
    return Limits(**{f.name: getattr(s, f"sql_{f.name}") for f in dataclasses.fields(Limits)})


def analyst_engine(s: Settings, store) -> AnalystEngine:
    """The SQL port's engine over a chdb store (embedded mode, or a sink with a local directory)."""
    return AnalystEngine(store.open_session, sql_limits(s))


DEMO_ANALYST = "demo"
DEMO_ANALYST_FILE = "demo-analyst.txt"  # its password, beside the data (0600)


def ensure_demo_analyst(s: Settings) -> str:
    """The demo's analyst (site demo only); its password is kept beside the data (0600) so the banner can show it."""
    cred_file = os.path.join(s.data_dir, DEMO_ANALYST_FILE)
    reg = AnalystRegistry.load(s.resolved_analysts_file)
    if DEMO_ANALYST in reg.analysts and os.path.exists(cred_file):
        with open(cred_file) as fh:
            return fh.read().strip()
    _, password = reg.add(DEMO_ANALYST, [DEMO_SITE_KEY])
    reg.save(s.resolved_analysts_file)
    fd = os.open(cred_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def _banner(s: Settings, demo: bool, demo_password: str = "") -> str:
    auth = f"-u {DEMO_ANALYST}:{demo_password} " if demo_password else "-u NAME:PASSWORD "
    lines = [
        "dealbeacon is up (embedded mode: ingest + processors + chdb in one process)",
        f"  ingest     http://{s.host}:{s.port}/v1/events   (health /healthz, metrics /metrics, API /openapi.json)",
        f"  beacon     http://{s.host}:{s.port}{SNIPPET_PATH}",
        f"  SQL (read-only, ClickHouse HTTP, analysts only)  http://{s.host}:{s.sql_port}/",
        f"     curl {auth}'http://{s.host}:{s.sql_port}/?query=SELECT+type,count()+FROM+events+FINAL+GROUP+BY+type'",
        "     (add analysts with: dealbeacon analyst add NAME --site KEY)",
        f"  analytics  http://{s.host}:{s.port}/analytics?site=KEY   (KPI dashboard, the same analyst login; "
        "report: dealbeacon kpi --site KEY)",
        f"  data       {os.path.abspath(s.data_dir)}",
    ]
    if demo:
        lines.append(f"  demo       site key '{DEMO_SITE_KEY}': {s.demo_deals} deals simulated over 210 days "
                     "(closing and open), and buyers visiting 3 rooms now")
        lines.append(f"             alerts: curl {auth}'http://{s.host}:{s.sql_port}/?query=SELECT+room_id,kind,severity,"
                     "suggestion+FROM+alerts+FINAL+ORDER+BY+at+DESC+LIMIT+10'")
        lines.append(f"             be a buyer yourself: open http://{s.host}:{s.port}/demo in a browser")
        lines.append(f"             KPIs: open http://{s.host}:{s.port}/analytics?site={DEMO_SITE_KEY} "
                     f"(user {DEMO_ANALYST}, password {demo_password})")
    lines.append("  stop with Ctrl-C")
    return "\n".join(lines)


def _delivery_config(store) -> dict[str, list[dict]]:
    """Channels and seller preferences stored so far, and what was delivered (a notice resumed after a restart
    skips the channels it already reached) (blocking)."""
    out = {}
    for table, where in (("channels", ""), ("sellers", ""), ("deliveries", " WHERE status = 'delivered'")):
        cols = list(COLUMNS[table])
        out[table] = [dict(zip(cols, r)) for r in store.query(f"SELECT {', '.join(cols)} FROM {table} FINAL{where}")]
    return out


def embedded_handoff(settings: Settings, store, processor,
                     on_behind: Callable[[bool], None] | None = None) -> EmbeddedHandoff | LoggedHandoff:
    if not settings.embedded_log:
        return EmbeddedHandoff(store, processor, linger_ms=settings.embedded_linger_ms,
                               max_batch=settings.embedded_max_batch)
    log_dir = os.path.join(settings.data_dir, "locallog")
    return LoggedHandoff(store, processor, LocalLog(log_dir, segment_bytes=settings.embedded_log_segment_bytes,
                                                    min_free_bytes=settings.embedded_log_min_free_bytes),
                         linger_ms=settings.embedded_linger_ms, apply_ms=settings.embedded_apply_ms,
                         apply_max_records=settings.embedded_apply_max_records,
                         backlog_records=settings.embedded_backlog_records,
                         backlog_bytes=settings.embedded_backlog_bytes, on_behind=on_behind,
                         linger_behind_ms=settings.embedded_linger_behind_ms)


async def _ticker(settings: Settings, sites: SiteRegistry, handoff) -> None:
    """Time rules on the wall clock: a site-wide tick through the same hand-off as events."""
    await asyncio.sleep(min(10.0, settings.tick_interval_s))  # first evaluation soon after start
    while True:
        now = int(time.time() * 1000)
        try:
            await handoff.submit([{"record": "clock", "site": k, "now": now} for k in sites.sites], [])
        except Exception as e:  # the next tick retries; rules are evaluated against the state, not the gap
            log.warning("tick failed: %s", e)
        await asyncio.sleep(settings.tick_interval_s)


async def _demo(settings: Settings, site) -> None:
    """The live rooms, then their live visits beside the history's replay (the visits start at once, not after
    the history: it took 38 s, paced by the site's rate limit)."""
    from dealbeacon.sim.demo import run_demo_traffic, seed_demo, seed_live_rooms

    base = f"http://{settings.host}:{settings.port}"

    async def history() -> None:
        try:
            counts = await seed_demo(base, site.key, site.secret, deals=settings.demo_deals)
            log.info("demo history: %d room updates, %d events", counts["room"], counts["accepted"])
        except Exception as e:  # the live traffic still runs
            log.warning("demo history failed: %s", e)

    try:
        await seed_live_rooms(base, site.key, site.secret)
    except Exception as e:  # the visits still run (their tokens are verified; the rooms lack their committees)
        log.warning("demo rooms failed: %s", e)
    await asyncio.gather(history(), run_demo_traffic(base + "/v1/events", site.key, site.secret,
                                                     max_events=settings.demo_max_events))


def _stop(servers, engine: AnalystEngine) -> None:
    """SIGTERM/SIGINT: stop serving and kill analyst queries at once (a heavy query never holds the exit)."""
    for s in servers:
        s.should_exit = True
    engine.shutdown()


async def run_embedded(settings: Settings, *, started: asyncio.Event | None = None,
                       on_behind: Callable[[bool], None] | None = None) -> None:
    os.makedirs(settings.data_dir, exist_ok=True)
    socks = [serving.listen(settings.host, settings.port), serving.listen(settings.host, settings.sql_port)]
    settings = settings.replace(port=serving.port_of(socks[0]), sql_port=serving.port_of(socks[1]))
    sites = SiteRegistry.load(settings.resolved_sites_file)
    demo_site = sites.ensure_demo(settings.resolved_sites_file) if settings.demo else None
    demo_password = ensure_demo_analyst(settings) if demo_site else ""
    if not sites.sites:
        log.warning("no sites configured: add one with `dealbeacon site add KEY --origin https://...`")
    store = ChdbStore(settings.chdb_path)
    await asyncio.to_thread(store.migrate)
    await asyncio.to_thread(sync_stages, store, settings.stage_list, settings.closed_stage_list, settings.won_stage_list, Clock().wall_ms())
    hub = AlertHub()
    async def record(rows):
        await asyncio.to_thread(store.insert, "deliveries", rows)

    site_clocks = SiteClocks()

    def policy_now() -> float | None:  # notices follow the external clock (None: not posted yet) or the wall
        if settings.clock != "external":
            return time.time()
        posted = site_clocks.latest()
        return posted / 1000 if posted is not None else None

    deliverer = Deliverer({k: v.secret for k, v in sites.sites.items()}, record,
                          room_url=settings.public_url or f"http://{settings.host}:{settings.port}",
                          smtp=(settings.smtp_host, settings.smtp_port), smtp_from=settings.smtp_from,
                          cfg=NotifyConfig(settings.notify_aggregate_s, settings.notify_max_wait_s,
                                           settings.notify_cooldown_s),
                          clock=policy_now, state_file=os.path.join(settings.data_dir, "notify-state.json"))
    deliverer.apply(await asyncio.to_thread(_delivery_config, store))
    processor = EmbeddedProcessor(store, [deliverer.apply, lambda t: hub.publish(t.get("alerts", []))],
                                  alert_config(settings), hot_rooms=settings.embedded_hot_rooms)
    rooms = await asyncio.to_thread(processor.load)
    delivering = asyncio.create_task(deliverer.run())
    trimming = asyncio.create_task(memory.give_back_every(5.0))  # freed batch memory back to the system
    handoff = embedded_handoff(settings, store, processor, on_behind)
    await handoff.start()
    ticker = asyncio.create_task(_ticker(settings, sites, handoff)) if settings.clock == "wall" else None
    refits = asyncio.create_task(refit_loop(
        lambda: list(sites.sites), store.query_readonly, handoff.submit, settings.won_stage_list,
        settings.closed_stage_list, settings.model_refit_s, lambda: int(time.time() * 1000))) \
        if settings.model_refit_s else None
    log.info("room states loaded: %d", rooms)
    demo_page = DEMO_PAGE if demo_site else None
    metrics = Metrics()
    app = create_app(settings, sites, handoff, snippet_file=SNIPPET_FILE, demo_page=demo_page,
                     reader=store.query_readonly, hub=hub, metrics=metrics, site_clocks=site_clocks)
    engine = await asyncio.to_thread(analyst_engine, settings, store)
    Gauge("dealbeacon_sql_queries_running", "Analyst queries running on the SQL port",
          registry=metrics.registry).set_function(engine.running)
    if isinstance(handoff, LoggedHandoff):
        Gauge("dealbeacon_local_log_backlog_records", "Records in the local log (answered 202) not yet in chdb",
              registry=metrics.registry).set_function(lambda: handoff.backlog_records)
    sql_app = create_sql_app(engine, settings.resolved_analysts_file)
    servers = [serving.server(a, lifespan="off") for a in (app, sql_app)]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: _stop(servers, engine))
    tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, sock in zip(servers, socks)]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.05)
    demo_task = None
    if all(s.started for s in servers):
        serving.announce(settings.ports_file, {"http": settings.port, "sql": settings.sql_port})
        print(_banner(settings, demo_site is not None, demo_password), flush=True)
        if started:
            started.set()
        if demo_site is not None:
            demo_task = asyncio.create_task(_demo(settings, demo_site))
    try:
        await asyncio.gather(*tasks)
    finally:
        for s in servers:
            s.should_exit = True
        if demo_task:
            demo_task.cancel()
            await asyncio.gather(demo_task, return_exceptions=True)
        for task in (ticker, refits, delivering, trimming):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        engine.shutdown()
        await handoff.stop()
        await asyncio.to_thread(engine.close)
        store.close()
