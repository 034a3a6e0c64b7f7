"""The ``dealbeacon`` command."""
from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import time

import orjson

from dealbeacon.core import contract, tokens
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import Site, SiteRegistry


def _settings(args) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("data_dir", "port", "sql_port", "host", "sites_file",
                                                      "analysts_file")}
    if getattr(args, "no_demo", False):
        overrides["demo"] = False
    return Settings.from_env(**overrides)


def cmd_up(args) -> int:
    from dealbeacon.app.runtime import run_embedded

    asyncio.run(run_embedded(_settings(args)))
    return 0


def cmd_schema(args) -> int:
    sys.stdout.write(orjson.dumps(contract.json_schema(Settings.from_env().max_events_per_batch),
                                  option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def mint_for_site(settings: Settings, site_key: str, room: str, stakeholder: str, ttl_days: float,
                  now_s: float | None = None) -> str:
    """Python helper: mint a stakeholder link token with the secret of a configured site."""
    site = SiteRegistry.load(settings.resolved_sites_file).get(site_key)
    if site is None:
        raise KeyError(f"unknown site {site_key!r} in {settings.resolved_sites_file}")
    now_s = time.time() if now_s is None else now_s
    return tokens.mint(site.secret, room, stakeholder, int(now_s + ttl_days * 86_400))


def cmd_token(args) -> int:
    try:
        print(mint_for_site(_settings(args), args.site, args.room, args.stakeholder, args.ttl_days))
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    return 0


def cmd_simulate(args) -> int:
    from dealbeacon.sim.simulate import build, replay

    s = _settings(args)
    secret = args.secret
    if not secret:
        site = SiteRegistry.load(s.resolved_sites_file).get(args.site)
        if site is None:
            print(f"unknown site {args.site!r}: give --secret or --sites-file", file=sys.stderr)
            return 2
        secret = site.secret
    ops = build(args.site, secret, deals=args.deals, seed=args.seed, days=args.days, start_ms=args.start_ms,
                tick_hours=args.tick_hours, now_ms=int(time.time() * 1000))
    counts = asyncio.run(replay(args.url, args.site, secret, ops, speed=args.speed, deadline_s=args.deadline_s))
    print(orjson.dumps(counts).decode())
    return 0


def cmd_site_add(args) -> int:
    s = _settings(args)
    reg = SiteRegistry.load(s.resolved_sites_file)
    site = reg.add(Site(args.key, args.secret or secrets.token_urlsafe(24), tuple(args.origin or ["*"])))
    reg.save(s.resolved_sites_file)
    print(orjson.dumps({"key": site.key, "secret": site.secret, "origins": list(site.origins)}).decode())
    return 0


def cmd_analyst(args) -> int:
    from dealbeacon.core.analysts import ALL_SITES, AnalystRegistry

    s = _settings(args)
    path = s.resolved_analysts_file
    reg = AnalystRegistry.load(path)
    if args.analyst_cmd == "list":
        for a in reg.analysts.values():
            print(orjson.dumps({"name": a.name, "sites": list(a.sites)}).decode())
        return 0
    if args.analyst_cmd == "remove":
        if not reg.remove(args.name):
            print(f"no analyst {args.name!r} in {path}", file=sys.stderr)
            return 2
        reg.save(path)
        print(f"removed {args.name}")
        return 0
    sites = [ALL_SITES] if args.all_sites else (args.site or [])
    known = SiteRegistry.load(s.resolved_sites_file)
    unknown = [k for k in sites if k != ALL_SITES and known.get(k) is None]
    if unknown:
        print(f"unknown site(s) {', '.join(unknown)} in {s.resolved_sites_file}", file=sys.stderr)
        return 2
    try:
        analyst, password = reg.add(args.name, sites, args.password)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    reg.save(path)
    print(orjson.dumps({"name": analyst.name, "sites": list(analyst.sites), "password": password}).decode())
    return 0


def cmd_erase(args) -> int:
    """Erase a person through a running server's API (embedded or distributed ingest), with the site secret."""
    import httpx

    s = _settings(args)
    site = SiteRegistry.load(s.resolved_sites_file).get(args.site)
    if site is None:
        print(f"unknown site {args.site!r} in {s.resolved_sites_file}", file=sys.stderr)
        return 2
    r = httpx.post(f"{args.url.rstrip('/')}/v1/sites/{site.key}/erase", json={
        "stakeholder": args.stakeholder, **({"room_id": args.room} if args.room else {})},
        headers={"Authorization": f"Bearer {site.secret}"}, timeout=30)
    print(r.text)
    return 0 if r.status_code == 202 else 1


def cmd_ingest(args) -> int:
    from dealbeacon.app.distributed import run_ingest

    asyncio.run(run_ingest(_settings(args)))
    return 0


def cmd_worker(args) -> int:
    from dealbeacon.app.distributed import run_worker

    run_worker(_settings(args))
    return 0


def cmd_sink(args) -> int:
    from dealbeacon.app.distributed import run_sink

    asyncio.run(run_sink(_settings(args)))
    return 0


def cmd_deliver(args) -> int:
    from dealbeacon.app.distributed import run_deliver

    asyncio.run(run_deliver(_settings(args)))
    return 0


def cmd_kafka(args) -> int:
    from dealbeacon.kafka import local as kafka_local

    if args.action == "fetch":
        print(kafka_local.fetch(quiet=False))
        return 0
    k = kafka_local.LocalKafka(args.dir, args.port, args.controller_port)
    if args.action == "start":
        k.start()
        k.proc = None  # leave it running after this command exits
        print(f"Kafka {kafka_local.KAFKA_VERSION} on {k.bootstrap} (data {args.dir}, log {k.log_path})")
    else:
        k.stop()
        print("stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dealbeacon", description="Engagement tracking for digital sales rooms")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--data-dir", dest="data_dir")
        sp.add_argument("--sites-file", dest="sites_file")
        sp.add_argument("--analysts-file", dest="analysts_file")

    up = sub.add_parser("up", help="embedded mode: ingest + processors + chdb + SQL port in one process")
    common(up)
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--sql-port", dest="sql_port", type=int)
    up.add_argument("--no-demo", action="store_true", help="no demo site and no simulated traffic")
    up.set_defaults(fn=cmd_up)

    sch = sub.add_parser("schema", help="print the event contract's JSON Schema")
    sch.set_defaults(fn=cmd_schema)

    tok = sub.add_parser("token", help="mint a stakeholder link token")
    common(tok)
    tok.add_argument("--site", required=True)
    tok.add_argument("--room", required=True)
    tok.add_argument("--stakeholder", required=True)
    tok.add_argument("--ttl-days", type=float, default=30.0)
    tok.set_defaults(fn=cmd_token)

    site = sub.add_parser("site", help="manage sites").add_subparsers(dest="site_cmd", required=True)
    add = site.add_parser("add", help="add or replace a site")
    common(add)
    add.add_argument("key")
    add.add_argument("--origin", action="append", help="allowed origin (repeat); default *")
    add.add_argument("--secret", help="default: random")
    add.set_defaults(fn=cmd_site_add)
    analyst = sub.add_parser("analyst", help="manage the SQL port's users (stored hashed)").add_subparsers(
        dest="analyst_cmd", required=True)
    a_add = analyst.add_parser("add", help="add an analyst or reset its password; prints the password once")
    common(a_add)
    a_add.add_argument("name")
    a_add.add_argument("--site", action="append", help="a site whose rows the analyst may read (repeat)")
    a_add.add_argument("--all-sites", action="store_true", help="every site, present and future")
    a_add.add_argument("--password", help="default: random, printed once")
    a_add.set_defaults(fn=cmd_analyst)
    for name, text in (("remove", "remove an analyst"), ("list", "list analysts and their sites")):
        sp = analyst.add_parser(name, help=text)
        common(sp)
        if name == "remove":
            sp.add_argument("name")
        sp.set_defaults(fn=cmd_analyst)
    erase = sub.add_parser("erase", help="erase a person's events, scores and alerts (privacy; audited in erasures)")
    common(erase)
    erase.add_argument("--site", required=True)
    erase.add_argument("--stakeholder", required=True, help="a stakeholder id, or visitor:<visitor id>")
    erase.add_argument("--room", help="only this room (default: every room of the site)")
    erase.add_argument("--url", default="http://127.0.0.1:8080", help="the running server's ingest URL")
    erase.set_defaults(fn=cmd_erase)
    for name, fn, text in (("ingest", cmd_ingest, "distributed: HTTP ingest publishing to Kafka"),
                           ("worker", cmd_worker, "distributed: a Faust stream worker"),
                           ("sink", cmd_sink, "distributed: Kafka -> ClickHouse sink"),
                           ("deliver", cmd_deliver, "distributed: alert delivery (webhooks, Slack, email)")):
        sp = sub.add_parser(name, help=text)
        common(sp)
        sp.add_argument("--host")
        sp.add_argument("--port", type=int)
        sp.set_defaults(fn=fn)

    sim = sub.add_parser("simulate", help="replay simulated buying committees against a running dealbeacon")
    common(sim)
    sim.add_argument("--url", default="http://127.0.0.1:8080")
    sim.add_argument("--site", default="demo")
    sim.add_argument("--secret", help="the site's secret (default: read from the sites file)")
    sim.add_argument("--deals", type=int, default=20)
    sim.add_argument("--days", type=int, default=60)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--start-ms", dest="start_ms", type=int, help="simulated start (default: --days ago)")
    sim.add_argument("--speed", type=float, default=0.0,
                     help="time compression: simulated seconds per real second (0: as fast as possible)")
    sim.add_argument("--tick-hours", dest="tick_hours", type=float, default=0.0,
                     help="send a clock tick every N simulated hours (server with DEALBEACON_CLOCK=external)")
    sim.add_argument("--deadline-s", dest="deadline_s", type=float, default=3600.0)
    sim.set_defaults(fn=cmd_simulate)

    kafka = sub.add_parser("kafka", help="local single-node Kafka for development and tests")
    kafka.add_argument("action", choices=["fetch", "start", "stop"])
    kafka.add_argument("--dir", default=".cache/kafka-data")
    kafka.add_argument("--port", type=int, default=9092)
    kafka.add_argument("--controller-port", type=int, default=9093)
    kafka.set_defaults(fn=cmd_kafka)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:
        if "DEALBEACON_" not in str(e):
            raise
        print(f"dealbeacon: {e}", file=sys.stderr)  # a setting that cannot work: refuse to start, say which
        return 2


if __name__ == "__main__":
    sys.exit(main())
