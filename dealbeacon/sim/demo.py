"""Demo traffic for ``dealbeacon up``: a few sales rooms, their buying committees and content, and visits
that look like real DSR use (views, heartbeats, page progress, downloads, shares, CTAs).

Builders are pure (seeded ``random.Random``, explicit ``now_ms``); ``run_demo_traffic`` sends their
output through the real ingest endpoint, bounded in count.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
import uuid
from dataclasses import dataclass

import httpx

from dealbeacon.core import tokens
from dealbeacon.core.periods import period_of
from dealbeacon.sim.simulate import build, replay, send
from dealbeacon.sim.simulator import Op

log = logging.getLogger("dealbeacon.sim.demo")

CONTENT = [  # content_id, kind, pages (0 = not paged), is_video
    ("proposal", "proposal", 12, False), ("pricing", "pricing", 3, False), ("security-whitepaper", "security", 18, False),
    ("case-study-acme", "case_study", 4, False), ("product-demo-video", "video", 0, True), ("mutual-action-plan", "plan", 2, False),
]
ROOMS = [  # room_id, committee [(stakeholder_id, role)]
    ("deal-northwind", [("nw-cfo", "economic_buyer"), ("nw-ops", "champion"), ("nw-it", "technical")]),
    ("deal-globex", [("gx-vp-sales", "champion"), ("gx-legal", "legal"), ("gx-cto", "technical"), ("gx-ceo", "economic_buyer")]),
    ("deal-initech", [("in-director", "champion"), ("in-security", "technical")]),
]
ROLE_AFFINITY = {"economic_buyer": ["pricing", "proposal", "case-study-acme"], "champion": ["proposal", "mutual-action-plan", "product-demo-video"],
                 "technical": ["security-whitepaper", "product-demo-video"], "legal": ["security-whitepaper", "proposal"]}


@dataclass
class Visit:
    room_id: str
    stakeholder_id: str
    role: str
    visitor_id: str
    token: str


def make_visitors(secret: str, rng: random.Random, now_s: int) -> list[Visit]:
    out = []
    for room_id, committee in ROOMS:
        for sid, role in committee:
            tok = tokens.mint(secret, room_id, sid, now_s + 30 * 86_400)
            out.append(Visit(room_id, sid, role, f"v-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}", tok))
    return out


def visit_events(v: Visit, rng: random.Random, now_ms: int, site_url: str = "https://rooms.example.com") -> list[dict]:
    """One visit: room view, then 1-3 content items with heartbeats and progress; sometimes a share,
    download or CTA. Timestamps are spread over the minutes before ``now_ms``."""
    session = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
    t = now_ms - rng.randint(60_000, 600_000)
    url = f"{site_url}/r/{v.room_id}"

    def ev(etype: str, **fields) -> dict:
        nonlocal t
        t += rng.randint(500, 4_000)
        e = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": etype,
             "room_id": v.room_id, "visitor_id": v.visitor_id, "session_id": session, "ts": min(t, now_ms),
             "token": v.token, "url": url}
        e.update(fields)
        return e

    events = [ev("room_view", referrer="https://mail.example.com/")]
    liked = ROLE_AFFINITY[v.role]
    items = rng.sample(liked, k=rng.randint(1, len(liked)))
    for cid in items:
        pages = next(c[2] for c in CONTENT if c[0] == cid)
        video = next(c[3] for c in CONTENT if c[0] == cid)
        events.append(ev("content_view", content_id=cid))
        reach = rng.randint(1, pages) if pages else 0
        for beat in range(rng.randint(1, 6)):
            events.append(ev("engagement", content_id=cid, engaged_ms=rng.randint(5_000, 15_000),
                             scroll_pct=round(min(100.0, (beat + 1) * rng.uniform(5, 25)), 1)))
            if pages and beat < reach:
                events.append(ev("content_progress", content_id=cid, page=beat + 1,
                                 progress_pct=round(100 * (beat + 1) / pages, 1)))
            if video:
                pos = (beat + 1) * 30.0
                events.append(ev("content_progress", content_id=cid, media_position_s=pos,
                                 progress_pct=min(100.0, round(pos / 240 * 100, 1))))
        if cid in ("security-whitepaper", "proposal") and rng.random() < 0.3:
            events.append(ev("download", content_id=cid, href=f"https://cdn.example.com/{cid}.pdf"))
    if rng.random() < 0.03:  # buyers share rarely, and with the few colleagues the deal needs
        company = v.room_id.split('-')[1]
        events.append(ev("share", share_channel=rng.choice(["email", "link", "slack"]),
                         share_to=rng.choice([f"procurement@{company}.example", f"legal@{company}.example"])))
    if rng.random() < 0.1:
        events.append(ev("cta", cta=rng.choice(["book-meeting", "request-quote", "sign-order-form"])))
    return events


DAY_MS = 86_400_000
QUOTA_PER_QUARTER = 150_000.0  # each simulated seller's target


async def seed_live_rooms(base_url: str, site_key: str, secret: str, *, now_ms: int | None = None) -> None:
    """The three live rooms with their committees (rooms API): the live visits carry their stakeholders' tokens."""
    now_ms = now_ms or int(time.time() * 1000)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=10) as client:
        for n, (room_id, committee) in enumerate(ROOMS):
            body = {"name": room_id.split("-", 1)[1].title(), "owner": f"seller-{n % 2 + 1}", "stage": "proposal",
                    "amount": 25_000.0 * (n + 1), "stakeholders": [
                        {"id": sid, "role": role, "email": f"{sid}@buyer.example"} for sid, role in committee],
                    "proposal_shared_at": now_ms - 86_400_000,  # yesterday: the live visits open it
                    "expected_close": dt.datetime.fromtimestamp(now_ms / 1000 + 30 * 86_400, dt.UTC).date().isoformat()}
            r = await client.put(f"/v1/sites/{site_key}/rooms/{room_id}", json=body)
            r.raise_for_status()


QUIET_DAYS = 35  # 23-25 working days: past any stage's cadence and the longest silence usual for a room (20)


def gone_quiet(ops: list[Op], now_ms: int, days: int = QUIET_DAYS) -> tuple[list[Op], str]:
    """The history with one open deal's buyers silent for the last ``days``: the most engaged room still open
    today loses its events after ``now_ms - days`` (its seller's room updates stay). Which simulated deals happen to
    be quiet at the moment the demo starts depends on the day and hour (the simulation is laid out back from now):
    at some hours none was, and the demo showed no quiet alert, the thing it is there to show. Returns the ops and
    that room's id ("" when no room fits)."""
    cut = now_ms - days * DAY_MS
    closed = {op.room_id for op in ops if op.kind == "room" and str(op.body.get("stage", "")).startswith("closed_")}
    before: dict[str, int] = {}
    for op in ops:
        if op.kind == "events" and op.at_ms <= cut and op.room_id not in closed:
            before[op.room_id] = before.get(op.room_id, 0) + len(op.body["events"])
    if not before:
        return ops, ""
    room = max(sorted(before), key=lambda r: before[r])
    return [op for op in ops if not (op.kind == "events" and op.room_id == room and op.at_ms > cut)], room


def history_start(now_ms: int, days: int, spread_days: int) -> int:
    return now_ms - (spread_days + days // 2) * DAY_MS  # the rooms opened last are still open today


def demo_history(site_key: str, secret: str, *, deals: int, seed: int, days: int, now_ms: int,
                 spread_days: int) -> tuple[list[Op], str]:
    """The demo's history as ops (pure): the simulation laid out back from ``now_ms``, one open deal gone quiet."""
    ops = build(site_key, secret, deals=deals, seed=seed, days=days, start_ms=history_start(now_ms, days, spread_days),
                tick_hours=0, now_ms=now_ms, spread_days=spread_days)
    return gone_quiet(ops, now_ms)


async def seed_demo(base_url: str, site_key: str, secret: str, *, deals: int = 40, days: int = 90, seed: int = 7,
                    now_ms: int | None = None, spread_days: int = 120) -> dict:
    """Give the demo a history: ``deals`` simulated buying committees whose rooms opened one after another over
    ``spread_days`` and live ``days`` each (dealbeacon/sim/simulator.py; the last ones still open today),
    replayed as a server-side sender so their timestamps are kept, and a quarterly quota per simulated seller.
    The wall-clock ticker then scores them and raises alerts; the analytics dashboard has closed won and lost
    deals, slipped close dates and pipeline to show. (The live rooms: ``seed_live_rooms``.)"""
    now_ms = now_ms or int(time.time() * 1000)
    headers = {"Authorization": f"Bearer {secret}"}
    start = history_start(now_ms, days, spread_days)
    ops, stalled = demo_history(site_key, secret, deals=deals, seed=seed, days=days, now_ms=now_ms,
                                spread_days=spread_days)
    if stalled:
        log.info("demo history: %s went quiet %d days ago", stalled, QUIET_DAYS)
    counts = await replay(base_url, site_key, secret, ops, deadline_s=600, lanes=8)
    # quotas per seller and quarter over the simulated period, and the team's (above the sum, as managers set
    # it), so coverage and attainment have a target
    first = dt.datetime.fromtimestamp(start / 1000, dt.UTC).date()
    last = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date() + dt.timedelta(days=92)
    quarters = sorted({period_of(first + dt.timedelta(days=d)) for d in range(0, (last - first).days + 1, 30)})
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        for owner, amount in (("seller-1", QUOTA_PER_QUARTER), ("seller-2", QUOTA_PER_QUARTER),
                              ("seller-3", QUOTA_PER_QUARTER), ("_team", 3.5 * QUOTA_PER_QUARTER)):
            r = await client.put(f"/v1/sites/{site_key}/quotas/{owner}", json={
                "periods": [{"period": q, "amount": amount} for q in quarters]})
            r.raise_for_status()
    return counts


async def run_demo_traffic(endpoint: str, site_key: str, secret: str, *, max_events: int, seed: int = 7,
                           pause_s: float = 1.0, clock_ms=None) -> int:
    """Post simulated visits to ``endpoint`` until ``max_events`` were accepted. Returns the count sent."""
    clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
    rng = random.Random(seed)
    visitors = make_visitors(secret, rng, clock_ms() // 1000)
    sent = 0
    async with httpx.AsyncClient(timeout=10, headers={"User-Agent": "dealbeacon-demo/1 (simulated buyer)"}) as client:
        while sent < max_events:
            events = visit_events(rng.choice(visitors), rng, clock_ms())[: max_events - sent]
            for i in range(0, len(events), 20):
                chunk = events[i:i + 20]
                body = {"site": site_key, "sent_at": clock_ms(), "events": chunk}
                try:  # as the beacon does: a 429 or 503 is sent again, with backoff
                    r = await send(client, "POST", endpoint, body, time.monotonic() + 30)
                    sent += r.json()["accepted"]
                except (TimeoutError, RuntimeError) as e:
                    log.warning("demo batch not taken: %s", e)
            await asyncio.sleep(pause_s * rng.uniform(0.5, 1.5))
    return sent
