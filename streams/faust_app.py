"""Distributed mode's stream processors: a Faust app whose agents decode records, call the same pure
processors as embedded mode, keep per-room state in tables and emit table rows for the sink.

At-least-once, made explicit: agents take messages in batches (``stream.take_events``, bounded by count and
time); what a batch emits is sent at once and awaited until the broker acknowledged all of it, then the
rooms' states are saved, and only then are the batch's messages done. Offsets are not Faust's to commit:
the topics run with acks off and streams/sequencer.py admits each partition's messages strictly in offset
order from the committed position (re-seeking on a gap or a stall) and commits only what is done (Faust's
gap handling lost messages across kill -9 here). A killed worker replays from the last commit; the sink's
dedup and the room state's offset (one per record: a room skips only what it folded in) absorb it.
Agents run with concurrency 1 (faust #606: commits can pass an in-flight message with more).
No business rules here: they live in streams/processors.py and streams/deals.py.
"""
import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from typing import Any

import faust
from faust.streams import _current_event
from tenacity import AsyncRetrying, wait_exponential

from dealbeacon.core import records
from dealbeacon.core.settings import Settings
from dealbeacon.kafka.topics import TABLES, partition_for_key, row_topic
from streams import deals, processors
from streams.alerts import alert_config
from streams.sequencer import Sequencer

log = logging.getLogger("dealbeacon.streams")


ROWS_PER_MESSAGE = 500  # rows travel to the sink in chunks (a request's events per room, usually one chunk)


def create_faust_app(s: Settings) -> faust.App:
    acfg = alert_config(s)
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
        broker_commit_interval=s.commit_interval_s,
        broker_session_timeout=10.0,  # a dead worker's partitions move on within seconds
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        producer_linger_ms=0,  # each message waits for its output's ack: lingering only adds latency
        producer_compression_type=s.kafka_compression or None,
        table_standby_replicas=0,
    )
    # A batch's table writes (one changelog message per changed room) wait in Faust's producer buffer; past
    # max_messages (Faust's default: 100) the agent pauses after each batch until they drain one by one ("producer
    # buffer full" in the log; much of the worker's lag behind bench/plain_worker.py). Room for a whole batch: a
    # commit flushes the producer first all the same (faust Consumer._commit_offsets), so what is committed
    # still has its states in the changelog.
    app.producer.buffer.max_messages = max(100, 2 * s.worker_batch_messages)
    # acks off: offsets are committed by the sequencer below, only up to what was processed
    events_topic = app.topic(s.topic_events, partitions=s.topic_partitions, acks=False)
    dead_topic = app.topic(s.topic_dead_letters, partitions=s.topic_partitions, acks=False)
    out = {t: app.topic(row_topic(s, t), partitions=s.topic_partitions) for t in TABLES}
    # each room's state machine (scores, alert facts), keyed site/room and co-partitioned with the events
    # topic; values are streams.deals JSON. No standby replicas: the wall-clock timer iterates the table,
    # and must see only the rooms this worker owns.
    # RocksDB (the production store) sized for a bounded footprint: its defaults (64 MB write buffers x 3 and a
    # 2 GB block cache per partition) let a worker's memory grow with the rooms it holds
    store_options = {"write_buffer_size": 2 << 20, "max_write_buffer_number": 2, "block_cache_size": 2 << 20,
                     "block_cache_compressed_size": 0, "target_file_size_base": 16 << 20} \
        if s.faust_store.startswith("rocksdb") else None
    room_state = app.Table("room_state", partitions=s.topic_partitions, key_type=bytes, value_type=bytes,
                           options=store_options)
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
                                                     value=records.encode_many(chunk),
                                                     headers=records.rows_header(len(chunk)), force=True))
        # bounded: a send that never completes becomes a retry of the whole message (the sink dedups)
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)

    async def guarded(work, batch: list, generation) -> bool:
        """An exception would crash the agent: never raise while holding a batch. Retry with backoff (0.2 s
        doubling to 10 s, for ever; cancellation still stops it); a killed worker commits nothing and replays."""
        def log_retry(state) -> None:
            first = batch[0].message
            log.error("batch from %s@%s (%d messages) failed; retrying in %.1fs", first.tp, first.offset, len(batch),
                      state.next_action.sleep, exc_info=state.outcome.exception())

        return await AsyncRetrying(wait=wait_exponential(multiplier=0.2, max=10.0), before_sleep=log_retry)(
            work, batch, generation)

    def decode(event) -> tuple[list[dict], list[dict]]:
        try:
            return records.decode_many(event.value), []
        except ValueError as err:
            return [], [records.dead_letter(
                received_at=event.message.timestamp or 0, site="", stage="streams", reason="undecodable_record",
                detail=str(err)[:200], payload=event.value or b"")]

    # What this worker derives from the table, dropped on every rebalance (a partition that moved away and
    # back may have been changed elsewhere):
    # - the room keys held here, per partition and site (a site-wide record reaches each of them), built from
    #   the table's keys on first use (a room lives where its key's events land: no state to decode), then kept
    #   up to date as states are saved;
    # - the decoded states of the rooms processed most recently, bounded (memory stays with the active rooms;
    #   the table holds every state, on disk with rocksdb);
    # - the rooms seen to be closed deals since (a tick leaves them as they are, deals._tick: a clock record
    #   reaches the others only; a room not seen yet is ticked, and seen then).
    held: dict[int, dict[str, set[bytes]]] = {}
    cache: OrderedDict[bytes, deals.RoomState] = OrderedDict()
    closed: set[bytes] = set()
    derived: dict[str, Any] = {"generation": None, "held_built": False}

    def fresh() -> None:
        if derived["generation"] != app.consumer_generation_id:
            derived.update(generation=app.consumer_generation_id, held_built=False)
            held.clear()
            cache.clear()
            closed.clear()

    def hold(partition: int, key: bytes) -> None:
        held.setdefault(partition, {}).setdefault(records.room_site(key), set()).add(key)

    def local_rooms(partition: int):
        fresh()
        if not derived["held_built"]:
            for k in room_state:
                hold(partition_for_key(k, s.topic_partitions), k)
            derived["held_built"] = True

        def keys(site: str):
            return held.get(partition, {}).get(site, ())
        return keys

    def open_only(keys):
        """``keys`` (a partition's rooms of a site) without the closed deals: what a clock record reaches."""
        def open_keys(site: str):
            return [k for k in keys(site) if k not in closed]
        return open_keys

    def remember(key: bytes, state: deals.RoomState) -> None:
        if deals.tick_leaves(state, acfg.closed_stages):
            closed.add(key)
        else:
            closed.discard(key)
        cache[key] = state
        cache.move_to_end(key)
        while len(cache) > s.worker_state_cache_rooms:
            cache.popitem(last=False)

    def get_state(key: bytes):
        fresh()
        state = cache.get(key)
        if state is not None:
            cache.move_to_end(key)
            return state
        raw = room_state.get(key)
        if not raw:
            return None
        state = deals.loads(raw)
        remember(key, state)
        return state

    def write_states(batch: list, changed: dict[bytes, deals.RoomState]) -> None:
        """Save the batch's states in the table, each in the changelog partition of its source partition (a
        table write takes its partition from the current event: here, the batch's last of that partition)."""
        last_of = {ev.message.partition: ev for ev in batch}
        for key, state in changed.items():
            token = _current_event.set(weakref.ref(last_of[state.partition]))
            try:
                room_state[key] = deals.dumps(state)
            finally:
                _current_event.reset(token)
            remember(key, state)
            if derived["held_built"]:
                hold(state.partition, key)

    async def on_events(batch: list, generation) -> bool:
        """Fold a batch of messages (in offset order per partition; rooms live in one partition, so each
        partition is one fold and a room born early in the batch is seen by a site-wide tick later in it).
        Outputs are sent together and awaited once; then the states are saved. The new states stay
        speculative until then: a rebalance meanwhile drops them (False: nothing is done)."""
        by_partition: dict[int, list] = {}
        for ev in batch:
            by_partition.setdefault(ev.message.partition, []).append(ev)
        changed: dict[bytes, deals.RoomState] = {}
        tables: dict[str, list[dict]] = {}
        for partition, evs in by_partition.items():
            recs, bad, offsets = [], [], []
            for ev in evs:
                r, b = decode(ev)
                recs += r
                bad += b
                offsets += [ev.message.offset] * len(r)
            keys = local_rooms(partition)
            part_changed, part_tables = processors.process_batch(recs, bad, get_state, keys, partition, offsets, acfg,
                                                                 open_only(keys))
            changed.update(part_changed)
            for table, rows in part_tables.items():
                tables.setdefault(table, []).extend(rows)
        # rows first, states after: a crash in between replays the batch from the old states and emits the
        # same rows (deterministic ids: the tables collapse them); a state saved with an offset skips its replay
        await emit(tables)
        if app.consumer_generation_id != generation:
            return False
        write_states(batch, changed)
        return True

    async def on_dead_letters(batch: list, generation) -> bool:
        recs: list[dict] = []
        for ev in batch:
            r, b = decode(ev)
            recs += r + b
        await emit(processors.process([], recs))
        return True

    seq = Sequencer()

    async def sequenced(stream, handle) -> None:
        """Take messages in batches (size- and time-bounded), admit them in offset order, handle the batch,
        and mark it done (committable) only once its outputs are acked."""
        async for events in stream.take_events(s.worker_batch_messages, s.worker_batch_ms / 1000):
            generation = app.consumer_generation_id
            seq.on_generation(generation)
            admitted = []
            for event in events:
                msg = event.message
                verdict = seq.decide(msg.tp, msg.offset, app.consumer._committed_offset.get(msg.tp),  # type: ignore[attr-defined]
                                    time.monotonic())
                if verdict == "seek":
                    log.warning("%s: offset %d arrived, %d expected: seeking back", msg.tp, msg.offset,
                                seq.expected[msg.tp])
                    await app.consumer.seek(msg.tp, seq.expected[msg.tp])
                if verdict == "process":
                    seq.accept(msg.tp, msg.offset)
                    admitted.append(event)
            if not admitted:
                continue
            if await guarded(handle, admitted, generation):
                now = time.monotonic()
                for event in admitted:
                    seq.done(event.message.tp, event.message.offset, now)

    @app.agent(events_topic, concurrency=1)
    async def process_events(stream):
        await sequenced(stream, on_events)

    @app.agent(dead_topic, concurrency=1)
    async def process_dead_letters(stream):
        await sequenced(stream, on_dead_letters)

    @app.timer(s.commit_interval_s)
    async def commit_processed() -> None:
        """Commit what the agents finished (their outputs are acked by the broker)."""
        consumer = app.consumer
        offsets = {tp: o for tp, o in seq.to_commit().items() if tp in consumer.assignment()}
        if offsets and await consumer._commit_offsets(offsets):  # type: ignore[attr-defined]
            seq.committed_ok(offsets)

    @app.timer(2.0)
    async def unstall() -> None:
        consumer = app.consumer
        mine = [tp for tp in consumer.assignment() if tp.topic in (s.topic_events, s.topic_dead_letters)]
        if not mine:
            return
        highs = dict(await consumer.highwaters(*mine))
        for tp, offset in seq.stalled(highs, {tp: consumer._committed_offset.get(tp) for tp in mine},  # type: ignore[attr-defined]
                                      time.monotonic()).items():
            # a partition with messages waiting but no progress (seen once after a restart): fetch it again
            log.warning("%s: messages waiting up to %s but none processed: seeking to %d", tp, highs[tp], offset)
            await consumer.seek(tp, offset)

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
