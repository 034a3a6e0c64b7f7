"""The sink worker on the real broker and the real chdb engine, with ClickHouse going away for a while."""
import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from dealbeacon.core import records
from dealbeacon.core.settings import Settings
from dealbeacon.kafka.topics import ensure_topics, row_topic
from sinks.worker import SinkMetrics, SinkWorker
from streams.processors import process
from tests.support.data import live_event
from tests.support.waiting import wait_until_async


def _settings(kafka, prefix: str, **kw) -> tuple[Settings, str]:
    """Topics and a group of the test's own."""
    tag = uuid.uuid4().hex[:8]
    return Settings(kafka_bootstrap=kafka.bootstrap, topic_rows_prefix=f"{prefix}{tag}.rows.", sink_group=f"{prefix}-{tag}",
                    topic_events=f"{prefix}{tag}.events", topic_dead_letters=f"{prefix}{tag}.dead", **kw), tag


def _event_rows(n: int) -> list[dict]:
    now = int(time.time() * 1000)
    return process([records.accepted_event(live_event("engagement"), site="acme", received_at=now, ts=now,
                                           token_status="none", stakeholder_id="", ip="", user_agent="")
                    for _ in range(n)], [])["events"]


class Unreachable:
    """The real store, unreachable for its first ``failures`` inserts (as a server that is down)."""

    def __init__(self, store, failures):
        self.store, self.failures, self.attempts = store, failures, 0

    def insert_json(self, table, arrays, dedup_token=None):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError("ClickHouse is down")
        self.store.insert_json(table, arrays, dedup_token)


async def _produce(s, rows):
    p = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    await p.start()
    try:
        for i in range(0, len(rows), 50):
            await p.send_and_wait(row_topic(s, "events"), records.encode_many(rows[i:i + 50]))
    finally:
        await p.stop()


def test_clickhouse_down_pauses_backs_off_and_resumes_without_loss(kafka, chdb_store):
    for table in ("events", "dead_letters"):
        chdb_store.execute(f"TRUNCATE TABLE {table}")
    s, tag = _settings(kafka, "sk", sink_batch_ms=200)
    rows = _event_rows(500)
    store = Unreachable(chdb_store, failures=4)
    metrics = SinkMetrics()

    async def scenario():
        await ensure_topics(s)
        await _produce(s, rows)
        worker = SinkWorker(s, store, metrics, max_backoff_s=0.5)
        task = asyncio.create_task(worker.run())
        paused_seen = False

        def stored_and_running():
            nonlocal paused_seen
            paused_seen |= worker.paused
            return int(chdb_store.query("SELECT count() FROM events")[0][0]) >= len(rows) and not worker.paused
        await wait_until_async(stored_and_running, timeout=60, what="every row stored after the outage")
        worker.stop()
        await task
        return paused_seen

    assert asyncio.run(scenario()), "the sink never paused while ClickHouse was down"
    assert store.attempts > 4
    assert metrics.failures._value.get() == 4
    assert chdb_store.query("SELECT count(), uniqExact(event_id) FROM events") == [(500, 500)]
    assert metrics.paused._value.get() == 0  # resumed by itself


def test_a_backlog_goes_in_without_waiting_the_window_again_while_fresh_rows_wait_for_it(kafka, chdb_store):
    """Rows produced longer ago than the batch window (a backlog, as after an outage) are inserted as soon as
    they are fetched, though fewer than a batch; rows produced now wait for the window."""
    chdb_store.execute("TRUNCATE TABLE events")
    s, tag = _settings(kafka, "sw", sink_batch_ms=30_000, sink_batch_rows=100_000)
    old, fresh = _event_rows(300), _event_rows(200)
    topic = row_topic(s, "events")

    async def scenario():
        await ensure_topics(s)
        p = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
        await p.start()
        try:
            produced_at = int(time.time() * 1000) - 120_000  # two minutes in the topic
            for i in range(0, len(old), 50):
                await p.send_and_wait(topic, records.encode_many(old[i:i + 50]), timestamp_ms=produced_at + i)
            worker = SinkWorker(s, chdb_store)
            task = asyncio.create_task(worker.run())
            # inside the 30 s window (held for it, the rows would go in 30 s after the first fetch)
            await wait_until_async(lambda: worker.metrics.rows.labels("events")._value.get() >= len(old), timeout=25,
                                   what="the backlog inserted")
            for i in range(0, len(fresh), 50):
                await p.send_and_wait(topic, records.encode_many(fresh[i:i + 50]))
            await asyncio.sleep(2.0)
            held = worker.metrics.rows.labels("events")._value.get()
            worker.stop()
            await task
            return held
        finally:
            await p.stop()

    held = asyncio.run(scenario())
    assert held == len(old), f"{held} rows inserted: the fresh rows did not wait for the window"
    assert chdb_store.query("SELECT count() FROM events") == [(300,)]


class Recording:
    """The real store, recording each insert's table, size (rows in the arrays it carries) and dedup token."""

    def __init__(self, store):
        self.store, self.calls = store, []

    def insert_json(self, table, arrays, dedup_token=None):
        self.calls.append((table, sum(len(records.decode_many(a)) for a in arrays), dedup_token))
        self.store.insert_json(table, arrays, dedup_token)


def test_one_insert_per_table_across_partitions_in_chunks_and_a_replay_stores_nothing_twice(kafka, chdb_store):
    """Rows of one table from every partition go in one insert per batch (chunked to the batch size when a fetch
    brings more), tokened by the ranges they hold; a second sink group replaying the very same ranges (as after a
    crash before the commit) adds no row, even counted without FINAL."""
    chdb_store.execute("TRUNCATE TABLE events")
    s, tag = _settings(kafka, "sc", sink_batch_ms=300, sink_batch_rows=120, topic_partitions=3)
    rows = _event_rows(600)

    async def produce():
        p = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
        await p.start()
        try:  # 12 messages of 50 rows over the 3 partitions, all there before the sink starts
            await asyncio.gather(*[await p.send(row_topic(s, "events"), records.encode_many(rows[i:i + 50]), partition=(i // 50) % 3)
                                   for i in range(0, len(rows), 50)])
        finally:
            await p.stop()

    async def drain(store, group):
        worker = SinkWorker(s.replace(sink_group=group), store)
        task = asyncio.create_task(worker.run())
        await wait_until_async(lambda: worker.metrics.rows.labels("events")._value.get() >= len(rows), timeout=60,
                               what="every row inserted")
        worker.stop()
        await task

    async def scenario():
        await ensure_topics(s)
        await produce()
        first = Recording(chdb_store)
        await drain(first, s.sink_group)
        return first.calls

    calls = asyncio.run(scenario())
    assert all(table == "events" and n <= 120 for table, n, _ in calls) and sum(n for _, n, _ in calls) == 600
    tokens = [t for _, _, t in calls]
    assert len(set(tokens)) == len(tokens) and any("/0/" in t and "/1/" in t and "/2/" in t for t in tokens), tokens
    assert chdb_store.query("SELECT count(), uniqExact(event_id) FROM events") == [(600, 600)]
    # the same ranges again, cut the same way (all there at once): every insert is dropped by its token
    second = Recording(chdb_store)
    asyncio.run(drain(second, f"sc-{tag}-replay"))
    assert [t for _, _, t in second.calls] == tokens
    assert chdb_store.query("SELECT count() FROM events") == [(600,)]


class Slow:
    """The real store with each insert taking a while, recording how many inserts ran at once and in what
    order each partition's offset ranges were inserted."""

    def __init__(self, store, seconds):
        import threading

        self.store, self.seconds, self.lock = store, seconds, threading.Lock()
        self.running, self.most, self.tokens = 0, 0, []

    def insert_json(self, table, arrays, dedup_token=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.seconds)
            self.store.insert_json(table, arrays, dedup_token)
            self.tokens.append(dedup_token)
        finally:
            with self.lock:
                self.running -= 1


def test_batches_gathered_during_a_slow_insert_go_in_one_at_a_time_in_offset_order_and_are_committed(kafka, chdb_store):
    """While one batch is inserted the next is gathered: never two inserts at once, each partition's ranges
    inserted in offset order without gap or overlap, every row stored once, and the group's committed offsets
    reach the end of every partition."""
    chdb_store.execute("TRUNCATE TABLE events")
    s, tag = _settings(kafka, "sp", sink_batch_ms=50, sink_batch_rows=100, topic_partitions=3)
    rows = _event_rows(1500)
    topic = row_topic(s, "events")
    store = Slow(chdb_store, 0.15)

    async def scenario():
        await ensure_topics(s)
        worker = SinkWorker(s, store)
        task = asyncio.create_task(worker.run())
        p = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
        await p.start()
        try:  # produced while the sink runs, so batches keep arriving during inserts
            for i in range(0, len(rows), 25):
                await p.send_and_wait(topic, records.encode_many(rows[i:i + 25]), partition=(i // 25) % 3)
                await asyncio.sleep(0.005)
        finally:
            await p.stop()
        await wait_until_async(lambda: worker.metrics.rows.labels("events")._value.get() >= len(rows), timeout=90,
                               what="every row inserted")
        committed = {}
        for _ in range(100):  # the last batch's commit follows its insert
            committed = {tp.partition: await worker.consumer.committed(tp) for tp in worker.consumer.assignment()
                         if tp.topic == topic}
            if committed == {0: 20, 1: 20, 2: 20}:
                break
            await asyncio.sleep(0.05)
        worker.stop()
        await task
        return committed

    committed = asyncio.run(scenario())
    assert store.most == 1, f"{store.most} inserts ran at once"
    assert committed == {0: 20, 1: 20, 2: 20}, committed
    assert chdb_store.query("SELECT count(), uniqExact(event_id) FROM events") == [(1500, 1500)]
    ranges: dict[int, list[tuple[int, int]]] = {0: [], 1: [], 2: []}
    for token in store.tokens:
        for part in token.split("#")[0].split(","):
            _, partition, span = part.rsplit("/", 2)
            first, last = (int(x) for x in span.split("-"))
            if not ranges[int(partition)] or ranges[int(partition)][-1] != (first, last):  # a chunked batch repeats
                ranges[int(partition)].append((first, last))
    assert len(store.tokens) > 3  # several batches, gathered while others were inserted
    for partition, spans in ranges.items():
        assert spans[0][0] == 0 and spans[-1][1] == 19, (partition, spans)
        assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:])), (partition, spans)
