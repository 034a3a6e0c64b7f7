"""The embedded local log against the real chdb engine and real files: a 202 is an fsync'd append, the writer
applies ranges behind it, a crash anywhere in a range is replayed to exactly the rows of a run without the
crash, a record the store refuses is dead-lettered without holding the others, and a store that takes nothing
fills a bounded backlog that then answers 503 (HandoffUnavailable)."""
from __future__ import annotations

import asyncio
import os

import orjson
import pytest

from dealbeacon.app.embedded import EmbeddedProcessor, LoggedHandoff
from dealbeacon.app.locallog import LocalLog, LogCorrupt
from dealbeacon.core import records
from dealbeacon.core.handoff import HandoffUnavailable
from dealbeacon.sim.simulator import DAY_MS, op_records, plan, simulate
from streams import deals, processors
from streams.alerts import ALERTS
from tests.support.data import NOW_MS, event


class Crash(BaseException):
    """The process dies here (not an error the hand-off handles: nothing after it runs)."""


class CrashingStore:
    """The real store, dying before its ``at``-th insert."""

    def __init__(self, store, at: int):
        self.store, self.at, self.inserts = store, at, 0

    def insert(self, table, rows, dedup_token=None):
        if rows:
            self.inserts += 1
            if self.inserts == self.at:
                raise Crash(f"killed before insert {self.at} ({table})")
        self.store.insert(table, rows, dedup_token)

    def __getattr__(self, name):
        return getattr(self.store, name)


class DownStore:
    """A store that takes nothing until ``up`` is set (disk full, engine refusing every part)."""

    def __init__(self, store):
        self.store, self.up = store, False

    def insert(self, table, rows, dedup_token=None):
        if not self.up and rows:
            raise RuntimeError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space")
        self.store.insert(table, rows, dedup_token)

    def __getattr__(self, name):
        return getattr(self.store, name)


def committee_records(n_deals=5, days=90) -> list[dict]:
    """Simulated committees as ingest hands them off: room updates, stakeholder events, daily clocks."""
    start = 1_767_225_600_000
    sim = simulate(5, n_deals, start, days, spread_days=days)
    ops = plan(sim, "sim", "sim-secret", start // 1000 + 400 * 86_400, tick_ms=DAY_MS)
    out: list[dict] = []
    for group in op_records(ops, "sim", sim):
        for r in group:
            if "record" not in r:
                r.update(rv=records.RECORD_VERSION, client_ts=r["ts"], received_at=r["ts"] + 400, ip="203.0.113.0",
                         user_agent="Mozilla/5.0 Chrome/126")
        out.extend(group)
    return out


def requests_of(recs: list[dict], size: int = 40) -> list[list[dict]]:
    return [recs[i:i + size] for i in range(0, len(recs), size)]


def clean_run(recs: list[dict]) -> tuple[dict[bytes, deals.RoomState], set[str]]:
    """The same records through the pure processors, no log, no store, no crash: states and alert ids."""
    states: dict[bytes, deals.RoomState] = {}
    alert_ids: set[str] = set()
    for group in requests_of(recs, 200):
        changed, tables = processors.process_batch(
            group, [], states.get, lambda site: [k for k in states if records.room_site(k) == site])
        states.update(changed)
        alert_ids |= {a["alert_id"] for a in tables.get("alerts", [])}
    return states, alert_ids


def _state_view(state: deals.RoomState) -> dict:
    d = orjson.loads(deals.dumps(state))
    d.pop("partition"), d.pop("offset")
    return d


async def _submit_all(handoff, reqs):
    for req in reqs:
        assert await handoff.submit(req, []) == {}


async def _wait_applied(handoff, timeout=60):
    for _ in range(int(timeout / 0.02)):
        if not handoff.backlog_records and not handoff.queue.items:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not applied: {handoff.backlog_records} records")


def _handoff(store, log_dir, hot_rooms: int = 1000, **kw) -> tuple[LoggedHandoff, EmbeddedProcessor]:
    proc = EmbeddedProcessor(store, hot_rooms=hot_rooms)
    proc.load()
    kw.setdefault("apply_ms", 60_000)  # nothing is applied unless the test asks (or a range fills)
    return LoggedHandoff(store, proc, LocalLog(str(log_dir), segment_bytes=kw.pop("segment_bytes", 64 << 20)),
                         linger_ms=0, **kw), proc


def _abandon(handoff: LoggedHandoff) -> None:
    """What kill -9 leaves: tasks gone, nothing drained, the log's file closed by the OS."""
    for t in handoff._tasks:
        t.cancel()
    handoff.log.close()


def _ids(store, table, col):
    return [r[0] for r in store.query(f"SELECT toString({col}) FROM {table}")]


@pytest.mark.parametrize("crash_at", ["first_insert", "mid_range", "before_cursor"])
def test_a_crash_inside_an_applied_range_replays_to_the_rows_of_a_run_without_it(store, tmp_path, crash_at):
    recs = committee_records()
    n_events = sum(1 for r in recs if processors.is_event(r))
    expected_states, expected_alerts = clean_run(recs)
    assert expected_alerts and n_events > 500  # the scenario raises alerts and has real volume

    async def scenario():
        target = CrashingStore(store, {"first_insert": 1, "mid_range": 3, "before_cursor": 10**9}[crash_at])
        h, _ = _handoff(target, tmp_path / "log", apply_max_records=10**9)
        if crash_at == "before_cursor":
            def crash(last):
                raise Crash("killed after the range's rows, before the cursor moved")
            h.log.applied_through = crash
        await h.start()
        await _submit_all(h, requests_of(recs))
        assert _count(store, "events") == 0  # 202s came from the log alone
        h.apply_max_records = len(recs) // 3  # applied in three ranges
        h._apply_wakeup.set()
        for _ in range(500):
            if h._tasks[1].done():
                break
            await asyncio.sleep(0.02)
        assert isinstance(h._tasks[1].exception(), Crash)
        _abandon(h)
        before = _count(store, "events")
        h2, proc = _handoff(store, tmp_path / "log", apply_ms=20)
        await h2.start()
        await _wait_applied(h2)
        await h2.stop()
        return before, proc

    stored_before, proc = asyncio.run(scenario())
    assert stored_before < n_events  # the crash left part of the log unapplied
    events = _ids(store, "events", "event_id")
    assert len(events) == n_events and len(set(events)) == n_events  # exactly once, counted without FINAL
    alerts = _ids(store, "alerts", "alert_id")
    assert set(alerts) == expected_alerts and len(alerts) == len(expected_alerts)
    assert {k: _state_view(s) for k, s in proc.states.items()} == {k: _state_view(s) for k, s in expected_states.items()}
    reloaded = EmbeddedProcessor(store, hot_rooms=2)
    assert reloaded.load(page=2) == len(expected_states)  # what a restart reads back from room_state, in pages
    assert {k: _state_view(s) for k, s in reloaded.states.items()} == {k: _state_view(s) for k, s in expected_states.items()}


def _count(store, table):
    return store.query(f"SELECT count() FROM {table}")[0][0]


def _rec(ev):
    return records.accepted_event(ev, site="test", received_at=NOW_MS, ts=NOW_MS, token_status="none",
                                  stakeholder_id="", ip="", user_agent="")


def test_a_record_the_store_refuses_is_dead_lettered_and_holds_nothing_else(store, tmp_path):
    async def scenario():
        h, proc = _handoff(store, tmp_path / "log", apply_ms=20)
        real = h.process

        def poisoning(recs, dead, **kw):
            tables, commit = real(recs, dead, **kw)
            for row in tables.get("events", []):
                if row.get("cta") == "poison":
                    row["engaged_ms"] = "not a number"
            return tables, commit
        h.process = poisoning
        await h.start()
        good = [_rec(event("room_view")) for _ in range(5)]
        bad = [_rec(event("room_view")), _rec(event("cta", cta="poison")), _rec(event("engagement"))]
        later = [_rec(event("room_view", room="room-2"))]
        out = await asyncio.gather(h.submit(good, []), h.submit(bad, []), h.submit(later, []))
        await _wait_applied(h)
        assert h.store_ok
        await h.stop()
        return out, good + [bad[0], bad[2]] + later, bad[1]

    answers, kept, poisoned = asyncio.run(scenario())
    assert answers == [{}, {}, {}]  # the 202 was the append; the refusal is found later, by the writer
    assert sorted(_ids(store, "events", "event_id")) == sorted(e["event_id"] for e in kept)
    assert store.query("SELECT reason, stage, toString(event_id) FROM dead_letters") == [
        ("store_rejected", "store", poisoned["event_id"])]


class RefusingStore:
    """The real store, refusing any insert that holds an event of ``cta`` "poison" with an error that has no
    message (a driver's bare exception), the way an engine bug or a binding would raise it."""

    def __init__(self, store):
        self.store = store

    def insert(self, table, rows, dedup_token=None):
        if table == "events" and any(r.get("cta") == "poison" for r in rows):
            raise ValueError()
        self.store.insert(table, rows, dedup_token)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_refusal_without_a_message_is_dead_lettered_with_the_errors_type(store, tmp_path):
    async def scenario():
        h, _ = _handoff(RefusingStore(store), tmp_path / "log", apply_ms=20)
        await h.start()
        ok = [_rec(event("room_view")), _rec(event("engagement"))]
        bad = [_rec(event("room_view", room="room-3")), _rec(event("cta", cta="poison", room="room-3"))]
        out = await asyncio.gather(h.submit(ok, []), h.submit(bad, []))
        await _wait_applied(h)
        assert h.store_ok  # one refused record is not a store that is down
        await h.stop()
        return out, ok + bad[:1], bad[1]

    answers, kept, poisoned = asyncio.run(scenario())
    assert answers == [{}, {}]
    assert sorted(_ids(store, "events", "event_id")) == sorted(e["event_id"] for e in kept)
    assert store.query("SELECT reason, detail, toString(event_id) FROM dead_letters") == [
        ("store_rejected", "ValueError", poisoned["event_id"])]


class ComingBackStore:
    """The real store, refusing its first ``refusals`` inserts the way a full disk does (code 243, the message
    chdb raises), then taking everything: the store comes back at a moment the writer does not choose."""

    def __init__(self, store, refusals: int):
        self.store, self.left, self.calls = store, refusals, 0

    def insert(self, table, rows, dedup_token=None):
        if rows:
            self.calls += 1
            if self.left > 0:
                self.left -= 1
                raise RuntimeError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. "
                                   "(NOT_ENOUGH_SPACE)")
        self.store.insert(table, rows, dedup_token)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.mark.parametrize("refusals", [1, 3, 5])
def test_a_store_coming_back_mid_isolation_dead_letters_nothing(store, tmp_path, refusals):
    """A full disk is no record's fault: whatever insert the store comes back on (the range's, the entry's, one
    record's of an entry written record by record, the dead letters'), every logged event is stored once and
    nothing is dead-lettered. (Seen in CI: records refused one by one while the disk was full, the store back
    before their dead letters were written: four good events became store_rejected dead letters.)"""
    async def scenario():
        flaky = ComingBackStore(store, refusals)
        h, _ = _handoff(flaky, tmp_path / "log", apply_ms=20)
        await h.start()
        reqs = [[_rec(event("room_view", room=f"room-{i}")) for _ in range(3)] for i in range(2)]
        await asyncio.gather(*(h.submit(r, []) for r in reqs))
        await _wait_applied(h, timeout=30)
        assert h.store_ok and flaky.left == 0
        await h.stop()
        return [e for r in reqs for e in r]

    accepted = asyncio.run(scenario())
    assert sorted(set(_ids(store, "events FINAL", "event_id"))) == sorted(e["event_id"] for e in accepted)
    assert _count(store, "dead_letters") == 0


def test_a_store_that_takes_nothing_fills_a_bounded_backlog_then_503_and_loses_nothing(store, tmp_path):
    down = DownStore(store)
    pressure = []  # what the writer told the process: the backlog crossed half its bound (True), then back (False)

    async def scenario():
        h, _ = _handoff(down, tmp_path / "log", apply_ms=20, backlog_records=30, on_behind=pressure.append,
                        linger_behind_ms=7)
        await h.start()
        accepted, refused = [], 0
        for i in range(12):
            assert pressure == ([True] if len(accepted) > 15 else []), (len(accepted), pressure)
            # requests share an append within the linger: longer while behind (fewer appends, the writer first)
            assert h.queue.linger == (0.007 if len(accepted) > 15 else 0.0), (len(accepted), h.queue.linger)
            req = [_rec(event("room_view", room=f"room-{i}")) for _ in range(5)]
            try:
                await h.submit(req, [])
                accepted += req
            except HandoffUnavailable as e:
                assert "backlog full" in str(e)
                refused += 1
        await asyncio.sleep(0.2)
        assert not h.store_ok and not h.ready() and _count(store, "events") == 0
        down.up = True
        await _wait_applied(h, timeout=30)
        assert h.ready() and pressure == [True, False] and h.queue.linger == 0.0
        await h.stop()
        return accepted, refused

    accepted, refused = asyncio.run(scenario())
    assert len(accepted) == 30 and refused == 6  # 6 requests of 5 fill the 30 records
    assert sorted(_ids(store, "events", "event_id")) == sorted(e["event_id"] for e in accepted)


def test_segments_rotate_and_applied_ones_are_deleted(store, tmp_path):
    async def scenario():
        h, _ = _handoff(store, tmp_path / "log", segment_bytes=4_000, apply_ms=60_000)
        await h.start()
        for i in range(30):
            await h.submit([_rec(event("room_view", room=f"room-{i % 3}")) for _ in range(3)], [])
        many = len(h.log.segments())
        h._apply_wakeup.set()
        await _wait_applied(h)
        await h.stop()
        return many, h.log.segments()

    many, left = asyncio.run(scenario())
    assert many >= 5 and len(left) == 1, (many, left)
    assert _count(store, "events") == 90


def test_a_torn_tail_is_cut_and_corruption_elsewhere_stops_the_log(tmp_path):
    log = LocalLog(str(tmp_path / "log"), segment_bytes=200)
    assert log.open() == []
    log.append([b'{"e":[],"d":[1]}', b'{"e":[],"d":[2]}'])  # segment 0: 48 bytes
    log.append([b'{"e":[],"d":[3]}' * 10])  # still segment 0 (under 200 bytes when it began): 216 bytes
    first = log.append([b"x" * 300])  # segment 3
    log.append([b'{"tail":1}'])  # segment 4
    log.close()
    segs = sorted(s for s in os.listdir(tmp_path / "log") if s.endswith(".seg"))
    assert [int(s[:-4]) for s in segs] == [0, 3, 4]
    last = tmp_path / "log" / segs[-1]
    with open(last, "ab") as fh:  # a crash in the middle of the next append: header and half a payload
        fh.write(b"\x20\x00\x00\x00\x01\x02\x03\x04half")
    again = LocalLog(str(tmp_path / "log"))
    pending = again.open()
    assert [p for p, _ in pending] == [0, 1, 2, 3, 4] and pending[-1][1] == b'{"tail":1}'
    assert again.next_position == 5 and first == 3
    assert again.append([b"next"]) == 5
    again.close()
    third = LocalLog(str(tmp_path / "log"))
    assert [p for p, _ in third.open()] == [0, 1, 2, 3, 4, 5]
    third.close()
    first_seg = tmp_path / "log" / segs[0]
    data = bytearray(first_seg.read_bytes())
    data[10] ^= 0xFF  # a flipped byte in an entry that was acknowledged long ago
    first_seg.write_bytes(bytes(data))
    with pytest.raises(LogCorrupt):
        LocalLog(str(tmp_path / "log")).open()


def test_a_cursor_write_that_fails_once_retries_the_same_range_and_stores_nothing_twice(store, tmp_path):
    async def scenario():
        h, _ = _handoff(store, tmp_path / "log", apply_ms=20)
        real, failures = h.log.applied_through, []

        def flaky(last):
            if not failures:
                failures.append(last)
                raise OSError(28, "No space left on device")
            real(last)
        h.log.applied_through = flaky
        await h.start()
        sent = []
        for i in range(6):  # requests keep arriving while the writer retries
            req = [_rec(event("room_view", room=f"room-{i % 2}")) for _ in range(3)]
            await h.submit(req, [])
            sent += req
            await asyncio.sleep(0.01)
        await _wait_applied(h, timeout=30)
        assert h._tasks[1].done() is False and h.store_ok
        await h.stop()
        return sent, failures

    sent, failures = asyncio.run(scenario())
    assert failures  # the failure happened, after that range's rows were in
    events = _ids(store, "events", "event_id")
    assert sorted(events) == sorted(e["event_id"] for e in sent)  # each once, counted without FINAL


def test_a_full_backlog_answers_503_at_the_door_and_keeps_nothing_of_it(store, tmp_path):
    """Through the real ingest app: while chdb takes nothing, requests fill the log's backlog (202); then the
    next ones are refused before their body is parsed (503, kept 0, Retry-After), as soon as the backlog has
    no room for one more request of the largest size (a request let in is never refused after its events were
    checked), and once chdb is back exactly the 202'd events are stored."""
    import contextlib

    from starlette.testclient import TestClient

    from dealbeacon.core.clock import FixedClock
    from dealbeacon.core.settings import Settings
    from dealbeacon.core.sites import Site, SiteRegistry
    from ingest.app import create_app
    from tests.support.app import BROWSER_UA, SECRET
    from tests.support.data import batch

    down = DownStore(store)
    h, _ = _handoff(down, tmp_path / "log", apply_ms=20, backlog_records=12)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await h.start()
        yield
        down.up = True  # the store is back before the process stops: the backlog drains
        await h.stop()

    app = create_app(Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000, max_events_per_batch=4),
                     SiteRegistry({"test": Site("test", SECRET, ("*",))}), h, clock=FixedClock(NOW_MS),
                     lifespan=lifespan)
    answers = []
    with TestClient(app, headers={"User-Agent": BROWSER_UA}) as c:
        for i, n in enumerate((4, 2, 4, 4, 2, 1)):
            evs = [event("room_view", room=f"room-{i}") for _ in range(n)]
            r = c.post("/v1/events", json=batch(*evs))
            answers.append((r.status_code, r.json(), r.headers.get("retry-after"), [e["event_id"] for e in evs]))
    # 4, 6, 10 logged; with 10 of 12 taken, a request of up to 4 might not fit: the door refuses before parsing,
    # whatever the request holds (2 and 1 too)
    assert [a[0] for a in answers] == [202, 202, 202, 503, 503, 503], answers
    assert all(a[1]["detail"] == "the pipeline is behind (backlog full)" for a in answers[3:]), answers
    assert all(a[1]["kept"] == 0 and a[2] for a in answers[3:])
    accepted = [eid for status, _, _, ids in answers if status == 202 for eid in ids]
    assert sorted(_ids(store, "events", "event_id")) == sorted(accepted)


def test_closed_deals_held_in_the_store_only_give_the_rows_of_a_run_holding_every_room(store, tmp_path):
    """Two hot rooms: each closed deal pushed out is held in chdb's room_state only and read back (a record per
    batch query) when a record reaches it; the alerts and states are those of the pure run, also after a restart."""
    from streams.winmodel import PRIOR_MODEL, WinModel

    recs = committee_records(n_deals=8, days=90)
    last = max(r["ts"] for r in recs if "ts" in r)
    # after the history: a late visit to the first deal, a refitted win model for the site, a tick
    late = {**next(r for r in recs if r.get("room_id") == "sim-0000" and "event_id" in r),
            "event_id": "00000000-0000-4000-8000-00000000000a", "ts": last + 1000, "client_ts": last + 1000,
            "received_at": last + 1400}
    after = [late, WinModel("refit-1", PRIOR_MODEL.coef, 3, 2).record("sim", last + DAY_MS),
             {"record": "clock", "site": "sim", "now": last + 2 * DAY_MS}]
    expected_states, expected_alerts = clean_run(recs + after)
    closed = {k for k, st in expected_states.items() if st.room.stage in ALERTS.closed_stages}
    assert closed  # every deal closes within the 90 days: open while its history runs, closed by the end

    async def scenario():
        h, proc = _handoff(store, tmp_path / "log", hot_rooms=2, apply_ms=20, apply_max_records=300)
        reads: list[int] = []
        fetch = proc.states.fetch
        proc.states.fetch = lambda keys: (reads.append(len(keys)), fetch(keys))[1]
        await h.start()
        await _submit_all(h, requests_of(recs))
        await _wait_applied(h)
        held_out = set(proc.states._out)
        for rec in after:
            await _submit_all(h, [[rec]])
            await _wait_applied(h)
        await h.stop()
        return proc, reads, held_out

    proc, reads, held_out = asyncio.run(scenario())
    assert b"sim/sim-0000" in held_out and len(held_out) >= 4 and held_out <= closed  # closed deals left memory
    # read back one query per batch: the late visit's room, then every closed room for the model record
    assert len(reads) == 2 and reads[0] == 1 and reads[1] >= len(held_out) - 1
    alerts = _ids(store, "alerts", "alert_id")
    assert set(alerts) == expected_alerts and len(alerts) == len(expected_alerts)
    assert {k: _state_view(s) for k, s in proc.states.items()} == {k: _state_view(s) for k, s in expected_states.items()}
    reloaded = EmbeddedProcessor(store, hot_rooms=2)
    assert reloaded.load() == len(expected_states)
    assert {k: _state_view(s) for k, s in reloaded.states.items()} == {k: _state_view(s) for k, s in expected_states.items()}


def test_the_writer_is_behind_while_the_door_refuses_even_with_the_backlog_under_half(store, tmp_path):
    """The door counts the requests it let in: under overload it refuses while the backlog itself holds less than
    half its bound. That is behind too (the process then favours the writer), until a second after the last
    refusal."""
    pressure = []

    async def scenario():
        h, _ = _handoff(store, tmp_path / "log", backlog_records=30, on_behind=pressure.append, linger_behind_ms=7)
        await h.start()
        await h.submit([_rec(event("room_view")) for _ in range(5)], [])
        assert not h.shedding(10) and pressure == [] and h.queue.linger == 0.0
        assert h.shedding(26) and pressure == [True] and h.queue.linger == 0.007  # 5 logged + 26 let in > 30
        h._shed_at -= 1.5  # a second and a half since that refusal
        await h.submit([_rec(event("room_view")) for _ in range(2)], [])
        assert pressure == [True, False] and h.queue.linger == 0.0
        await h.stop()

    asyncio.run(scenario())
