"""Alert rules: one pure function per rule, each with its own episode key; explicit ``now``, no I/O.

Event rules see the room's facts as they were before the event (``EventView``); ``observe`` runs them and folds
the event into the facts. Time rules run on ticks (``TimeView``, with the velocity bands before and now);
``evaluate`` runs them. Every alert carries kind, severity, room, stakeholders, evidence, a follow-up
suggestion and its episode: ``streams/deals.py`` raises an alert only once per episode key (one mechanism
for every rule). Fatigue control across alerts (cooldowns, quiet hours) is the delivery stage's job.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from streams.model import ALERTS, Alert, AlertConfig, BandState, Room, RoomFacts, alert_config  # noqa: F401
from streams.scoring import DAY_MS, DEFAULT, ScoringConfig, StakeholderScore, band, deal_velocity, engaged_ids, velocity


@dataclass(frozen=True)
class EventView:
    room: Room
    facts: RoomFacts  # before this event
    rec: dict
    ts: int
    sid: str  # verified stakeholder id ("" for an anonymous visitor)
    kind: str  # content kind of the event's content ("" without content)
    daily_points: tuple[tuple[int, float], ...]  # the room's raw points per day, this event included
    points: float  # this event's own points

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

def new_stakeholder_by_link(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """A valid link opened by someone off the committee, or a committee member's link on a new device."""
    if not v.sid:
        return []
    seen = dict(v.facts.stakeholders)
    known_visitors = {vis for s, vis in v.facts.token_visitors if s == v.sid}
    if v.sid not in seen and v.sid not in dict(v.room.invited):
        return [v.alert("new_stakeholder", "info", [v.sid], f"{v.sid} opened the room with a valid link but is not on "
                        "the invited committee", f"Find out {v.sid}'s role and add them to the deal")]
    if known_visitors and v.rec.get("visitor_id") not in known_visitors:
        return [v.alert("new_stakeholder", "info", [v.sid], f"{v.sid}'s link was opened on a new device or by a new "
                        "person", f"The link may have been forwarded: ask {v.sid} who else is evaluating")]
    return []


def shared(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """The room was shared onward."""
    if v.rec.get("type") != "share":
        return []
    to = v.rec.get("share_to") or "someone"
    return [v.alert("new_stakeholder", "info", v.who, f"room shared with {to} via {v.rec.get('share_channel')}",
                    f"Offer {to} a short intro call and make sure they have the right content")]


def pricing_revisited(v: EventView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """Pricing looked at again on a second day."""
    days = set(v.facts.pricing_days)
    if v.kind != "pricing" or v.rec.get("type") not in ("content_view", "engagement"):
        return []
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
    if not v.daily_points:
        return []
    today = v.ts // DAY_MS
    todays = sum(p for d, p in v.daily_points if d == today)
    before = [p for d, p in v.daily_points if today - acfg.spike_window_days <= d < today]
    avg = sum(before) / acfg.spike_window_days
    threshold = max(acfg.spike_min_points, acfg.spike_factor * avg)
    if todays >= threshold > todays - v.points:
        return [v.alert("hot", "medium", v.who, f"{todays:.0f} engagement points today vs {avg:.1f} on an average "
                        "day", "The deal is hot right now: reach out today",
                        episode=f"hot/{v.ts // (acfg.hot_every_days * DAY_MS)}")]
    return []


EVENT_RULES: tuple[EventRule, ...] = (new_stakeholder_by_link, shared, pricing_revisited, proposal_read, hot)


# ---------------------------------------------------------------- time rules (stalls)

def suggest_for_quiet(facts: RoomFacts, room: Room) -> str:
    viewed = set(facts.viewed_kinds)
    if room.proposal_shared_ms and "proposal" not in viewed:
        return "The proposal was never opened: resend it with a two-line summary of what matters to them"
    if "pricing" in viewed and "security" not in viewed:
        return "They looked at pricing but not security: send the security pack to unblock the technical review"
    if "pricing" not in viewed:
        return "Share pricing with a clear next step, or ask what is holding the evaluation"
    return "Check in with your champion with one concrete next step"


def quiet(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """No buyer activity past the stage's cadence; severity by overshoot (1x, 2x, 3x). One per quiet stretch
    and severity step: re-arms when the buyer comes back."""
    cadence = acfg.cadence(v.room.stage)
    since = v.facts.last_activity_ms or v.room.created_ms
    if not (cadence and since):
        return []
    quiet_days = (v.now_ms - since) / DAY_MS
    over = quiet_days / cadence
    if over <= 1:
        return []
    sev = "high" if over >= 3 else "medium" if over >= 2 else "low"
    return [v.alert("quiet", sev, [], f"no buyer activity for {quiet_days:.1f} days; {v.room.stage} expects contact "
                    f"every {cadence:g} days", suggest_for_quiet(v.facts, v.room),
                    episode=f"quiet/{v.facts.last_activity_ms}/{sev}")]


def deal_went_dark(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """The deal's velocity band went from Active to Dark (fires on the transition)."""
    if v.before.deal == "Active" and v.now.deal == "Dark":
        return [v.alert("deal_went_dark", "high", [], "deal engagement fell from Active to Dark (last 30 days vs "
                        "the 30 before)", suggest_for_quiet(v.facts, v.room), episode=f"deal_went_dark//{v.now_ms}")]
    return []


def stakeholder_dark(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """A stakeholder went from Active to Dark; the champion's is its own, higher-severity kind."""
    before, invited, out = dict(v.before.stakeholders), dict(v.room.invited), []
    for sid, b in v.now.stakeholders:
        if before.get(sid) == "Active" and b == "Dark":
            role = invited.get(sid, "stakeholder")
            kind = "champion_dark" if role == "champion" else "stakeholder_dark"
            out.append(v.alert(kind, "high" if role == "champion" else "medium", [sid], f"{sid} ({role}) went from "
                               "Active to Dark", f"Reach {sid} directly, or through another stakeholder, before the "
                               "deal stalls", episode=f"{kind}/{sid}/{v.now_ms}"))
    return out


def single_threaded(v: TimeView, cfg: ScoringConfig, acfg: AlertConfig) -> list[Alert]:
    """After some days only one of a committee engages."""
    engaged = engaged_ids(v.scores, v.now_ms, cfg)
    invited = dict(v.room.invited)
    age_days = (v.now_ms - v.room.created_ms) / DAY_MS if v.room.created_ms else 0
    if age_days >= acfg.single_threaded_after_days and len(engaged) == 1 and len(invited) > 1:
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


TIME_RULES: tuple[TimeRule, ...] = (quiet, deal_went_dark, stakeholder_dark, single_threaded, proposal_unopened)


# ---------------------------------------------------------------- running them

def _kind(cfg: ScoringConfig, content_id: str) -> str:
    return cfg.kind(content_id) if content_id else ""


def observe(room: Room, facts: RoomFacts, rec: dict, daily_points: tuple[tuple[int, float], ...] = (),
            points: float = 0.0, cfg: ScoringConfig = DEFAULT,
            acfg: AlertConfig = ALERTS) -> tuple[RoomFacts, list[Alert]]:
    """Run the event rules on one event, then fold it into the room's facts."""
    ts, sid = int(rec["ts"]), rec.get("stakeholder_id", "")
    kind = _kind(cfg, rec.get("content_id", ""))
    view = EventView(room, facts, rec, ts, sid, kind, daily_points, points)
    alerts = [a for rule in EVENT_RULES for a in rule(view, cfg, acfg)]
    return fold(facts, rec, ts, sid, kind), alerts


def fold(facts: RoomFacts, rec: dict, ts: int, sid: str, kind: str) -> RoomFacts:
    """What one event establishes about the room."""
    etype = rec.get("type", "")
    seen, pairs = dict(facts.stakeholders), set(facts.token_visitors)
    if sid:
        seen.setdefault(sid, ts)
        pairs.add((sid, rec.get("visitor_id", "")))
    pricing_days = set(facts.pricing_days)
    if kind == "pricing" and etype in ("content_view", "engagement"):
        pricing_days.add(ts // DAY_MS)
    opened, max_pct = facts.proposal_opened_ms, facts.proposal_max_pct
    if kind == "proposal":
        opened = opened or ts
        max_pct = max(max_pct, rec.get("progress_pct") or 0.0)
    viewed = set(facts.viewed_kinds) | ({kind} if kind and etype == "content_view" else set())
    return replace(facts, last_activity_ms=max(facts.last_activity_ms, ts), stakeholders=tuple(sorted(seen.items())),
                   token_visitors=tuple(sorted(pairs)), pricing_days=tuple(sorted(pricing_days)),
                   proposal_opened_ms=opened, proposal_max_pct=max_pct, viewed_kinds=tuple(sorted(viewed)))


def bands_at(scores: dict[str, StakeholderScore], now_ms: int, cfg: ScoringConfig = DEFAULT) -> BandState:
    """The deal's and each stakeholder's velocity band at ``now_ms``."""
    return BandState(band(deal_velocity(scores, now_ms, cfg), cfg),
                     tuple(sorted((sid, band(velocity(s, now_ms, cfg), cfg)) for sid, s in scores.items())))


def evaluate(room: Room, facts: RoomFacts, scores: dict[str, StakeholderScore], bands: BandState, now_ms: int,
             cfg: ScoringConfig = DEFAULT, acfg: AlertConfig = ALERTS) -> tuple[BandState, list[Alert]]:
    """Run the time rules for one room at ``now_ms``. Returns the new band state and the alerts."""
    if room.stage in acfg.closed_stages:
        return bands, []
    view = TimeView(room, facts, scores, bands, bands_at(scores, now_ms, cfg), now_ms)
    return view.now, [a for rule in TIME_RULES for a in rule(view, cfg, acfg)]
