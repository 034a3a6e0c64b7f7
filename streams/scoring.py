"""Engagement scoring: pure functions over accepted-event records with an explicit ``now`` (ms).

Per stakeholder: points per event (weight by event type x content kind), capped per type per day, decaying
with a half-life; kept as (value, updated) and decayed lazily, with per-reason contributions so every
score explains itself. Per deal: a 0-100 roll-up of breadth (engaged vs invited, roles covered), depth,
recency and velocity (recent window vs the one before).

All weights and windows live in ``ScoringConfig``. Wired through streams/deals.py (both modes).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

DAY_MS: Final = 86_400_000


@dataclass(frozen=True)
class ScoringConfig:
    half_life_days: float = 14.0
    # points per event type; engagement is per engaged minute
    type_weights: tuple[tuple[str, float], ...] = (
        ("room_view", 1.0), ("content_view", 2.0), ("engagement", 1.0), ("content_progress", 0.5),
        ("download", 3.0), ("link_click", 1.0), ("share", 5.0), ("cta", 8.0), ("identify", 2.0))
    # multiplier by content kind; a room's catalogue declares each item's kind, and only without one is the
    # kind guessed from the content id (the first kind named in it wins)
    content_kinds: tuple[tuple[str, float], ...] = (
        ("pricing", 2.0), ("proposal", 1.5), ("contract", 1.5), ("security", 1.3), ("case-study", 1.0),
        ("case_study", 1.0), ("video", 1.0))
    cap_per_type_per_day: float = 20.0
    velocity_window_days: int = 30
    active_velocity: float = 0.8  # velocity >= this: Active
    dark_velocity: float = 0.3  # below: Dark; between: Cooling
    # recency caps the band, so it changes with time and no events: at most Cooling after this many days
    # without activity, Dark after this many
    cooling_after_days: float = 10.0
    dark_after_days: float = 21.0
    # deal roll-up
    key_roles: tuple[str, ...] = ("champion", "economic_buyer", "technical", "legal")
    depth_saturation: float = 60.0  # summed stakeholder score giving full depth
    recency_half_life_days: float = 7.0
    engaged_min_score: float = 1.0  # a stakeholder with at least this (decayed) score counts as engaged
    breadth_weights: tuple[float, float] = (0.6, 0.4)  # (engaged / invited, key roles covered)
    # the deal score's parts, summing to 1: breadth, depth, recency, velocity
    deal_weights: tuple[float, float, float, float] = (0.35, 0.3, 0.2, 0.15)
    _weights: dict[str, float] = field(init=False, repr=False, compare=False)
    _kinds: dict[str, float] = field(init=False, repr=False, compare=False)
    _key_roles: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # lookups every event makes, derived once (the config is frozen)
        object.__setattr__(self, "_weights", dict(self.type_weights))
        object.__setattr__(self, "_kinds", dict(self.content_kinds))
        object.__setattr__(self, "_key_roles", frozenset(self.key_roles))

    def weight(self, etype: str) -> float:
        return self._weights.get(etype, 0.0)

    def kind(self, content_id: str) -> str:
        cid = content_id.lower()
        for kind, _ in self.content_kinds:
            if kind in cid:
                return kind.replace("-", "_")
        return "other"

    def kind_multiplier(self, content_id: str, declared: str = "") -> float:
        if declared:
            return self._kinds.get(declared, 1.0)
        cid = content_id.lower()
        for kind, mult in self.content_kinds:
            if kind in cid:
                return mult
        return 1.0


DEFAULT: Final = ScoringConfig()


def ms(value: Any) -> int:
    """A record's time field as an int: an int as it is (compiled, ``int(x)`` was a generic call of the type, four
    an event), anything else through ``int``."""
    return value if type(value) is int else int(value)


_SCALES: Final = tuple(10.0 ** d for d in range(16))  # 10^digits, exact (a generic power per call cost 40 % of ``rounded``)


def rounded(x: float, digits: int) -> float:
    """``round(x, digits)``, the same float to the bit, without its decimal conversion when it cannot matter:
    x * 10^digits is split at its integer part, and unless the rest is within 1e-6 of a half (where the exact
    decimal value of x decides), the nearest integer divided back is what ``round`` gives (both are the double
    nearest to that decimal). Compiled, 54 against 276 ns (2026-12-05); a score row rounds 4-20 times.
    tests/unit/test_scoring.py compares the two on random values, ties and near-ties."""
    scale = _SCALES[digits] if 0 <= digits < len(_SCALES) else math.pow(10.0, float(digits))
    y = x * scale
    if -1e9 < y < 1e9:
        below = math.floor(y)
        off = y - below
        if abs(off - 0.5) > 1e-6:
            k = below + 1 if off > 0.5 else below
            return k / scale if k else math.copysign(0.0, x)
    return round(x, digits)


def decay(value: float, from_ms: int, to_ms: int, half_life_days: float) -> float:
    """value x 0.5^(age / half-life); never increases, never negative."""
    if to_ms <= from_ms or value <= 0:
        return max(0.0, value)
    # math.pow, not **: ``float ** float`` is typed Any, so compiled it was a generic power and multiply (the
    # same libm pow either way, so the same floats)
    return value * math.pow(0.5, (to_ms - from_ms) / (half_life_days * DAY_MS))


def event_points(rec: dict, cfg: ScoringConfig = DEFAULT, kinds: dict[str, str] | None = None) -> tuple[float, str]:
    """Raw points of one event and the reason it counts under (e.g. 'content_view:pricing'); ``kinds``: the
    room's catalogue (content id -> declared kind)."""
    etype: str = rec.get("type", "")
    base = cfg.weight(etype)
    if etype == "engagement":
        base *= rec.get("engaged_ms", 0) / 60_000
    cid = rec.get("content_id", "")
    declared = (kinds or {}).get(cid, "")
    if cid:
        base *= cfg.kind_multiplier(cid, declared)
    reason = f"{etype}:{declared or cfg.kind(cid)}" if cid else etype
    return max(0.0, base), reason


@dataclass(frozen=True)
class StakeholderScore:
    value: float = 0.0
    updated_ms: int = 0
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    reasons: tuple[tuple[str, float], ...] = ()  # decayed contribution per reason, as of updated_ms
    day_type_points: tuple[tuple[tuple[int, str], float], ...] = ()  # caps: points per (day, type), recent days
    daily: tuple[tuple[int, float], ...] = ()  # raw points per day, for velocity (2 windows kept)


def apply_event(state: StakeholderScore, rec: dict, cfg: ScoringConfig = DEFAULT,
                kinds: dict[str, str] | None = None, points: tuple[float, str] | None = None) -> StakeholderScore:
    """Fold one event into a stakeholder's score. Events may arrive out of order: an event older than the
    state's clock is decayed to it; the state never moves back in time. ``points``: the event's
    ``event_points``, when the caller has them."""
    acc = ScoreAcc(state)
    acc.add(rec, points if points is not None else event_points(rec, cfg, kinds), cfg)
    return acc.freeze()


class ScoreAcc:
    """A stakeholder's score while a run of events folds in: the same fields as ``StakeholderScore``, with
    reasons and caps as dicts and the daily points as a list, changed in place (``freeze`` makes the value
    again). Folding events one by one here gives exactly the floats ``apply_event`` gives.

    Reasons decay lazily: each event that moves the clock appends its decay factor to ``factors``, and a
    reason's value is brought forward (the same multiplications, in the same order, each followed by the same
    fade check) only when its own event comes, or at ``freeze``. Decaying every reason at every event was a
    third of this class's work (callgrind, 2026-12-06)."""

    __slots__ = ("value", "updated_ms", "first_seen_ms", "last_seen_ms", "reasons", "synced", "factors", "caps", "daily",
                 "resort", "caps_from")
    value: float
    updated_ms: int
    first_seen_ms: int
    last_seen_ms: int
    reasons: dict[str, float]  # each as of the first ``synced[reason]`` factors (0 when absent)
    synced: dict[str, int]
    factors: list[float]  # the decay factor of each event that moved the clock, in order
    caps: dict[tuple[int, str], float]
    daily: list[tuple[int, float]]
    resort: bool  # a reason or cap key was added (at the end): ``freeze`` sorts them again
    caps_from: int  # the earliest day among the caps' keys (no key: a day after any): pruned only when it is too old

    def __init__(self, s: StakeholderScore) -> None:
        self.value, self.updated_ms = s.value, s.updated_ms
        self.first_seen_ms, self.last_seen_ms = s.first_seen_ms, s.last_seen_ms
        self.reasons = dict(s.reasons)
        self.synced = {}
        self.factors = []
        self.caps = dict(s.day_type_points)
        self.caps_from = _earliest_day(self.caps)
        self.daily = list(s.daily)
        self.resort = False  # (a value's reasons and caps are sorted by key, and dicts keep that order)

    def add(self, rec: dict, points: tuple[float, str], cfg: ScoringConfig = DEFAULT) -> None:
        ts = ms(rec["ts"])
        pts, reason = points
        day = ts // DAY_MS
        caps = self.caps
        key = (day, rec.get("type", ""))
        used = caps.get(key, 0.0)
        pts = max(0.0, min(pts, cfg.cap_per_type_per_day - used))
        before = self.updated_ms
        now = max(before, ts)
        hl = cfg.half_life_days
        contribution = decay(pts, ts, now, hl)
        reasons, factors = self.reasons, self.factors
        moves = now != before
        if moves:  # every reason decays to now (``decay``'s factor, once for them all: now > before, v > 0)
            factors.append(math.pow(0.5, (now - before) / (hl * DAY_MS)))
        n = len(factors)
        had = reasons.get(reason)
        if had is not None:
            had = _brought_forward(had, self.synced.get(reason, 0), factors, moves)
        if had is None:  # new, or faded (and dropped) at an earlier event
            self.resort = True
        v = (0.0 if had is None else had) + contribution  # (a reason fading at this event, counted again, adds to what is left)
        if v <= 1e-9:
            reasons.pop(reason, None)
            self.synced.pop(reason, None)
        else:
            reasons[reason] = v
            self.synced[reason] = n
        if pts > 0:
            if key not in caps:
                self.resort = True
            caps[key] = used + pts
            if day < self.caps_from:
                self.caps_from = day
        low = day - 1  # caps of recent days only
        if self.caps_from < low:  # (the usual event, on a day already capped, has none to drop)
            for k in [k for k in caps if k[0] < low]:
                del caps[k]
            self.caps_from = _earliest_day(caps)
        add_day_in_place(self.daily, day, pts, day - 2 * cfg.velocity_window_days)
        self.value = decay(self.value, before, now, hl) + contribution
        self.updated_ms = now
        self.first_seen_ms = min(self.first_seen_ms or ts, ts)
        self.last_seen_ms = max(self.last_seen_ms, ts)

    def freeze(self) -> StakeholderScore:
        factors = self.factors
        if factors:  # every reason brought to the run's end; those that faded on the way are dropped
            n, synced = len(factors), self.synced
            kept: list[tuple[str, float]] = []
            for r, v in self.reasons.items():
                alive = True
                for i in range(synced.get(r, 0), n):
                    v = v * factors[i]
                    if v <= 1e-9:
                        alive = False
                        break
                if alive:
                    kept.append((r, v))
        else:
            kept = list(self.reasons.items())
        if self.resort:
            reasons, caps = tuple(sorted(kept)), tuple(sorted(self.caps.items()))
        else:  # nothing added: still in key order
            reasons, caps = tuple(kept), tuple(self.caps.items())
        return StakeholderScore(self.value, self.updated_ms, self.first_seen_ms, self.last_seen_ms, reasons, caps,
                                tuple(self.daily))


def _brought_forward(v: float, start: int, factors: list[float], moves: bool) -> float | None:
    """A reason's value ``v`` (as of the first ``start`` factors) decayed by the rest, in order, as the events that
    made them decayed it: None if it fell to 1e-9 or below at an earlier event (dropped then); its value if at
    the latest factor, made by the event being folded (``moves``: dropped after it, unless counted again)."""
    n = len(factors)
    for i in range(start, n):
        v = v * factors[i]
        if v <= 1e-9:
            return v if i == n - 1 and moves else None
    return v


def _earliest_day(caps: dict[tuple[int, str], float]) -> int:
    first = 1 << 40  # (a day number after any: 3 billion years)
    for day, _ in caps:
        if day < first:
            first = day
    return first


def add_day_in_place(daily: list[tuple[int, float]], day: int, pts: float, keep_from: int) -> None:
    """``add_day`` in place on a list."""
    if daily and daily[0][0] >= keep_from and daily[-1][0] <= day:
        last_day, last = daily[-1]
        if last_day == day:
            daily[-1] = (day, last + pts)
        else:
            daily.append((day, 0.0 + pts))
        return
    daily[:] = add_day(tuple(daily), day, pts, keep_from)


def add_day(daily: tuple[tuple[int, float], ...], day: int, pts: float, keep_from: int) -> tuple[tuple[int, float], ...]:
    """``daily`` (sorted (day, points)) with ``pts`` added to ``day`` and days before ``keep_from`` dropped. The
    usual case, an event on the latest day or a newer one with nothing to drop, touches only the end."""
    if daily and daily[0][0] >= keep_from and daily[-1][0] <= day:
        last_day, last = daily[-1]
        return (*daily[:-1], (day, last + pts)) if last_day == day else (*daily, (day, 0.0 + pts))
    merged = dict(daily)
    merged[day] = merged.get(day, 0.0) + pts
    return tuple(sorted((d, v) for d, v in merged.items() if d >= keep_from))


def value_at(state: StakeholderScore, now_ms: int, cfg: ScoringConfig = DEFAULT) -> float:
    return decay(state.value, state.updated_ms, now_ms, cfg.half_life_days)


def top_reasons(state: StakeholderScore, now_ms: int, n: int = 3, cfg: ScoringConfig = DEFAULT) -> list[tuple[str, float]]:
    """The ``n`` largest reasons at ``now_ms`` (ties by name): each ``decay``ed, with its one factor computed once."""
    age = now_ms - state.updated_ms
    factor = math.pow(0.5, age / (cfg.half_life_days * DAY_MS)) if age > 0 else 1.0
    ranked: list[tuple[float, str]] = []
    for r, v in state.reasons:
        ranked.append((-(max(0.0, v) if age <= 0 or v <= 0 else v * factor), r))
    ranked.sort()
    return [(r, -w) for w, r in ranked[:n]]


def velocity(state: StakeholderScore, now_ms: int, cfg: ScoringConfig = DEFAULT) -> float | None:
    """Points in the last window / points in the window before; None when both are empty."""
    return daily_velocity(state.daily, now_ms, cfg)


def daily_velocity(daily: Sequence[tuple[int, float]], now_ms: int, cfg: ScoringConfig = DEFAULT) -> float | None:
    """``velocity`` of (day, points) pairs."""
    w = cfg.velocity_window_days
    today = now_ms // DAY_MS
    recent = previous = 0.0
    mid, low = today - w, today - 2 * w
    for d, v in daily:  # in the pairs' order: the same sums as summing each window apart
        if d > today:
            continue
        if d > mid:
            recent += v
        elif d > low:
            previous += v
    if previous == 0:
        return None if recent == 0 else math.inf
    return recent / previous


def band(vel: float | None, cfg: ScoringConfig = DEFAULT) -> str:
    """The band a velocity alone gives (see ``standing`` for the band with age and recency)."""
    if vel is None:
        return "Dark"
    if vel >= cfg.active_velocity:
        return "Active"
    return "Cooling" if vel >= cfg.dark_velocity else "Dark"


def standing(daily: Sequence[tuple[int, float]], first_seen_ms: int, last_seen_ms: int, now_ms: int, cfg: ScoringConfig = DEFAULT,
             vel: float | None = None, has_vel: bool = False) -> str:
    """The band at ``now_ms``: ``New`` while too young for a velocity (first seen within the current window),
    else the velocity's band; recency caps it (at most Cooling after ``cooling_after_days`` without activity,
    Dark after ``dark_after_days``), so bands move with time even when no event arrives. ``vel`` (with
    ``has_vel``): ``daily_velocity(daily, now_ms)``, when the caller has it."""
    if not last_seen_ms:
        return "Dark"
    idle_days = (now_ms - last_seen_ms) / DAY_MS
    if idle_days >= cfg.dark_after_days:
        return "Dark"
    if now_ms - first_seen_ms < cfg.velocity_window_days * DAY_MS:
        b = "New"
    else:
        b = band(vel if has_vel else daily_velocity(daily, now_ms, cfg), cfg)
    if idle_days >= cfg.cooling_after_days and b in ("Active", "New"):
        return "Cooling"
    return b


def stakeholder_band(s: StakeholderScore, now_ms: int, cfg: ScoringConfig = DEFAULT) -> str:
    return standing(s.daily, s.first_seen_ms, s.last_seen_ms, now_ms, cfg)


def deal_band(stakeholders: dict[str, StakeholderScore], now_ms: int, cfg: ScoringConfig = DEFAULT,
              summed: list[tuple[int, float]] | None = None, vel: float | None = None, has_vel: bool = False) -> str:
    """The deal's band: everyone's activity together (anonymous visitors included: it is the room's).
    ``summed``: their daily points already summed, and ``vel`` (with ``has_vel``) their velocity at ``now_ms``,
    when the caller has them."""
    if not stakeholders:
        return "Dark"
    first, last = _seen(stakeholders)
    return standing(summed if summed is not None else sum_daily(stakeholders), first, last, now_ms, cfg, vel, has_vel)


def _seen(stakeholders: dict[str, StakeholderScore]) -> tuple[int, int]:
    """The earliest first sight and the latest last sight among ``stakeholders`` (not empty)."""
    first = last = -1
    for s in stakeholders.values():
        if first < 0 or s.first_seen_ms < first:
            first = s.first_seen_ms
        if s.last_seen_ms > last:
            last = s.last_seen_ms
    return first, last


def stored_velocity(vel: float | None) -> float | None:
    """Velocity as stored: NULL when there is no ratio (no activity in the earlier window)."""
    return None if vel is None or math.isinf(vel) else rounded(vel, 4)


def is_person(sid: str) -> bool:
    """A verified stakeholder (link token), not an anonymous ``visitor:<id>``: only people count in breadth,
    committee coverage and per-person alerts; anonymous visitors are candidates shown apart."""
    return not sid.startswith("visitor:")


@dataclass(frozen=True)
class DealScore:
    value: float  # 0..100
    breadth: float  # 0..1
    depth: float  # 0..1
    recency: float  # 0..1
    velocity: float | None
    reasons: tuple[str, ...] = field(default=())
    band: str = ""  # deal_band at the same instant
    engaged: tuple[str, ...] = ()  # engaged_ids at the same instant


def deal_parts(stakeholders: dict[str, StakeholderScore], roles: dict[str, str], invited: int, now_ms: int,
               cfg: ScoringConfig = DEFAULT) -> tuple[list[str], list[str], set[str], float, float, float]:
    """The deal score's parts that need no daily history: (engaged people, those of them invited, key roles
    covered, breadth, depth, recency), unrounded. ``deal_score`` rolls them up; the win model's features take
    them for the room's people alone."""
    hl, floor = cfg.half_life_days, cfg.engaged_min_score
    values = {sid: decay(s.value, s.updated_ms, now_ms, hl) for sid, s in stakeholders.items()}
    engaged = [sid for sid, v in values.items() if v >= floor and not sid.startswith("visitor:")]  # engaged_ids
    engaged_invited = [sid for sid in engaged if sid in roles]
    covered = {roles[sid] for sid in engaged_invited} & cfg._key_roles
    w_engaged, w_roles = cfg.breadth_weights
    breadth = w_engaged * min(1.0, len(engaged_invited if roles else engaged) / max(1, invited)) \
        + w_roles * len(covered) / len(cfg.key_roles)
    summed = 0.0  # loops, not sum() and max() over generators: compiled, these are typed
    for v in values.values():
        summed += v
    depth = min(1.0, summed / cfg.depth_saturation)
    last = 0
    for s in stakeholders.values():
        if s.last_seen_ms > last:
            last = s.last_seen_ms
    recency = decay(1.0, last, now_ms, cfg.recency_half_life_days) if last else 0.0
    return engaged, engaged_invited, covered, breadth, depth, recency


def deal_score(stakeholders: dict[str, StakeholderScore], roles: dict[str, str], invited: int, now_ms: int,
               cfg: ScoringConfig = DEFAULT, summed: list[tuple[int, float]] | None = None,
               band: str = "") -> DealScore:
    """Roll stakeholder scores up to a 0-100 deal score. ``roles``: stakeholder id -> role of the invited
    committee; ``invited``: committee size (>= 1); ``summed``: as for ``deal_band``; ``band``: the deal's band
    at ``now_ms`` (``deal_band``), when the caller has it."""
    engaged, engaged_invited, covered, breadth, depth, recency = deal_parts(stakeholders, roles, invited, now_ms, cfg)
    if summed is None:
        summed = sum_daily(stakeholders) if stakeholders else []
    vel = daily_velocity(summed, now_ms, cfg)
    vel_term = 0.5 if vel is None else min(1.0, vel / 2)
    wb, wd, wr, wv = cfg.deal_weights
    value = 100 * (wb * breadth + wd * depth + wr * recency + wv * vel_term)
    reasons = []
    if roles:
        reasons.append(f"{len(engaged_invited)} of {invited} invited stakeholders engaged")
        if len(engaged) > len(engaged_invited):
            reasons.append(f"{len(engaged) - len(engaged_invited)} more verified people engaged (not on the committee)")
    elif engaged:
        reasons.append(f"{len(engaged)} stakeholders engaged (no committee on file)")
    if covered:
        reasons.append("roles engaged: " + ", ".join(sorted(covered)))
    missing = cfg._key_roles & set(roles.values()) - covered
    if missing:
        reasons.append("not engaged yet: " + ", ".join(sorted(missing)))
    if not band:
        band = deal_band(stakeholders, now_ms, cfg, summed, vel, True)
    reasons.append(f"deal {band}")
    return DealScore(rounded(value, 2), rounded(breadth, 4), rounded(depth, 4), rounded(recency, 4), vel, tuple(reasons), band,
                     tuple(engaged))


def deal_velocity(stakeholders: dict[str, StakeholderScore], now_ms: int, cfg: ScoringConfig = DEFAULT) -> float | None:
    """The deal's velocity: its stakeholders' daily points summed, recent window vs the one before."""
    return daily_velocity(sum_daily(stakeholders), now_ms, cfg)


def is_engaged(s: StakeholderScore, now_ms: int, cfg: ScoringConfig = DEFAULT) -> bool:
    """The one definition of an engaged stakeholder: a (decayed) score of at least ``engaged_min_score``."""
    return value_at(s, now_ms, cfg) >= cfg.engaged_min_score


def engaged_ids(stakeholders: dict[str, StakeholderScore], now_ms: int, cfg: ScoringConfig = DEFAULT) -> list[str]:
    """The engaged people: verified stakeholders with an engaged score (anonymous visitors never count)."""
    return [sid for sid, s in stakeholders.items() if is_person(sid) and is_engaged(s, now_ms, cfg)]


def daily_total(stakeholders: dict[str, StakeholderScore]) -> dict[int, float]:
    """The stakeholders' daily points summed per day, days in the order first met (stakeholder by
    stakeholder): the win model's features sum over it in that order. Each day's sum is 0.0 + the first
    stakeholder's points + the next one's..., in stakeholder order. One dict keyed by the days as they are
    (compiled, an int key would be made again per lookup): 14 % faster than summing into a list per day of the
    span, which had to be turned into this dict anyway (2026-12-06)."""
    total: dict[Any, float] = {}
    pair: tuple[Any, float]
    for s in stakeholders.values():
        days: tuple[tuple[Any, float], ...] = s.daily
        for pair in days:
            d = pair[0]
            got = total.get(d)
            total[d] = (0.0 if got is None else got) + pair[1]
    return total


def sum_daily(stakeholders: dict[str, StakeholderScore]) -> list[tuple[int, float]]:
    """The stakeholders' daily points summed per day, by day (``deal_band``'s and ``deal_score``'s ``summed``)."""
    return by_day(daily_total(stakeholders))


def by_day(total: dict[int, float]) -> list[tuple[int, float]]:
    """``sorted(total.items())``: the days sorted as plain ints (faster than comparing pairs; days are distinct)."""
    days: list[Any] = sorted(total)  # (each day stays the object it is: compiled, an int would be re-made)
    return [(d, total[d]) for d in days]
