"""Alert rules: pure functions with an explicit ``now`` (ms). No I/O, no clock.

``observe`` folds an accepted event into a room's facts and returns the event-driven (positive) alerts it
triggers: engagement spike, new stakeholder, pricing revisited, proposal read to the end.
``evaluate`` runs the time-driven rules on a timer: quiet past the stage's cadence (severity by overshoot),
velocity bands Active -> Dark (deal and stakeholders), champion dark, single-threaded, proposal unopened.
Every alert carries kind, severity, room, stakeholders, evidence and a follow-up suggestion.
Fatigue control (one alert per episode, cooldowns, quiet hours) is the delivery stage's job.
Wired through streams/deals.py (both modes).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from streams.scoring import DAY_MS, DEFAULT, ScoringConfig, StakeholderScore, band, velocity


@dataclass(frozen=True)
class AlertConfig:
    # expected contact cadence per stage, days (stale-after)
    cadence_days: tuple[tuple[str, float], ...] = (
        ("prospecting", 14), ("qualification", 7), ("demo", 7), ("proposal", 5), ("negotiation", 3))
    closed_stages: tuple[str, ...] = ("closed_won", "closed_lost")
    single_threaded_after_days: float = 10
    proposal_unopened_after_days: float = 3
    spike_factor: float = 3.0  # today's points vs the average day of the previous window
    spike_window_days: int = 14
    spike_min_points: float = 30.0  # a single ordinary visit scores 10-25: "hot" needs more than one
    hot_every_days: int = 7  # at most one "hot" alert per room per period

    default_cadence_days: float = 7  # a stage without a cadence of its own (custom stage lists)

    def cadence(self, stage: str) -> float | None:
        if stage in self.closed_stages:
            return None
        return dict(self.cadence_days).get(stage, self.default_cadence_days)

    @classmethod
    def for_stages(cls, stages: tuple[str, ...], cadences: dict[str, float], closed: tuple[str, ...],
                   default_days: float) -> AlertConfig:
        """The config for a site's own stage list: known cadences kept, the given ones added or overriding."""
        known = {**dict(cls.cadence_days), **cadences}
        return cls(cadence_days=tuple((s, float(known[s])) for s in stages if s in known and s not in closed),
                   closed_stages=tuple(closed), default_cadence_days=float(default_days))


ALERTS = AlertConfig()


def alert_config(s) -> AlertConfig:
    """The alert config of a deployment's settings (stage list, cadences, closed stages): both modes use it."""
    return AlertConfig.for_stages(s.stage_list, s.cadences, s.closed_stage_list, s.default_cadence_days)


@dataclass(frozen=True)
class Room:
    room_id: str
    stage: str = "prospecting"
    created_ms: int = 0
    invited: tuple[tuple[str, str], ...] = ()  # (stakeholder id, role)
    proposal_shared_ms: int = 0  # when the proposal was shared with the buyer (0: not yet)
    owner: str = ""  # the seller who owns the deal


@dataclass(frozen=True)
class RoomFacts:
    last_activity_ms: int = 0
    stakeholders: tuple[tuple[str, int], ...] = ()  # verified stakeholder -> first seen
    token_visitors: tuple[tuple[str, str], ...] = ()  # (stakeholder, visitor id) pairs seen with a token
    pricing_days: tuple[int, ...] = ()
    proposal_opened_ms: int = 0
    proposal_max_pct: float = 0.0
    viewed_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str  # info | low | medium | high
    room_id: str
    stakeholders: tuple[str, ...]
    evidence: str
    suggestion: str
    at_ms: int


@dataclass(frozen=True)
class BandState:
    deal: str = ""
    stakeholders: tuple[tuple[str, str], ...] = field(default=())


def _kind(cfg: ScoringConfig, content_id: str) -> str:
    return cfg.kind(content_id) if content_id else ""


def observe(room: Room, facts: RoomFacts, rec: dict, daily_points: tuple[tuple[int, float], ...] = (),
            points: float = 0.0, cfg: ScoringConfig = DEFAULT,
            acfg: AlertConfig = ALERTS) -> tuple[RoomFacts, list[Alert]]:
    """Fold one event into the room's facts; return the positive alerts it triggers. ``daily_points``:
    the room's raw points per day including this event, ``points`` this event's own (spike rule: fires
    when today's points cross the threshold with this event)."""
    ts, etype = int(rec["ts"]), rec.get("type", "")
    sid = rec.get("stakeholder_id", "")
    kind = _kind(cfg, rec.get("content_id", ""))
    invited = dict(room.invited)
    alerts: list[Alert] = []

    def alert(k, sev, who, evidence, suggestion):
        alerts.append(Alert(k, sev, room.room_id, tuple(who), evidence, suggestion, ts))

    seen = dict(facts.stakeholders)
    pairs = set(facts.token_visitors)
    if sid:
        known_visitors = {v for s, v in pairs if s == sid}
        if sid not in seen and sid not in invited:
            alert("new_stakeholder", "info", [sid], f"{sid} opened the room with a valid link but is not on the "
                  "invited committee", f"Find out {sid}'s role and add them to the deal")
        elif known_visitors and rec.get("visitor_id") not in known_visitors:
            alert("new_stakeholder", "info", [sid], f"{sid}'s link was opened on a new device or by a new person",
                  f"The link may have been forwarded: ask {sid} who else is evaluating")
        seen.setdefault(sid, ts)
        pairs.add((sid, rec.get("visitor_id", "")))
    if etype == "share":
        to = rec.get("share_to") or "someone"
        alert("new_stakeholder", "info", [sid] if sid else [], f"room shared with {to} via {rec.get('share_channel')}",
              f"Offer {to} a short intro call and make sure they have the right content")
    pricing_days = set(facts.pricing_days)
    if kind == "pricing" and etype in ("content_view", "engagement"):
        day = ts // DAY_MS
        if pricing_days and day not in pricing_days and len(pricing_days) == 1:
            alert("pricing_revisited", "low", [sid] if sid else [], "pricing viewed again on a second day",
                  "Pricing is being weighed: offer to walk through options or a tailored quote")
        pricing_days.add(day)
    opened, max_pct = facts.proposal_opened_ms, facts.proposal_max_pct
    if kind == "proposal":
        opened = opened or ts
        pct = rec.get("progress_pct") or 0.0
        if etype == "content_progress" and pct >= 100 > max_pct:
            alert("proposal_read", "low", [sid] if sid else [], "the proposal was read to the end",
                  "Ask for feedback on the proposal and propose next steps toward signature")
        max_pct = max(max_pct, pct)
    if daily_points:
        today = ts // DAY_MS
        todays = sum(v for d, v in daily_points if d == today)
        before = [v for d, v in daily_points if today - acfg.spike_window_days <= d < today]
        avg = sum(before) / acfg.spike_window_days
        prev_today = todays - points
        threshold = max(acfg.spike_min_points, acfg.spike_factor * avg)
        if todays >= threshold > prev_today:
            alert("hot", "medium", [sid] if sid else [], f"{todays:.0f} engagement points today vs "
                  f"{avg:.1f} on an average day", "The deal is hot right now: reach out today")
    viewed = set(facts.viewed_kinds) | ({kind} if kind and etype == "content_view" else set())
    return replace(facts, last_activity_ms=max(facts.last_activity_ms, ts), stakeholders=tuple(sorted(seen.items())),
                   token_visitors=tuple(sorted(pairs)), pricing_days=tuple(sorted(pricing_days)),
                   proposal_opened_ms=opened, proposal_max_pct=max_pct, viewed_kinds=tuple(sorted(viewed))), alerts


def _suggest_for_quiet(facts: RoomFacts, room: Room) -> str:
    viewed = set(facts.viewed_kinds)
    if room.proposal_shared_ms and "proposal" not in viewed:
        return "The proposal was never opened: resend it with a two-line summary of what matters to them"
    if "pricing" in viewed and "security" not in viewed:
        return "They looked at pricing but not security: send the security pack to unblock the technical review"
    if "pricing" not in viewed:
        return "Share pricing with a clear next step, or ask what is holding the evaluation"
    return "Check in with your champion with one concrete next step"


def evaluate(room: Room, facts: RoomFacts, scores: dict[str, StakeholderScore], bands: BandState, now_ms: int,
             cfg: ScoringConfig = DEFAULT, acfg: AlertConfig = ALERTS) -> tuple[BandState, list[Alert]]:
    """Time-driven rules for one open room at ``now_ms``. Returns the new band state and the alerts."""
    if room.stage in acfg.closed_stages:
        return bands, []
    alerts: list[Alert] = []
    invited = dict(room.invited)

    def alert(k, sev, who, evidence, suggestion):
        alerts.append(Alert(k, sev, room.room_id, tuple(who), evidence, suggestion, now_ms))

    cadence = acfg.cadence(room.stage)
    since = facts.last_activity_ms or room.created_ms
    if cadence and since:
        quiet_days = (now_ms - since) / DAY_MS
        over = quiet_days / cadence
        if over > 1:
            sev = "high" if over >= 3 else "medium" if over >= 2 else "low"
            alert("quiet", sev, [], f"no buyer activity for {quiet_days:.1f} days; {room.stage} expects contact "
                  f"every {cadence:g} days", _suggest_for_quiet(facts, room))
    # velocity bands, deal and stakeholders: alert on Active -> Dark
    merged: dict[int, float] = {}
    for s in scores.values():
        for d, v in s.daily:
            merged[d] = merged.get(d, 0.0) + v
    deal_band = band(velocity(StakeholderScore(daily=tuple(sorted(merged.items()))), now_ms, cfg), cfg)
    if bands.deal == "Active" and deal_band == "Dark":
        alert("deal_went_dark", "high", [], "deal engagement fell from Active to Dark (last 30 days vs the 30 before)",
              _suggest_for_quiet(facts, room))
    prev = dict(bands.stakeholders)
    now_bands = {}
    for sid, s in scores.items():
        b = band(velocity(s, now_ms, cfg), cfg)
        now_bands[sid] = b
        if prev.get(sid) == "Active" and b == "Dark":
            role = invited.get(sid, "stakeholder")
            alert("champion_dark" if role == "champion" else "stakeholder_dark", "high" if role == "champion" else "medium",
                  [sid], f"{sid} ({role}) went from Active to Dark",
                  f"Reach {sid} directly, or through another stakeholder, before the deal stalls")
    engaged = [sid for sid, s in scores.items() if s.last_seen_ms]
    age_days = (now_ms - room.created_ms) / DAY_MS if room.created_ms else 0
    if age_days >= acfg.single_threaded_after_days and len(engaged) == 1 and len(invited) > 1:
        others = sorted(set(invited) - set(engaged))
        alert("single_threaded", "medium", engaged, f"after {age_days:.0f} days only {engaged[0]} engages",
              f"Ask {engaged[0]} to bring in {', '.join(others[:3])}")
    if room.proposal_shared_ms and not facts.proposal_opened_ms:
        waited = (now_ms - room.proposal_shared_ms) / DAY_MS
        if waited >= acfg.proposal_unopened_after_days:
            alert("proposal_unopened", "medium", [], f"the proposal was shared {waited:.0f} days ago and never opened",
                  "Resend the proposal with a short summary, or walk them through it live")
    return BandState(deal_band, tuple(sorted(now_bands.items()))), alerts
