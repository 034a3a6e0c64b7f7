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


class Unreachable:
    """The real store, unreachable for its first ``failures`` inserts (as a server that is down)."""

    def __init__(self, store, failures):
        self.store, self.failures, self.attempts = store, failures, 0

    def insert(self, table, rows, dedup_token=None):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionRefusedError("ClickHouse is down")
        self.store.insert(table, rows, dedup_token)


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
    tag = uuid.uuid4().hex[:8]
    s = Settings(kafka_bootstrap=kafka.bootstrap, topic_rows_prefix=f"sk{tag}.rows.", sink_group=f"sk-{tag}",
                 topic_events=f"sk{tag}.events", topic_dead_letters=f"sk{tag}.dead", sink_batch_ms=200)
    now = int(time.time() * 1000)
    rows = process([records.accepted_event(live_event("engagement"), site="acme", received_at=now, ts=now,
                                           token_status="none", stakeholder_id="", ip="", user_agent="")
                    for _ in range(500)], [])["events"]
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
