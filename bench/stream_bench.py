"""Distributed-mode benchmarks on a real local broker, each against a baseline measured in the same run.

1. Faust worker events/s (decode + processors + produce rows, acked) vs a raw aiokafka consume+decode loop
   over the same data, and vs the same work in a plain aiokafka loop (bench/plain_worker.py). Each worker
   runs on topics of its own: warmed up with one message (group joined, idle), then timed from the first
   event produced to the last row out. Best of ``--streams-repeat`` rounds, in alternating order, every
   round printed.
2. Sink rows/s (Kafka -> batches -> chdb insert -> commit) vs a raw bulk insert of the same rows: best of
   ``--sink-repeat`` alternating rounds of each, every round printed.
3. Latency from POST /v1/events to the row being visible in ClickHouse (p50/p95), full stack.

    DEALBEACON_BENCH_LOGS=dir (optional: each worker's output kept in dir/<tag>.log)
    python bench/stream_bench.py [--events 100000] [--latency-samples 60] [--parts streams,sink,latency]
                              [--sink-rows 500000] [--sink-repeat 3] [--streams-repeat 3]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from dealbeacon.core import records  # noqa: E402
from dealbeacon.core.settings import Settings  # noqa: E402
from dealbeacon.kafka.topics import ensure_topics, row_topic  # noqa: E402
from streams.processors import process  # noqa: E402
from tests.support.ports import read_ports  # noqa: E402
from tests.support.stack import start_kafka  # noqa: E402


def _records(n: int, rooms: int = 200, per_room: int = 20) -> list[dict]:
    now = int(time.time() * 1000)
    return [records.accepted_event(
        {"event_id": str(uuid.uuid4()), "type": "engagement", "room_id": f"room-{(i // per_room) % rooms}", "visitor_id": f"v{i % 900}",
         "session_id": f"s{i % 3000}", "ts": now, "content_id": "proposal", "engaged_ms": 15000, "scroll_pct": 40.0,
         "url": "https://rooms.example.com/r/x"},
        site="bench", received_at=now, ts=now, token_status="none", stakeholder_id="", ip="203.0.113.0",
        user_agent="Mozilla/5.0 Chrome/126") for i in range(n)]


async def _produce(s: Settings, topic: str, messages: list[tuple[bytes | None, bytes]], headers=None) -> None:
    p = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=20, compression_type="lz4",
                         max_batch_size=1024 * 1024)
    await p.start()
    try:
        await asyncio.gather(*[await p.send(topic, value, key=key, headers=headers(value) if headers else None)
                               for key, value in messages])
    finally:
        await p.stop()


def _event_messages(recs: list[dict], per: int = 20) -> list[tuple[bytes, bytes]]:
    """As ingest publishes: one message per room per request of ``per`` events."""
    return [(records.room_key(recs[i]), records.encode_many(recs[i:i + per])) for i in range(0, len(recs), per)]


def _row_messages(rows: list[dict], per_message: int = 500) -> list[tuple[None, bytes]]:
    return [(None, records.encode_many(rows[i:i + per_message])) for i in range(0, len(rows), per_message)]


async def raw_consume(s: Settings, topic: str, n: int) -> float:
    """The baseline: a bare aiokafka consumer decoding the same messages; seconds until n events."""
    c = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka_bootstrap, group_id=f"raw-{uuid.uuid4().hex[:6]}",
                         auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5000)
    await c.start()
    got, t0 = 0, time.perf_counter()
    try:
        while got < n:
            for msgs in (await c.getmany(timeout_ms=500, max_records=5000)).values():
                got += sum(len(records.decode_many(m.value)) for m in msgs)
        return time.perf_counter() - t0
    finally:
        await c.stop()


def _run_settings(s: Settings, tag: str) -> Settings:
    """A run's own topics and groups: its worker starts on an empty events topic."""
    r = s.replace(topic_events=f"{tag}.events", topic_dead_letters=f"{tag}.dead", topic_rows_prefix=f"{tag}.rows.",
                  streams_group=f"{tag}-streams")
    asyncio.run(ensure_topics(r))
    return r


def _run_env(r: Settings, env: dict, tmp: str, tag: str) -> dict:
    return {**env, "DEALBEACON_DATA_DIR": os.path.join(tmp, tag), "DEALBEACON_TOPIC_EVENTS": r.topic_events,
            "DEALBEACON_TOPIC_DEAD_LETTERS": r.topic_dead_letters, "DEALBEACON_TOPIC_ROWS_PREFIX": r.topic_rows_prefix,
            "DEALBEACON_STREAMS_GROUP": r.streams_group}


async def _feed_and_time(r: Settings, messages: list[tuple[bytes, bytes]], n: int, proc: subprocess.Popen,
                         timeout_s: float) -> float:
    """Warm the worker up (one message of a room of its own, until its rows are out: the group is joined and the
    worker idle), then start the clock, produce ``messages`` (n events) and stop it when all n rows are out.
    Every batch counts, the first one too (a worker that folds everything in one big batch is not flattered)."""
    from aiokafka import TopicPartition

    topic = row_topic(r, "events")
    c = AIOKafkaConsumer(bootstrap_servers=r.kafka_bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        c.assign([TopicPartition(topic, p) for p in range(r.topic_partitions)])
        await c.seek_to_beginning()
        got = 0

        async def until(k: int) -> None:
            nonlocal got
            deadline = time.perf_counter() + timeout_s
            while got < k:
                if time.perf_counter() > deadline or proc.poll() is not None:
                    raise SystemExit(f"only {got}/{k} rows arrived")
                for msgs in (await c.getmany(timeout_ms=100)).values():
                    got += sum(len(records.decode_many(m.value)) for m in msgs)

        warm = [{**e, "room_id": "warm-up"} for e in _records(20)]
        await _produce(r, r.topic_events, _event_messages(warm))
        await until(len(warm))
        t0 = time.perf_counter()
        feeding = asyncio.create_task(_produce(r, r.topic_events, messages))
        await until(len(warm) + n)
        await feeding
        return time.perf_counter() - t0
    finally:
        await c.stop()


def _timed_worker(cmd: list[str], s: Settings, env: dict, messages: list, n: int, tmp: str, tag: str,
                  timeout_s: float = 600) -> tuple[float, subprocess.Popen]:
    """Start a worker process (``cmd``) on topics of its own and time it from the first event produced to n rows
    on its events row topic (``_feed_and_time``). Returns the seconds and the still running process."""
    r = _run_settings(s, tag)
    logs = os.environ.get("DEALBEACON_BENCH_LOGS")  # a directory: each worker's output kept as <tag>.log
    # closed once the worker is started: it holds its own copy of the descriptor
    with open(os.path.join(logs, f"{tag}.log"), "wb") if logs else contextlib.nullcontext(subprocess.DEVNULL) as out:
        proc = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, env=_run_env(r, env, tmp, tag),
                                stdout=out, stderr=subprocess.STDOUT if logs else subprocess.DEVNULL)
    try:
        return asyncio.run(_feed_and_time(r, messages, n, proc, timeout_s)), proc
    except BaseException:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def faust_run(s: Settings, env: dict, messages: list, n: int, tmp: str, tag: str = "faust") -> float:
    """Seconds for one worker to turn n events into n acked rows."""
    t, proc = _timed_worker(["-m", "dealbeacon.app.cli", "worker"], s, env, messages, n, tmp, tag)
    _stop(proc)
    return t


def plain_run(s: Settings, env: dict, messages: list, n: int, tmp: str, tag: str = "plain") -> float:
    """The same work in a plain aiokafka loop (bench/plain_worker.py), timed the same way as ``faust_run``."""
    async def state_topic():
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{tag}.rows.room_state", s.topic_partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(state_topic())
    t, proc = _timed_worker([os.path.join(ROOT, "bench", "plain_worker.py")], s, env, messages, n, tmp, tag)
    _stop(proc)
    return t


def _rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, MB."""
    with open(f"/proc/{pid}/status") as fh:
        kv = dict(line.split(":", 1) for line in fh if ":" in line)
    return int(kv["VmRSS"].split()[0]) / 1024, int(kv["VmHWM"].split()[0]) / 1024


def rss_run(s: Settings, env: dict, n: int, rooms: int, tmp: str) -> tuple[float, float, float]:
    """One worker with its production store (rocksdb) folds n events over ``rooms`` rooms (10 per request):
    seconds, then its RSS and peak RSS in MB once every row is out."""
    per = max(1, n // rooms)
    t, proc = _timed_worker(["-m", "dealbeacon.app.cli", "worker"], s, {**env, "DEALBEACON_FAUST_STORE": "rocksdb://"},
                            _event_messages(_records(n, rooms, per), per), n, tmp, f"rss{rooms}", timeout_s=1800)
    try:
        rss, peak = _rss_mb(proc.pid)
        return t, rss, peak
    finally:
        _stop(proc)


def sink_run(s: Settings, rows_n: int, tmp: str, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """Seconds, per round, for: the rows inserted from memory as dicts (``store.insert``, batch-sized); the same
    rows from memory as the JSON arrays the worker publishes (``store.insert_json``, what the sink does minus
    Kafka); the sink worker consuming those arrays from the topic (a new group each round). The rounds
    alternate the three, each starting with an empty table and no merge in flight, after one untimed sink
    round that warms the broker up."""
    import uvloop

    from sinks.store import ChdbStore
    from sinks.worker import SinkWorker

    rows = process(_records(rows_n), [])["events"]
    arrays = [v for _, v in _row_messages(rows)]
    per = max(1, s.sink_batch_rows // 500)
    store = ChdbStore(os.path.join(tmp, "ch"))
    store.migrate()

    def fresh() -> None:  # an empty table, no background merge left from the run before
        store.execute("TRUNCATE TABLE events")
        while int(store.query("SELECT count() FROM system.merges")[0][0]):
            time.sleep(0.05)

    async def sink(group: str) -> float:
        w = SinkWorker(s.replace(sink_group=group), store)
        task = asyncio.create_task(w.run())
        while not (w.consumer and w.consumer.assignment()):  # timed from the group join, as the worker from its first row
            await asyncio.sleep(0.005)
        t = time.perf_counter()
        # done when the sink's inserts (returned: the rows are stored) reach n; read from its own counter, as a
        # count() query on the event loop would stall the sink it measures
        while w.metrics.rows.labels("events")._value.get() < rows_n:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t
        w.stop()
        await task
        stored = int(store.query("SELECT count() FROM events")[0][0])
        assert stored == rows_n, f"the sink stored {stored} rows of {rows_n}"
        return elapsed

    dicts: list[float] = []
    json_: list[float] = []
    sinks: list[float] = []
    try:
        # as the worker publishes rows: arrays of 500 with their count in a header
        asyncio.run(_produce(s, row_topic(s, "events"), _row_messages(rows),
                             lambda v: records.rows_header(len(records.decode_many(v)))))
        # an untimed sink round first: the broker the bench started is a fresh JVM, which spends its first seconds
        # under load compiling (measured: 1.8 s of broker CPU in a first 4 s round on this 2-core machine, 0.5 s
        # in a third), CPU taken from the inserts it races; a broker in service has done that long before
        fresh()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(sink(f"{s.sink_group}-warm"))
        for r in range(repeat):
            fresh()
            t0 = time.perf_counter()
            for i in range(0, len(rows), s.sink_batch_rows):
                store.insert("events", rows[i:i + s.sink_batch_rows])
            dicts.append(time.perf_counter() - t0)
            fresh()
            t0 = time.perf_counter()
            for i in range(0, len(arrays), per):
                store.insert_json("events", arrays[i:i + per])
            json_.append(time.perf_counter() - t0)
            assert int(store.query("SELECT count() FROM events")[0][0]) == rows_n
            fresh()
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `dealbeacon sink` runs it
                sinks.append(runner.run(sink(f"{s.sink_group}-{r}")))
        return dicts, json_, sinks
    finally:
        store.close()


def latency_run(env: dict, tmp: str, samples: int) -> list[float]:
    env = {**env, "DEALBEACON_PORT": "0", "DEALBEACON_SINK_SQL_PORT": "0",  # each binds its own, reports it
           "DEALBEACON_SINK_METRICS_PORT": "0", "DEALBEACON_SINK_GROUP": "lat-sink",
           "DEALBEACON_STREAMS_GROUP": "lat-streams", "DEALBEACON_SINK_BATCH_MS": "200",
           "DEALBEACON_TOPIC_EVENTS": "lat.events", "DEALBEACON_TOPIC_DEAD_LETTERS": "lat.dead",
           "DEALBEACON_TOPIC_ROWS_PREFIX": "lat.rows."}  # fresh topics: nothing queued ahead of the samples
    asyncio.run(ensure_topics(Settings.from_env(env)))  # before the processes subscribe
    from dealbeacon.core.analysts import AnalystRegistry
    env["DEALBEACON_ANALYSTS_FILE"] = os.path.join(tmp, "analysts.json")  # the SQL port reads for analysts only
    reg = AnalystRegistry()
    reg.add("bench", ["*"], "bench-password-1")
    reg.save(env["DEALBEACON_ANALYSTS_FILE"])
    procs = [subprocess.Popen([sys.executable, "-m", "dealbeacon.app.cli", cmd], cwd=ROOT,
                              env={**env, "DEALBEACON_DATA_DIR": os.path.join(tmp, cmd),
                                   "DEALBEACON_PORTS_FILE": os.path.join(tmp, f"{cmd}.ports.json")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for cmd in ("ingest", "worker", "sink")]
    try:
        port = read_ports(os.path.join(tmp, "ingest.ports.json"), procs[0], 120)["http"]
        sql_port = read_ports(os.path.join(tmp, "sink.ports.json"), procs[2], 120)["sql"]
        with httpx.Client(timeout=10, auth=("bench", "bench-password-1")) as c:
            deadline = time.time() + 120
            while True:
                try:
                    if c.get(f"http://127.0.0.1:{port}/readyz").status_code == 200 and \
                            c.get(f"http://127.0.0.1:{sql_port}/ping").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.time() < deadline, "stack did not start"
                time.sleep(0.3)
            out = []
            for i in range(samples + 5):  # the first few include group joins: dropped
                eid = str(uuid.uuid4())
                now = int(time.time() * 1000)
                body = {"site": "bench", "sent_at": now, "events": [{"event_id": eid, "type": "room_view", "room_id": "lat",
                                                                      "visitor_id": "v", "session_id": "s", "ts": now}]}
                t0 = time.perf_counter()
                assert c.post(f"http://127.0.0.1:{port}/v1/events", json=body).status_code == 202
                q = f"SELECT count() FROM events WHERE event_id = '{eid}'"
                while c.get(f"http://127.0.0.1:{sql_port}/", params={"query": q}).text.strip() != "1":
                    assert time.perf_counter() - t0 < 120, "row never became visible"
                    time.sleep(0.01)
                if i >= 5:
                    out.append(time.perf_counter() - t0)
            return sorted(out)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--latency-samples", type=int, default=60)
    ap.add_argument("--sink-rows", type=int, default=500_000, help="rows for the sink run (its 1 s batch window "
                    "holds the last partial batch: a short run would mostly measure that)")
    ap.add_argument("--sink-repeat", type=int, default=3, help="alternating rounds of raw inserts and sink runs")
    ap.add_argument("--streams-repeat", type=int, default=3, help="rounds of the Faust worker and the plain loop, "
                    "in alternating order")
    ap.add_argument("--parts", default="streams,sink,latency", help="which of the runs (comma-separated)")
    ap.add_argument("--rss", default="", help="events:rooms,... e.g. 100000:5000,1000000:100000 (worker memory runs only)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dealbeacon-bench-")
    kafka = start_kafka(os.path.join(tmp, "kafka"))
    try:
        s = Settings(kafka_bootstrap=kafka.bootstrap, sites_file=os.path.join(tmp, "sites.json"))
        subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "site", "add", "bench", "--sites-file", s.sites_file],
                       check=True, capture_output=True, cwd=ROOT)
        env = {**os.environ, "DEALBEACON_KAFKA_BOOTSTRAP": kafka.bootstrap, "DEALBEACON_SITES_FILE": s.sites_file,
               "DEALBEACON_FAUST_STORE": "memory://", "DEALBEACON_RATE_LIMIT_EVENTS_PER_S": "1e9",
               "DEALBEACON_RATE_LIMIT_BURST": "1000000000"}
        asyncio.run(ensure_topics(s))
        if a.rss:
            for spec in a.rss.split(","):
                n, rooms = (int(x) for x in spec.split(":"))
                t, rss, peak = rss_run(s, env, n, rooms, tmp)
                print(f"memory:  worker after {n} events over {rooms} rooms ({n / t:.0f} ev/s, rocksdb store): "
                      f"RSS {rss:.0f} MB, peak {peak:.0f} MB")
            return
        parts = set(a.parts.split(","))
        if "streams" in parts:
            streams_runs(s, env, a.events, tmp, a.streams_repeat)
        if "sink" in parts:
            sink_runs(s, a.sink_rows, tmp, a.sink_repeat)
        if "latency" in parts and a.latency_samples:
            lat = latency_run(env, tmp, a.latency_samples)
            p50, p95 = lat[len(lat) // 2], lat[int(len(lat) * 0.95)]
            print(f"latency: POST -> row visible in ClickHouse over {len(lat)} events: p50 {p50 * 1000:.0f} ms, "
                  f"p95 {p95 * 1000:.0f} ms (sink batch window 200 ms)")
    finally:
        kafka.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def streams_runs(s: Settings, env: dict, n: int, tmp: str, repeat: int = 1) -> None:
    """The raw consume once; then ``repeat`` rounds of the Faust worker and the plain loop, each round on topics
    of its own, the order alternating (Faust first in odd rounds): single runs on this shared 2-core VM swing by
    +-30 % and the second of two runs met a warmer broker. Every round printed; the ratio is of the bests."""
    messages = _event_messages(_records(n))
    asyncio.run(_produce(s, s.topic_events, messages))
    raw = asyncio.run(raw_consume(s, s.topic_events, n))
    fst: list[float] = []
    plain: list[float] = []
    for r in range(repeat):
        runs = [(fst, faust_run, f"faust{r}"), (plain, plain_run, f"plain{r}")]
        for out, run, tag in (runs if r % 2 == 0 else runs[::-1]):
            out.append(run(s, env, messages, n, tmp, tag))
        if repeat > 1:
            print(f"streams: round {r + 1} ({'faust' if r % 2 == 0 else 'plain'} first): faust worker {n / fst[-1]:9.0f} "
                  f"ev/s, plain loop {n / plain[-1]:9.0f} ev/s, ratio {plain[-1] / fst[-1]:.3f}")
    best = f"best of {repeat}: " if repeat > 1 else ""
    print(f"streams: raw aiokafka consume+decode {n / raw:9.0f} ev/s | {best}faust worker (decode, process, "
          f"produce, acked) {n / min(fst):9.0f} ev/s | ratio faust/raw = {raw / min(fst):.3f}")
    print(f"streams: {best}plain aiokafka loop, same processors and outputs, acked {n / min(plain):9.0f} ev/s | "
          f"ratio faust/plain = {min(plain) / min(fst):.3f}")


def sink_runs(s: Settings, rows_n: int, tmp: str, repeat: int) -> None:
    """Best of ``repeat`` alternating rounds for each (the least disturbed run on a shared 2-core VM, whose
    single runs swing by +-30 %), every round printed."""
    s2 = s.replace(topic_rows_prefix="sinkbench.rows.", sink_group="sinkbench")
    asyncio.run(ensure_topics(s2))
    dicts, json_, sinks = sink_run(s2, rows_n, tmp, repeat)
    for r, (d, j, k) in enumerate(zip(dicts, json_, sinks)):
        print(f"sink:    round {r + 1}: raw dicts {rows_n / d:9.0f} rows/s, raw JSON arrays {rows_n / j:9.0f} rows/s, "
              f"sink worker {rows_n / k:9.0f} rows/s")
    raw_ins = min(dicts + json_)  # the faster raw insert is the baseline
    print(f"sink:    best of {repeat}: raw bulk insert {rows_n / raw_ins:9.0f} rows/s | sink worker "
          f"{rows_n / min(sinks):9.0f} rows/s | ratio sink/raw = {raw_ins / min(sinks):.3f}")


if __name__ == "__main__":
    main()
