"""The deal core's model types: the room as the seller describes it, the facts its events established, the
velocity bands last seen, alerts, and the alert rules' configuration. Pure data; the rules are in alerts.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final

from streams.calendar import WorkCalendar


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
    hot_every_days: int = 7  # at most one "hot" alert per room in this many days
    hot_baseline_days: int = 7  # no "hot" before the room has this many days of history (no baseline yet)
    calendar: WorkCalendar = WorkCalendar()  # silence counts in working days
    rhythm_factor: float = 1.5  # a steady room: unusual past this x its mean gap between active days...
    gap_spread: float = 6.0  # ... or past that mean + this many deviations, whichever is longer
    rhythm_gaps: int = 12  # the room's recent gaps between active working days that make its rhythm
    steady_min_gaps: int = 8  # gaps a room needs before a steady rhythm of its own is believed
    rate_window_days: int = 42  # the history a room's rate of active days is learnt from
    prior_rate: float = 0.3  # a young room: one pseudo active day per 1/prior_rate working days
    longest_usual_days: float = 20  # however slow a room, this many silent working days are unusual
    quiet_alpha: float = 0.002  # unusual: a silence the room's rate of active days makes less likely than this

    default_cadence_days: float = 7  # a stage without a cadence of its own (custom stage lists)
    _cadences: dict[str, float] = field(init=False, repr=False, compare=False)
    _positions: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # lookups every tick and score row make, derived once (the config is frozen)
        object.__setattr__(self, "_cadences", dict(self.cadence_days))
        stages = [name for name, _ in self.cadence_days]
        positions: dict[str, float] = {}
        for i, name in enumerate(stages):
            positions.setdefault(name, i / max(1, len(stages) - 1))
        object.__setattr__(self, "_positions", positions)

    def stage_position(self, stage: str) -> float:
        """Where ``stage`` sits among the open stages, 0..1 (0.0 for a stage not among them): a win feature."""
        return self._positions.get(stage, 0.0)

    def cadence(self, stage: str) -> float | None:
        if stage in self.closed_stages:
            return None
        return self._cadences.get(stage, self.default_cadence_days)

    @classmethod
    def for_stages(cls, stages: tuple[str, ...], cadences: dict[str, float], closed: tuple[str, ...],
                   default_days: float, calendar: WorkCalendar = WorkCalendar()) -> AlertConfig:
        """The config for a site's own stage list: known cadences kept, the given ones added or overriding."""
        known = {**dict(cls().cadence_days), **cadences}
        return cls(cadence_days=tuple((s, float(known[s])) for s in stages if s in known and s not in closed),
                   closed_stages=tuple(closed), default_cadence_days=float(default_days), calendar=calendar)


ALERTS: Final = AlertConfig()


def alert_config(s) -> AlertConfig:
    """The alert config of a deployment's settings (stage list, cadences, closed stages): both modes use it."""
    return AlertConfig.for_stages(s.stage_list, s.cadences, s.closed_stage_list, s.default_cadence_days,
                                  WorkCalendar(s.timezone, s.weekend_days, s.holiday_dates))


@dataclass(frozen=True)
class Room:
    room_id: str
    stage: str = "prospecting"
    created_ms: int = 0
    invited: tuple[tuple[str, str], ...] = ()  # (stakeholder id, role)
    proposal_shared_ms: int = 0  # when the proposal was shared with the buyer (0: not yet)
    owner: str = ""  # the seller who owns the deal
    emails: tuple[str, ...] = ()  # the invited stakeholders' emails (a share to one of them is not news)
    content: tuple[tuple[str, str, str], ...] = ()  # the catalogue: (content id, kind, title)
    internal: tuple[str, ...] = ()  # stakeholders of the seller's own team: stored, never scored or alerted on
    # the seller's own addresses: "@domain" (the site's internal domains) and internal stakeholders' emails
    internal_addresses: tuple[str, ...] = ()
    tz: str = ""  # the buyer's time zone (rooms API ``timezone``); "" = the site's calendar zone

    @property
    def kinds(self) -> dict[str, str]:
        return {cid: kind for cid, kind, _ in self.content}

    def is_internal_address(self, address: str) -> bool:
        """A share to the seller's own team (an internal stakeholder by id or email, or an internal domain)."""
        a = address.strip().lower()
        return bool(a) and (a in self.internal_addresses or a in {i.lower() for i in self.internal}
                            or ("@" in a and "@" + a.rsplit("@", 1)[1] in self.internal_addresses))


@dataclass(frozen=True)
class RoomFacts:
    last_activity_ms: int = 0
    stakeholders: tuple[tuple[str, int], ...] = ()  # verified stakeholder -> first seen
    token_visitors: tuple[tuple[str, str], ...] = ()  # (stakeholder, visitor id) pairs seen with a token
    pricing_days: tuple[int, ...] = ()
    proposal_opened_ms: int = 0
    proposal_max_pct: float = 0.0
    viewed_kinds: tuple[str, ...] = ()
    shared_to: tuple[tuple[str, str, int, str], ...] = ()  # (recipient, sharer, at, visitor who opened it or "")
    visitors: tuple[str, ...] = ()  # anonymous visitor ids seen (bounded)
    hot_ms: int = 0  # when "hot" last fired
    active_days: tuple[int, ...] = ()  # first activity (ms) of each recent active day: the room's rhythm
    internal_visitors: tuple[str, ...] = ()  # devices (visitor ids) seen with the seller's team's identity (bounded)


def active_at(f: RoomFacts, last_activity_ms: int) -> RoomFacts:
    """``f`` with ``last_activity_ms``: ``evolve`` written out (a run of events ends with it; tests/unit/test_deals.py
    checks it copies every field)."""
    return RoomFacts(last_activity_ms, f.stakeholders, f.token_visitors, f.pricing_days, f.proposal_opened_ms,
                     f.proposal_max_pct, f.viewed_kinds, f.shared_to, f.visitors, f.hot_ms, f.active_days,
                     f.internal_visitors)


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str  # info | low | medium | high
    room_id: str
    stakeholders: tuple[str, ...]
    evidence: str
    suggestion: str
    at_ms: int
    episode: str = ""  # what makes it "the same situation": fires once per key ("" = every time)


@dataclass(frozen=True)
class BandState:
    deal: str = ""
    stakeholders: tuple[tuple[str, str], ...] = field(default=())


def evolve(obj, **changes):
    """``dataclasses.replace`` for the core's frozen value types, without re-running ``__init__``: a copy of the
    fields with ``changes`` on top. Only for dataclasses without ``__post_init__``, slots or cached values
    (Room, RoomFacts, BandState, RoomState, StakeholderScore); the state machine calls it for every event."""
    d = getattr(obj, "__dict__", None)
    if d is None:  # compiled (mypyc: native classes hold no __dict__): the constructor, fields by name
        cls = obj.__class__
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
        return cls(*[changes[n] if n in changes else getattr(obj, n) for n in names])  # positional: no keywords to match
    new = object.__new__(obj.__class__)
    new.__dict__.update(d)
    new.__dict__.update(changes)
    return new


_FIELDS: dict[type, tuple[str, ...]] = {}
