"""The ``dealbeacon`` command, on click.

Every command builds one ``Settings`` from the environment (``DEALBEACON_*``) with its flags on top; a
setting that cannot work stops the command with exit code 2 and a message naming the variable.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click
import orjson

from dealbeacon.core import contract, tokens
from dealbeacon.core.settings import Settings, SettingsError
from dealbeacon.core.sites import Site, SiteRegistry

SETTING_FLAGS = ("data_dir", "sites_file", "analysts_file", "host", "port", "sql_port")


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(2)


def settings_options(*, server: bool = False, sql: bool = False) -> Callable:
    """The flags that override settings; the command receives ``settings`` instead of them."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(**kw: Any) -> Any:
            overrides = {k: kw.pop(k, None) for k in SETTING_FLAGS}
            if kw.pop("no_demo", False):
                overrides["demo"] = False
            try:
                settings = Settings.from_env(**overrides)
            except SettingsError as e:
                _fail(f"dealbeacon: {e}")  # a setting that cannot work: refuse to start, say which
            return fn(settings, **kw)
        opts = [click.option("--data-dir", help="DEALBEACON_DATA_DIR"),
                click.option("--sites-file", help="DEALBEACON_SITES_FILE"),
                click.option("--analysts-file", help="DEALBEACON_ANALYSTS_FILE")]
        if server:
            opts += [click.option("--host", help="DEALBEACON_HOST"), click.option("--port", type=int, help="DEALBEACON_PORT")]
        if sql:
            opts += [click.option("--sql-port", type=int, help="DEALBEACON_SQL_PORT"),
                     click.option("--no-demo", is_flag=True, help="no demo site and no simulated traffic")]
        for opt in reversed(opts):
            run = opt(run)
        return run
    return wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Engagement tracking for digital sales rooms."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


@cli.command()
@settings_options(server=True, sql=True)
def up(settings: Settings) -> None:
    """Embedded mode: ingest + processors + chdb + SQL port in one process."""
    from dealbeacon.app import memory
    from dealbeacon.app.runtime import run_embedded

    memory.cap_arenas(2)  # before chdb's and the writer's threads start (dealbeacon/app/memory.py)
    memory.collect_less()  # the writer folds batches: fewer, cheaper collections (dealbeacon/app/memory.py)
    # the writer folds and inserts in a thread while requests are answered on the event loop: with CPython's
    # 5 ms GIL switch interval a request waits up to 5 ms at each hand-back; 1 ms cut the 202's p95 from 58-59
    # to 38-43 ms at the same stored rate (bench/ingest_bench.py, three alternating runs each). But while the
    # backlog is over half full, the answers are mostly 503s and what counts is the writer draining it: at 1 ms
    # the goodput under twice the sustained rate was 0.72-0.99 of that rate (median 0.85, 11 runs), at 5 ms
    # 0.99-1.05 (4 runs), following the backlog 0.87-1.03 (median 0.96, 7 runs) (tests/e2e/test_overload.py's
    # two loads, 2026-12-05). So the interval follows the backlog.
    keeping_up, behind = settings.embedded_gil_switch_ms / 1000, settings.embedded_gil_switch_behind_ms / 1000
    sys.setswitchinterval(keeping_up)
    # uvloop, as the worker has: the event loop's own plumbing (transports, handles, timers) in C. Per 20-event
    # request the loop's thread spent 332-378 us against 354-387 us, stored 3-6 % more in three alternating
    # pairs (2026-12-06)
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(run_embedded(settings, on_behind=lambda b: sys.setswitchinterval(behind if b else keeping_up)))


@cli.command()
@settings_options()
def schema(settings: Settings) -> None:
    """Print the event contract's JSON Schema."""
    click.echo(orjson.dumps(contract.json_schema(settings.max_events_per_batch), option=orjson.OPT_INDENT_2).decode())


def mint_for_site(settings: Settings, site_key: str, room: str, stakeholder: str, ttl_days: float,
                  now_s: float | None = None) -> str:
    """Python helper: mint a stakeholder link token with the secret of a configured site."""
    site = SiteRegistry.load(settings.resolved_sites_file).get(site_key)
    if site is None:
        raise KeyError(f"unknown site {site_key!r} in {settings.resolved_sites_file}")
    now_s = time.time() if now_s is None else now_s
    return tokens.mint(site.secret, room, stakeholder, int(now_s + ttl_days * 86_400))


@cli.command()
@settings_options()
@click.option("--site", required=True)
@click.option("--room", required=True)
@click.option("--stakeholder", required=True)
@click.option("--ttl-days", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True)
def token(settings: Settings, site: str, room: str, stakeholder: str, ttl_days: float) -> None:
    """Mint a stakeholder link token."""
    try:
        click.echo(mint_for_site(settings, site, room, stakeholder, ttl_days))
    except KeyError as e:
        _fail(e.args[0])


def _site(settings: Settings, key: str, hint: str = "") -> Site:
    site = SiteRegistry.load(settings.resolved_sites_file).get(key)
    if site is None:
        _fail(f"unknown site {key!r} in {settings.resolved_sites_file}{hint}")
    return site


@cli.group(name="site")
def site_group() -> None:
    """Manage sites."""


@site_group.command(name="add")
@settings_options()
@click.argument("key")
@click.option("--origin", multiple=True, help="allowed origin (repeat); default *")
@click.option("--secret", help="default: random")
@click.option("--internal-domain", "domains", multiple=True,
              help="the seller company's email domain (repeat): such stakeholders are the seller's team, never buyers")
def site_add(settings: Settings, key: str, origin: tuple[str, ...], secret: str | None, domains: tuple[str, ...]) -> None:
    """Add or replace a site."""
    reg = SiteRegistry.load(settings.resolved_sites_file)
    site = reg.add(Site(key, secret or secrets.token_urlsafe(24), tuple(origin or ["*"]),
                        internal_domains=tuple(d.lower().lstrip("@") for d in domains)))
    reg.save(settings.resolved_sites_file)
    click.echo(orjson.dumps({"key": site.key, "secret": site.secret, "origins": list(site.origins),
                             "internal_domains": list(site.internal_domains)}).decode())


@cli.group()
def analyst() -> None:
    """Manage the SQL port's users (stored hashed)."""


@analyst.command(name="add")
@settings_options()
@click.argument("name")
@click.option("--site", "sites", multiple=True, help="a site whose rows the analyst may read (repeat)")
@click.option("--all-sites", is_flag=True, help="every site, present and future")
@click.option("--password", help="default: random, printed once")
def analyst_add(settings: Settings, name: str, sites: tuple[str, ...], all_sites: bool, password: str | None) -> None:
    """Add an analyst or reset its password; prints the password once."""
    from dealbeacon.core.analysts import ALL_SITES, AnalystRegistry

    chosen = [ALL_SITES] if all_sites else list(sites)
    known = SiteRegistry.load(settings.resolved_sites_file)
    unknown = [k for k in chosen if k != ALL_SITES and known.get(k) is None]
    if unknown:
        _fail(f"unknown site(s) {', '.join(unknown)} in {settings.resolved_sites_file}")
    reg = AnalystRegistry.load(settings.resolved_analysts_file)
    try:
        added, pw = reg.add(name, chosen, password)
    except ValueError as e:
        _fail(str(e))
    reg.save(settings.resolved_analysts_file)
    click.echo(orjson.dumps({"name": added.name, "sites": list(added.sites), "password": pw}).decode())


@analyst.command(name="remove")
@settings_options()
@click.argument("name")
def analyst_remove(settings: Settings, name: str) -> None:
    """Remove an analyst."""
    from dealbeacon.core.analysts import AnalystRegistry

    reg = AnalystRegistry.load(settings.resolved_analysts_file)
    if not reg.remove(name):
        _fail(f"no analyst {name!r} in {settings.resolved_analysts_file}")
    reg.save(settings.resolved_analysts_file)
    click.echo(f"removed {name}")


@analyst.command(name="list")
@settings_options()
def analyst_list(settings: Settings) -> None:
    """List analysts and their sites."""
    from dealbeacon.core.analysts import AnalystRegistry

    for a in AnalystRegistry.load(settings.resolved_analysts_file).analysts.values():
        click.echo(orjson.dumps({"name": a.name, "sites": list(a.sites)}).decode())


@cli.command()
@settings_options()
@click.option("--site", required=True)
@click.option("--stakeholder", required=True, help="a stakeholder id, or visitor:<visitor id>")
@click.option("--room", help="only this room (default: every room of the site)")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="the running server's ingest URL")
def erase(settings: Settings, site: str, stakeholder: str, room: str | None, url: str) -> None:
    """Erase a person's events, scores and alerts (privacy; audited in erasures)."""
    import httpx

    s = _site(settings, site)
    r = httpx.post(f"{url.rstrip('/')}/v1/sites/{s.key}/erase",
                   json={"stakeholder": stakeholder, **({"room_id": room} if room else {})},
                   headers={"Authorization": f"Bearer {s.secret}"}, timeout=30)
    click.echo(r.text)
    sys.exit(0 if r.status_code == 202 else 1)


@cli.command()
@settings_options(sql=True)
@click.option("--site", required=True, help="the site's key")
@click.option("--period", default=None, help="2026 (year), 2026-Q3 (quarter) or 2026-07 (month); default: this quarter")
@click.option("--user", default=None, help="an analyst of the SQL port (default: the demo analyst on a demo data dir)")
@click.option("--password", default=None, envvar="DEALBEACON_KPI_PASSWORD", help="or DEALBEACON_KPI_PASSWORD")
@click.option("--url", default=None, help="the SQL port (default http://127.0.0.1:<sql port>); with "
              "DEALBEACON_CLICKHOUSE_URL set, that server is read directly")
def kpi(settings: Settings, site: str, period: str | None, user: str | None, password: str | None, url: str | None) -> None:
    """Print the headline KPIs of a period per owner and for the team (what a manager asks for on Monday)."""
    import datetime as dt

    from dealbeacon.core.clock import Clock
    from dealbeacon.core.periods import period_bounds, period_of
    from dealbeacon.core.sqltext import sql_string
    from sinks.kpi_sql import report_sql, report_table

    label = period or period_of(dt.datetime.fromtimestamp(Clock().wall_ms() / 1000, dt.UTC).date())
    try:
        start, end = period_bounds(label)
    except ValueError as e:
        _fail(f"--period {label!r}: {e}")
    texts = [report_sql(sql_string(site), start.isoformat(), end.isoformat(), by) for by in (True, False)]
    if settings.clickhouse_url and not url:
        from sinks.store import ServerStore

        store = ServerStore(settings.clickhouse_url)
        rows = [list(r) for sql in texts for r in store.query(sql)]
    else:
        import httpx

        from dealbeacon.app.runtime import DEMO_ANALYST, DEMO_ANALYST_FILE
        from dealbeacon.core.sites import DEMO_SITE_KEY

        cred_file = os.path.join(settings.data_dir, DEMO_ANALYST_FILE)
        if user is None and site == DEMO_SITE_KEY and os.path.exists(cred_file):
            user = DEMO_ANALYST
            with open(cred_file) as fh:
                password = password or fh.read().strip()
        if not user:
            _fail("--user and --password (an analyst of the SQL port: dealbeacon analyst add NAME --site KEY)")
        base = url or f"http://127.0.0.1:{settings.sql_port}/"
        rows = []
        for sql in texts:
            try:
                r = httpx.post(base, auth=(user, password or ""), content=sql + " FORMAT JSONCompact", timeout=60)
            except httpx.HTTPError as e:
                _fail(f"the SQL port at {base} did not answer ({e}); is `dealbeacon up` running?")
            if r.status_code != 200:
                _fail(f"the SQL port answered {r.status_code}: {r.text.strip()[:500]}")
            rows += orjson.loads(r.content)["data"]
    click.echo(f"dealbeacon KPIs · site {site} · {label} ({start} .. {end})")
    click.echo(report_table([[None if isinstance(v, str) and v == "nan" else v for v in r] for r in rows]))


@cli.command(name="grafana-dashboard")
def grafana_dashboard() -> None:
    """Print the Grafana dashboard of the KPI views (deploy/grafana/dashboards/dealbeacon-kpis.json)."""
    from dealbeacon.app.grafana import dashboard_json

    sys.stdout.buffer.write(dashboard_json())


def _distributed(name: str, help_text: str) -> None:
    @cli.command(name=name, help=help_text)
    @settings_options(server=True)
    def run(settings: Settings) -> None:
        from dealbeacon.app import distributed

        entry = getattr(distributed, f"run_{name}")
        result = entry(settings)
        if asyncio.iscoroutine(result):
            # on uvloop, as the worker runs itself: the sink measured 0.91-0.93 of a raw insert against 0.81-0.85
            # on asyncio's own loop (bench/stream_bench.py --parts sink, two runs each, 2026-12-06)
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(result)


for _name, _help in (("ingest", "Distributed: HTTP ingest publishing to Kafka."),
                     ("worker", "Distributed: a Faust stream worker."),
                     ("sink", "Distributed: Kafka -> ClickHouse sink."),
                     ("deliver", "Distributed: alert delivery (webhooks, Slack, email).")):
    _distributed(_name, _help)


@cli.command()
@settings_options()
@click.option("--url", default="http://127.0.0.1:8080", show_default=True)
@click.option("--site", default="demo", show_default=True)
@click.option("--secret", help="the site's secret (default: read from the sites file)")
@click.option("--deals", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start-ms", type=int, help="simulated start (default: --days ago)")
@click.option("--speed", type=click.FloatRange(min=0), default=0.0,
              help="time compression: simulated seconds per real second (0: as fast as possible)")
@click.option("--tick-hours", type=click.FloatRange(min=0), default=0.0,
              help="send a clock tick every N simulated hours (server with DEALBEACON_CLOCK=external)")
@click.option("--deadline-s", type=click.FloatRange(min=0, min_open=True), default=3600.0, show_default=True)
def simulate(settings: Settings, url: str, site: str, secret: str | None, deals: int, days: int, seed: int,
             start_ms: int | None, speed: float, tick_hours: float, deadline_s: float) -> None:
    """Replay simulated buying committees against a running dealbeacon."""
    from dealbeacon.sim.simulate import build, replay

    secret = secret or _site(settings, site, ": give --secret or --sites-file").secret
    ops = build(site, secret, deals=deals, seed=seed, days=days, start_ms=start_ms, tick_hours=tick_hours,
                now_ms=int(time.time() * 1000))
    counts = asyncio.run(replay(url, site, secret, ops, speed=speed, deadline_s=deadline_s))
    click.echo(orjson.dumps(counts).decode())


@cli.command()
@click.argument("action", type=click.Choice(["fetch", "start", "stop"]))
@click.option("--dir", "data_dir", default=".cache/kafka-data", show_default=True)
@click.option("--port", type=int, default=9092, show_default=True)
@click.option("--controller-port", type=int, default=9093, show_default=True)
def kafka(action: str, data_dir: str, port: int, controller_port: int) -> None:
    """Local single-node Kafka for development and tests."""
    from dealbeacon.kafka import local as kafka_local

    if action == "fetch":
        click.echo(kafka_local.fetch(quiet=False))
        return
    k = kafka_local.LocalKafka(data_dir, port, controller_port)
    if action == "start":
        k.start()
        k.proc = None  # leave it running after this command exits
        click.echo(f"Kafka {kafka_local.KAFKA_VERSION} on {k.bootstrap} (data {data_dir}, log {k.log_path})")
    else:
        k.stop()
        click.echo("stopped")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit code is returned (tests) instead of raised."""
    try:
        cli.main(args=argv, prog_name="dealbeacon", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
