"""Distributed mode's stream processors: a Faust app whose agents decode records, call the same pure
processors as embedded mode, keep per-room state in tables and emit table rows for the sink.

At-least-once: ``take_events`` acks a batch only after the loop body returned, and the body returns only
after the broker acknowledged every row it sent; a crash replays, and the sink's dedup absorbs it.
Agents run with concurrency 1 (faust #606: commits can pass an in-flight message with more).
No business rules here: they live in streams/processors.py.
"""
from __future__ import annotations

import asyncio
import logging

import faust

from dealbeacon import records
from dealbeacon.kafka_ops import TABLES, row_topic
from dealbeacon.settings import Settings
from streams import processors

log = logging.getLogger("dealbeacon.streams")


ROWS_PER_MESSAGE = 500  # rows travel to the sink in chunks: per-message cost dominates in Faust


def create_faust_app(s: Settings) -> faust.App:
    app = faust.App(
        s.streams_group,
        broker=f"kafka://{s.kafka_bootstrap}",
        store=s.faust_store,
        datadir=f"{s.data_dir}/faust",
        web_enabled=False,
        topic_partitions=s.topic_partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,  # a dead worker's partitions move on within seconds
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        producer_linger_ms=s.kafka_linger_ms,
        producer_compression_type=s.kafka_compression or None,
    )
    events_topic = app.topic(s.topic_events, partitions=s.topic_partitions)
    dead_topic = app.topic(s.topic_dead_letters, partitions=s.topic_partitions)
    out = {t: app.topic(row_topic(s, t), partitions=s.topic_partitions) for t in TABLES}
    # latest event time per room (site/room key): the state quiet-deal detection reads. The events topic
    # is keyed by room, so each write is made "as" the room's latest event (its partition picks the
    # store shard and changelog partition: rocksdb:// requires a current event for every write).
    room_last_seen = app.Table("room_last_seen", default=int, partitions=s.topic_partitions,
                               key_type=bytes, value_type=int)

    async def emit(tables: dict[str, list[dict]]) -> None:
        futures = []
        for table, rows in tables.items():
            for i in range(0, len(rows), ROWS_PER_MESSAGE):
                chunk = rows[i:i + ROWS_PER_MESSAGE]
                futures.append(await out[table].send(key=chunk[0].get("site", "").encode(),
                                                     value=records.encode_many(chunk)))
        await asyncio.gather(*futures)  # wait for the broker's acks before the batch is acked

    async def handle(stream, batch, work) -> None:
        """take_events acks the batch in a ``finally``, even when the body raises: so never raise while
        holding one. Retry until the rows are acknowledged; a killed worker acks nothing and replays."""
        delay = 0.2
        while True:
            try:
                await work(stream, batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch of %d failed; retrying in %.1fs", len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)

    def decode_all(batch, latest: dict | None = None) -> tuple[list[dict], list[dict]]:
        good, bad = [], []
        for e in batch:
            try:
                recs = records.decode_many(e.value)
                good.extend(recs)
                if latest is not None and recs:
                    key = e.message.key or records.room_key(recs[0])
                    ts = max(r["ts"] for r in recs)
                    if ts > latest.get(key, (0, None))[0]:
                        latest[key] = (ts, e)
            except ValueError as err:
                bad.append(records.dead_letter(
                    received_at=e.message.timestamp or 0, site="", stage="streams", reason="undecodable_record",
                    detail=str(err)[:200], payload=e.value or b""))
        return good, bad

    async def events_batch(stream, batch) -> None:
        latest: dict[bytes, tuple[int, object]] = {}
        recs, bad = decode_all(batch, latest)
        try:
            for key, (ts, event) in latest.items():  # one changelog write per room per batch
                stream._set_current_event(event)
                if ts > room_last_seen[key]:
                    room_last_seen[key] = ts
        finally:
            stream._set_current_event(None)
        await emit(processors.process(recs, bad))

    async def dead_letters_batch(stream, batch) -> None:
        recs, bad = decode_all(batch)
        await emit(processors.process([], recs + bad))

    @app.agent(events_topic, concurrency=1)
    async def process_events(stream):
        async for batch in stream.take_events(s.faust_batch, within=0.2):
            await handle(stream, batch, events_batch)

    @app.agent(dead_topic, concurrency=1)
    async def process_dead_letters(stream):
        async for batch in stream.take_events(s.faust_batch, within=0.2):
            await handle(stream, batch, dead_letters_batch)

    app.dealbeacon_tables = {"room_last_seen": room_last_seen}
    return app
