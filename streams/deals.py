"""A deal's (room's) state machine: pure, explicit time, no I/O. Both modes call ``step``.

Three record kinds reach a room, in the order they were handed off (one Kafka partition per room):
- accepted events (``type`` set): scored per stakeholder and observed by the event-driven alert rules;
- room updates (``record: "room"``, from the rooms API): stage, owner, amount, close date, committee;
- ticks (``record: "tick"``, ``now``): the time-driven rules run at ``now``. Production ticks carry the wall
  clock (Faust timer / embedded ticker); simulations and replays send their own.

``step`` returns the new state and table rows: score history (one row per touched stakeholder and one per
deal after each batch, and a daily deal snapshot on ticks), alerts (one per episode: a rule that keeps
holding does not fire again until the situation changes), room rows and stage history. Alert ids are
derived from their content, so a replayed batch yields the same ids and the tables collapse them.
"""
from __future__ import annotations

import heapq
import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from dealbeacon.core.contract import DEFAULT_STAGES
from streams.activity import activity_kinds, activity_row
from streams.alerts import ALERTS, Alert, AlertConfig, BandState, Room, RoomFacts, evaluate, observe_in_run
from streams.ids import Namespace
from streams.model import active_at, evolve
from streams.scoring import (
    DAY_MS,
    DEFAULT,
    DealScore,
    ScoreAcc,
    ScoringConfig,
    StakeholderScore,
    add_day_in_place,
    by_day,
    daily_total,
    deal_parts,
    deal_score,
    event_points,
    is_person,
    ms,
    rounded,
    stakeholder_band,
    stored_velocity,
    top_reasons,
    value_at,
    velocity,
)
from streams.winmodel import PRIOR_MODEL, WinModel
from streams.winmodel import features as win_features

_IDS: Final = Namespace(uuid.UUID("6f1d3a52-9a43-4d0e-8a0e-5b1b2f6f0d11"))
_MAX_FIRED: Final = 64
MAX_ANONYMOUS: Final = 50  # anonymous visitors scored per room (the least recently seen make room)


@dataclass(frozen=True)
class RoomState:
    site: str
    room: Room
    facts: RoomFacts = RoomFacts()
    scores: tuple[tuple[str, StakeholderScore], ...] = ()
    bands: BandState = BandState()
    daily: tuple[tuple[int, float], ...] = ()  # the room's raw points per day (spike rule)
    clock_ms: int = 0  # latest time the room has seen (event ts or tick)
    snapshot_day: int = 0  # last day a deal-score snapshot was written on a tick
    fired: tuple[str, ...] = ()  # episode keys of time-driven alerts already raised
    partition: int = -1  # where the room lives (distributed mode: site-wide ticks fan out per partition)
    offset: int = -1  # last source offset folded in (distributed mode: a replayed message is not counted twice)
    meta: tuple[tuple[str, Any], ...] = ()  # owner, amount, expected_close, stakeholder emails
    model: WinModel = PRIOR_MODEL  # the site's win model as last handed to this room (streams/winmodel.py)
    # a memo, not state (never saved, never compared): (scores, their daily_total, its by_day) as of the tick that
    # made them; the next tick reuses them while ``scores`` is that very tuple (no event came between)
    totals: Any = field(default=None, compare=False, repr=False)


def new_state(site: str, room_id: str, created_ms: int, stage: str = DEFAULT_STAGES[0]) -> RoomState:
    return RoomState(site=site, room=Room(room_id, stage=stage, created_ms=created_ms))


def stakeholder_key(rec: dict) -> str:
    """Verified stakeholder id, else the anonymous visitor (scored too: a forwarded link is news)."""
    return rec.get("stakeholder_id") or f"visitor:{rec.get('visitor_id', '')}"


INTERNAL_PREFIX: Final = "seller:"  # a visit made with a seller's own page token (ingest names it seller:<id>)
MAX_INTERNAL_VISITORS: Final = 50


def is_internal(state: RoomState, rec: dict) -> bool:
    """A visit by the seller's team: a seller token, an internal stakeholder (flagged, or by an internal email
    domain), or an anonymous visit from a device that team already used in this room."""
    sid = rec.get("stakeholder_id") or ""
    if sid:
        return sid.startswith(INTERNAL_PREFIX) or sid in state.room.internal
    return bool(rec.get("visitor_id")) and rec.get("visitor_id") in state.facts.internal_visitors


def _remember_internal_device(state: RoomState, rec: dict) -> RoomState:
    vid = rec.get("visitor_id") or ""
    if not vid or vid in state.facts.internal_visitors:
        return state
    devices = (state.facts.internal_visitors + (vid,))[-MAX_INTERNAL_VISITORS:]
    return evolve(state, facts=evolve(state.facts, internal_visitors=devices))


_FOLDED: Final = ("room", "model", "tick", "clock", "erase")  # the records that end a run of buyer events


class _Run:
    """A run of buyer events folding into a room: what each event moves (the room's facts, daily points, clock
    and fired episodes), held here and written into the state once, when the run ends."""

    __slots__ = ("facts", "daily", "clock_ms", "fired", "latest", "accs", "fresh")

    def __init__(self, state: RoomState) -> None:
        self.facts = state.facts  # its last_activity_ms is folded in when the run ends (observe_in_run)
        self.daily = list(state.daily)  # added to in place (a tuple rebuilt per event was 2 % of the core's work)
        self.clock_ms = state.clock_ms
        self.fired = state.fired
        self.latest = 0  # the run's latest event time
        self.accs: list[str] = []  # the scores made mutable (ScoreAcc) during the run
        self.fresh = False  # a stakeholder scored for the first time (the scores are re-sorted by id)

    def end(self, state: RoomState, scores: dict[str, StakeholderScore | ScoreAcc]) -> RoomState:
        for sid in self.accs:
            acc = scores.get(sid)
            if isinstance(acc, ScoreAcc):
                scores[sid] = acc.freeze()
        if self.fresh:  # scores are kept in id order (the order they are stored and summed in)
            ordered = sorted(scores.items())
            scores.clear()
            scores.update(ordered)
        facts = self.facts
        if self.latest > facts.last_activity_ms:
            facts = active_at(facts, self.latest)
        return moved(state, facts, state.bands, tuple(self.daily), self.clock_ms, state.snapshot_day, self.fired)


def step(state: RoomState | None, recs: list[dict], cfg: ScoringConfig = DEFAULT,
         acfg: AlertConfig = ALERTS) -> tuple[RoomState, dict[str, list[dict]]]:
    """Fold one batch of a room's records (events, room updates, ticks) into its state. The scores are a dict
    for the whole batch (in id order, as stored), written back into the state once at its end."""
    out: dict[str, list[dict]] = {}
    touched: set[str] = set()
    if state is None:
        first = recs[0]
        t0 = int(first.get("ts") or first.get("updated_at") or first.get("now") or 0)
        state = new_state(first["site"], first["room_id"], t0)
    scores: dict[str, StakeholderScore | ScoreAcc] = dict(state.scores)
    rescored = False
    run: _Run | None = None
    kinds: dict[str, str] = {}
    dirty = False  # scores moved since the last score rows: they are written when the run ends

    for rec in recs:
        kind: str = rec.get("record", "event")
        if kind == "event" and not is_internal(state, rec):
            if run is None:
                run, kinds = _Run(state), state.room.kinds  # the room itself stays as it is during a run
            touched.add(_event(state, run, rec, out, cfg, acfg, scores, kinds))
            dirty = rescored = True
            continue
        if run is not None:
            state, run = run.end(state, scores), None
        if kind not in _FOLDED:  # the seller's own visits: stored with the events, never scored or alerted on
            state = _remember_internal_device(state, rec)
            continue
        if kind == "erase":
            touched.discard(str(rec["stakeholder"]))  # no row of a forgotten person, even one written before
        if dirty:
            _score_rows(state, scores, touched, out, cfg, acfg)  # type: ignore[arg-type]
            dirty = False
        if kind == "room":
            state = _room_update(state, rec, out)
        elif kind == "model":
            state = _take_model(state, rec)
        elif kind in ("tick", "clock"):
            state = _tick(state, scores, ms(rec["now"]), out, cfg, acfg, not rescored)  # type: ignore[arg-type]
        elif kind == "erase":
            who = str(rec["stakeholder"])
            state = forget(state, who, int(rec["requested_at"]), out)
            if scores.pop(who, None) is not None:
                rescored = True
            dirty = True
    if run is not None:
        state = run.end(state, scores)
    if dirty:
        _score_rows(state, scores, touched, out, cfg, acfg)  # type: ignore[arg-type]
    if rescored:
        state = moved(state, state.facts, state.bands, state.daily, state.clock_ms, state.snapshot_day, state.fired,
                      tuple(scores.items()))  # type: ignore[arg-type]
    return state, out


def _score_rows(state: RoomState, scores: dict[str, StakeholderScore], touched: set[str], out: dict[str, list[dict]],
                cfg: ScoringConfig, acfg: AlertConfig) -> None:
    """The touched stakeholders' rows and the deal's, at the run's own time, before a tick, room update or erase
    moves the clock or the state on: the rows are the same however the records were batched (one record at a time
    writes them at the same instants). Clears ``touched``."""
    at = state.clock_ms
    rows = out.setdefault("stakeholder_scores", [])
    for sid in sorted(touched):
        if sid in scores:
            rows.append(_stakeholder_row(state, sid, scores[sid], at, cfg))
    out.setdefault("deal_scores", []).append(_deal_row(state, scores, at, cfg, acfg))
    touched.clear()


_NO_SCORE: Final = StakeholderScore()


def _take_model(state: RoomState, rec: dict) -> RoomState:
    """A site's refitted win model: kept for the scores that follow. One that does not fit FEATURES is ignored
    (the room keeps the model it has) rather than failing the partition."""
    try:
        return evolve(state, model=WinModel.from_record(rec))
    except (KeyError, TypeError, ValueError):
        return state


def _event(state: RoomState, run: _Run, rec: dict, out: dict[str, list[dict]], cfg: ScoringConfig, acfg: AlertConfig,
           scores: dict[str, StakeholderScore | ScoreAcc], kinds: dict[str, str]) -> str:
    """Fold one buyer event into ``run`` and ``scores`` (updated in place); ``kinds``: ``state.room.kinds``.
    Returns whose score it moved (``stakeholder_key``)."""
    ts = ms(rec["ts"])
    sid = stakeholder_key(rec)
    points = event_points(rec, cfg, kinds)
    known = scores.get(sid)
    if isinstance(known, ScoreAcc):
        acc = known
    else:
        acc = scores[sid] = ScoreAcc(known or _NO_SCORE)
        run.accs.append(sid)
    acc.add(rec, points, cfg)
    if known is None:
        run.fresh = True
        if len(scores) > MAX_ANONYMOUS and sid.startswith("visitor:"):
            # bounded state: a public link can draw many one-off visitors (only a newcomer can tip the count over)
            anonymous = [(s.last_seen_ms, k) for k, s in scores.items() if k.startswith("visitor:")]
            over = len(anonymous) - MAX_ANONYMOUS
            if over == 1:  # the usual case: the newcomer tipped it by one (min: nsmallest(1)'s answer, cheaper)
                del scores[min(anonymous)[1]]
            elif over > 1:
                for _, k in heapq.nsmallest(over, anonymous):
                    del scores[k]
    facts = run.facts
    for kind in activity_kinds(facts, rec):
        out.setdefault("activities", []).append(activity_row(state.site, state.room.room_id, state.room.owner, rec, kind))
    pts = points[0]
    day = ts // DAY_MS
    daily = run.daily
    add_day_in_place(daily, day, pts, day - 2 * acfg.spike_window_days + 1)
    run.facts, alerts = observe_in_run(state.room, facts, rec, daily, pts, cfg, acfg, kinds)
    if alerts:
        run.fired = _fire(state, run.fired, alerts, out)
    if ts > run.clock_ms:
        run.clock_ms = ts
    if ts > run.latest:
        run.latest = ts
    return sid


def _fire(state: RoomState, fired_before: tuple[str, ...], alerts: list[Alert], out: dict[str, list[dict]]) -> tuple[str, ...]:
    """The one episode mechanism: an alert is raised unless its episode key already fired; returns the keys."""
    fired = list(fired_before)
    for a in alerts:
        if a.episode and a.episode in fired:
            continue
        if a.episode:
            fired.append(a.episode)
        _alert_rows(state, [a], out)
    return tuple(fired[-_MAX_FIRED:])


def tick_leaves(state: RoomState, closed_stages: Container[str]) -> bool:
    """A tick leaves ``state`` as it is, clock included: the deal is closed (its time rules are off). Holders ask
    this to keep such rooms out of a clock record's reach (``process_rooms(ticked_rooms=...)``)."""
    return state.room.stage in closed_stages


def _tick(state: RoomState, scores: dict[str, StakeholderScore], now: int, out: dict[str, list[dict]], cfg: ScoringConfig,
          acfg: AlertConfig, fresh: bool = False) -> RoomState:
    """The time rules at ``now``; ``scores``: the room's, as a dict in id order (``fresh``: ``state.scores``'s own,
    no event folded into it yet in this step). A closed deal's time rules are
    off (``evaluate``), so a tick leaves its state as it is, the clock included: the clock of a closed room moves
    with its own records only, and the holder need not write the state again."""
    if tick_leaves(state, acfg.closed_stages):
        return state
    before = state.bands
    # the daily total, for the bands and the deal row: as the tick before left it, when no event came since (about
    # half the ticks of bench/core_bench.py, and nearly every tick of a wall clock's minutes)
    total: dict[int, float] | None = None
    summed: list[tuple[int, float]] | None = None
    memo = None
    if scores and state.room.stage not in acfg.closed_stages:
        if fresh and state.totals is not None and state.totals[0] is state.scores:
            memo = state.totals
            total, summed = memo[1], memo[2]
        else:
            total = daily_total(scores)
            summed = by_day(total)
            if fresh:
                memo = (state.scores, total, summed)
    bands, alerts = evaluate(state.room, state.facts, scores, state.bands, now, cfg, acfg, summed)
    fired = _fire(state, state.fired, alerts, out) if alerts else state.fired
    snapshot_day = state.snapshot_day
    if state.room.stage not in acfg.closed_stages:
        # time moves scores and bands without events: a row whenever a band changes, and a daily deal snapshot
        old = dict(before.stakeholders)
        changed = [sid for sid, b in bands.stakeholders if old.get(sid, b) != b]
        if changed:
            out.setdefault("stakeholder_scores", []).extend(
                _stakeholder_row(state, sid, scores[sid], now, cfg) for sid in changed)
        day = now // DAY_MS
        if scores and (day > snapshot_day or (before.deal and before.deal != bands.deal)):
            out.setdefault("deal_scores", []).append(_deal_row(state, scores, now, cfg, acfg, total, summed, bands.deal))
            snapshot_day = max(day, snapshot_day)
    return moved(state, state.facts, bands, state.daily, max(state.clock_ms, now), snapshot_day, fired, totals=memo)


def moved(state: RoomState, facts: RoomFacts, bands: BandState, daily: tuple[tuple[int, float], ...], clock_ms: int,
          snapshot_day: int, fired: tuple[str, ...],
          scores: tuple[tuple[str, StakeholderScore], ...] | None = None, totals: Any = None) -> RoomState:
    """``state`` with what runs of events and ticks move, every other field as it is: ``evolve`` written out for
    the two calls the core makes per run and per tick (compiled, a generic ``evolve`` of this 13-field type cost
    2 us, 2026-12-05). tests/unit/test_deals.py checks it copies every field. ``totals``: the new state's memo
    (``_tick``'s); any other caller drops it."""
    return RoomState(state.site, state.room, facts, state.scores if scores is None else scores, bands, daily, clock_ms,
                     snapshot_day, fired, state.partition, state.offset, state.meta, state.model, totals)


def internal_team(people: list[dict], domains: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The seller's team among a room's people (flagged internal, or an email at one of the site's internal
    domains) and the team's addresses ("@domain" entries and the team's emails)."""
    at = {"@" + d.lower().lstrip("@") for d in domains if d}
    team = [p for p in people if p.get("internal") or
            ("@" in (p.get("email") or "") and "@" + p["email"].lower().rsplit("@", 1)[1] in at)]
    return tuple(p["id"] for p in team), tuple(sorted(at | {p["email"].lower() for p in team if p.get("email")}))


def _room_update(state: RoomState, rec: dict, out: dict[str, list[dict]]) -> RoomState:
    room = state.room
    at = int(rec["updated_at"])
    changes: dict = {}
    owner_now = rec.get("owner") or dict(state.meta).get("owner", "")
    if (rec.get("stage") and rec["stage"] != room.stage) or not state.meta:  # a deal's history starts when described
        out.setdefault("room_stage_history", []).append(
            {"site": state.site, "room_id": room.room_id, "from_stage": room.stage if state.meta else "",
             "to_stage": rec.get("stage") or room.stage, "changed_at": at, "owner": owner_now})
        changes["stage"] = rec.get("stage") or room.stage
    _field_history(state, rec, at, owner_now, out)
    if "stakeholders" in rec:
        changes["invited"] = tuple((s["id"], s.get("role", "other")) for s in rec["stakeholders"])
        changes["emails"] = tuple(s["email"].lower() for s in rec["stakeholders"] if s.get("email"))
    if "stakeholders" in rec or "internal_domains" in rec:
        domains = rec.get("internal_domains", [a[1:] for a in room.internal_addresses if a.startswith("@")])
        people = rec["stakeholders"] if "stakeholders" in rec else [
            {"id": sid, "email": email, "internal": sid in room.internal} for sid, email in dict(state.meta).get("emails", [])]
        changes["internal"], changes["internal_addresses"] = internal_team(people, domains)
    if "content" in rec:
        changes["content"] = tuple((c["id"], c["kind"], c.get("title", "")) for c in rec["content"])
    if rec.get("timezone"):
        changes["tz"] = rec["timezone"]
    if rec.get("proposal_shared_at") is not None:
        changes["proposal_shared_ms"] = int(rec["proposal_shared_at"])
    meta = dict(state.meta)
    meta.setdefault("created_at", room.created_ms)
    if "content" in rec:
        meta["content"] = rec["content"]
    for k in ("owner", "amount", "expected_close", "name"):
        if rec.get(k) is not None:
            meta[k] = rec[k]
    if "stakeholders" in rec:
        meta["emails"] = [[s["id"], s.get("email", "")] for s in rec["stakeholders"]]
    meta["updated_at"] = max(at, int(meta.get("updated_at", 0)))
    room = evolve(room, owner=str(meta.get("owner", "")), **changes)
    state = evolve(state, room=room, meta=tuple(sorted(meta.items())))
    out.setdefault("rooms", []).append(room_row(state))
    return state


HISTORY_FIELDS: Final = ("stage", "owner", "amount", "expected_close")  # the deal fields KPIs follow over time


def _field_value(name: str, value) -> str:
    if value is None or value == "":
        return ""
    return repr(float(value)) if name == "amount" else str(value)


def _field_history(state: RoomState, rec: dict, at: int, owner: str, out: dict[str, list[dict]]) -> None:
    """One ``deal_field_history`` row per tracked field this update changes (old -> new, at the CRM's
    ``updated_at``); the first description of a deal records every field it gives (old value '')."""
    meta = dict(state.meta)
    before = {"stage": state.room.stage if state.meta else "", "owner": meta.get("owner", ""),
              "amount": meta.get("amount"), "expected_close": meta.get("expected_close")}
    after = dict(before, stage=rec.get("stage") or (state.room.stage if not state.meta else before["stage"]))
    for name in ("owner", "amount", "expected_close"):
        if rec.get(name) is not None:
            after[name] = rec[name]
    for name in HISTORY_FIELDS:
        old, new = _field_value(name, before[name]), _field_value(name, after[name])
        if new != old:
            out.setdefault("deal_field_history", []).append(
                {"site": state.site, "room_id": state.room.room_id, "field": name, "old_value": old, "new_value": new,
                 "changed_at": at, "owner": owner})


def forget(state: RoomState, who: str, at_ms: int, out: dict[str, list[dict]]) -> RoomState:
    """Erase a person from the room's state: score, band, facts, invitation and email (``visitor:<id>`` for an
    anonymous visitor). A described room gets a new rooms row without them (newer, so it replaces the old)."""
    visitor = who[len("visitor:"):] if who.startswith("visitor:") else None
    facts = evolve(state.facts, stakeholders=tuple(p for p in state.facts.stakeholders if p[0] != who),
                    token_visitors=tuple(p for p in state.facts.token_visitors if p[0] != who and p[1] != visitor),
                    shared_to=tuple(x for x in state.facts.shared_to if who not in (x[0], x[1]) and x[3] != visitor),
                    visitors=tuple(x for x in state.facts.visitors if x != visitor))
    meta = dict(state.meta)
    if "emails" in meta:
        meta["emails"] = [e for e in meta["emails"] if e[0] != who]
    if meta:
        meta["updated_at"] = max(at_ms, int(meta.get("updated_at", 0)) + 1)
    state = evolve(state, facts=facts, scores=tuple(p for p in state.scores if p[0] != who),
                    bands=evolve(state.bands, stakeholders=tuple(p for p in state.bands.stakeholders if p[0] != who)),
                    room=evolve(state.room, invited=tuple(p for p in state.room.invited if p[0] != who)),
                    meta=tuple(sorted(meta.items())))
    if meta:
        out.setdefault("rooms", []).append(room_row(state))
    return state


def room_row(state: RoomState) -> dict:
    meta, room = dict(state.meta), state.room
    emails = dict(tuple(x) for x in meta.get("emails", []))
    return {"site": state.site, "room_id": room.room_id, "name": str(meta.get("name", "")), "owner": room.owner,
            "stage": room.stage, "amount": float(meta.get("amount") or 0), "expected_close": meta.get("expected_close") or None,
            "stakeholders": orjson.dumps([{"id": s, "role": r, "email": emails.get(s, ""), "internal": s in room.internal}
                                          for s, r in room.invited]).decode(),
            "content": orjson.dumps(meta.get("content", [])).decode(),
            "proposal_shared_at": room.proposal_shared_ms or None, "timezone": room.tz,
            "created_at": int(meta.get("created_at", room.created_ms)),
            "updated_at": int(meta["updated_at"])}


def _alert_rows(state: RoomState, alerts: list[Alert], out: dict[str, list[dict]]) -> None:
    for a in alerts:
        aid = _IDS.name(f"{state.site}/{a.room_id}/{a.kind}/{a.severity}/{','.join(a.stakeholders)}/{a.at_ms}")
        out.setdefault("alerts", []).append({
            "alert_id": aid, "site": state.site, "room_id": a.room_id, "owner": state.room.owner,
            "stage": state.room.stage, "kind": a.kind, "severity": a.severity, "stakeholders": list(a.stakeholders),
            "evidence": a.evidence, "suggestion": a.suggestion, "at": a.at_ms})


def role_of(invited: tuple[tuple[str, str], ...], sid: str) -> str:
    """``dict(invited).get(sid, "")`` without building the dict (the last entry for an id wins, as in a dict)."""
    for i in range(len(invited) - 1, -1, -1):
        if invited[i][0] == sid:
            return invited[i][1]
    return ""


def _stakeholder_row(state: RoomState, sid: str, s: StakeholderScore, at: int, cfg: ScoringConfig) -> dict:
    return {"site": state.site, "room_id": state.room.room_id, "stakeholder_id": sid,
            "role": role_of(state.room.invited, sid), "at": at, "score": rounded(value_at(s, at, cfg), 4),
            "band": stakeholder_band(s, at, cfg) if is_person(sid) else "Visitor",
            "velocity": stored_velocity(velocity(s, at, cfg)), "first_seen": s.first_seen_ms, "last_seen": s.last_seen_ms,
            "reasons": orjson.dumps([[r, rounded(v, 3)] for r, v in top_reasons(s, at, 3, cfg)]).decode()}


def deal_features(state: RoomState, at: int, cfg: ScoringConfig = DEFAULT, acfg: AlertConfig = ALERTS,
                  whole: DealScore | None = None, total: dict[int, float] | None = None,
                  everyone: dict[str, StakeholderScore] | None = None,
                  roles: dict[str, str] | None = None) -> dict[str, float]:
    """The win model's inputs for this room at ``at`` (streams/winmodel.py): scored on its people only.
    ``whole``: the room's deal score at ``at`` (visitors included), and ``total``: its ``daily_total``, both
    reused when the room has no visitor; ``everyone``: the room's scores as a dict, and ``roles`` its
    committee's, when the caller has them."""
    if roles is None:
        roles = dict(state.room.invited)
    if everyone is None:
        everyone = dict(state.scores)
    people_only = True
    for sid in everyone:
        if not is_person(sid):
            people_only = False
            break
    scores = everyone if people_only else {sid: s for sid, s in everyone.items() if is_person(sid)}
    engaged_ids: tuple[str, ...] | list[str]
    if whole is not None and people_only:
        engaged_ids, breadth, depth, recency = whole.engaged, whole.breadth, whole.depth, whole.recency
    else:  # the people's parts alone (the rest of a deal score, its daily history and band, is not a feature)
        engaged_ids, _, _, breadth, depth, recency = deal_parts(scores, roles, max(1, len(roles)), at, cfg)
        breadth, depth, recency = rounded(breadth, 4), rounded(depth, 4), rounded(recency, 4)
    daily = total if total is not None and people_only else daily_total(scores)
    pos = acfg.stage_position(state.room.stage)
    engaged = len([sid for sid in engaged_ids if sid in roles])
    person_days = [(sid, s.daily) for sid, s in scores.items() if sid in roles]
    return win_features(breadth, depth, recency, daily, engaged, len(roles), pos,
                        (at - state.room.created_ms) / DAY_MS, at // DAY_MS, person_days)


def _deal_row(state: RoomState, scores: dict[str, StakeholderScore], at: int, cfg: ScoringConfig, acfg: AlertConfig,
              total: dict[int, float] | None = None, summed: list[tuple[int, float]] | None = None,
              band: str = "") -> dict:
    """``scores``: the room's, as a dict in id order; ``total``: their ``daily_total``, ``summed`` the same by
    day, and ``band`` the deal's band at ``at``, when the caller has them."""
    roles = dict(state.room.invited)
    if total is None:
        total = daily_total(scores)
    if summed is None:
        summed = by_day(total)
    d = deal_score(scores, roles, max(1, len(roles)), at, cfg, summed, band)
    engaged = len(d.engaged)
    feats = deal_features(state, at, cfg, acfg, whole=d, total=total, everyone=scores, roles=roles)
    return {"site": state.site, "room_id": state.room.room_id, "owner": state.room.owner, "stage": state.room.stage,
            "at": at, "score": d.value, "breadth": d.breadth, "depth": d.depth, "recency": d.recency,
            "velocity": stored_velocity(d.velocity), "band": d.band, "engaged": engaged,
            "invited": len(roles), "reasons": orjson.dumps(list(d.reasons)).decode(),
            "win_probability": rounded(state.model.predict(feats), 4), "model_version": state.model.version,
            "features": orjson.dumps(feats).decode()}


# -- state (de)serialisation: JSON, stable across processes (Faust table values, embedded snapshots)

def dumps(state: RoomState) -> bytes:
    return orjson.dumps({
        "v": 1, "site": state.site, "room": _room_dict(state.room), "facts": _facts_dict(state.facts),
        "scores": [[sid, _score_dict(s)] for sid, s in state.scores],
        "bands": {"deal": state.bands.deal, "stakeholders": state.bands.stakeholders},
        "daily": state.daily, "clock_ms": state.clock_ms, "snapshot_day": state.snapshot_day, "fired": state.fired,
        "partition": state.partition, "offset": state.offset, "meta": [[k, v] for k, v in state.meta],
        "model": {"version": state.model.version, "coef": [list(c) for c in state.model.coef], "won": state.model.won,
                  "lost": state.model.lost}})


def loads(data: bytes) -> RoomState:
    d = orjson.loads(data)
    r = d["room"]
    room = Room(r["room_id"], r["stage"], r["created_ms"], _pairs(r["invited"]), r["proposal_shared_ms"], r["owner"],
                tuple(r.get("emails", ())), tuple(tuple(c) for c in r.get("content", ())), tuple(r.get("internal", ())),
                tuple(r.get("internal_addresses", ())), r.get("tz", ""))
    f = d["facts"]
    facts = RoomFacts(f["last_activity_ms"], _pairs(f["stakeholders"]), _pairs(f["token_visitors"]),
                      tuple(f["pricing_days"]), f["proposal_opened_ms"], f["proposal_max_pct"], tuple(f["viewed_kinds"]),
                      tuple(tuple(x) for x in f.get("shared_to", ())), tuple(f.get("visitors", ())), f.get("hot_ms", 0),
                      tuple(f.get("active_days", ())), tuple(f.get("internal_visitors", ())))
    scores = tuple((sid, StakeholderScore(
        s["value"], s["updated_ms"], s["first_seen_ms"], s["last_seen_ms"], _pairs(s["reasons"]),
        tuple(((k[0], k[1]), v) for k, v in s["day_type_points"]), _pairs(s["daily"]))) for sid, s in d["scores"])
    return RoomState(d["site"], room, facts, scores, BandState(d["bands"]["deal"], _pairs(d["bands"]["stakeholders"])),
                     _pairs(d["daily"]), d["clock_ms"], d["snapshot_day"], tuple(d["fired"]), d["partition"],
                     d["offset"], tuple((k, v) for k, v in d["meta"]),
                     WinModel.from_record(d["model"]) if "model" in d else PRIOR_MODEL)


def _pairs(items) -> tuple:
    return tuple((a, b) for a, b in items)


def _room_dict(r: Room) -> dict:
    return {"room_id": r.room_id, "stage": r.stage, "created_ms": r.created_ms, "invited": r.invited,
            "proposal_shared_ms": r.proposal_shared_ms, "owner": r.owner, "emails": r.emails, "content": r.content,
            "internal": r.internal, "internal_addresses": r.internal_addresses, "tz": r.tz}


def _facts_dict(f: RoomFacts) -> dict:
    return {"last_activity_ms": f.last_activity_ms, "stakeholders": f.stakeholders, "token_visitors": f.token_visitors,
            "pricing_days": f.pricing_days, "proposal_opened_ms": f.proposal_opened_ms,
            "proposal_max_pct": f.proposal_max_pct, "viewed_kinds": f.viewed_kinds, "shared_to": f.shared_to,
            "visitors": f.visitors, "hot_ms": f.hot_ms, "active_days": f.active_days,
            "internal_visitors": f.internal_visitors}


def _score_dict(s: StakeholderScore) -> dict:
    return {"value": s.value, "updated_ms": s.updated_ms, "first_seen_ms": s.first_seen_ms,
            "last_seen_ms": s.last_seen_ms, "reasons": s.reasons,
            "day_type_points": [[list(k), v] for k, v in s.day_type_points], "daily": s.daily}
