"""HTTP -> Kafka -> Faust -> sink -> ClickHouse engine, on the real broker."""
import asyncio
import pathlib
import random
import threading
import time

import httpx
import orjson

from dealbeacon.sim import demo
from tests.support.data import SQL_AUTH
from tests.support.data import live_event as event
from tests.support.servers import Server
from tests.support.stack import start_kafka
from tests.support.waiting import wait_until

EVENT_COLUMNS = ("toString(event_id), site, type, room_id, visitor_id, session_id, stakeholder_id, token_status, "
                 "toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(client_ts), content_id, page, progress_pct, "
                 "scroll_pct, media_position_s, engaged_ms, href, share_channel, share_to, cta, url, referrer, props, "
                 "ip, user_agent")
DEAD_COLUMNS = "site, stage, reason, field, event_index, event_id, payload"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def recorded_stream(n_visits: int, *, secret="secret", seed=11, bad_every=5) -> list[dict]:
    """A deterministic committee stream (demo builders), batched by 20, with some invalid events mixed in."""
    now = int(time.time() * 1000)
    rng = random.Random(seed)
    visitors = demo.make_visitors(secret, rng, now // 1000)
    events = []
    for i in range(n_visits):
        events += demo.visit_events(rng.choice(visitors), rng, now)
        if bad_every and i % bad_every == 0:
            events.append({**event("engagement", room="deal-northwind"), "engaged_ms": "a lot"})
    return [{"site": "acme", "sent_at": now, "events": events[i:i + 20]} for i in range(0, len(events), 20)]


def post_all(url: str, bodies: list[dict], accepted: list | None = None, deadline_s: float = 180) -> list[str]:
    """POST every body; retry on 503/429 (as the beacon does). Returns the accepted event ids."""
    accepted = [] if accepted is None else accepted
    end = time.time() + deadline_s
    with httpx.Client(timeout=10, headers={"User-Agent": UA}) as c:
        for body in bodies:
            while True:
                assert time.time() < end, "sender ran out of time"
                try:
                    r = c.post(url + "/v1/events", content=orjson.dumps({**body, "sent_at": int(time.time() * 1000)}))
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                if r.status_code == 202:
                    bad = {x["index"] for x in r.json()["rejected"]}
                    accepted += [e["event_id"] for i, e in enumerate(body["events"]) if i not in bad]
                    break
                assert r.status_code in (429, 503), r.text
                time.sleep(0.2)
    return accepted


async def _topic_size(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    try:
        await c._client.force_metadata_update()
        parts = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or ()]
        return sum((await c.end_offsets(parts)).values()) if parts else 0
    finally:
        await c.stop()


def test_http_kafka_faust_sink_clickhouse_exact_rows(stack_factory):
    st = stack_factory()
    st.env["DEALBEACON_FAUST_STORE"] = "rocksdb://"  # the production table store (rocksdict)
    st.start()
    good = [event("content_view", room="deal-1"), event("engagement", room="deal-1", engaged_ms=12_345),
            event("share", room="deal-2", share_to="cfo@buyer.example")]
    bad = {**event("cta"), "cta": 7}
    r = httpx.post(st.url + "/v1/events", json={"site": "acme", "sent_at": int(time.time() * 1000),
                                                "events": [*good, bad]}, headers={"User-Agent": UA})
    assert r.status_code == 202 and r.json()["accepted"] == 3
    st.wait_rows("SELECT count() FROM events", [[3]])
    rows = st.sql("SELECT toString(event_id), type, room_id, engaged_ms, share_to FROM events ORDER BY type")
    assert rows == sorted([[good[0]["event_id"], "content_view", "deal-1", 0, ""],
                           [good[1]["event_id"], "engagement", "deal-1", 12345, ""],
                           [good[2]["event_id"], "share", "deal-2", 0, "cfo@buyer.example"]], key=lambda r: r[1])
    st.wait_rows("SELECT reason, field, event_index, event_id FROM dead_letters",
                 [["invalid_type", "cta", 3, bad["event_id"]]])
    # the worker's room states (rocksdb store) recorded both rooms in their changelog
    group = st.env["DEALBEACON_STREAMS_GROUP"]
    wait_until(lambda: asyncio.run(_topic_size(st.env["DEALBEACON_KAFKA_BOOTSTRAP"], f"{group}-room_state-changelog")) >= 2,
               every=0.5, what="the room states in the changelog")
    # and the rooms were scored: one stakeholder row and one deal row per room
    st.wait_rows("SELECT room_id, count() FROM deal_scores FINAL GROUP BY room_id ORDER BY room_id",
                 [["deal-1", 1], ["deal-2", 1]])
    m = httpx.get(f"http://127.0.0.1:{st.metrics_port}/metrics").text
    assert "dealbeacon_sink_rows_total" in m and "dealbeacon_consumer_lag" in m
    # erase the visitor: the site-wide erase reaches every partition's rooms, the sink deletes their rows
    r = httpx.post(st.url + "/v1/sites/acme/erase", headers={"Authorization": "Bearer secret"},
                   json={"stakeholder": "visitor:visitor-1"})
    assert r.status_code == 202, r.text
    st.wait_rows("SELECT stakeholder, room_id FROM erasures FINAL", [["visitor:visitor-1", ""]])
    st.wait_rows("SELECT count() FROM events", [[0]])
    st.wait_rows("SELECT count() FROM stakeholder_scores WHERE stakeholder_id = 'visitor:visitor-1'", [[0]])


def test_embedded_and_distributed_leave_identical_rows(stack_factory, tmp_path):
    bodies = recorded_stream(40)
    st = stack_factory().start()
    post_all(st.url, bodies)
    n_events = sum(len(b["events"]) for b in bodies)
    n_bad = len(range(0, 40, 5))
    st.wait_rows("SELECT count() FROM events FINAL", [[n_events - n_bad]])
    st.wait_rows("SELECT count() FROM dead_letters FINAL", [[n_bad]])

    emb_dir = tmp_path / "embedded"
    emb_dir.mkdir()
    (emb_dir / "sites.json").write_text(pathlib.Path(st.sites_file).read_text())
    emb = Server(emb_dir, "--no-demo").start()
    try:
        post_all(emb.url, bodies)
        emb.wait_applied()  # everything answered 202 is in chdb before the two modes are compared
        q_ev = f"SELECT {EVENT_COLUMNS} FROM events FINAL ORDER BY event_id FORMAT JSONCompact"
        q_dl = f"SELECT {DEAD_COLUMNS} FROM dead_letters FINAL ORDER BY event_id FORMAT JSONCompact"
        embedded_events = httpx.post(f"http://127.0.0.1:{emb.sql_port}/", auth=SQL_AUTH, content=q_ev).json()["data"]
        embedded_dead = httpx.post(f"http://127.0.0.1:{emb.sql_port}/", auth=SQL_AUTH, content=q_dl).json()["data"]
    finally:
        emb.stop()
    distributed_events = st.sql(q_ev.replace(" FORMAT JSONCompact", ""))
    assert len(embedded_events) == n_events - n_bad
    assert embedded_events == distributed_events
    assert embedded_dead == st.sql(q_dl.replace(" FORMAT JSONCompact", "")) and len(embedded_dead) == n_bad


def _kill_mid_stream(st, victim: str, n_batches=1100):
    bodies = [{"site": "acme", "sent_at": 0, "events": [event("engagement", room=f"deal-{i % 37}") for _ in range(20)]}
              for i in range(n_batches)]
    accepted: list[str] = []
    sender = threading.Thread(target=post_all, args=(st.url, bodies, accepted))
    sender.start()
    wait_until(lambda: len(accepted) >= n_batches * 20 * 0.3 or not sender.is_alive(), timeout=180, every=0.05,
               what="30% of the stream accepted")
    st.procs[victim].kill9()
    time.sleep(1)  # deliberate: the victim stays dead for a second while the stream goes on
    st.procs[victim].start()  # same data dir, same group: it must pick up where the dead one left off
    sender.join()
    assert len(accepted) == n_batches * 20
    st.wait_rows("SELECT count() FROM events FINAL", [[len(accepted)]], timeout=240)
    ids = {r[0] for r in st.sql("SELECT toString(event_id) FROM events FINAL")}
    assert ids == set(accepted)
    assert st.sql("SELECT count() FROM (SELECT event_id FROM events FINAL GROUP BY event_id HAVING count() > 1)") == [[0]]


def test_kill9_faust_worker_mid_stream_loses_and_doubles_nothing(stack_factory):
    _kill_mid_stream(stack_factory().start(), "worker0")


def test_kill9_sink_mid_stream_loses_and_doubles_nothing(stack_factory):
    _kill_mid_stream(stack_factory().start(), "sink")


def test_broker_down_answers_503_within_bound_and_recovers_without_restart(stack_factory, tmp_path):
    own = start_kafka(str(tmp_path / "own-kafka"))
    try:
        st = stack_factory()
        st.env.update(DEALBEACON_KAFKA_BOOTSTRAP=own.bootstrap, DEALBEACON_HANDOFF_TIMEOUT_S="2")
        st.proc("ingest", "ingest")
        st.wait_http(f"{st.url}/readyz", "ingest")

        def post():
            t = time.time()
            r = httpx.post(st.url + "/v1/events", json={"site": "acme", "sent_at": int(time.time() * 1000),
                                                        "events": [event()]}, headers={"User-Agent": UA}, timeout=30)
            return r, time.time() - t

        assert post()[0].status_code == 202
        own.stop()
        r, took = post()
        assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
        assert took < 2 + 1.5, f"503 took {took:.1f}s, bound is the 2 s hand-off timeout"
        own.proc = None
        own.start()
        wait_until(lambda: post()[0].status_code == 202, timeout=60, every=1,
                   what="ingest recovering after the broker came back")
        assert st.procs["ingest"].p.poll() is None
    finally:
        own.stop()
