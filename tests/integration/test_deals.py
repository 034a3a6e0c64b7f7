"""Scores and alerts on the real broker: simulated committees over HTTP -> Kafka -> Faust -> sink -> ClickHouse
raise the expected alerts at the expected simulated times; embedded mode raises the same ones."""
import asyncio
import math
import pathlib

import httpx

from dealbeacon.sim.simulate import replay
from dealbeacon.sim.simulator import DAY_MS, Deal, op_records, plan, simulate, stage_for
from dealbeacon.core.settings import Settings
from streams import processors
from streams.alerts import alert_config
from tests.support.data import SQL_AUTH
from tests.support.servers import Server

START = 1_767_225_600_000  # 2026-01-01, the simulated timeline (server-side senders keep their timestamps)
TICK_MS = 12 * 3_600_000
SITE, SECRET = "acme", "secret"
CADENCE_DAYS = {"qualification": 7, "proposal": 5, "negotiation": 3}  # the documented stale-after per stage
ALERT_COLS = "toString(alert_id), room_id, kind, severity, toUnixTimestamp64Milli(at), stakeholders"


def scripted_deal() -> Deal:
    """Engaged for four days, then silent until it closes: quiet alerts at times the spec fixes."""
    champ, cfo = "scripted-champion", "scripted-cfo"
    base = {"room_id": "scripted", "visitor_id": "v-0123456789", "site": SITE, "token_status": "valid"}

    def ev(day, minute, etype, sid, **kw):
        return {**base, "stakeholder_id": sid, "visitor_id": f"v-{sid[-6:]}00000", "type": etype,
                "ts": START + day * DAY_MS + 10 * 3_600_000 + minute * 60_000, **kw}

    events = [ev(0, 0, "room_view", champ), ev(0, 1, "content_view", champ, content_id="proposal"),
              ev(1, 0, "content_view", cfo, content_id="pricing"),
              *[ev(2, p, "content_progress", champ, content_id="proposal", page=p, progress_pct=round(100 * p / 12, 1))
                for p in range(1, 13)],
              ev(3, 0, "content_view", cfo, content_id="pricing")]
    return Deal("scripted", START, [(champ, "champion"), (cfo, "economic_buyer")], events, won=False, closed_day=45)


HOLIDAY_DAY = (START + 11 * DAY_MS) // DAY_MS  # Monday 2026-01-12, the site's holiday (HOLIDAYS below)


def weekday_days(a: int, b: int) -> float:
    """Days of Monday-to-Friday time (UTC) between two instants, day by day, the site's holiday left out."""
    total, day = 0.0, a // DAY_MS
    while day * DAY_MS < b:
        lo, hi = max(a, day * DAY_MS), min(b, (day + 1) * DAY_MS)
        if (day + 3) % 7 < 5 and day != HOLIDAY_DAY:  # 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays
            total += (hi - lo) / DAY_MS
        day += 1
    return total


def expected_quiet(deal: Deal) -> list[tuple[str, int]]:
    """Quiet alerts by the documented rule, computed here on its own: at each tick, quiet working days (weekends
    do not count) over the norm, the longer of the stage's cadence and what is unusual for the room (a room
    active on n working days of the span between its opening and its last visit has rate (n + 1) / (span + 1 +
    1/0.3); unusual once (1 - rate)^days < 0.002); one alert per severity step (over 1x low, 2x medium, 3x high)
    per quiet stretch; none once the deal is closed."""
    last = max(e["ts"] for e in deal.events)
    active = {e["ts"] // DAY_MS for e in deal.events if (e["ts"] // DAY_MS + 3) % 7 < 5}
    rate = (len(active) + 1) / (weekday_days(deal.created_ms, last) + 1 + 1 / 0.3)
    unusual = math.log(0.002) / math.log(1 - rate)
    out, fired = [], set()
    for t in range(START + TICK_MS, START + 50 * DAY_MS + 1, TICK_MS):
        stage = stage_for((t - START) // DAY_MS, deal)
        if stage not in CADENCE_DAYS or t <= last:
            continue
        over = weekday_days(last, t) / max(CADENCE_DAYS[stage], unusual)
        sev = "high" if over >= 3 else "medium" if over >= 2 else "low" if over > 1 else None
        if sev and sev not in fired:
            fired.add(sev)
            out.append((sev, t))
    return out


def casebook_deal() -> Deal:
    """A week as a committee lives it, in one room: a champion on a second device, a share, the same share
    again and one to an invited colleague, the shared link's first visit by someone new (anonymous), a
    weekend and a holiday (Monday 2026-01-12, DEALBEACON_HOLIDAYS) with no visits, then silence."""
    champ, cfo, legal = "cb-champion", "cb-cfo", "cb-legal"

    def ev(day, hour, etype, sid, visitor, **kw):
        return {"room_id": "casebook", "site": SITE, "stakeholder_id": sid, "visitor_id": visitor,
                "token_status": "valid" if sid else "none", "type": etype,
                "ts": START + day * DAY_MS + hour * 3_600_000, **kw}

    events = [ev(4, 9, "room_view", champ, "v-cb0000a1"), ev(4, 9.1, "content_view", champ, "v-cb0000a1", content_id="proposal"),
              ev(4, 9.5, "room_view", cfo, "v-cb0000c1"), ev(4, 9.6, "content_view", cfo, "v-cb0000c1", content_id="pricing"),
              ev(4, 16, "room_view", champ, "v-cb0000a2"),  # the champion's phone
              ev(5, 10, "share", champ, "v-cb0000a1", share_channel="email", share_to="ext@partner.example"),
              ev(5, 10.1, "share", champ, "v-cb0000a1", share_channel="email", share_to="EXT@partner.example "),
              ev(5, 10.2, "share", champ, "v-cb0000a1", share_channel="email", share_to=f"{cfo}@buyer.example"),
              ev(6, 11, "room_view", "", "v-cb0000e1"), ev(6, 11.1, "content_view", "", "v-cb0000e1", content_id="proposal"),
              ev(7, 10, "room_view", champ, "v-cb0000a2"), ev(8, 10, "room_view", champ, "v-cb0000a1"),
              ev(12, 10, "room_view", cfo, "v-cb0000c1")]
    return Deal("casebook", START, [(champ, "champion"), (cfo, "economic_buyer"), (legal, "legal")], events,
                won=False, closed_day=45)


HOLIDAYS = "2026-01-12"


def scenario():
    deals = [scripted_deal(), casebook_deal(), *simulate(21, 4, START, days=50)]
    return deals, plan(deals, SITE, SECRET, 4_000_000_000, tick_ms=TICK_MS, until_ms=START + 50 * DAY_MS)


def reference_rows(deals, ops) -> dict[str, list[dict]]:
    """The same records through the pure core in this process (what both modes must store)."""
    states, rows = {}, {}
    acfg = alert_config(Settings(holidays=HOLIDAYS))
    for recs in op_records(ops, SITE, deals):
        changed, out = processors.process_rooms(recs, states.get, lambda s: [k for k in states if k.startswith(b"acme/")],
                                                acfg=acfg)
        states.update(changed)
        for table, table_rows in out.items():
            rows.setdefault(table, []).extend(table_rows)
    return rows


def reference_alerts(rows: dict[str, list[dict]]) -> list[list]:
    return sorted([a["alert_id"], a["room_id"], a["kind"], a["severity"], a["at"], a["stakeholders"]]
                  for a in rows.get("alerts", []))


def test_simulated_committees_raise_the_expected_alerts_in_both_modes(stack_factory, tmp_path):
    deals, ops = scenario()
    ref = reference_rows(deals, ops)
    want = reference_alerts(ref)
    n_fields = len({(r["room_id"], r["field"], r["changed_at"]) for r in ref["deal_field_history"]})
    st = stack_factory()
    st.env["DEALBEACON_CLOCK"] = "external"
    st.env["DEALBEACON_HOLIDAYS"] = HOLIDAYS
    st.start()
    counts = asyncio.run(replay(st.url, SITE, SECRET, ops, deadline_s=300))
    n_events = sum(len(d.events) for d in deals)
    assert counts["accepted"] == n_events and counts["rejected"] == 0
    st.wait_rows("SELECT count() FROM events FINAL", [[n_events]], timeout=180)
    st.wait_rows("SELECT count() FROM alerts FINAL", [[len(want)]], timeout=180)
    # each table reaches the sink on its own: the field history too, before it is read and compared
    st.wait_rows("SELECT count() FROM deal_field_history FINAL", [[n_fields]], timeout=180)
    st.wait_rows("SELECT count() FROM room_stage_history FINAL", [[len(ref["room_stage_history"])]], timeout=180)
    distributed = st.sql(f"SELECT {ALERT_COLS} FROM alerts FINAL ORDER BY 1")

    scripted = sorted(((a[3], a[4]) for a in distributed if a[1] == "scripted" and a[2] == "quiet"), key=lambda x: x[1])
    assert scripted == expected_quiet(deals[0])
    kinds = {(a[2], a[4]) for a in distributed if a[1] == "scripted"}
    assert ("proposal_read", deals[0].events[-2]["ts"]) in kinds  # page 12 of 12
    assert ("pricing_revisited", deals[0].events[-1]["ts"]) in kinds  # pricing again on another day
    # the casebook week: one share is news once, and its recipient's first visit names who shared it; the
    # champion's phone, the repeat share and the share to an invited colleague are not news; no "hot" on the
    # first days (no baseline yet); the people who stop coming decay to Dark with no event at all
    book = [(a[2], a[4]) for a in distributed if a[1] == "casebook"]
    cb = deals[1].events
    assert sorted(x for x in book if x[0] == "new_stakeholder") == [("new_stakeholder", cb[5]["ts"]), ("new_stakeholder", cb[8]["ts"])]
    evidence = dict(st.sql("SELECT toUnixTimestamp64Milli(at), evidence FROM alerts FINAL WHERE room_id = 'casebook' "
                           "AND kind = 'new_stakeholder'"))
    assert "likely ext@partner.example, shared by cb-champion" in evidence[cb[8]["ts"]]
    assert not [x for x in book if x[0] == "hot"]
    assert {"champion_dark", "stakeholder_dark"} <= {k for k, _ in book}
    assert distributed == want
    assert len({a[2] for a in want}) >= 5, "the scenario should exercise several rules"

    # scores are stored: history per batch and the latest per deal, with reasons
    latest = st.sql("SELECT room_id, score, engaged, invited, reasons FROM deal_scores_latest ORDER BY room_id")
    assert [r[0] for r in latest] == sorted(d.room_id for d in deals)
    assert all(0 <= r[1] <= 100 and r[4].startswith("[") for r in latest)
    assert st.sql("SELECT count() > 0, min(score) >= 0 FROM stakeholder_scores") == [[1, 1]]
    stages = st.sql("SELECT to_stage FROM room_stage_history FINAL WHERE room_id = 'scripted' ORDER BY changed_at")
    assert stages == [["qualification"], ["proposal"], ["negotiation"], ["closed_lost"]]
    # the deal field history and the KPI views built on it, through Kafka and the sink as in embedded mode
    q_fields = "SELECT room_id, field, old_value, new_value, toUnixTimestamp64Milli(changed_at) FROM deal_field_history FINAL ORDER BY ALL"
    q_kpis = ("SELECT stage, entered, converted, conversion_pct, median_days FROM kpi_stage_funnel ORDER BY ALL",
              "SELECT owner, closed_deals, won_deals, cycle_mean_days FROM kpi_outcomes ORDER BY ALL",
              "SELECT due_month, due_deals, slipped_deals FROM kpi_slippage ORDER BY ALL")
    fields = st.sql(q_fields)
    assert [r[2:4] for r in sorted(fields, key=lambda r: r[4]) if r[0] == "scripted" and r[1] == "stage"] == [
        ["", "qualification"], ["qualification", "proposal"], ["proposal", "negotiation"], ["negotiation", "closed_lost"]]
    assert {r[1] for r in fields} == {"stage", "owner", "amount", "expected_close"}
    dist_kpis = [st.sql(q) for q in q_kpis]
    assert dist_kpis[0] and dist_kpis[1]

    emb_dir = tmp_path / "embedded"
    emb_dir.mkdir()
    (emb_dir / "sites.json").write_text(pathlib.Path(st.sites_file).read_text())
    emb = Server(emb_dir, "--no-demo", env={"DEALBEACON_CLOCK": "external", "DEALBEACON_HOLIDAYS": HOLIDAYS}).start()
    try:
        asyncio.run(replay(emb.url, SITE, SECRET, ops, deadline_s=300))
        emb.wait_applied()  # everything answered 202 is in chdb before the two modes are compared
        q = f"SELECT {ALERT_COLS} FROM alerts FINAL ORDER BY 1 FORMAT JSONCompact"
        embedded = httpx.post(f"http://127.0.0.1:{emb.sql_port}/", auth=SQL_AUTH, content=q).json()["data"]
        q = "SELECT room_id, toUnixTimestamp64Milli(at), score FROM deal_scores FINAL ORDER BY 1, 2 FORMAT JSONCompact"
        emb_scores = httpx.post(f"http://127.0.0.1:{emb.sql_port}/", auth=SQL_AUTH, content=q).json()["data"]
        emb_fields, *emb_kpis = [httpx.post(f"http://127.0.0.1:{emb.sql_port}/", auth=SQL_AUTH,
                                            content=q + " FORMAT JSONCompact").json()["data"] for q in (q_fields, *q_kpis)]
    finally:
        emb.stop()
    assert embedded == distributed
    assert emb_fields == fields and emb_kpis == dist_kpis
    # score history holds a row per room per batch, and batches differ (the worker folds every message that
    # came within its window together): where both modes wrote a row at the same instant it is the same
    # score, and each deal's latest score is the same
    dist_scores = st.sql(q.replace(" FORMAT JSONCompact", ""))
    emb_at, dist_at = {(r, at): v for r, at, v in emb_scores}, {(r, at): v for r, at, v in dist_scores}
    both = emb_at.keys() & dist_at.keys()
    assert len(both) >= 10 * len(deals) and all(emb_at[k] == dist_at[k] for k in both)
    latest = {r: (at, v) for r, at, v in sorted(dist_scores)}
    assert {r: (at, v) for r, at, v in sorted(emb_scores)} == latest


def test_wall_clock_timer_ticks_rooms_through_the_keyed_agent(stack_factory):
    """Production time: the worker's Faust timer sends a tick per room to the events topic; the keyed agent
    runs the time rules at the wall clock. A deal opened 40 days ago and last seen 35 days ago is quiet (one visit:
    a young room, so some 20 silent working days are unusual for it; 25 have passed)."""
    import time

    st = stack_factory()
    st.env["DEALBEACON_TICK_INTERVAL_S"] = "1"
    st.start()
    now = int(time.time() * 1000)
    auth = {"Authorization": f"Bearer {SECRET}", "User-Agent": "crm-sync/1"}
    r = httpx.put(f"{st.url}/v1/sites/{SITE}/rooms/deal-wall", headers=auth,
                  json={"stage": "proposal", "owner": "sam", "updated_at": now - 40 * DAY_MS,
                        "stakeholders": [{"id": "ops", "role": "champion"}, {"id": "cfo", "role": "economic_buyer"}]})
    assert r.status_code == 202, r.text
    old = {"event_id": "5f0c5c1e-0000-4000-8000-000000000001", "type": "content_view", "room_id": "deal-wall",
           "visitor_id": "v-1", "session_id": "s-1", "ts": now - 35 * DAY_MS, "content_id": "pricing"}
    r = httpx.post(f"{st.url}/v1/events", headers=auth, json={"site": SITE, "sent_at": now, "events": [old]})
    assert r.status_code == 202 and r.json()["accepted"] == 1
    st.wait_rows("SELECT kind, severity, owner FROM alerts FINAL WHERE room_id = 'deal-wall' AND kind = 'quiet'",
                 [["quiet", "low", "sam"]], timeout=90)
    (at,) = st.sql("SELECT toUnixTimestamp64Milli(at) FROM alerts FINAL WHERE kind = 'quiet'")[0]
    assert now <= int(at) <= int(time.time() * 1000)  # raised at the wall clock, by the timer's tick


def test_a_refitted_model_reaches_every_partitions_rooms_through_kafka(stack_factory):
    """The refit hands a model over as a site-wide record through the Kafka hand-off: rooms on every
    partition score with it from their next event, and so does a room opened after it (from a room of its
    partition, or from the next round's hand-over); each score row names it."""
    from dealbeacon.core.records import room_key
    from ingest.kafka import KafkaHandoff
    from streams.winmodel import PRIOR, WinModel

    st = stack_factory()
    st.start()
    rooms = [f"room-{c}" for c in "abcdefgh"]
    settings = Settings.from_env(st.env)
    parts = {zlib_partition(room_key({"site": SITE, "room_id": r}), settings.topic_partitions) for r in rooms[:-1]}
    auth = {"Authorization": f"Bearer {SECRET}", "User-Agent": "crm-sync/1"}
    n = [0]

    def visit(room):
        n[0] += 1
        ev = {"event_id": f"5f0c5c1e-0000-4000-8000-{n[0]:012d}", "type": "room_view", "room_id": room,
              "visitor_id": "v-1", "session_id": "s-1", "ts": START + n[0]}
        r = httpx.post(f"{st.url}/v1/events", headers=auth, json={"site": SITE, "sent_at": START + n[0], "events": [ev]})
        assert r.status_code == 202 and r.json()["accepted"] == 1

    for room in rooms[:-1]:
        visit(room)
    st.wait_rows("SELECT uniqExact(room_id) FROM deal_scores FINAL WHERE model_version = 'prior-1'", [[len(rooms) - 1]],
                 timeout=60)
    model = WinModel("fit-integration", tuple(tuple([0.5] + list(band[1:])) for band in PRIOR), 60, 60)

    async def hand_over():
        h = KafkaHandoff(settings)
        await h.start()
        try:
            await h.submit([model.record(SITE, START + 100)], [])
        finally:
            await h.stop()
    asyncio.run(hand_over())
    for room in rooms:  # the last one opens after the model was handed over
        visit(room)
    st.wait_rows("SELECT uniqExact(room_id) FROM deal_scores FINAL WHERE model_version = 'fit-integration' "
                 "AND room_id != 'room-h'", [[len(rooms) - 1]], timeout=60)
    assert len(parts) > 1, "the rooms should live on several partitions"
    # the new room took it from a room of its partition if it has one, else from the next round's hand-over
    asyncio.run(hand_over())
    visit("room-h")
    st.wait_rows("SELECT model_version FROM deal_scores FINAL WHERE room_id = 'room-h' ORDER BY at DESC LIMIT 1",
                 [["fit-integration"]], timeout=60)


def zlib_partition(key: bytes, n: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as aiokafka applies it (written apart from
    dealbeacon.kafka.topics.partition_for_key, which the worker uses)."""
    from aiokafka.partitioner import murmur2
    return (murmur2(key) & 0x7FFFFFFF) % n


def test_rooms_and_a_site_wide_tick_waiting_in_one_batch_raise_every_alert(stack_factory):
    """Rooms described while the worker is down, then a site-wide clock: the restarted worker takes them
    together (one batch per fetch), and the tick must reach every room born earlier in the batch, though
    none is saved in the table yet. Each raises room_unopened (nobody opened it in 30 days)."""
    st = stack_factory()
    st.env.update(DEALBEACON_CLOCK="external", DEALBEACON_WORKER_BATCH_MS="1500")
    st.start()
    st.procs["worker0"].stop()
    auth = {"Authorization": f"Bearer {SECRET}", "User-Agent": "crm-sync/1"}
    rooms = [f"batch-{i:02d}" for i in range(12)]
    for name in rooms:
        r = httpx.put(f"{st.url}/v1/sites/{SITE}/rooms/{name}", headers=auth,
                      json={"stage": "proposal", "owner": "sam", "updated_at": START,
                            "stakeholders": [{"id": f"{name}-cfo", "role": "economic_buyer"}]})
        assert r.status_code == 202, r.text
    r = httpx.post(f"{st.url}/v1/sites/{SITE}/clock", headers=auth, json={"now": START + 30 * DAY_MS})
    assert r.status_code == 202, r.text
    st.procs["worker0"].start()
    st.wait_rows("SELECT room_id FROM alerts FINAL WHERE kind = 'room_unopened' ORDER BY room_id",
                 [[name] for name in rooms], timeout=120)
