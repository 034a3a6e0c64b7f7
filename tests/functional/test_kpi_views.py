"""The KPI views on the real chdb engine, against values computed by hand from a fixture pipeline.

The fixture is a small sales team's first half of 2025: six deals of site ``acme`` (stage, amount,
expected-close and owner changes, won and lost), buyer engagement (two stakeholders in some rooms, one
in others, the seller's own team reading too), quotas, daily clock ticks, plus one deal of another site.
Records go through the real pure core (``process_batch``: room state machines, scores) and land in chdb;
every expectation below is computed in Python from the fixture's own timeline, never read back from a
view. Then the same records are replayed twice more (a fresh state machine, rows inserted again, as a
crashed worker or sink would) and every view must answer the same.
"""
from __future__ import annotations

import datetime as dt
import statistics
import uuid

import pytest

from sinks import kpi_sql
from streams.processors import process_batch

SITE = "acme"
DAY = 86_400_000
STAGES = ("prospecting", "qualification", "demo", "proposal", "negotiation", "closed_won", "closed_lost")
POS = {s: i + 1 for i, s in enumerate(STAGES)}


def ms(day: str, hour: int = 12) -> int:
    return int(dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC).timestamp() * 1000)


CATALOGUE = [{"id": "prop-v3", "kind": "proposal", "title": "Proposal", "pages": 5},
             {"id": "price-2025", "kind": "pricing", "title": "Pricing", "pages": 2},
             {"id": "soc2", "kind": "security", "title": "SOC 2"}]

# deal -> owner at creation, created day, amount, expected close; then (day, changes) updates
DEALS = {
    "d1": dict(owner="ana", created="2025-01-06", stage="qualification", amount=10_000.0, close="2025-03-31",
               updates=[("2025-01-20", {"stage": "proposal"}), ("2025-02-10", {"amount": 12_000.0}),
                        ("2025-03-10", {"stage": "closed_won"})]),
    "d2": dict(owner="ana", created="2025-01-13", stage="qualification", amount=20_000.0, close="2025-02-28",
               updates=[("2025-02-03", {"stage": "proposal"}), ("2025-02-20", {"expected_close": "2025-04-15"}),
                        ("2025-04-10", {"stage": "closed_lost"})]),
    "d3": dict(owner="ben", created="2025-02-03", stage="prospecting", amount=5_000.0, close="2025-03-15",
               updates=[("2025-02-10", {"stage": "qualification"}), ("2025-02-24", {"stage": "proposal"}),
                        ("2025-03-03", {"stage": "negotiation"}), ("2025-03-20", {"stage": "closed_won"})]),
    "d4": dict(owner="ben", created="2025-02-17", stage="qualification", amount=8_000.0, close="2025-05-30",
               updates=[("2025-03-01", {"owner": "ana"}), ("2025-03-05", {"stage": "proposal"})]),
    "d5": dict(owner="ana", created="2025-03-03", stage="qualification", amount=15_000.0, close="2025-06-30",
               updates=[("2025-03-24", {"stage": "closed_lost"})]),
    "d6": dict(owner="ben", created="2025-03-10", stage="qualification", amount=30_000.0, close="2025-04-30",
               updates=[("2025-03-17", {"stage": "proposal"}), ("2025-04-02", {"expected_close": "2025-05-15"}),
                        ("2025-04-28", {"stage": "closed_won"})]),
}
PEOPLE = {"d1": ["cfo", "cto"], "d2": ["cfo"], "d3": ["ops", "legal"], "d4": ["cto"], "d5": [], "d6": ["cfo", "ops"]}
# buyer engagement: (deal, day, who, content, page, engaged seconds); who '' is an anonymous visitor
READS = [
    ("d1", "2025-01-08", "cfo", "prop-v3", 1, 120), ("d1", "2025-01-09", "cfo", "prop-v3", 3, 300),
    ("d1", "2025-01-15", "cto", "soc2", None, 240), ("d1", "2025-01-27", "cfo", "price-2025", 2, 180),
    ("d1", "2025-02-12", "cto", "prop-v3", 5, 200),
    ("d2", "2025-01-20", "cfo", "prop-v3", 2, 60), ("d2", "2025-02-05", "cfo", "price-2025", 1, 30),
    ("d3", "2025-02-05", "ops", "prop-v3", 4, 400), ("d3", "2025-02-12", "legal", "soc2", None, 500),
    ("d3", "2025-02-26", "ops", "price-2025", 2, 90), ("d3", "2025-03-05", "legal", "prop-v3", 5, 100),
    ("d4", "2025-02-20", "cto", "prop-v3", 1, 45),
    ("d6", "2025-03-11", "cfo", "prop-v3", 5, 600), ("d6", "2025-03-12", "ops", "prop-v3", 2, 150),
    ("d6", "2025-03-20", "", "price-2025", 1, 80), ("d6", "2025-04-03", "ops", "soc2", None, 300),
]
TEAM_READS = [("d1", "2025-01-10", "rep-ana", "price-2025", 2, 900), ("d6", "2025-03-13", "rep-ben", "prop-v3", 5, 700)]
QUOTAS = [("ana", "2025-Q1", "2025-01-01", "2025-03-31", 40_000.0), ("ana", "2025-Q2", "2025-04-01", "2025-06-30", 30_000.0),
          ("ben", "2025-Q2", "2025-04-01", "2025-06-30", 50_000.0), ("_team", "2025-Q2", "2025-04-01", "2025-06-30", 100_000.0)]


def _event(room: str, day: str, who: str, content: str, page, seconds: int, n: int, etype: str, site: str = SITE) -> dict:
    ts = ms(day, 10) + n * 60_000
    visitor = f"v-{who or 'anon'}-{room}"
    rec = {"rv": 1, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{site}/{room}/{day}/{who}/{content}/{etype}/{n}")),
           "type": etype, "site": site, "room_id": room, "visitor_id": visitor, "session_id": f"s-{visitor}-{day}",
           "stakeholder_id": who, "token_status": "valid" if who else "none", "ts": ts, "client_ts": ts,
           "received_at": ts + 500, "ip": "", "user_agent": "", "content_id": content}
    if etype == "engagement":
        rec["engaged_ms"] = seconds * 1000
    if page is not None and etype != "content_view":
        rec["page"] = page
    return rec


def fixture_records() -> list[tuple[int, dict]]:
    """(time, record) in time order: room updates, engagement (view, progress, engagement per read), quotas,
    a clock tick every day."""
    out: list[tuple[int, dict]] = []
    for room, d in DEALS.items():
        team = [{"id": "rep-" + d["owner"], "email": f"{d['owner']}@seller.example", "internal": True}]
        body = {"name": room.upper(), "owner": d["owner"], "stage": d["stage"], "amount": d["amount"],
                "expected_close": d["close"], "content": CATALOGUE, "proposal_shared_at": ms(d["created"]),
                "stakeholders": [{"id": p, "email": f"{p}@{room}.example", "role": "champion" if i == 0 else "other"}
                                 for i, p in enumerate(PEOPLE[room])] + team}
        out.append((ms(d["created"], 9), {"record": "room", "rv": 1, "site": SITE, "room_id": room,
                                          "updated_at": ms(d["created"], 9), **body}))
        for day, change in d["updates"]:
            out.append((ms(day, 9), {"record": "room", "rv": 1, "site": SITE, "room_id": room,
                                     "updated_at": ms(day, 9), **change}))
    for room, day, who, content, page, seconds in READS + TEAM_READS:
        for k, etype in enumerate(("content_view", "content_progress", "engagement")):
            if etype == "content_progress" and page is None:
                continue
            rec = _event(room, day, who, content, page, seconds, k, etype)
            out.append((rec["ts"], rec))
    # another site's won deal, with engagement: never in acme's figures
    out.append((ms("2025-01-06", 9), {"record": "room", "rv": 1, "site": "other", "room_id": "x1", "updated_at": ms("2025-01-06", 9),
                                      "owner": "ana", "stage": "qualification", "amount": 99_000.0, "expected_close": "2025-02-28",
                                      "content": CATALOGUE}))
    out.append((ms("2025-02-01", 9), {"record": "room", "rv": 1, "site": "other", "room_id": "x1",
                                      "updated_at": ms("2025-02-01", 9), "stage": "closed_won"}))
    rec = _event("x1", "2025-01-07", "cfo", "prop-v3", 5, 999, 2, "engagement", site="other")
    out.append((rec["ts"], rec))
    for owner, period, start, end, amount in QUOTAS:
        out.append((ms("2025-01-01", 0), {"record": "quota", "site": SITE, "owner": owner, "period": period,
                                          "period_start": start, "period_end": end, "amount": amount,
                                          "updated_at": ms("2025-01-01", 0)}))
    day = ms("2025-01-06", 23)
    while day <= ms("2025-05-31", 23):
        for site in (SITE, "other"):
            out.append((day, {"record": "clock", "site": site, "now": day}))
        day += DAY
    return sorted(out, key=lambda p: (p[0], 0 if p[1].get("record") == "room" else 1))


def run_pipeline(store, cut: int = 0) -> dict[str, list[dict]]:
    """The records through the real core, one batch per instant (as ingest would hand them off); rows into chdb,
    in blocks of ``cut`` rows when given (a replay cut at other boundaries: the engine's block dedup cannot
    catch it, only the views' FINAL and distinct counts can)."""
    states: dict = {}
    recs = fixture_records()
    tables: dict[str, list[dict]] = {}
    i = 0
    while i < len(recs):
        j = i
        while j < len(recs) and recs[j][0] == recs[i][0]:
            j += 1
        batch = [r for _, r in recs[i:j]]
        changed, rows = process_batch(batch, [], states.get, lambda site: [k for k in states if k.startswith(f"{site}/".encode())])
        states.update(changed)
        for t, rs in rows.items():
            tables.setdefault(t, []).extend(rs)
        i = j
    for t, rs in tables.items():
        size = cut or len(rs)
        for k in range(0, len(rs), size):
            store.insert(t, rs[k:k + size])
    return tables


@pytest.fixture
def kpi_store(store):
    store.execute("TRUNCATE TABLE deal_stages")
    kpi_sql.sync_stages(store, STAGES, ("closed_won", "closed_lost"), ("closed_won",), 1)
    rows = run_pipeline(store)
    return store, rows


# -- the fixture's timeline, by hand
def history(room: str) -> list[tuple[str, str]]:
    """(day, stage) entries of a deal, creation first."""
    d = DEALS[room]
    return [(d["created"], d["stage"])] + [(day, c["stage"]) for day, c in d["updates"] if "stage" in c]


def current(room: str, field: str):
    d = DEALS[room]
    value = d[{"expected_close": "close"}.get(field, field)]
    for _, change in d["updates"]:
        value = change.get(field, value)
    return value


def closed_at(room: str) -> str | None:
    last_day, stage = history(room)[-1]
    return last_day if stage.startswith("closed") else None


def won(room: str) -> bool:
    return history(room)[-1][1] == "closed_won"


def days_between(a: str, b: str, ha: int = 9, hb: int = 9) -> float:
    return (ms(b, hb) - ms(a, ha)) / DAY


def month(day: str) -> str:
    return day[:7] + "-01"


def q(values, level):
    """ClickHouse quantileExactInclusive: linear interpolation between order statistics."""
    values = sorted(values)
    if not values:
        return None
    pos = (len(values) - 1) * level
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def approx(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) < 1e-6 * max(1.0, abs(float(b)))


def rows_of(store, sql: str) -> list[tuple]:
    return [tuple(r) for r in store.query(sql)]


def expected_funnel():
    out = {}
    for room in DEALS:
        h = history(room)
        cohort = month(DEALS[room]["created"])
        for i, (day, stage) in enumerate(h):
            key = (current(room, "owner"), cohort, stage)
            e = out.setdefault(key, {"entered": set(), "converted": set(), "days": []})
            e["entered"].add(room)
            later = [POS[s] for _, s in h[i + 1:] if s != "closed_lost"]
            if not stage.startswith("closed") and later and max(later) > POS[stage]:
                e["converted"].add(room)
            if i + 1 < len(h):
                e["days"].append(days_between(day, h[i + 1][0]))
    return out


def check_all(store):
    """Every view against the hand-computed values."""
    today = dt.date.today()
    # -- stage funnel
    got = {(r[0], r[1], r[2]): r[3:] for r in rows_of(store, "SELECT owner, toString(cohort_month), stage, entered, converted, "
                                                            "conversion_pct, median_days, p90_days FROM kpi_stage_funnel "
                                                            f"WHERE site = '{SITE}'")}
    want = expected_funnel()
    assert set(got) == set(want)
    for key, e in want.items():
        entered, converted, pct, median, p90 = got[key]
        assert (entered, converted) == (len(e["entered"]), len(e["converted"])), key
        assert approx(pct, None if key[2].startswith("closed") else round(100 * len(e["converted"]) / len(e["entered"]), 1)), key
        assert approx(median, q(e["days"], 0.5)) and approx(p90, q(e["days"], 0.9)), (key, median, p90, e["days"])
    # -- outcomes: win rate by count and amount, average deal size, cycle length, velocity
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT owner, toString(close_month), closed_deals, won_deals, won_amount, "
                                                       "closed_amount, win_rate, win_rate_amount, avg_deal_size, cycle_mean_days, "
                                                       "cycle_median_days, cycle_p90_days, sales_velocity_per_day FROM kpi_outcomes "
                                                       f"WHERE site = '{SITE}'")}
    groups: dict = {}
    for room in DEALS:
        if closed_at(room):
            groups.setdefault((current(room, "owner"), month(closed_at(room))), []).append(room)
    assert set(got) == set(groups)
    for key, rooms in groups.items():
        w = [r for r in rooms if won(r)]
        won_amount = sum(current(r, "amount") for r in w)
        closed_amount = sum(current(r, "amount") for r in rooms)
        cycles = [days_between(DEALS[r]["created"], closed_at(r)) for r in w]
        mean = statistics.fmean(cycles) if cycles else None
        want_row = (len(rooms), len(w), won_amount, closed_amount, len(w) / len(rooms), won_amount / closed_amount,
                    won_amount / len(w) if w else None, mean, q(cycles, 0.5), q(cycles, 0.9),
                    won_amount / mean if mean else None)
        assert all(approx(a, b) for a, b in zip(got[key], want_row)), (key, got[key], want_row)
    # -- lead to close per cohort
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT owner, toString(cohort_month), created, closed_deals, won_deals, "
                                                       f"lead_to_close FROM kpi_lead_to_close WHERE site = '{SITE}'")}
    cohorts: dict = {}
    for room in DEALS:
        cohorts.setdefault((current(room, "owner"), month(DEALS[room]["created"])), []).append(room)
    assert set(got) == set(cohorts)
    for key, rooms in cohorts.items():
        nwon = sum(won(r) for r in rooms)
        assert got[key][:3] == (len(rooms), sum(bool(closed_at(r)) for r in rooms), nwon) and approx(got[key][3], nwon / len(rooms))
    # -- slippage: deals due in a month (a close date ever held in it) that did not close by its end
    due: dict = {}
    for room, d in DEALS.items():
        held = [d["close"]] + [c["expected_close"] for _, c in d["updates"] if "expected_close" in c]
        for m in sorted({month(h) for h in held}):
            last_due = max(h for h in held if month(h) == m)
            end = (dt.date.fromisoformat(m) + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            c = closed_at(room)
            in_time = c is not None and dt.date.fromisoformat(c) <= end
            slipped = not in_time and (dt.date.fromisoformat(current(room, "expected_close")) > end or today > end)
            if slipped:
                until = dt.date.fromisoformat(c) if c else max(dt.date.fromisoformat(current(room, "expected_close")), today)
                slip = (until - dt.date.fromisoformat(last_due)).days
            else:
                slip = None
            due.setdefault((current(room, "owner"), m), []).append((slipped, slip))
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT owner, toString(due_month), due_deals, slipped_deals, slippage_rate, "
                                                       f"avg_slip_days FROM kpi_slippage WHERE site = '{SITE}'")}
    assert set(got) == set(due)
    for key, items in due.items():
        slips = [s for ok, s in items if ok]
        assert got[key][:2] == (len(items), len(slips)), (key, got[key], items)
        assert approx(got[key][2], len(slips) / len(items))
        assert approx(got[key][3], statistics.fmean(slips) if slips else None) or (not slips and got[key][3] != got[key][3]), key
    pushes = rows_of(store, "SELECT room_id, toString(old_close), toString(new_close), pushed_days FROM kpi_close_date_changes "
                            f"WHERE site = '{SITE}' AND old_close IS NOT NULL ORDER BY room_id")
    assert pushes == [("d2", "2025-02-28", "2025-04-15", 46), ("d6", "2025-04-30", "2025-05-15", 15)]
    # -- coverage and attainment per owner and quota period (open pipeline by expected close, won by close date)
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT owner, period, quota, won_amount, open_pipeline, attainment, coverage "
                                                       f"FROM kpi_coverage WHERE site = '{SITE}'")}
    assert set(got) == {(o, p) for o, p, *_ in QUOTAS}
    for owner, period, start, end, quota in QUOTAS:
        mine = [r for r in DEALS if current(r, "owner") == owner or owner == "_team"]  # the team: every owner's deals
        won_amount = sum(current(r, "amount") for r in mine if won(r) and start <= closed_at(r) <= end)
        pipeline = sum(current(r, "amount") for r in mine if not closed_at(r) and start <= current(r, "expected_close") <= end)
        want_row = (quota, won_amount, pipeline, won_amount / quota, pipeline / (quota - won_amount) if quota > won_amount else None)
        assert all(approx(a, b) for a, b in zip(got[(owner, period)], want_row)), (owner, period, got[(owner, period)], want_row)
    # -- stakeholder coverage: engaged people at close (the last snapshot before it), single vs multi-threaded
    threads: dict = {}
    for room in DEALS:
        if closed_at(room):
            engaged = len({who for rm, day, who, *_ in READS if rm == room and who and ms(day, 10) < ms(closed_at(room), 9)})
            threads.setdefault("multi" if engaged >= 2 else "single", []).append(won(room))
    got = {r[0]: r[1:] for r in rows_of(store, f"SELECT threading, deals, won_deals, win_rate FROM kpi_threading WHERE site = '{SITE}'")}
    assert got == {k: (len(v), sum(v), sum(v) / len(v)) for k, v in threads.items()}
    # -- content effectiveness: buyers' engaged minutes per content kind, won vs lost (the team's reading left out)
    kinds = {c["id"]: c["kind"] for c in CATALOGUE}
    outcome_deals = {o: [r for r in DEALS if closed_at(r) and won(r) == (o == "won")] for o in ("won", "lost")}
    eff: dict = {}
    for room, day, who, content, page, seconds in READS:
        c = closed_at(room)
        if c and ms(day, 10) < ms(c, 9):
            o = "won" if won(room) else "lost"
            e = eff.setdefault((kinds[content], o), [0, set()])
            e[0] += seconds
            e[1].add(room)
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT kind, outcome, deals, deals_engaged, engaged_minutes, minutes_per_deal "
                                                       f"FROM kpi_content_effectiveness WHERE site = '{SITE}'")}
    assert set(got) == set(eff)
    for (kind, o), (seconds, rooms) in eff.items():
        n = len(outcome_deals[o])
        assert got[(kind, o)][:2] == (n, len(rooms)) and approx(got[(kind, o)][2], seconds / 60) \
            and approx(got[(kind, o)][3], seconds / 60 / n), (kind, o, got[(kind, o)])
    # -- content opened during a stage stay that advanced
    adv: dict = {}
    for room in DEALS:
        h = history(room)
        for i, (day, stage) in enumerate(h[:-1]):
            later = [POS[s] for _, s in h[i + 1:] if s != "closed_lost"]
            if stage.startswith("closed") or not later or max(later) <= POS[stage]:
                continue
            a = adv.setdefault(stage, {"n": 0, "kinds": {}})
            a["n"] += 1
            for rm, rday, who, content, *_ in READS:
                if rm == room and ms(day, 9) <= ms(rday, 10) < ms(h[i + 1][0], 9):
                    a["kinds"].setdefault(kinds[content], set()).add(day)
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT stage, kind, advances, advances_with_kind, share "
                                                       f"FROM kpi_content_before_advance WHERE site = '{SITE}'")}
    want = {(s, k): (a["n"], len(days), len(days) / a["n"]) for s, a in adv.items() for k, days in a["kinds"].items()}
    assert got == want
    # -- page drop-off: readers per page (a reader reached every page up to the last one they read)
    last: dict = {}
    for room, day, who, content, page, _ in READS:
        if page:
            k = (content, room, who or f"visitor:v-anon-{room}")
            last[k] = max(last.get(k, 0), page)
    drop: dict = {}
    for (content, _, _), lp in last.items():
        for p in range(1, lp + 1):
            d = drop.setdefault((content, p), [0, 0])
            d[0] += 1
            d[1] += lp == p
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT content_id, page, readers, stopped_here FROM kpi_page_dropoff "
                                                       f"WHERE site = '{SITE}'")}
    assert got == {k: tuple(v) for k, v in drop.items()}
    # -- time to first buyer engagement after the room was shared (created)
    firsts: dict = {}
    for room, d in DEALS.items():
        reads = [ms(day, 10) for rm, day, *_ in READS if rm == room]
        hours = (min(reads) - ms(d["created"], 9)) / 3_600_000 if reads else None
        firsts.setdefault((current(room, "owner"), month(d["created"])), []).append(hours)
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT owner, toString(cohort_month), deals, engaged_deals, median_hours, "
                                                       f"p90_hours FROM kpi_first_engagement WHERE site = '{SITE}'")}
    assert set(got) == set(firsts)
    for key, hs in firsts.items():
        real = [h for h in hs if h is not None]
        assert got[key][:2] == (len(hs), len(real)), key
        if real:
            assert approx(got[key][2], q(real, 0.5)) and approx(got[key][3], q(real, 0.9)), (key, got[key], real)


def check_engagement_at_age(store, rows: dict[str, list[dict]]):
    """Win rate by band and by score decile at day 14 and 30: the snapshot is each closed deal's last
    ``deal_scores`` row at that age (taken here from the rows the core produced), for deals still open then."""
    snaps: dict = {}
    for age in (14, 30):
        for room in DEALS:
            c = closed_at(room)
            cut = ms(DEALS[room]["created"], 9) + age * DAY
            if not c or ms(c, 9) <= cut:
                continue
            mine = [r for r in rows["deal_scores"] if r["site"] == SITE and r["room_id"] == room and r["at"] <= cut]
            if mine:
                top = max(mine, key=lambda r: r["at"])
                snaps.setdefault(age, []).append((room, top["score"], top["band"], top["win_probability"], won(room)))
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT age_days, band, deals, won_deals, mean_win_probability "
                                                       f"FROM kpi_win_by_band WHERE site = '{SITE}'")}
    want: dict = {}
    for age, items in snaps.items():
        for room, score, band, wp, w in items:
            want.setdefault((age, band), []).append((w, wp))
    assert set(got) == set(want) and want, (got, want)
    for key, items in want.items():
        assert got[key][:2] == (len(items), sum(w for w, _ in items))
        assert approx(got[key][2], statistics.fmean(wp for _, wp in items))
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT age_days, engagement, deals, won_deals "
                                                       f"FROM kpi_win_by_engagement WHERE site = '{SITE}'")}
    tiers: dict = {}
    for age, items in snaps.items():
        for room, score, band, wp, w in items:
            tiers.setdefault((age, "high" if score >= 80 else "medium" if score >= 50 else "low"), []).append(w)
    assert got == {k: (len(v), sum(v)) for k, v in tiers.items()}
    got = {(r[0], r[1]): r[2:] for r in rows_of(store, "SELECT age_days, decile, deals, won_deals, min_score "
                                                       f"FROM kpi_win_by_decile WHERE site = '{SITE}'")}
    want = {}
    for age, items in snaps.items():
        ordered = sorted(items, key=lambda x: (x[1], x[0]))
        n = len(ordered)
        for i, (room, score, band, wp, w) in enumerate(ordered):  # ntile(10): the first n % 10 tiles one larger
            size, extra = divmod(n, 10)
            tile, bound = 0, 0
            while bound <= i:
                tile += 1
                bound += size + (1 if tile <= extra else 0)
            want.setdefault((age, tile), []).append((w, score))
    assert set(got) == set(want)
    for key, items in want.items():
        assert got[key] == (len(items), sum(w for w, _ in items), min(s for _, s in items)), key


def test_every_kpi_view_matches_the_hand_computed_value(kpi_store):
    store, rows = kpi_store
    assert rows_of(store, "SELECT room_id, field, old_value, new_value FROM deal_field_history FINAL "
                          "WHERE site = 'acme' AND field != 'stage' AND old_value != '' ORDER BY room_id, changed_at") == [
        ("d1", "amount", "10000.0", "12000.0"), ("d2", "expected_close", "2025-02-28", "2025-04-15"),
        ("d4", "owner", "ben", "ana"), ("d6", "expected_close", "2025-04-30", "2025-05-15")]
    check_all(store)
    check_engagement_at_age(store, rows)


def test_replaying_every_record_twice_counts_nothing_twice(kpi_store):
    store, rows = kpi_store
    before = {v: rows_of(store, f"SELECT * FROM {v} ORDER BY ALL") for v in kpi_sql.ANALYST_VIEWS}
    tables = ("events", "room_stage_history", "deal_field_history", "deal_scores", "quotas")
    store.execute("SYSTEM STOP MERGES")  # keep the copies apart, as before a background merge
    try:
        held = {t: rows_of(store, f"SELECT count() FROM {t} WHERE site = 'acme'")[0][0] for t in tables}
        for cut in (7, 11):  # a worker replaying from scratch, a sink re-inserting what it already wrote
            again = run_pipeline(store, cut)
            assert {t: len(r) for t, r in again.items()} == {t: len(r) for t, r in rows.items()}
        for t in tables:  # the base tables really hold two more copies of every row
            assert rows_of(store, f"SELECT count() FROM {t} WHERE site = 'acme'")[0][0] == held[t] + 2 * sum(
                r["site"] == "acme" for r in rows[t]), t
        after = {v: rows_of(store, f"SELECT * FROM {v} ORDER BY ALL") for v in kpi_sql.ANALYST_VIEWS}
    finally:
        store.execute("SYSTEM START MERGES")
    for v in kpi_sql.ANALYST_VIEWS:
        assert after[v] == before[v], v
    check_all(store)
    check_engagement_at_age(store, rows)


def test_another_sites_deal_is_in_no_acme_figure(kpi_store):
    store, _ = kpi_store
    for v in kpi_sql.ANALYST_VIEWS:
        sites = {r[0] for r in rows_of(store, f"SELECT DISTINCT site FROM {v}")}
        assert sites <= {"acme", "other"}, v
    assert rows_of(store, "SELECT closed_deals, won_amount FROM kpi_outcomes WHERE site = 'other'") == [(1, 99_000.0)]
    assert rows_of(store, "SELECT sum(won_amount) FROM kpi_outcomes WHERE site = 'acme'") == [(47_000.0,)]


def test_the_grafana_dashboard_is_generated_from_the_chart_queries_and_runs_on_the_views(kpi_store):
    """deploy/grafana: the committed dashboard is the generated one, its data source is the provisioned one,
    and every panel's SQL (Grafana's variables and time macros filled in as Grafana would) runs on the views
    and gives the dashboard's numbers."""
    import pathlib

    import orjson
    import yaml

    from dealbeacon.app import grafana
    from ingest.analytics import CHARTS, chart_sql

    store, _ = kpi_store
    root = pathlib.Path(__file__).parents[2]
    committed = (root / "deploy/grafana/dashboards/dealbeacon-kpis.json").read_bytes()
    assert committed == grafana.dashboard_json(), "regenerate: dealbeacon grafana-dashboard > deploy/grafana/dashboards/dealbeacon-kpis.json"
    source = yaml.safe_load((root / "deploy/grafana/provisioning/datasources/clickhouse.yaml").read_text())["datasources"][0]
    board = orjson.loads(committed)
    assert {p["datasource"]["uid"] for p in board["panels"]} == {source["uid"]}
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    mounts = " ".join(compose["grafana"]["volumes"] + compose["clickhouse"]["volumes"])
    for path in ("deploy/grafana/provisioning", "deploy/grafana/dashboards", "deploy/clickhouse/users.d/grafana.xml"):
        assert (root / path).exists() and f"./{path}" in mounts, path
    for panel in board["panels"]:
        sql = panel["targets"][0]["rawSql"]
        for owner in ("", "ben"):
            filled = (sql.replace("${site}", "acme").replace("${owner}", owner)
                      .replace("$__fromTime", "toDateTime('2025-01-01 00:00:00')").replace("$__toTime", "toDateTime('2025-12-31 00:00:00')"))
            chart = next(c for c, (title, *_rest) in CHARTS.items() if title == panel["title"])
            params = {"from": "2025-01", "to": "2025-12", **({"owner": owner} if owner else {})}
            got, want = store.query(filled), store.query(chart_sql(chart, "acme", params))
            assert got == want and (want or chart == "win_by_band"), (panel["title"], owner)


def test_the_kpi_report_of_a_quarter_by_hand(kpi_store):
    """`dealbeacon kpi --period 2025-Q1`: per owner and for the team, every figure computed by hand from the
    fixture's timeline (current owners: d4 moved from ben to ana)."""
    store, _ = kpi_store
    rows = [list(r) for by in (True, False) for r in store.query(kpi_sql.report_sql("'acme'", "2025-01-01", "2025-03-31", by))]
    d1_cycle, d3_cycle = days_between("2025-01-06", "2025-03-10"), days_between("2025-02-03", "2025-03-20")
    want = [
        # owner, closed, won, won amount, win rate, by amount, avg deal, median cycle, pipeline, quota, attainment,
        # coverage, slippage, lead to close
        ["ana", 2, 1, 12_000.0, 0.5, 12_000 / 27_000, 12_000.0, d1_cycle, 0.0, 40_000.0, 0.3, 0.0, 0.5, 0.25],
        ["ben", 1, 1, 5_000.0, 1.0, 1.0, 5_000.0, d3_cycle, 0.0, 0.0, None, None, 0.0, 1.0],
        ["(team)", 3, 2, 17_000.0, 2 / 3, 17_000 / 32_000, 8_500.0, (d1_cycle + d3_cycle) / 2, 0.0, 40_000.0, 0.425, 0.0,
         1 / 3, 0.5],
    ]
    assert [r[0] for r in rows] == [w[0] for w in want]
    for got, exp in zip(rows, want):
        assert all(approx(g, e) or (e is None and g != g) for g, e in zip(got[1:], exp[1:])), (got, exp)
    # 2025-Q2: the team has a quota of its own (100,000), not the sum of its owners' (80,000)
    q2 = {r[0]: r for by in (True, False) for r in store.query(kpi_sql.report_sql("'acme'", "2025-04-01", "2025-06-30", by))}
    assert set(q2) == {"ana", "ben", "(team)"}
    assert (q2["ana"][9], q2["ben"][9], q2["(team)"][9]) == (30_000.0, 50_000.0, 100_000.0)
    assert approx(q2["(team)"][10], 30_000 / 100_000) and approx(q2["(team)"][11], 8_000 / 70_000)
    table = kpi_sql.report_table(rows)
    assert table.splitlines()[0].split()[:3] == ["owner", "closed", "won"]
    assert "(team)" in table and "17,000" in table and "42%" in table and "33%" in table
    assert table.splitlines()[3].split()[10:12] == ["-", "-"]  # ben: no quota in Q1, so no attainment or coverage


def test_an_analyst_reads_every_kpi_view_of_its_own_sites_only(kpi_store, tmp_path):
    """On the SQL port each KPI view is an analyst table: an analyst of site ``other`` sees other's rows and
    nothing of acme's, in every view, however the query reaches it."""
    from starlette.testclient import TestClient

    from dealbeacon.core.analysts import AnalystRegistry
    from sinks.sqlengine import AnalystEngine, Limits
    from sinks.sqlport import create_sql_app

    store, _ = kpi_store
    reg = AnalystRegistry()
    reg.add("bob", ["other"], "bob-pw")
    reg.add("ann", ["acme"], "ann-pw")
    path = str(tmp_path / "analysts.json")
    reg.save(path)
    engine = AnalystEngine(store.open_session, Limits(max_execution_s=20, max_memory_bytes=300_000_000))
    try:
        client = TestClient(create_sql_app(engine, path))
        for view in kpi_sql.ANALYST_VIEWS:
            for user, site in (("bob", "other"), ("ann", "acme")):
                for q in (f"SELECT DISTINCT site FROM {view}", f"SELECT DISTINCT site FROM (SELECT * FROM {view}) AS v",
                          f"WITH x AS (SELECT site FROM default.{view}) SELECT DISTINCT site FROM x"):
                    r = client.get("/", params={"query": q}, auth=(user, f"{user}-pw"))
                    assert r.status_code == 200 and r.text in ("", f"{site}\n"), (view, user, q, r.text)
            r = client.get("/", params={"query": f"SELECT count() FROM {view} WHERE site = 'acme'"}, auth=("bob", "bob-pw"))
            assert r.text == "0\n", view
        r = client.get("/", params={"query": "SELECT won_amount FROM kpi_outcomes"}, auth=("bob", "bob-pw"))
        assert r.text == "99000\n"
        r = client.get("/", params={"query": "SELECT * FROM deal_stages"}, auth=("bob", "bob-pw"))
        assert r.status_code == 403  # configuration, not an analyst table
    finally:
        engine.close()
