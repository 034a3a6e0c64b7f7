"""Embedded mode's room states held mostly compressed: the same rows and states as a plain dict, with at most
``hot`` rooms decoded."""
import orjson
import pytest

from dealbeacon.app.embedded import RoomStates
from dealbeacon.core import records
from dealbeacon.sim.simulator import DAY_MS, op_records, plan, simulate
from streams import deals, processors
from streams.alerts import ALERTS
from streams.winmodel import PRIOR_MODEL, WinModel


def _records(n_deals=6, days=60):
    start = 1_767_225_600_000
    sim = simulate(23, n_deals, start, days, spread_days=days // 2)
    ops = plan(sim, "s", "s-secret", start // 1000 + 400 * 86_400, tick_ms=DAY_MS)
    out = []
    for group in op_records(ops, "s", sim):
        for r in group:
            if "record" not in r:
                r.update(rv=records.RECORD_VERSION, client_ts=r["ts"], received_at=r["ts"] + 400, ip="", user_agent="")
        out.extend(group)
    return out


@pytest.mark.parametrize("way", ["get", "peek", "peek, ticking open deals only"])
def test_compressed_states_give_the_rows_and_states_of_a_plain_dict(way):
    """``get`` + ``put``, and the writer's way: ``peek`` + ``put`` with the JSON written to room_state, and
    ticks reaching only the rooms whose deal is open (``open_keys_of``)."""
    recs = _records()
    plain: dict = {}
    held = RoomStates(hot=2, closed_stages=ALERTS.closed_stages)
    ticked = held.open_keys_of if way.endswith("only") else None
    rows_plain, rows_held = [], []
    for i in range(0, len(recs), 97):
        group = recs[i:i + 97]
        changed, tables = processors.process_batch(
            group, [], plain.get, lambda site: [k for k in plain if records.room_site(k) == site])
        plain.update(changed)
        rows_plain.append(orjson.dumps(tables, option=orjson.OPT_SORT_KEYS))
        changed, tables = processors.process_batch(group, [], held.get if way == "get" else held.peek, held.keys_of,
                                                   ticked_rooms=ticked)
        for k, s in changed.items():
            held.put(k, s, None if way == "get" else deals.dumps(s))
        rows_held.append(orjson.dumps(tables, option=orjson.OPT_SORT_KEYS))
        assert len(held._hot) <= 2
    assert len(plain) == 6 and len(held) == 6 and len(held._cold) == 4
    closed = {k for k, s in plain.items() if s.room.stage in ALERTS.closed_stages}
    assert closed and held._closed == closed  # the scenario closes deals, and ticks follow
    assert rows_held == rows_plain
    assert {k: deals.dumps(s) for k, s in held.items()} == {k: deals.dumps(s) for k, s in plain.items()}


@pytest.mark.parametrize("seed", [7, 11])
def test_ticks_that_skip_closed_deals_leave_a_sites_history_as_ticking_every_room_does(seed):
    """The demo's way, unlike the test above: a site's history of many committees (rooms opened over 120 days,
    many closed by now) replayed without ticks, wall-clock ticks at "now" landing between its records at
    random, batches of 1 to 2,000 records. Ticking open deals only gives the rows and states of ticking every
    room."""
    import datetime as dt
    import random

    rng = random.Random(seed)
    now = int(dt.datetime(2026, 12, 5, 15, 30, tzinfo=dt.UTC).timestamp() * 1000)  # a Saturday afternoon
    start = now - 165 * DAY_MS
    sim = simulate(seed, 24, start, 90, spread_days=120)
    ops = [op for op in plan(sim, "demo", "demo-secret", now // 1000 + 90 * 86_400) if op.at_ms <= now]
    recs, t = [], now
    for group in op_records(ops, "demo", sim):
        for r in group:
            if "record" not in r:
                r.update(rv=records.RECORD_VERSION, client_ts=r["ts"], received_at=r["ts"] + 400, ip="", user_agent="")
        recs.extend(group)
        if rng.random() < 0.03:
            t += 60_000
            recs.append({"record": "clock", "site": "demo", "now": t})
    recs += [{"record": "clock", "site": "demo", "now": t + 60_000 * i} for i in (1, 2)]
    plain: dict = {}
    held = RoomStates(hot=5, closed_stages=ALERTS.closed_stages)
    i = 0
    while i < len(recs):
        batch = recs[i:i + rng.choice([1, 7, 60, 400, 2000])]
        i += len(batch)
        changed, want = processors.process_batch(batch, [], plain.get,
                                                 lambda site: [k for k in plain if records.room_site(k) == site])
        plain.update(changed)
        changed, got = processors.process_batch(batch, [], held.peek, held.keys_of, ticked_rooms=held.open_keys_of)
        for k, st in changed.items():
            held.put(k, st, deals.dumps(st))
        assert orjson.dumps(got, option=orjson.OPT_SORT_KEYS) == orjson.dumps(want, option=orjson.OPT_SORT_KEYS)
    closed = {k for k, st in plain.items() if st.room.stage in ALERTS.closed_stages}
    assert len(plain) == 24 and 0 < len(closed) < 24, len(closed)  # both kinds, so the skip was exercised
    assert {k: deals.dumps(st) for k, st in held.items()} == {k: deals.dumps(st) for k, st in plain.items()}


def test_closed_deals_leave_memory_for_the_store_and_come_back_when_a_record_reaches_them():
    """With a store to read from, a closed deal pushed out of the hot rooms is held nowhere but there: the rows
    and states stay those of a plain dict, including for records that reach such a room later (a late event,
    a reopening, a model record for the whole site)."""
    import random

    rng = random.Random(5)
    recs = _records(n_deals=8, days=60)
    stored: dict[bytes, bytes] = {}  # room_state as the writer leaves it: every state put was written first
    asked: list[int] = []

    def fetch(keys):
        asked.append(len(keys))
        return {k: stored[k] for k in keys if k in stored}

    plain: dict = {}
    held = RoomStates(hot=2, closed_stages=ALERTS.closed_stages, fetch=fetch)

    def both(batch):
        changed, want = processors.process_batch(batch, [], plain.get,
                                                 lambda site: [k for k in plain if records.room_site(k) == site])
        plain.update(changed)
        changed, got = processors.process_batch(batch, [], held.peek, held.keys_of, ticked_rooms=held.open_keys_of,
                                                prefetch=held.prefetch)
        held.end_batch()
        for k, st in changed.items():
            stored[k] = deals.dumps(st)
            held.put(k, st, stored[k])
        assert orjson.dumps(got, option=orjson.OPT_SORT_KEYS) == orjson.dumps(want, option=orjson.OPT_SORT_KEYS)

    i = 0
    while i < len(recs):
        batch = recs[i:i + rng.choice([1, 9, 80, 300])]
        i += len(batch)
        both(batch)
    out = sorted(held._out)
    assert out and not set(out) & set(held._cold) and not set(out) & set(held._hot)  # closed rooms left memory
    room = out[0].decode().split("/", 1)[1]
    last = max(r["ts"] for r in recs if "ts" in r)
    late = {**next(r for r in recs if r.get("room_id") == room and "event_id" in r),
            "event_id": "00000000-0000-4000-8000-000000000001", "ts": last + 1000, "received_at": last + 1400,
            "client_ts": last + 1000}
    both([late, {"record": "clock", "site": "s", "now": last + DAY_MS}])
    assert asked == [1] and out[0] not in held._out  # read back in one query, and held again once changed
    model = WinModel("refit-1", PRIOR_MODEL.coef, 3, 2).record("s", last + 2 * DAY_MS)
    out = sorted(held._out)
    both([model, {"record": "clock", "site": "s", "now": last + 2 * DAY_MS}])
    assert asked[1:] == [len(out)]  # the site's closed rooms, read in one query (changed, then pushed out again)
    assert {k: deals.dumps(st) for k, st in held.items()} == {k: deals.dumps(st) for k, st in plain.items()}
    assert len(held) == len(plain) == 8


def test_stopping_cancels_again_a_task_that_swallowed_a_cancellation():
    """A loop whose cancellation was swallowed (3.11's wait_for can, as its wakeup fires) must not hang the
    hand-off's stop: it is cancelled again until it ends."""
    import asyncio

    from dealbeacon.app.embedded import _cancel_all

    async def stubborn(log):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            log.append("swallowed")
        await asyncio.sleep(30)

    async def scenario():
        log: list[str] = []
        t = asyncio.create_task(stubborn(log))
        await asyncio.sleep(0)
        await asyncio.wait_for(_cancel_all([t]), 10)
        return log, t.cancelled()

    assert asyncio.run(scenario()) == (["swallowed"], True)
