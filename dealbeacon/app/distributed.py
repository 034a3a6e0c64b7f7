"""Distributed mode's processes (composition roots): ``dealbeacon ingest``, ``worker`` and ``sink``.

    ingest (Starlette + aiokafka producer) -> Kafka -> worker (Faust agents) -> Kafka -> sink -> ClickHouse
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dealbeacon.app import memory, serving
from dealbeacon.app.runtime import SNIPPET_FILE, analyst_engine
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import SiteRegistry
from dealbeacon.kafka.topics import SINK_TABLES, LagProbe, ensure_topics, row_topic

log = logging.getLogger("dealbeacon")


def _on_signals(callback) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, callback)


async def run_ingest(s: Settings) -> None:
    from ingest.app import create_app
    from ingest.kafka import KafkaHandoff

    sites = SiteRegistry.load(s.resolved_sites_file)
    if not sites.sites:
        log.warning("no sites in %s: add one with `dealbeacon site add`", s.resolved_sites_file)
    sock = serving.listen(s.host, s.port)
    s = s.replace(port=serving.port_of(sock))
    await ensure_topics(s)
    handoff = KafkaHandoff(s)
    await handoff.start()
    reader = hub = feed = refits = None
    if s.clickhouse_url:  # the seller page: reads from the ClickHouse server, live alerts from the alerts topic
        from ingest.sellers import AlertHub
        from sinks.store import ServerStore

        store = ServerStore(s.clickhouse_url)
        reader, hub = (lambda sql: [list(r) for r in store.query(sql)]), AlertHub()
        feed = asyncio.create_task(_alert_feed(s, hub))
        if s.model_refit_s:  # the win model: refitted from the server's closed deals, handed over through Kafka
            from dealbeacon.app.modelfit import refit_loop
            refits = asyncio.create_task(refit_loop(lambda: list(sites.sites), reader, handoff.submit,
                                                    s.won_stage_list, s.closed_stage_list, s.model_refit_s,
                                                    lambda: int(time.time() * 1000)))
    server = serving.server(create_app(s, sites, handoff, snippet_file=SNIPPET_FILE, reader=reader, hub=hub))
    _on_signals(lambda: setattr(server, "should_exit", True))
    print(f"dealbeacon ingest on http://{s.host}:{s.port}/v1/events -> Kafka {s.kafka_bootstrap}", flush=True)
    serving.announce(s.ports_file, {"http": s.port})
    try:
        await server.serve(sockets=[sock])
    finally:
        for task in (feed, refits):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await handoff.stop()


async def _alert_feed(s: Settings, hub) -> None:
    """New alerts for the seller pages this ingest serves: the alerts row topic from its end, no group."""
    from aiokafka import AIOKafkaConsumer

    from dealbeacon.core import records

    while True:
        consumer = AIOKafkaConsumer(row_topic(s, "alerts"), bootstrap_servers=s.kafka_bootstrap,
                                    auto_offset_reset="latest", enable_auto_commit=False)
        try:
            await consumer.start()
            async for m in consumer:
                hub.publish(records.decode_many(m.value))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the broker may be away: the page reloads its list; retry the feed
            log.warning("alert feed: %s", e)
            await asyncio.sleep(2)
        finally:
            await consumer.stop()


def run_worker(s: Settings) -> None:
    import faust
    import uvloop

    from streams.faust_app import create_faust_app

    # Memory (bench/stream_bench.py --rss 1000000:100000): a batch's records and rows are freed once it is
    # done, but glibc keeps freed memory and gives threads arenas of their own (Faust's consumer thread and
    # RocksDB's beside the event loop), so RSS would hold every peak: arenas capped before any thread starts,
    # freed memory handed back every few seconds.
    tuned = memory.cap_arenas(2)
    os.makedirs(s.data_dir, exist_ok=True)
    asyncio.run(ensure_topics(s))
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # Faust's per-message plumbing is loop-bound
    app = create_faust_app(s)
    memory.collect_less()  # the agent folds batches: fewer, cheaper collections (dealbeacon/app/memory.py)
    level = os.environ.get("DEALBEACON_LOG_LEVEL", "WARNING").upper()

    @app.task
    async def root_logger_level() -> None:
        # Faust's worker leaves the root logger at DEBUG whatever its loglevel: every debug call of the
        # Kafka plumbing then builds a record (6 % of the worker's CPU, measured). Set it once started.
        logging.getLogger().setLevel(level)

    if tuned:
        @app.timer(5.0)
        async def give_back_memory() -> None:
            memory.give_back()

    faust.Worker(app, loglevel=level, quiet=True).execute_from_commandline()


async def _lag_monitor(s: Settings, metrics, every_s: float = 5.0) -> None:
    groups = {s.streams_group: [s.topic_events, s.topic_dead_letters],
              s.sink_group: [row_topic(s, t) for t in SINK_TABLES], s.deliver_group: [row_topic(s, "alerts"), row_topic(s, "activities")]}
    probe = None
    try:
        while True:
            try:
                probe = probe or await LagProbe(s).start()
                for group, topics in groups.items():
                    for topic, lag in (await probe.lag(group, topics)).items():
                        metrics.lag.labels(group, topic).set(lag)
            except Exception as e:  # the broker may be away; lag is reported when it answers again
                log.debug("lag check failed: %s", e)
            await asyncio.sleep(every_s)
    finally:
        if probe:
            await probe.stop()


async def run_sink(s: Settings) -> None:
    from prometheus_client import make_asgi_app

    from dealbeacon.core.clock import Clock
    from ingest.metrics import ASGIEndpoint
    from sinks.kpi_sql import sync_stages
    from sinks.sqlport import create_sql_app
    from sinks.store import ChdbStore, open_store
    from sinks.worker import SinkMetrics, SinkWorker

    target = s.clickhouse_url or s.chdb_path
    if not s.clickhouse_url:
        os.makedirs(s.data_dir, exist_ok=True)
    store = open_store(target)
    await asyncio.to_thread(store.migrate)
    await asyncio.to_thread(sync_stages, store, s.stage_list, s.closed_stage_list, s.won_stage_list, Clock().wall_ms())
    await ensure_topics(s)
    metrics = SinkMetrics()
    worker = SinkWorker(s, store, metrics)

    async def healthz(request):
        return PlainTextResponse("paused\n" if worker.paused else "ok\n", status_code=503 if worker.paused else 200)

    socks = {"metrics": serving.listen(s.host, s.sink_metrics_port)}
    servers = {"metrics": serving.server(Starlette(routes=[
        Route("/metrics", ASGIEndpoint(make_asgi_app(metrics.registry)), methods=["GET"]), Route("/healthz", healthz)]))}
    engine = None
    if s.sink_sql_port is not None and isinstance(store, ChdbStore):
        engine = await asyncio.to_thread(analyst_engine, s, store)
        socks["sql"] = serving.listen(s.host, s.sink_sql_port)
        servers["sql"] = serving.server(create_sql_app(engine, s.resolved_analysts_file))
    ports = {name: serving.port_of(sock) for name, sock in socks.items()}

    def stop():
        if engine is not None:
            engine.shutdown()
        worker.stop()
        for srv in servers.values():
            srv.should_exit = True

    _on_signals(stop)
    tasks = [asyncio.create_task(srv.serve(sockets=[socks[name]])) for name, srv in servers.items()]
    lag = asyncio.create_task(_lag_monitor(s, metrics))
    print(f"dealbeacon sink: {', '.join(row_topic(s, t) for t in SINK_TABLES)} -> {target}; "
          + ", ".join(f"{name} on :{port}" for name, port in ports.items()), flush=True)
    serving.announce(s.ports_file, ports)
    try:
        await worker.run()
    finally:
        stop()
        lag.cancel()
        await asyncio.gather(lag, *tasks, return_exceptions=True)
        if engine is not None:
            await asyncio.to_thread(engine.close)
        store.close()


async def run_deliver(s: Settings) -> None:
    from sinks.deliver_worker import DeliverWorker

    sites = SiteRegistry.load(s.resolved_sites_file)
    await ensure_topics(s)
    worker = DeliverWorker(s, {k: v.secret for k, v in sites.sites.items()})
    _on_signals(worker.stop)
    print(f"dealbeacon deliver: {row_topic(s, 'alerts')} -> webhooks, Slack, email", flush=True)
    await worker.run()
