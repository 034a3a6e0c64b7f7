"""Distributed mode's stream processors: a Faust app whose agents decode records, call the same pure
processors as embedded mode, keep per-room state in tables and emit table rows for the sink.

At-least-once: agents iterate message by message (``stream.events()``); what they emit is sent at once and
awaited until the broker acknowledged it, so a message is acked (and its offset committable) only after its
output is durable. A killed worker replays from the last commit; the sink's dedup absorbs it.
Each message already carries a whole request's events for one room, so per-message cost is amortised.
(``take_events`` batching lost messages across kill -9 here: it acked offsets it had not processed.)
Agents run with concurrency 1 (faust #606: commits can pass an in-flight message with more).
No business rules here: they live in streams/processors.py.
"""
import asyncio
import logging
import time

import faust

from dealbeacon import records
from dealbeacon.kafka_ops import TABLES, row_topic
from dealbeacon.settings import Settings
from streams import deals, processors

log = logging.getLogger("dealbeacon.streams")


ROWS_PER_MESSAGE = 500  # rows travel to the sink in chunks (a request's events per room, usually one chunk)


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
        producer_linger_ms=0,  # each message waits for its output's ack: lingering only adds latency
        producer_compression_type=s.kafka_compression or None,
        table_standby_replicas=0,
    )
    events_topic = app.topic(s.topic_events, partitions=s.topic_partitions)
    dead_topic = app.topic(s.topic_dead_letters, partitions=s.topic_partitions)
    out = {t: app.topic(row_topic(s, t), partitions=s.topic_partitions) for t in TABLES}
    # each room's state machine (scores, alert facts), keyed site/room and co-partitioned with the events
    # topic; values are streams.deals JSON. No standby replicas: the wall-clock timer iterates the table,
    # and must see only the rooms this worker owns.
    room_state = app.Table("room_state", partitions=s.topic_partitions, key_type=bytes, value_type=bytes)
    async def emit(tables: dict[str, list[dict]]) -> None:
        # Sent now (force: not attached to the source message) and awaited until the broker acknowledged
        # them: only then is the source message done and its offset ackable. Faust's attachments publish
        # at commit time without waiting for delivery, which lost thousands of events across kill -9
        # under load.
        futures = []
        for table, rows in tables.items():
            for i in range(0, len(rows), ROWS_PER_MESSAGE):
                chunk = rows[i:i + ROWS_PER_MESSAGE]
                futures.append(await out[table].send(key=chunk[0].get("site", "").encode(),
                                                     value=records.encode_many(chunk), force=True))
        # bounded: a send that never completes becomes a retry of the whole message (the sink dedups)
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)

    async def guarded(work, event) -> None:
        """An exception would crash the agent and Faust would still ack the message: never raise while
        holding one. Retry with backoff; a killed worker acks nothing and replays."""
        delay = 0.2
        while True:
            try:
                await work(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("message at %s failed; retrying in %.1fs", event.message.offset, delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)

    def decode(event) -> tuple[list[dict], list[dict]]:
        try:
            return records.decode_many(event.value), []
        except ValueError as err:
            return [], [records.dead_letter(
                received_at=event.message.timestamp or 0, site="", stage="streams", reason="undecodable_record",
                detail=str(err)[:200], payload=event.value or b"")]

    def local_rooms(partition: int):
        def keys(site: str):
            prefix = f"{site}/".encode()
            return [k for k, v in room_state.items() if k.startswith(prefix) and deals.loads(v).partition == partition]
        return keys

    def get_state(key: bytes):
        raw = room_state.get(key)
        return deals.loads(raw) if raw else None

    async def on_events(event) -> None:
        recs, bad = decode(event)
        tables = processors.process([r for r in recs if processors.is_event(r)], bad)
        msg = event.message
        changed, rows = processors.process_rooms(recs, get_state, local_rooms(msg.partition), msg.partition, msg.offset)
        tables.update(rows)
        # rows first, state after: a crash in between replays the message from the old state and emits the same
        # rows (deterministic ids: the tables collapse them); a state saved with this offset skips the replay
        await emit(tables)
        for key, state in changed.items():
            room_state[key] = deals.dumps(state)

    async def on_dead_letters(event) -> None:
        recs, bad = decode(event)
        await emit(processors.process([], recs + bad))

    @app.agent(events_topic, concurrency=1)
    async def process_events(stream):
        async for event in stream.events():
            await guarded(on_events, event)

    @app.agent(dead_topic, concurrency=1)
    async def process_dead_letters(stream):
        async for event in stream.events():
            await guarded(on_dead_letters, event)

    if s.clock == "wall":
        @app.timer(s.tick_interval_s)
        async def tick() -> None:
            """Time rules on the wall clock: a tick per room this worker owns, sent to the events topic keyed by
            room, so the keyed agent runs the rules in order with the room's events (timers cannot write tables)."""
            now = int(time.time() * 1000)
            for key in list(room_state.keys()):
                site, room_id = key.decode().split("/", 1)
                await events_topic.send(key=key, value=records.encode_many(
                    [{"record": "tick", "site": site, "room_id": room_id, "now": now}]))

    return app
