"""Alert rules: one pure function per rule, each with its own episode key; explicit ``now``, no I/O.

Event rules see the room's facts as they were before the event (``EventView``); ``observe`` runs them and folds
the event into the facts. Time rules run on ticks (``TimeView``, with the velocity bands before and now);
``evaluate`` runs them. Every alert carries kind, severity, room, stakeholders, evidence, a follow-up
suggestion and its episode: ``streams/deals.py`` raises an alert only once per episode key (one mechanism
for every rule). Fatigue control across alerts (cooldowns, quiet hours) is the delivery stage's job.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from streams.model import ALERTS, Alert, AlertConfig, BandState, Room, RoomFacts, alert_config, evolve  # noqa: F401
from streams.scoring import (
    DAY_MS,
    DEFAULT,
    ScoringConfig,
    StakeholderScore,
    deal_band,
    engaged_ids,
    is_person,
    ms,
    stakeholder_band,
    value_at,
)

SHARE_CLAIM_DAYS: Final = 14  # a new anonymous visitor is linked to a share made at most this many days before
MAX_SHARES: Final = 32
MAX_VISITORS: Final = 50


class EventView:
    """What an event rule sees: the room, its facts before this event, the event. A plain slotted class: one is
    made per event."""

    __slots__ = ("room", "facts", "rec", "ts", "sid", "kind", "daily_points", "points")

    def __init__(self, room: Room, facts: RoomFacts, rec: dict, ts: int, sid: str, kind: str,
                 daily_points: Sequence[tuple[int, float]], points: float) -> None:
        self.room = room
        self.facts = facts  # before this event
        self.rec = rec
        self.ts = ts
        self.sid = sid  # verified stakeholder id ("" for an anonymous visitor)
        self.kind = kind  # content kind of the event's content ("" without content)
        self.daily_points = daily_points  # the room's raw points per day, this event included
        self.points = points  # this event's own points

    def alert(self, kind: str, severity: str, who, evidence: str, suggestion: str, episode: str = "") -> Alert:
        return Alert(kind, severity, self.room.room_id, tuple(who), evidence, suggestion, self.ts, episode)

    @property
    def who(self) -> list[str]:
        return [self.sid] if self.sid else []


@dataclass(frozen=True)
class TimeView:
    room: Room
    facts: RoomFacts
    scores: dict[str, StakeholderScore]
    before: BandState  # bands at the previous tick
    now: BandState  # bands at this tick
    now_ms: int

    def alert(self, kind: str, severity: str, who, evidence: str, suggestion: str, episode: str) -> Alert:
        return Alert(kind, severity, self.room.room_id, tuple(who), evidence, suggestion, self.now_ms, episode)


EventRule = Callable[[EventView, ScoringConfig, AlertConfig], list[Alert]]
TimeRule = Callable[[TimeView, ScoringConfig, AlertConfig], list[Alert]]


# ---------------------------------------------------------------- event rules (positive signals)

SAME_PERSON_DEVICES: Final = 2  # devices one person's link may open on before it reads as forwarded


def _holds(pairs: tuple[tuple[str, Any], ...], key: str) -> bool:
    """Whether ``key`` is the first of one of ``pairs`` (a loop: cheaper than any() over a generator)."""
    for k, _ in pairs:  # noqa: SIM110
        if k == key:
            return True
    return False


def new_stakeholder_by_link(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """A valid link opened by someone off the committee; or a person's link on a third device (a second one is
    the same person's phone or laptop, not news), once per person."""
    if not v.sid:
        return []
    if not _holds(v.facts.stakeholders, v.sid) and not _holds(v.room.invited, v.sid):
        return [v.alert("new_stakeholder", "info", [v.sid], f"{v.sid} opened the room with a valid link but is not on "
                        "the invited committee", f"Find out {v.sid}'s role and add them to the deal")]
    visitor = v.rec.get("visitor_id")
    devices, seen = 0, False  # the person's devices so far (the pairs are distinct), and whether this is one
    for s, vis in v.facts.token_visitors:
        if s == v.sid:
            devices += 1
            seen = seen or vis == visitor
    if devices >= SAME_PERSON_DEVICES and not seen:
        return [v.alert("new_stakeholder", "info", [v.sid], f"{v.sid}'s link was opened on a device "
                        f"{devices + 1}: more than one person's phone and laptop",
                        f"The link may have been forwarded: ask {v.sid} who else is evaluating",
                        episode=f"devices/{v.sid}")]
    return []


def recipient(rec: dict) -> str:
    return str(rec.get("share_to") or "").strip().lower()


def _invited_addresses(room: Room) -> set[str]:
    return {sid.lower() for sid, _ in room.invited} | {e.lower() for e in room.emails if e}


def shared(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """The room shared onward to someone new: once per recipient. A share to an invited stakeholder (by id or
    email) or to someone it was already shared with is not news; a share without a recipient (a copied link)
    is news once per sharer and channel."""
    if v.rec.get("type") != "share":
        return []
    to, channel = recipient(v.rec), v.rec.get("share_channel") or "link"
    invited = _invited_addresses(v.room)
    if to and (to in invited or to in {s[0] for s in v.facts.shared_to} or v.room.is_internal_address(to)):
        return []  # a share back to the seller's own team is not a new buyer either
    by = v.sid or "an anonymous visitor"
    if not to:
        return [v.alert("new_stakeholder", "info", v.who, f"{by} copied the room's link to share it via {channel}",
                        "Ask who else is evaluating, and offer them a short intro call",
                        episode=f"share/{v.sid or v.rec.get('visitor_id', '')}/{channel}")]
    return [v.alert("new_stakeholder", "info", v.who, f"{by} shared the room with {to} via {channel}",
                    f"Offer {to} a short intro call and make sure they have the right content", episode=f"share/{to}")]


def likely_share(facts: RoomFacts, ts: int) -> tuple[str, str, int, str] | None:
    """The most recent share not yet linked to a visitor, made at most SHARE_CLAIM_DAYS before ``ts``."""
    open_shares = [s for s in facts.shared_to if not s[3] and 0 <= ts - s[2] <= SHARE_CLAIM_DAYS * DAY_MS]
    return max(open_shares, key=lambda s: s[2]) if open_shares else None


def shared_link_opened(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """A new anonymous visitor right after a share: most likely its recipient's first visit."""
    visitor = v.rec.get("visitor_id", "")
    if v.sid or v.rec.get("type") != "room_view" or not visitor or visitor in v.facts.visitors:
        return []
    share = likely_share(v.facts, v.ts)
    if share is None:
        return []
    to, by, at, _ = share
    days = int((v.ts - at) // DAY_MS)
    when = "today" if days == 0 else "1 day ago" if days == 1 else f"{days} days ago"
    return [v.alert("new_stakeholder", "info", [], f"a new visitor opened the room: likely {to}, shared by {by} {when}",
                    f"{to} is looking: offer a short intro call and find out their role", episode=f"share_visit/{to}")]


def pricing_revisited(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """Pricing looked at again on a second day."""
    if v.kind != "pricing" or v.rec.get("type") not in ("content_view", "engagement"):
        return []
    days = set(v.facts.pricing_days)
    if days and v.ts // DAY_MS not in days and len(days) == 1:
        return [v.alert("pricing_revisited", "low", v.who, "pricing viewed again on a second day",
                        "Pricing is being weighed: offer to walk through options or a tailored quote")]
    return []


def proposal_read(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """The proposal read to the end, the first time."""
    pct = v.rec.get("progress_pct") or 0.0
    if v.kind == "proposal" and v.rec.get("type") == "content_progress" and pct >= 100 > v.facts.proposal_max_pct:
        return [v.alert("proposal_read", "low", v.who, "the proposal was read to the end",
                        "Ask for feedback on the proposal and propose next steps toward signature")]
    return []


def hot(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """Today's points cross a multiple of the average day (and a floor) with this event; at most once a period."""
    if not v.daily_points or v.points <= 0:
        return []  # (an event without points cannot be the one that crosses the threshold)
    if v.facts.hot_ms and v.ts - v.facts.hot_ms < acfg.hot_every_days * DAY_MS:
        return []
    today = v.ts // DAY_MS
    todays = 0.0  # loops, not sum() and min() over generators: compiled, these are typed (the same sums, in order)
    first = today
    for d, p in v.daily_points:
        if d == today:
            todays += p
        if d < first:
            first = d
    if todays < acfg.spike_min_points:
        return []  # below the floor whatever the average day
    if today - first < acfg.hot_baseline_days:
        return []  # no baseline yet: a deal's first days are not a spike
    window = 0.0
    for d, p in v.daily_points:
        if today - acfg.spike_window_days <= d < today:
            window += p
    avg = window / acfg.spike_window_days
    threshold = max(acfg.spike_min_points, acfg.spike_factor * avg)
    if todays >= threshold > todays - v.points:
        return [v.alert("hot", "medium", v.who, f"{todays:.0f} engagement points today vs {avg:.1f} on an average "
                        "day", "The deal is hot right now: reach out today",
                        episode=f"hot/{today}")]
    return []


EVENT_RULES: Final[tuple[EventRule, ...]] = (new_stakeholder_by_link, shared, shared_link_opened, pricing_revisited,
                                      proposal_read, hot)


# ---------------------------------------------------------------- time rules (stalls)

def suggest_for_quiet(facts: RoomFacts, room: Room, scores: dict[str, StakeholderScore], now_ms: int,
                      cfg: ScoringConfig = DEFAULT) -> str:
    """A next step from the room's own facts: the proposal it has, the people it has. Never names a role or
    content the room does not have."""
    if room.proposal_shared_ms and not facts.proposal_opened_ms:
        return "The proposal was never opened: resend it with a two-line summary of what matters to them"
    people = sorted((value_at(s, now_ms, cfg), sid) for sid, s in scores.items() if is_person(sid))
    best = people[-1][1] if people else ""
    engaged = set(engaged_ids(scores, now_ms, cfg))
    missing = [(sid, role) for sid, role in room.invited if sid not in engaged and sid != best]
    if best and missing:
        names = ", ".join(f"{sid} ({role})" for sid, role in missing[:3])
        return f"Ask {best}, your most engaged contact, to bring {names} back in with one concrete next step"
    if best:
        return f"Check in with {best}, your most engaged contact, with one concrete next step"
    if room.invited:
        sid, role = room.invited[0]
        return f"Reach out to {sid} ({role}) directly with one concrete next step"
    return "Reach out to your contact with one concrete next step"


def usual_gap(facts: RoomFacts, acfg: AlertConfig) -> float:
    """The room's rhythm: the longest of its recent gaps between active days, in working days (0 until the room
    has three gaps to learn from)."""
    days = facts.active_days[-(acfg.rhythm_gaps + 1):]
    if len(days) < 4:
        return 0.0
    return max(acfg.calendar.working_days(a, b) for a, b in zip(days, days[1:]))


def unusual_after(facts: RoomFacts, acfg: AlertConfig, scores: dict[str, StakeholderScore] | None = None,
                  created_ms: int = 0) -> float:
    """Working days of silence that are unusual for this room, from its history before the current silence:
    - its rate r of active working days over the last ``rate_window_days`` (one pseudo active day per
      1/``prior_rate`` working days added, so a young room is not judged on two visits): g silent working
      days happen by chance with probability (1 - r)^g, unusual once below ``quiet_alpha``;
    - a steady room (``steady_min_gaps`` recent gaps between active days or more, varying by less than half
      their mean) is judged by its steadiness, if that is sooner: past the longer of rhythm_factor x its mean gap and the mean +
      ``gap_spread`` deviations."""
    last = facts.last_activity_ms
    if not last:
        return 0.0
    cal = acfg.calendar
    start = max(created_ms, last - acfg.rate_window_days * DAY_MS)
    span = cal.working_days(start, last)
    days = {d for s in (scores or {}).values() for d, v in s.daily if v > 0} | {t // DAY_MS for t in facts.active_days}
    active = [d for d in days if start // DAY_MS <= d <= last // DAY_MS and cal.works_on(d)]
    rate = min(0.95, (max(1, len(active)) + 1) / (span + 1 + 1 / acfg.prior_rate))
    limit = math.log(acfg.quiet_alpha) / math.log(1 - rate)
    # a stall the room came back from is not its rhythm: gaps that were unusual themselves count up to the limit
    marks = sorted(active)
    excess = sum(max(0.0, cal.working_days(a * DAY_MS, b * DAY_MS) - limit) for a, b in zip(marks, marks[1:]))
    if excess:
        rate = min(0.95, (len(active) + 1) / (span - excess + 1 + 1 / acfg.prior_rate))
        limit = math.log(acfg.quiet_alpha) / math.log(1 - rate)
    recent = facts.active_days[-(acfg.rhythm_gaps + 1):]
    if len(recent) > acfg.steady_min_gaps:
        gaps = [cal.working_days(a, b) for a, b in zip(recent, recent[1:])]
        mean = sum(gaps) / len(gaps)
        sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1))
        if sd < 0.5 * mean:
            limit = min(limit, max(acfg.rhythm_factor * mean, mean + acfg.gap_spread * sd))
    return min(limit, acfg.longest_usual_days)


def room_unopened(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """Nobody has opened the room for longer than its stage's cadence since it was created (no buyer has
    engaged yet, so this is not a silence of theirs: the link may not have reached them). Once per room."""
    cadence = acfg.cadence(v.room.stage)
    if v.facts.last_activity_ms or not (cadence and v.room.created_ms):
        return []
    waited = acfg.calendar.working_days(v.room.created_ms, v.now_ms)
    if waited <= cadence:
        return []
    who = ", ".join(sid for sid, _ in v.room.invited[:3])
    return [v.alert("room_unopened", "low", [], f"nobody has opened the room in the {waited:.1f} working days since it "
                    f"was created", f"Check the link reached {who or 'your contact'}: resend it with one line on what is "
                    "inside", episode="room_unopened")]


def quiet(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """No buyer activity for longer than the stage's cadence AND than is usual for this room (``unusual_after``),
    counted in the buyer's working days (weekends and holidays are not silence). Severity by how far past (1x,
    2x, 3x). One per quiet stretch and severity step: re-arms when the buyer comes back."""
    cadence = acfg.cadence(v.room.stage)
    since = v.facts.last_activity_ms
    if not (cadence and since):
        return []  # a room nobody opened yet: room_unopened
    silent = acfg.calendar.working_days(since, v.now_ms)
    if silent <= cadence:
        return []  # within the stage's cadence: never quiet, however usual silence is for this room
    usual = unusual_after(v.facts, acfg, v.scores, v.room.created_ms)
    norm = max(cadence, usual)
    over = silent / norm
    if over <= 1:
        return []
    sev = "high" if over >= 3 else "medium" if over >= 2 else "low"
    rhythm = usual_gap(v.facts, acfg)
    why = f"; unusual for this room after {usual:.1f}" if usual > cadence else ""
    why += f" (its longest recent gap is {rhythm:.1f})" if why and rhythm else ""
    return [v.alert("quiet", sev, [], f"no buyer activity for {silent:.1f} working days; {v.room.stage} expects contact "
                    f"every {cadence:g} working days{why}", suggest_for_quiet(v.facts, v.room, v.scores, v.now_ms, cfg),
                    episode=f"quiet/{v.facts.last_activity_ms}/{sev}")]


LIVE: Final = ("Active", "Cooling", "New")


def _past_usual(v: TimeView, acfg: AlertConfig) -> bool:
    since = v.facts.last_activity_ms or v.room.created_ms
    return acfg.calendar.working_days(since, v.now_ms) > unusual_after(v.facts, acfg, v.scores, v.room.created_ms)


def deal_went_dark(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """The deal's band became Dark (from Active, Cooling or New; fires on the transition) while the room is
    silent for longer than is usual for it (a slower month alone is not a stalled deal)."""
    if v.before.deal in LIVE and v.now.deal == "Dark" and _past_usual(v, acfg):
        return [v.alert("deal_went_dark", "high", [], f"deal engagement went from {v.before.deal} to Dark",
                        suggest_for_quiet(v.facts, v.room, v.scores, v.now_ms, cfg), episode=f"deal_went_dark//{v.now_ms}")]
    return []


def stakeholder_dark(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """A person's band became Dark (anonymous visitors have no bands); the champion's is its own kind."""
    out: list[Alert] = []
    before: dict[str, str] | None = None
    invited: dict[str, str] = {}
    for sid, b in v.now.stakeholders:
        if b != "Dark":
            continue
        if before is None:  # (the usual tick has nobody Dark: no lookups to build)
            before, invited = dict(v.before.stakeholders), dict(v.room.invited)
        if before.get(sid) in LIVE:
            role = invited.get(sid, "stakeholder")
            kind = "champion_dark" if role == "champion" else "stakeholder_dark"
            out.append(v.alert(kind, "high" if role == "champion" else "medium", [sid], f"{sid} ({role}) went from "
                               f"{before[sid]} to Dark", f"Reach {sid} directly, or through another stakeholder, before the "
                               "deal stalls", episode=f"{kind}/{sid}/{v.now_ms}"))
    return out


def single_threaded(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """After some days only one of a committee engages."""
    invited = dict(v.room.invited)
    age_days = (v.now_ms - v.room.created_ms) / DAY_MS if v.room.created_ms else 0
    if age_days < acfg.single_threaded_after_days or len(invited) < 2:
        return []
    engaged = engaged_ids(v.scores, v.now_ms, cfg)
    if len(engaged) == 1:
        others = sorted(set(invited) - set(engaged))
        return [v.alert("single_threaded", "medium", engaged, f"after {age_days:.0f} days only {engaged[0]} engages",
                        f"Ask {engaged[0]} to bring in {', '.join(others[:3])}",
                        episode=f"single_threaded/{','.join(engaged)}/{len(invited)}")]
    return []


def proposal_unopened(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """The proposal was shared some days ago and never opened."""
    if not v.room.proposal_shared_ms or v.facts.proposal_opened_ms:
        return []
    waited = (v.now_ms - v.room.proposal_shared_ms) / DAY_MS
    if waited >= acfg.proposal_unopened_after_days:
        return [v.alert("proposal_unopened", "medium", [], f"the proposal was shared {waited:.0f} days ago and never "
                        "opened", "Resend the proposal with a short summary, or walk them through it live",
                        episode=f"proposal_unopened/{v.room.proposal_shared_ms}")]
    return []


TIME_RULES: Final[tuple[TimeRule, ...]] = (quiet, room_unopened, deal_went_dark, stakeholder_dark, single_threaded, proposal_unopened)


# ---------------------------------------------------------------- running them

def event_alerts(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """``[a for rule in EVENT_RULES for a in rule(v, cfg, acfg)]``, each rule called by name: compiled, a call
    through the tuple went through Python's calling convention (argument parsing, for six rules an event).
    tests/unit/test_alerts.py checks the two agree and name the same rules."""
    out = new_stakeholder_by_link(v, cfg, acfg)
    out.extend(shared(v, cfg, acfg))
    out.extend(shared_link_opened(v, cfg, acfg))
    out.extend(pricing_revisited(v, cfg, acfg))
    out.extend(proposal_read(v, cfg, acfg))
    out.extend(hot(v, cfg, acfg))
    return out


def time_alerts(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """``[a for rule in TIME_RULES for a in rule(v, cfg, acfg)]``, each rule called by name (as ``event_alerts``)."""
    out = quiet(v, cfg, acfg)
    out.extend(room_unopened(v, cfg, acfg))
    out.extend(deal_went_dark(v, cfg, acfg))
    out.extend(stakeholder_dark(v, cfg, acfg))
    out.extend(single_threaded(v, cfg, acfg))
    out.extend(proposal_unopened(v, cfg, acfg))
    return out


def _kind(cfg: ScoringConfig, content_id: str, room: Room, kinds: dict[str, str] | None = None) -> str:
    """The content's declared kind (the room's catalogue, or ``kinds``: the same as a dict), else the guess
    from its id."""
    if not content_id:
        return ""
    return (room.kinds if kinds is None else kinds).get(content_id) or cfg.kind(content_id)


def observe(room: Room, facts: RoomFacts, rec: dict, daily_points: Sequence[tuple[int, float]] = (),
            points: float = 0.0, cfg: ScoringConfig = DEFAULT,
            acfg: AlertConfig = ALERTS, kinds: dict[str, str] | None = None,
            activity: bool = True) -> tuple[RoomFacts, list[Alert]]:
    """Run the event rules on one event, then fold it into the room's facts. ``kinds``: ``room.kinds``, when
    the caller has it; ``activity``: as for ``fold``."""
    ts, sid = ms(rec["ts"]), rec.get("stakeholder_id", "")
    kind = _kind(cfg, rec.get("content_id", ""), room, kinds)
    view = EventView(room, facts, rec, ts, sid, kind, daily_points, points)
    alerts = event_alerts(view, cfg, acfg)
    return fold(facts, rec, ts, sid, kind, alerts, acfg, room, activity), alerts


def observe_in_run(room: Room, facts: RoomFacts, rec: dict, daily_points: Sequence[tuple[int, float]], points: float,
                   cfg: ScoringConfig, acfg: AlertConfig, kinds: dict[str, str]) -> tuple[RoomFacts, list[Alert]]:
    """``observe`` for a run of events (streams/deals.py): the facts returned leave ``last_activity_ms`` as it
    was (the caller folds the run's latest time in when the run ends; no event rule reads it), so the usual
    event, which establishes nothing else, returns ``facts`` itself."""
    return observe(room, facts, rec, daily_points, points, cfg, acfg, kinds, False)


def fold(facts: RoomFacts, rec: dict, ts: int, sid: str, kind: str, alerts: list[Alert] = (),  # type: ignore[assignment]
         acfg: AlertConfig = ALERTS, room: Room | None = None, activity: bool = True) -> RoomFacts:
    """What one event establishes about the room. ``activity=False``: ``last_activity_ms`` is left as it is (and
    ``facts`` itself returned when nothing else changes)."""
    etype: str = rec.get("type", "")
    shares, visitors = facts.shared_to, facts.visitors  # rebuilt only when this event adds to them
    visitor = rec.get("visitor_id", "")
    if not sid and etype == "room_view" and visitor and visitor not in visitors:
        claimed = likely_share(facts, ts)
        if claimed:
            i = shares.index(claimed)
            shares = (*shares[:i], (*claimed[:3], visitor), *shares[i + 1:])
        visitors = (*visitors, visitor)[-MAX_VISITORS:]
    to = recipient(rec) if etype == "share" else ""
    # a share to the seller's team, or to someone invited (they open the room with their own link), never
    # waits for an anonymous first visit
    if (to and not (room is not None and (room.is_internal_address(to) or to in _invited_addresses(room)))
            and to not in {s[0] for s in shares}):
        shares = (*shares, (to, sid or "an anonymous visitor", ts, ""))[-MAX_SHARES:]
    hot_ms = max([facts.hot_ms] + [a.at_ms for a in alerts if a.kind == "hot"]) if alerts else facts.hot_ms
    day = ts // DAY_MS
    active = facts.active_days
    if not active or day > active[-1] // DAY_MS:
        active = (*active, ts)[-(acfg.rhythm_gaps + 1):]
    elif day != active[-1] // DAY_MS and day not in {d // DAY_MS for d in active}:  # a late event from an earlier day
        active = tuple(sorted((*active, ts))[-(acfg.rhythm_gaps + 1):])
    # each fact is rebuilt only when this event adds to it (the usual event adds nothing new)
    stakeholders, token_visitors = facts.stakeholders, facts.token_visitors
    if sid:
        if not any(s == sid for s, _ in stakeholders):
            stakeholders = tuple(sorted((*stakeholders, (sid, ts))))
        pair = (sid, rec.get("visitor_id", ""))
        if pair not in token_visitors:
            token_visitors = tuple(sorted({*token_visitors, pair}))
    pricing_days = facts.pricing_days
    if kind == "pricing" and etype in ("content_view", "engagement") and day not in pricing_days:
        pricing_days = tuple(sorted((*pricing_days, day)))
    opened, max_pct = facts.proposal_opened_ms, facts.proposal_max_pct
    if kind == "proposal":
        opened = opened or ts
        max_pct = max(max_pct, rec.get("progress_pct") or 0.0)
    viewed = facts.viewed_kinds
    if kind and etype == "content_view" and kind not in viewed:
        viewed = tuple(sorted((*viewed, kind)))
    last = max(facts.last_activity_ms, ts) if activity else facts.last_activity_ms
    if (last == facts.last_activity_ms and stakeholders is facts.stakeholders and token_visitors is facts.token_visitors
            and pricing_days is facts.pricing_days and opened == facts.proposal_opened_ms
            and max_pct == facts.proposal_max_pct and viewed is facts.viewed_kinds and shares is facts.shared_to
            and visitors is facts.visitors and hot_ms == facts.hot_ms and active is facts.active_days):
        return facts
    # every field by position (a generic ``evolve`` cost 1.6 us compiled); internal_visitors is the one not folded here
    return RoomFacts(last, stakeholders, token_visitors, pricing_days, opened, max_pct, viewed, shares, visitors, hot_ms,
                     active, facts.internal_visitors)


def bands_at(scores: dict[str, StakeholderScore], now_ms: int, cfg: ScoringConfig = DEFAULT,
             summed: list[tuple[int, float]] | None = None) -> BandState:
    """The deal's and each person's band at ``now_ms`` (age, velocity and recency). ``summed``: the scores'
    ``sum_daily``, when the caller has it."""
    return BandState(deal_band(scores, now_ms, cfg, summed),
                     tuple(sorted((sid, stakeholder_band(s, now_ms, cfg)) for sid, s in scores.items() if is_person(sid))))


_ZONED: Final[dict[tuple[int, str], tuple[AlertConfig, AlertConfig]]] = {}


def in_zone(acfg: AlertConfig, tz: str) -> AlertConfig:
    """``acfg`` with its calendar in zone ``tz`` (made once per config and zone: every tick of a room asks)."""
    hit = _ZONED.get((id(acfg), tz))
    if hit is not None and hit[0] is acfg:
        return hit[1]
    if len(_ZONED) >= 1024:
        _ZONED.clear()
    zoned = replace(acfg, calendar=replace(acfg.calendar, tz=tz))
    _ZONED[(id(acfg), tz)] = (acfg, zoned)
    return zoned


def evaluate(room: Room, facts: RoomFacts, scores: dict[str, StakeholderScore], bands: BandState, now_ms: int,
             cfg: ScoringConfig = DEFAULT, acfg: AlertConfig = ALERTS,
             summed: list[tuple[int, float]] | None = None) -> tuple[BandState, list[Alert]]:
    """Run the time rules for one room at ``now_ms``. Returns the new band state and the alerts. ``summed``: as
    for ``bands_at``."""
    if room.stage in acfg.closed_stages:
        return bands, []
    if room.tz and room.tz != acfg.calendar.tz:  # silence in the buyer's working days: their zone, the site's holidays
        acfg = in_zone(acfg, room.tz)
    view = TimeView(room, facts, scores, bands, bands_at(scores, now_ms, cfg, summed), now_ms)
    return view.now, time_alerts(view, cfg, acfg)
