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
from typing import Any

from dealbeacon.core import tokens

DAY_MS = 86_400_000
ROLES = ("champion", "economic_buyer", "technical", "legal", "user")
AFFINITY = {"champion": ("proposal", "mutual-action-plan", "product-video", "pricing"),
            "economic_buyer": ("pricing", "proposal", "case-study"),
            "technical": ("security-whitepaper", "product-video"), "legal": ("security-whitepaper", "contract"),
            "user": ("product-video", "case-study")}
PAGES = {"proposal": 12, "pricing": 3, "security-whitepaper": 18, "case-study": 4, "mutual-action-plan": 2, "contract": 8}


@dataclass
class Deal:
    room_id: str
    created_ms: int
    committee: list[tuple[str, str]]  # (stakeholder id, role)
    events: list[dict] = field(default_factory=list)
    won: bool = False
    closed_day: int = 0
    stalled_day: int | None = None  # ground truth: first day of a dark episode (None: never stalled)
    interest: list[float] = field(default_factory=list)  # latent daily interest 0..1

    @property
    def stalled_ms(self) -> int | None:
        return None if self.stalled_day is None else self.created_ms + self.stalled_day * DAY_MS


def _visit(rng: random.Random, deal: Deal, sid: str, role: str, visitor: str, ts: int, depth: float) -> list[dict]:
    base = {"room_id": deal.room_id, "stakeholder_id": sid, "visitor_id": visitor, "token_status": "valid",
            "site": "sim"}
    out = [{**base, "type": "room_view", "ts": ts}]
    t = ts
    for cid in rng.sample(AFFINITY[role], k=max(1, min(len(AFFINITY[role]), round(1 + depth * 2)))):
        t += rng.randint(5_000, 60_000)
        out.append({**base, "type": "content_view", "ts": t, "content_id": cid})
        pages = PAGES.get(cid, 0)
        reach = max(1, round(pages * min(1.0, depth * rng.uniform(0.4, 1.3)))) if pages else 0
        for p in range(1, reach + 1):
            t += rng.randint(10_000, 90_000)
            out.append({**base, "type": "content_progress", "ts": t, "content_id": cid, "page": p,
                        "progress_pct": round(100 * p / pages, 1)})
        for _ in range(rng.randint(1, 2 + round(depth * 6))):
            t += 15_000
            out.append({**base, "type": "engagement", "ts": t, "content_id": cid, "engaged_ms": rng.randint(5_000, 15_000)})
    if rng.random() < 0.04 * depth:
        t += 10_000
        out.append({**base, "type": "share", "ts": t, "share_channel": "email",
                    "share_to": f"colleague{rng.randint(1, 99)}@{deal.room_id}.example"})
    if rng.random() < 0.03 * depth:
        t += 10_000
        out.append({**base, "type": "cta", "ts": t, "cta": "book-meeting"})
    return out


def simulate_deal(rng: random.Random, room_id: str, created_ms: int, days: int = 90) -> Deal:
    size = rng.randint(2, 6)
    roles = ["champion", "economic_buyer"] + [rng.choice(ROLES[2:]) for _ in range(size - 2)]
    committee = [(f"{room_id}-{r}-{i}", r) for i, r in enumerate(roles)]
    deal = Deal(room_id, created_ms, committee)
    # latent interest: a noisy walk with a drift; some deals go dark for a stretch and may revive
    interest = rng.uniform(0.3, 0.9)
    drift = rng.gauss(0.0, 0.01)
    dark_start = rng.randint(10, 60) if rng.random() < 0.45 else None
    dark_len = rng.randint(10, 40)
    close_day = rng.randint(45, days)
    propensity = {sid: rng.uniform(0.3, 1.0) * (1.4 if role == "champion" else 1.0) for sid, role in committee}
    visitor = {sid: f"v-{rng.getrandbits(40):x}" for sid, _ in committee}
    for day in range(close_day):
        interest = min(1.0, max(0.02, interest + drift + rng.gauss(0, 0.04)))
        level = interest
        if dark_start is not None and dark_start <= day < dark_start + dark_len:
            level = 0.03
            if deal.stalled_day is None:
                deal.stalled_day = day
        deal.interest.append(level)
        for sid, role in committee:
            if rng.random() < min(0.9, 0.35 * level * propensity[sid]):
                ts = created_ms + day * DAY_MS + rng.randint(8, 18) * 3_600_000
                deal.events += _visit(rng, deal, sid, role, visitor[sid], ts, level)
    recent = deal.interest[-30:]
    engaged_breadth = len({e["stakeholder_id"] for e in deal.events if e["ts"] >= created_ms + (close_day - 30) * DAY_MS})
    logit = 4.0 * (sum(recent) / len(recent)) + 0.4 * engaged_breadth - 3.0 + rng.gauss(0, 1.0)
    deal.won = rng.random() < 1 / (1 + math.exp(-logit))
    deal.closed_day = close_day
    deal.events.sort(key=lambda e: e["ts"])
    return deal


def simulate(seed: int, n: int, start_ms: int, days: int = 90) -> list[Deal]:
    rng = random.Random(seed)
    return [simulate_deal(rng, f"sim-{i:04d}", start_ms, days) for i in range(n)]


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
            if stage == "proposal":
                body["proposal_shared_at"] = deal.created_ms + day * DAY_MS
            ops.append(Op(body["updated_at"], "room", deal.room_id, body))
        toks = {sid: tokens.mint(secret, deal.room_id, sid, token_expiry_s) for sid, _ in deal.committee}
        wire = []
        for n, e in enumerate(deal.events):
            ev = {k: v for k, v in e.items() if k not in ("site", "stakeholder_id", "token_status")}
            ev["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dealbeacon-sim/{deal.room_id}/{n}"))
            ev["session_id"] = f"s-{e['visitor_id'][2:10]}-{e['ts'] // DAY_MS}"
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
            yield [{**e, "site": site, "stakeholder_id": who[(e["room_id"], e["visitor_id"])]} for e in op.body["events"]]
