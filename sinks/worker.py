"""The sink worker (``dealbeacon sink``): consume row topics, batch by size and time, insert into
ClickHouse (server via clickhouse-driver, or chdb given a local directory), then commit offsets.

- Offsets are committed only after the insert succeeded (at-least-once).
- One insert per table per batch (all its partitions' rows), carrying ``insert_deduplication_token`` = the
  topic/partition/first-last offset ranges it holds, so replaying the same ranges is dropped by ClickHouse;
  ranges cut differently collapse on the row id (ReplacingMergeTree).
- A partial batch waits at most ``sink_batch_ms`` since its rows arrived here or since they were produced (the
  Kafka timestamp), whichever comes first: a backlog goes in as fast as the inserts run.
- ClickHouse unreachable: the batch is kept, partitions are paused, the insert is retried with capped
  exponential backoff, and consumption resumes by itself once it succeeds. Nothing is dropped.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dealbeacon.core import records
from dealbeacon.core.clock import Clock
from dealbeacon.core.settings import Settings
from dealbeacon.kafka.topics import SINK_TABLES, row_topic

from .erase import apply_erasures

log = logging.getLogger("dealbeacon.sink")
ERASED_TABLES = ("events", "stakeholder_scores", "alerts", "dead_letters")


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.rows = Counter("dealbeacon_sink_rows_total", "Rows inserted", ["table"], registry=r)
        self.batches = Counter("dealbeacon_sink_batches_total", "Insert batches", ["table"], registry=r)
        self.batch_rows = Histogram("dealbeacon_sink_batch_rows", "Rows per insert", registry=r,
                                    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 50_000))
        self.insert_seconds = Histogram("dealbeacon_sink_insert_seconds", "Insert latency", registry=r)
        self.failures = Counter("dealbeacon_sink_insert_failures_total", "Failed insert attempts", registry=r)
        self.paused = Gauge("dealbeacon_sink_paused", "1 while ClickHouse is unreachable", registry=r)
        self.lag = Gauge("dealbeacon_consumer_lag", "Uncommitted messages per group and topic",
                         ["group", "topic"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class Pending:
    chunks: list[bytes] = field(default_factory=list)  # the messages' values: JSON arrays of rows, not decoded
    counts: list[int] = field(default_factory=list)  # rows in each
    first: int = -1
    last: int = -1


def batch_due(waited_s: float, oldest_age_ms: int | None, window_ms: int) -> bool:
    """Whether a partial batch goes in now: its first rows reached this sink ``window_ms`` ago, or the oldest
    was produced that long ago (the Kafka record's timestamp: a backlog, e.g. after the sink or ClickHouse was
    down, is not held again for the window it has already waited in the topic). The window bounds how long a
    row waits, not how long this consumer has seen it; a producer clock running ahead only falls back to the
    first bound. A sink clock running ahead of the producers' by more than the window (hosts out of NTP) makes
    every partial batch due at once: smaller inserts, each still one per table per flush, never lost rows."""
    return waited_s * 1000 >= window_ms or (oldest_age_ms is not None and oldest_age_ms >= window_ms)


def row_count(message) -> int:
    """Rows in a row-topic message: its ``rows`` header (the worker sets it), else counted by decoding."""
    for k, v in message.headers or ():
        if k == records.ROWS_HEADER:
            return int(v)
    return len(records.decode_many(message.value))


class SinkWorker:
    def __init__(self, settings: Settings, store, metrics: SinkMetrics | None = None, *, max_backoff_s: float = 10.0,
                 clock: Clock | None = None):
        self.s, self.store = settings, store
        self.clock = clock or Clock()
        self.metrics = metrics or SinkMetrics()
        self.max_backoff = max_backoff_s
        self.topics = {row_topic(settings, t): t for t in SINK_TABLES}
        self.consumer: AIOKafkaConsumer | None = None
        self.paused = False
        self._stop = asyncio.Event()
        self.recent_erasures: list[tuple[float, dict]] = []

    def stop(self) -> None:
        self._stop.set()

    @property
    def _c(self) -> AIOKafkaConsumer:
        assert self.consumer is not None, "run() starts the consumer"
        return self.consumer

    async def _insert(self, table: str, parts: list[tuple[TopicPartition, Pending]]) -> None:
        """One insert of a table's rows from every partition in the batch (a chdb or server insert has a fixed
        cost: one per partition made the sink 2x slower), tokened by the offset ranges it holds."""
        token = ",".join(f"{tp.topic}/{tp.partition}/{p.first}-{p.last}" for tp, p in sorted(parts, key=lambda x: x[0]))
        inserts = self._chunks([(c, n) for _, p in parts for c, n in zip(p.chunks, p.counts)])
        n_rows = sum(n for _, n in inserts)
        delay = 0.2
        while True:
            t0 = time.perf_counter()
            try:
                # a fetch can bring more than a batch's rows: its inserts one after the other in one thread call,
                # not each waiting for the event loop (which a fetch being decoded holds)
                await asyncio.to_thread(self._insert_chunks, table, inserts, token)
                break
            except Exception as e:  # ClickHouse down or refusing: keep the batch, pause, retry
                self.metrics.failures.inc()
                if not self.paused:
                    log.warning("insert into %s failed (%s); pausing consumption and retrying", table, e)
                    self.paused = True
                    self.metrics.paused.set(1)
                    self._c.pause(*self._c.assignment())
                if self._stop.is_set():
                    raise RuntimeError("stopping with an uninserted batch; it will be replayed") from e
                # run() keeps polling meanwhile (so the group does not evict us) and rewinds anything a newly
                # assigned partition returns
                await asyncio.sleep(delay)
                delay = min(self.max_backoff, delay * 2)
        if self.paused:
            log.info("ClickHouse is back; resuming consumption")
            self.paused = False
            self.metrics.paused.set(0)
            self._c.resume(*self._c.assignment())
        if table == "erasures":
            rows = [r for arrays, _ in inserts for a in arrays for r in records.decode_many(a)]
            await asyncio.to_thread(apply_erasures, self.store.execute, rows)
            self.recent_erasures.extend((time.monotonic(), r) for r in rows)
            del self.recent_erasures[:-1000]
        elif table in ERASED_TABLES and self.recent_erasures:
            # a person's rows from before the erasure may reach this sink after it (other topics): re-apply
            # recent erasures (10 minutes) after such inserts
            horizon = time.monotonic() - 600
            self.recent_erasures = [(t, r) for t, r in self.recent_erasures if t >= horizon]
            await asyncio.to_thread(apply_erasures, self.store.execute, [r for _, r in self.recent_erasures])
        self.metrics.insert_seconds.observe(time.perf_counter() - t0)
        self.metrics.rows.labels(table).inc(n_rows)
        self.metrics.batches.labels(table).inc()
        self.metrics.batch_rows.observe(n_rows)

    def _insert_chunks(self, table: str, inserts: list[tuple[list[bytes], int]], token: str) -> None:
        for i, (arrays, _) in enumerate(inserts):
            self.store.insert_json(table, arrays, token if len(inserts) == 1 else f"{token}#{i}")

    def _chunks(self, messages: list[tuple[bytes, int]]) -> list[tuple[list[bytes], int]]:
        """Whole messages grouped into inserts of at most ``sink_batch_rows`` rows (one message may be more)."""
        out: list[tuple[list[bytes], int]] = []
        arrays: list[bytes] = []
        n = 0
        for value, count in messages:
            if arrays and n + count > self.s.sink_batch_rows:
                out.append((arrays, n))
                arrays, n = [], 0
            arrays.append(value)
            n += count
        if arrays:
            out.append((arrays, n))
        return out

    async def _flush(self, pending: dict[TopicPartition, Pending], before: asyncio.Task | None) -> asyncio.Task:
        """Insert a batch; return the task committing its offsets, which waits for ``before`` (the previous
        batch's commit) so commits stay in offset order, while the next batch's inserts already run."""
        by_table: dict[str, list[tuple[TopicPartition, Pending]]] = {}
        for tp, p in pending.items():
            by_table.setdefault(self.topics[tp.topic], []).append((tp, p))
        for table in sorted(by_table, key=lambda t: t == "erasures"):  # an erasure after the rows it erases
            await self._insert(table, by_table[table])
        offsets = {tp: OffsetAndMetadata(p.last + 1, "") for tp, p in pending.items()}
        return asyncio.create_task(self._commit(offsets, before))

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], before: asyncio.Task | None) -> None:
        if before is not None:
            await before
        try:
            await self._c.commit(offsets)
        except CommitFailedError as e:  # rebalanced meanwhile: the new owner replays, dedup absorbs it
            log.warning("offset commit failed after insert (%s); the range will be replayed", e)

    async def run(self) -> None:
        """Consume, batch, insert, commit. One batch is inserted (in a thread) while the next is gathered: the
        fetch, decompression and bookkeeping of batch N+1 overlap the insert of batch N, which bounds the sink.
        At most one flush is in flight, so inserts stay in offset order; a batch's commit (a broker round trip)
        runs behind the next batch's inserts, chained after the commit before it."""
        self.consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.s.kafka_bootstrap, group_id=self.s.sink_group,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=self.s.sink_batch_rows,
            client_id="dealbeacon-sink")
        await self.consumer.start()
        pending: dict[TopicPartition, Pending] = {}
        size = 0
        seen: float | None = None  # when the batch's first rows arrived (monotonic)
        produced: int | None = None  # the oldest Kafka timestamp among them (ms)
        flushing: asyncio.Task | None = None
        committing: asyncio.Task | None = None
        try:
            while not self._stop.is_set():
                got = await self.consumer.getmany(timeout_ms=100, max_records=self.s.sink_batch_rows)
                if self.paused:  # the flush in flight is retrying: hold everything, rewind what came meanwhile
                    for tp, msgs in got.items():
                        self.consumer.seek(tp, msgs[0].offset)
                    self.consumer.pause(*self.consumer.assignment())
                    continue
                for tp, msgs in got.items():
                    p = pending.setdefault(tp, Pending())
                    if p.first < 0:
                        p.first = msgs[0].offset
                    p.last = msgs[-1].offset
                    for m in msgs:
                        n = row_count(m)
                        p.chunks.append(m.value)
                        p.counts.append(n)
                        size += n
                        if m.timestamp > 0 and (produced is None or m.timestamp < produced):
                            produced = m.timestamp
                    if seen is None:
                        seen = self.clock.monotonic()
                due = seen is not None and batch_due(self.clock.monotonic() - seen,
                                                     None if produced is None else self.clock.wall_ms() - produced,
                                                     self.s.sink_batch_ms)
                ready = bool(pending) and (size >= self.s.sink_batch_rows or due)
                while ready and flushing is not None and size >= self.s.sink_batch_rows and not (
                        flushing.done() or self.paused):
                    # the next batch is full: wait for the one in flight, unless it starts retrying (then back to
                    # polling, which keeps the group membership)
                    await asyncio.wait([flushing], timeout=0.2)
                if flushing is not None and flushing.done():
                    done, flushing = flushing, None
                    committing = done.result()  # an insert that gave up (stopping) ends the run here
                if committing is not None and committing.done():
                    done, committing = committing, None
                    done.result()  # a commit that failed otherwise than by a rebalance ends the run here
                if ready and flushing is None and not self.paused:
                    flushing = asyncio.create_task(self._flush(pending, committing))
                    pending, size, seen, produced = {}, 0, None, None
                    await asyncio.sleep(0)  # its insert starts before the next fetch is decoded here
        finally:
            try:
                if flushing is not None:
                    committing = await flushing  # its rows are inserted, or it stops retrying (replayed)
            finally:
                try:
                    if committing is not None:
                        await committing
                finally:
                    await self.consumer.stop()  # uncommitted batches are replayed by the next owner
