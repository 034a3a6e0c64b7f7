"""A buying-committee simulator: deals whose engagement rises, cools, goes dark and revives, with won/lost
outcomes that depend on engagement plausibly but noisily, and ground truth of when each deal stalled.

Pure and seeded: ``simulate(seed, n, start_ms)`` returns the same deals every time. Events are
accepted-event-like records (type, ts, room_id, stakeholder_id, visitor_id, content_id, engaged_ms, ...).
``plan`` turns deals into the HTTP operations a seller's CRM and the buyers would cause (room updates with
stage changes, event batches carrying stakeholder link tokens, clock ticks), in time order; the sender
(dealbeacon/sim/simulate.py) replays them with a time-compression factor.
"""
from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dealbeacon.core import tokens

DAY_MS = 86_400_000
ROLES = ("champion", "economic_buyer", "technical", "legal", "user")
# the room's catalogue: content ids that do not name their kind (the rooms API declares it)
KINDS = ("proposal", "pricing", "security", "case_study", "other", "contract", "video")  # other: the action plan
AFFINITY = {"champion": ("proposal", "other", "video", "pricing"),
            "economic_buyer": ("pricing", "proposal", "case_study"),
            "technical": ("security", "video"), "legal": ("security", "contract"),
            "user": ("video", "case_study")}
PAGES = {"proposal": 12, "pricing": 3, "security": 18, "case_study": 4, "other": 2, "contract": 8}
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Singapore", "Europe/London")
SITE_ZONE = "Europe/Berlin"  # the seller's calendar


def holidays(start_ms: int, days: int) -> tuple[str, ...]:
    """The site's holidays over a simulated period: one working day in every 29 (local dates)."""
    out = []
    for d in range(3, days + 120, 29):
        day = datetime.fromtimestamp((start_ms + d * DAY_MS) / 1000, ZoneInfo(SITE_ZONE)).date()
        while day.weekday() >= 5:
            day += timedelta(days=1)
        out.append(day.isoformat())
    return tuple(sorted(set(out)))


@dataclass
class Deal:
    room_id: str
    created_ms: int
    committee: list[tuple[str, str]]  # (stakeholder id, role)
    events: list[dict] = field(default_factory=list)
    won: bool = False
    closed_day: int = 0
    stalled_day: int | None = None  # ground truth: first day of the first dark episode (None: never stalled)
    interest: list[float] = field(default_factory=list)  # latent daily interest 0..1
    propensity: float = 0.5  # the oracle: the latent win probability the outcome was drawn from
    episodes: list[tuple[int, int]] = field(default_factory=list)  # dark episodes (start ms, end ms)
    tz: str = "UTC"  # the buyer's time zone
    weekdays_only: bool = True  # the committee works Monday to Friday (local)
    content: list[dict] = field(default_factory=list)  # the room's catalogue: [{id, title, kind, pages}]

    @property
    def stalled_ms(self) -> int | None:
        return None if self.stalled_day is None else self.created_ms + self.stalled_day * DAY_MS


def _visit(rng: random.Random, deal: Deal, sid: str | None, role: str, visitor: str, ts: int, depth: float,
           ids: dict[str, str], shares: list[str]) -> list[dict]:
    base: dict[str, Any] = {"room_id": deal.room_id, "stakeholder_id": sid, "visitor_id": visitor,
            "token_status": "valid" if sid else "none", "site": "sim"}
    out = [{**base, "type": "room_view", "ts": ts}]
    t = ts
    for kind in rng.sample(AFFINITY[role], k=max(1, min(len(AFFINITY[role]), round(0.4 + depth * 1.6)))):
        cid = ids[kind]
        t += rng.randint(5_000, 60_000)
        out.append({**base, "type": "content_view", "ts": t, "content_id": cid})
        pages = PAGES.get(kind, 0)
        reach = max(1, round(pages * min(1.0, depth * rng.uniform(0.4, 1.3)))) if pages else 0
        for p in sorted({max(1, reach * k // 3) for k in (1, 2, 3)}) if reach else ():  # the beacon's page marks, thinned
            t += rng.randint(10_000, 90_000)
            out.append({**base, "type": "content_progress", "ts": t, "content_id": cid, "page": p,
                        "progress_pct": round(100 * p / pages, 1)})
        for _ in range(rng.randint(1, 1 + round(depth))):
            t += 15_000
            out.append({**base, "type": "engagement", "ts": t, "content_id": cid, "engaged_ms": rng.randint(5_000, 15_000)})
    if sid and rng.random() < 0.025:  # shares: to a colleague already on the committee, again to someone, or new
        r = rng.random()
        if r < 0.35:
            to = f"{rng.choice(deal.committee)[0]}@buyer.example"
        elif r < 0.65 and shares:
            to = rng.choice(shares)
        else:
            to = f"colleague{rng.randint(1, 999)}@{deal.room_id}.example"
        shares.append(to)
        t += 10_000
        out.append({**base, "type": "share", "ts": t, "share_channel": "email", "share_to": to})
    if sid and rng.random() < 0.02 * depth:
        t += 10_000
        out.append({**base, "type": "cta", "ts": t, "cta": "book-meeting"})
    return out


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def simulate_deal(rng: random.Random, room_id: str, created_ms: int, days: int = 90,
                  holiday_dates: tuple[str, ...] = ()) -> Deal:
    """One deal. A latent propensity (logit ~ N(0, 1.8)) draws the outcome and drives engagement: who of the
    committee takes part, how often (per person, on the committee's working days in its own time zone), how
    deep; some deals go dark for a stretch (more often the ones that will lose) and may revive."""
    size = rng.randint(2, 6)
    roles = ["champion", "economic_buyer"] + [rng.choice(ROLES[2:]) for _ in range(size - 2)]
    committee = [(f"{room_id}-{r}-{i}", r) for i, r in enumerate(roles)]
    deal = Deal(room_id, created_ms, committee, tz=rng.choice(ZONES), weekdays_only=rng.random() < 0.85)
    tag = f"{rng.getrandbits(24):06x}"
    ids = {k: f"doc-{tag}-{n}" for n, k in enumerate(KINDS)}
    deal.content = [{"id": ids[k], "title": f"{'Mutual action plan' if k == 'other' else k.replace('_', ' ').title()} "
                     f"v{rng.randint(1, 4)}", "kind": k,
                     **({"pages": PAGES[k]} if k in PAGES else {})} for k in KINDS]
    logit = rng.gauss(0.0, 1.8)
    deal.propensity = _sigmoid(logit)
    deal.won = rng.random() < deal.propensity
    close_day = rng.randint(45, days)
    deal.closed_day = close_day
    dark: tuple[int, int] | None = None
    if rng.random() < 0.2 + 0.35 * (1 - deal.propensity):
        start = rng.randint(8, max(9, close_day - 12))
        dark = (start, start + rng.randint(15, 50))
    zone = ZoneInfo(deal.tz)
    rate = {}
    for sid, role in committee:
        takes_part = role == "champion" or rng.random() < _sigmoid(0.9 * logit + 1.0)
        per_day = 0.35 * math.exp(0.35 * logit) * rng.uniform(0.6, 1.4) * (1.5 if role == "champion" else 1.0)
        rate[sid] = min(0.85, per_day) if takes_part else 0.0
    devices = {sid: [f"v-{rng.getrandbits(40):x}"] + ([f"v-{rng.getrandbits(40):x}"] if rng.random() < 0.35 else [])
               for sid, _ in committee}
    shares: list[str] = []
    forwarded: list[tuple[int, str]] = []  # (first visit ms, visitor) of new people opening a forwarded link
    for day in range(close_day):
        midnight = datetime.fromtimestamp((created_ms + day * DAY_MS) / 1000, zone).replace(hour=0, minute=0, second=0,
                                                                                           microsecond=0)
        local = midnight.date()
        off = deal.weekdays_only and (local.weekday() >= 5 or local.isoformat() in holiday_dates)
        in_dark = dark is not None and dark[0] <= day < dark[1]
        level = 0.0 if in_dark or off else 1.0
        deal.interest.append(level)
        if in_dark and deal.stalled_day is None:
            deal.stalled_day = day
        if level == 0.0:
            continue
        for sid, role in committee:
            if rng.random() < rate[sid]:
                ts = int(midnight.timestamp() * 1000) + rng.randint(8 * 60, 18 * 60) * 60_000
                if not created_ms <= ts < created_ms + close_day * DAY_MS:
                    continue
                visitor = rng.choice(devices[sid]) if rng.random() < 0.3 else devices[sid][0]
                before = len(shares)
                deal.events += _visit(rng, deal, sid, role, visitor, ts, _sigmoid(0.5 * logit + rng.gauss(0, 0.5)),
                                      ids, shares)
                if len(shares) > before and shares[-1].endswith(".example") and "@buyer." not in shares[-1] \
                        and shares[-1] not in shares[:-1] and rng.random() < 0.6:
                    forwarded.append((ts + rng.randint(12, 72) * 3_600_000, f"v-{rng.getrandbits(40):x}"))
    for first, visitor in forwarded:  # the recipient of a forwarded link: anonymous, a visit or three
        for k in range(rng.randint(1, 3)):
            ts = first + k * rng.randint(1, 4) * DAY_MS
            if ts < created_ms + close_day * DAY_MS:
                deal.events += _visit(rng, deal, None, "user", visitor, ts, 0.4, ids, shares)
    if dark is not None:
        start_ms = created_ms + dark[0] * DAY_MS
        after = [e["ts"] for e in deal.events if e["ts"] >= start_ms]
        deal.episodes.append((start_ms, min(after, default=created_ms + close_day * DAY_MS)))
    deal.events.sort(key=lambda e: e["ts"])
    return deal


def simulate(seed: int, n: int, start_ms: int, days: int = 90, *, spread_days: int = 0) -> list[Deal]:
    """``n`` deals; with ``spread_days`` their rooms open one after another over that many days (a site's history)."""
    rng = random.Random(seed)
    hol = holidays(start_ms, days + spread_days)
    return [simulate_deal(rng, f"sim-{i:04d}", start_ms + (i * spread_days * DAY_MS // n if spread_days else 0), days,
                          hol) for i in range(n)]


EXPECTED_CLOSE_DAYS = 60  # the close date a simulated seller first records, after the room opens


def _day(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).date().isoformat()


def stage_for(day: int, deal: Deal) -> str:
    """The stage a simulated seller records: qualification, proposal from day 15, negotiation from day 40,
    closed at the close day."""
    if day >= deal.closed_day:
        return "closed_won" if deal.won else "closed_lost"
    return "qualification" if day < 15 else "proposal" if day < 40 else "negotiation"


@dataclass(frozen=True)
class Op:
    at_ms: int  # simulated time
    kind: str  # room | events | clock
    room_id: str
    body: dict


def plan(deals: list[Deal], site: str, secret: str, token_expiry_s: int, *, tick_ms: int = 0,
         until_ms: int | None = None, batch: int = 20) -> list[Op]:
    """HTTP operations for ``deals`` in simulated-time order. Event ids are derived from the deal and index,
    so a replay sends the same ids. ``tick_ms`` > 0 adds a site-wide clock tick every ``tick_ms`` (for a
    server whose clock is external); ``token_expiry_s`` is wall-clock (the server checks link tokens on it)."""
    ops: list[Op] = []
    for deal in deals:
        stages = [(0, stage_for(0, deal))]
        for day in (15, 40, deal.closed_day):
            if day <= deal.closed_day and stage_for(day, deal) != stages[-1][1]:
                stages.append((day, stage_for(day, deal)))
        people = [{"id": sid, "role": role, "email": f"{sid}@buyer.example"} for sid, role in deal.committee]
        owner = f"seller-{int(deal.room_id.rsplit('-', 1)[-1]) % 3 + 1}" if deal.room_id[-1].isdigit() else "seller-1"
        for i, (day, stage) in enumerate(stages):
            body: dict[str, Any] = {"stage": stage, "updated_at": deal.created_ms + day * DAY_MS}
            if i == 0:
                body.update(name=f"Deal {deal.room_id}", owner=owner, amount=float(10_000 * (len(people) + 1)),
                            stakeholders=people)
                if deal.content:
                    body["content"] = deal.content
                if deal.tz != "UTC":
                    body["timezone"] = deal.tz
            if stage == "proposal":
                body["proposal_shared_at"] = deal.created_ms + day * DAY_MS
            if i == 0:
                body["expected_close"] = _day(deal.created_ms + EXPECTED_CLOSE_DAYS * DAY_MS)
            ops.append(Op(body["updated_at"], "room", deal.room_id, body))
        if deal.closed_day > EXPECTED_CLOSE_DAYS:  # the seller pushes the close date out when it is near (slippage)
            at = deal.created_ms + (EXPECTED_CLOSE_DAYS - 5) * DAY_MS
            ops.append(Op(at, "room", deal.room_id, {"expected_close": _day(deal.created_ms + (deal.closed_day + 7) * DAY_MS),
                                                     "updated_at": at}))
        toks = {sid: tokens.mint(secret, deal.room_id, sid, token_expiry_s) for sid, _ in deal.committee}
        wire = []
        for n, e in enumerate(deal.events):
            ev = {k: v for k, v in e.items() if k not in ("site", "stakeholder_id", "token_status")}
            ev["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dealbeacon-sim/{deal.room_id}/{n}"))
            ev["session_id"] = f"s-{e['visitor_id'][2:10]}-{e['ts'] // DAY_MS}"
            if e["stakeholder_id"]:
                ev["token"] = toks[e["stakeholder_id"]]
            wire.append(ev)
        visit: list[dict] = []
        nexts: list[dict | None] = [*wire, None]
        for nxt in nexts:
            if visit and (nxt is None or nxt["type"] == "room_view" or len(visit) == batch):
                ops.append(Op(visit[-1]["ts"], "events", deal.room_id, {"site": site, "sent_at": visit[-1]["ts"],
                                                                         "events": visit}))
                visit = []
            if nxt is not None:
                visit.append(nxt)
    if tick_ms and deals:
        start = min(d.created_ms for d in deals)
        end = until_ms or max(d.created_ms + d.closed_day * DAY_MS for d in deals)
        ops += [Op(t, "clock", "", {"now": t}) for t in range(start + tick_ms, end + 1, tick_ms)]
    order = {"room": 0, "events": 1, "clock": 2}  # at equal times: a stage change, then events, then the tick
    return sorted(ops, key=lambda o: (o.at_ms, order[o.kind]))


def op_records(ops: list[Op], site: str, deals: list[Deal]):
    """For each op, the records ingest would hand off (stakeholder ids as the link tokens verify): a plan
    replayed through the pure core without HTTP (reference runs, the signal-quality report). Yields one
    batch per op."""
    who = {(d.room_id, e["visitor_id"]): e["stakeholder_id"] for d in deals for e in d.events}
    for op in ops:
        if op.kind == "room":
            yield [{"record": "room", "site": site, "room_id": op.room_id, **op.body}]
        elif op.kind == "clock":
            yield [{"record": "clock", "site": site, "now": op.body["now"]}]
        else:
            yield [{**e, "site": site, "stakeholder_id": who[(e["room_id"], e["visitor_id"])] or "",
                    "token_status": "valid" if who[(e["room_id"], e["visitor_id"])] else "none"} for e in op.body["events"]]
