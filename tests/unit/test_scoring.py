"""Scoring core: explicit clocks, reasons, caps, decay, velocity bands, deal roll-up; property tests."""
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.scoring import (
    DAY_MS,
    DEFAULT,
    ScoreAcc,
    ScoringConfig,
    StakeholderScore,
    add_day,
    apply_event,
    band,
    deal_score,
    decay,
    event_points,
    top_reasons,
    value_at,
    velocity,
)

T0 = 1_790_000_000_000


def ev(etype, ts, **kw):
    return {"type": etype, "ts": ts, **kw}


def fold(events, cfg=DEFAULT):
    s = StakeholderScore()
    for e in events:
        s = apply_event(s, e, cfg)
    return s


def test_points_weight_type_and_content_kind():
    assert event_points(ev("content_view", T0, content_id="pricing-2026")) == (4.0, "content_view:pricing")
    assert event_points(ev("content_view", T0, content_id="misc")) == (2.0, "content_view:other")
    assert event_points(ev("engagement", T0, engaged_ms=120_000, content_id="proposal")) == (3.0, "engagement:proposal")
    assert event_points(ev("cta", T0, cta="book")) == (8.0, "cta")


def test_score_decays_with_half_life():
    s = fold([ev("cta", T0)])
    assert value_at(s, T0) == pytest.approx(8.0)
    assert value_at(s, T0 + 14 * DAY_MS) == pytest.approx(4.0)
    assert value_at(s, T0 + 28 * DAY_MS) == pytest.approx(2.0)


def test_caps_per_type_per_day():
    views = [ev("content_view", T0 + i * 1000, content_id="pricing") for i in range(20)]  # 20 x 4 points
    s = fold(views)
    assert value_at(s, T0 + 20_000) == pytest.approx(20.0, rel=1e-4)
    nxt = apply_event(s, ev("content_view", T0 + DAY_MS, content_id="pricing"))  # a new day: a new cap
    assert value_at(nxt, T0 + DAY_MS) > value_at(s, T0 + DAY_MS) + 3.9


def test_reasons_explain_the_score():
    s = fold([ev("content_view", T0, content_id="pricing"), ev("share", T0 + 1000), ev("room_view", T0 + 2000)])
    reasons = top_reasons(s, T0 + 2000)
    assert [r for r, _ in reasons] == ["share", "content_view:pricing", "room_view"]
    assert sum(v for _, v in top_reasons(s, T0 + 2000, n=10)) == pytest.approx(value_at(s, T0 + 2000))


def test_out_of_order_events_never_move_the_clock_back():
    late = fold([ev("cta", T0 + DAY_MS), ev("cta", T0)])
    assert late.updated_ms == T0 + DAY_MS
    assert value_at(late, T0 + DAY_MS) == pytest.approx(8 + decay(8, T0, T0 + DAY_MS, 14))


def test_velocity_bands():
    cfg = ScoringConfig(velocity_window_days=30)
    old = [ev("cta", T0 + d * DAY_MS) for d in range(0, 30, 3)]  # 10 CTAs in the first window
    recent_few = [ev("cta", T0 + 31 * DAY_MS)]
    now = T0 + 59 * DAY_MS
    assert band(velocity(fold(old + recent_few, cfg), now, cfg), cfg) == "Dark"
    recent_many = [ev("cta", T0 + (31 + d) * DAY_MS) for d in range(0, 27, 3)]
    assert band(velocity(fold(old + recent_many, cfg), now, cfg), cfg) == "Active"
    recent_some = recent_many[:5]
    assert band(velocity(fold(old + recent_some, cfg), now, cfg), cfg) == "Cooling"
    assert velocity(StakeholderScore(), now) is None and band(None) == "Dark"
    assert velocity(fold(recent_few), now) == math.inf


def test_deal_score_rolls_up_breadth_depth_recency():
    roles = {"cfo": "economic_buyer", "ops": "champion", "it": "technical"}
    one = {"ops": fold([ev("content_view", T0, content_id="proposal")])}
    broad = {sid: fold([ev("content_view", T0, content_id="pricing"), ev("share", T0 + 1)]) for sid in roles}
    now = T0 + DAY_MS
    a, b = deal_score(one, roles, 3, now), deal_score(broad, roles, 3, now)
    assert 0 <= a.value < b.value <= 100
    assert b.breadth > a.breadth and b.depth > a.depth
    assert any("not engaged yet" in r for r in a.reasons)
    assert deal_score(broad, roles, 3, now + 60 * DAY_MS).value < b.value  # silence costs


_events = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from([t for t, _ in DEFAULT.type_weights]),
    "ts": st.integers(T0, T0 + 90 * DAY_MS),
    "engaged_ms": st.integers(0, 300_000),
    "content_id": st.sampled_from(["", "pricing", "proposal", "security-whitepaper", "other"]),
}), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_events, st.integers(0, 200 * DAY_MS))
def test_score_is_never_negative_and_decays_monotonically_without_events(events, gap):
    s = fold(events)
    now = max([e["ts"] for e in events], default=T0)
    v1, v2 = value_at(s, now), value_at(s, now + gap)
    assert v1 >= 0 and v2 >= 0 and v2 <= v1 + 1e-9


@settings(max_examples=100, deadline=None)
@given(_events)
def test_replaying_the_same_events_in_the_same_order_gives_the_same_state(events):
    assert fold(events) == fold(list(events))


_far_events = st.lists(st.fixed_dictionaries({  # out of order, years apart (reasons decaying below 1e-9), same days
    "type": st.sampled_from(["room_view", "content_view", "engagement", "cta", "share"]),
    "ts": st.one_of(st.integers(T0, T0 + 3 * DAY_MS), st.integers(T0 - 900 * DAY_MS, T0 + 900 * DAY_MS)),
    "engaged_ms": st.integers(0, 10 ** 9),
    "content_id": st.sampled_from(["", "pricing", "proposal", "x"]),
}), max_size=60)


def reference_apply(state, rec, cfg=DEFAULT):
    """The frozen-tuple fold that ``ScoreAcc`` replaced (every event rebuilds the value), kept as the oracle."""
    ts = int(rec["ts"])
    pts, reason = event_points(rec, cfg)
    day = ts // DAY_MS
    caps = dict(state.day_type_points)
    used = caps.get((day, rec.get("type", "")), 0.0)
    pts = max(0.0, min(pts, cfg.cap_per_type_per_day - used))
    now = max(state.updated_ms, ts)
    hl = cfg.half_life_days
    contribution = decay(pts, ts, now, hl)
    reasons = dict(state.reasons) if now == state.updated_ms else {r: decay(v, state.updated_ms, now, hl)
                                                                    for r, v in state.reasons}
    reasons[reason] = reasons.get(reason, 0.0) + contribution
    if pts > 0:
        caps[(day, rec.get("type", ""))] = used + pts
    return StakeholderScore(
        decay(state.value, state.updated_ms, now, hl) + contribution, now, min(state.first_seen_ms or ts, ts),
        max(state.last_seen_ms, ts), tuple(sorted((r, v) for r, v in reasons.items() if v > 1e-9)),
        tuple(sorted((k, v) for k, v in caps.items() if k[0] >= day - 1)),
        add_day(state.daily, day, pts, day - 2 * cfg.velocity_window_days))


@settings(max_examples=300, deadline=None)
@given(_events | _far_events)
@example([ev("room_view", T0, content_id="pricing"),  # faded below 1e-9, then counted again: adds to what is left
          ev("room_view", T0 + 440 * DAY_MS, content_id="pricing")])
def test_a_run_folded_in_place_is_exactly_the_frozen_fold(events):
    """The state machine folds a run of events into one ``ScoreAcc`` and freezes it once; that must be the very
    value (every float) the frozen fold gives, and so must ``apply_event`` one event at a time."""
    acc, ref = ScoreAcc(StakeholderScore()), StakeholderScore()
    for e in events:
        acc.add(e, event_points(e))
        ref = reference_apply(ref, e)
    assert acc.freeze() == ref
    assert fold(events) == ref


def test_rounded_is_round_to_the_bit():
    """``rounded`` against Python's own ``round``: uniform values, both signs, tiny and huge magnitudes, exact
    decimal ties (where the binary value decides), values a hair off a tie, zeros, infinities and NaN."""
    import random
    import struct

    from streams.scoring import rounded

    rng = random.Random(3)
    values = [0.0, -0.0, 1e-12, -1e-12, 0.00005, -0.00005, 2.675, 1.0005, 0.12345, 1e15, -1e15, 5e8, 2e9,
              float("inf"), float("-inf")]
    for i in range(60_000):
        digits = rng.choice((2, 3, 4))
        kind = i % 5
        if kind == 0:
            values.append(rng.uniform(-200, 200))
        elif kind == 1:
            values.append((rng.randint(-10**6, 10**6) + 0.5) / 10**digits)
        elif kind == 2:
            values.append(rng.randint(-10**6, 10**6) / 10**digits)
        elif kind == 3:
            values.append(math.ldexp(rng.random(), rng.randint(-60, 40)) * rng.choice((1, -1)))
        else:
            values.append((rng.randint(0, 10**5) + 0.5) / 10**digits + rng.choice((-1, 1)) * math.ldexp(1, -48))
    for x in values:
        for digits in (2, 3, 4):
            assert struct.pack("d", rounded(x, digits)) == struct.pack("d", round(x, digits)), (x, digits)
    assert math.isnan(rounded(float("nan"), 4))


def test_daily_total_sums_each_day_in_stakeholder_order_dense_or_sparse():
    """Against a plain dict fold: the same days in the same (first met) order, the same floats to the bit, for
    dailies close together (one slot per day) and far apart (a long-silent person's old days)."""
    import random
    import struct

    from streams.scoring import StakeholderScore, daily_total

    def reference(scores):
        total = {}
        for s in scores.values():
            for d, v in s.daily:
                total[d] = total.get(d, 0.0) + v
        return total

    rng = random.Random(5)
    for case in range(400):
        start = rng.choice([20_400, 19_000, 0])
        scores = {}
        for k in range(rng.randint(0, 6)):
            base = start + (rng.randint(0, 3000) if case % 4 == 0 else rng.randint(0, 40))
            days = sorted(rng.sample(range(base, base + 60), rng.randint(0, 25)))
            scores[f"p{k}"] = StakeholderScore(daily=tuple((d, rng.choice([0.1, 0.7, 1.0 / 3, 2.5]) * rng.randint(1, 9))
                                                         for d in days))
        got, want = daily_total(scores), reference(scores)
        assert list(got) == list(want)
        assert all(struct.pack("d", got[d]) == struct.pack("d", want[d]) for d in want)
