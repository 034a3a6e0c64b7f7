"""Signal-quality report (a script, not a test): do the scores and stall alerts mean something?

Simulates buying committees (dealbeacon/simulator.py), folds every deal through the pure scoring and alert
core (streams/scoring.py, streams/alerts.py) with the time rules evaluated at each day's end, and reports:
- AUC of the deal score at fixed days for won vs lost;
- stall-alert precision and recall against the simulator's ground truth (an alert is right when it falls
  within 14 days after the true start of a dark episode), and the median detection delay;
- alerts per deal per week (stall alerts counted once per quiet episode, as delivery will do).

    python bench/signal_quality.py [--deals 300] [--seed 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dealbeacon.simulator import DAY_MS, simulate  # noqa: E402
from streams.alerts import BandState, Room, RoomFacts, evaluate, observe  # noqa: E402
from streams.scoring import StakeholderScore, apply_event, deal_score, event_points  # noqa: E402

STALL_KINDS = {"quiet", "deal_went_dark", "champion_dark", "stakeholder_dark"}
START = 1_780_000_000_000


def stage_for(day: int) -> str:
    return "qualification" if day < 15 else "proposal" if day < 40 else "negotiation"


def auc(pos: list[float], neg: list[float]) -> float:
    """Mann-Whitney: P(score of a won deal > score of a lost deal), ties count half."""
    if not pos or not neg:
        return float("nan")
    ranked = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        avg = (i + j + 1) / 2
        rank_sum += avg * sum(1 for k in range(i, j) if ranked[k][1] == 1)
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def run_deal(deal, score_days):
    roles = dict(deal.committee)
    scores: dict[str, StakeholderScore] = {}
    facts, bands = RoomFacts(), BandState()
    daily: dict[int, float] = {}
    alerts, snapshots, episodes = [], {}, set()
    events = iter(deal.events)
    nxt = next(events, None)
    for day in range(deal.closed_day):
        end = deal.created_ms + (day + 1) * DAY_MS
        while nxt is not None and nxt["ts"] < end:
            pts, _ = event_points(nxt)
            d = nxt["ts"] // DAY_MS
            daily[d] = daily.get(d, 0.0) + pts
            sid = nxt["stakeholder_id"]
            scores[sid] = apply_event(scores.get(sid, StakeholderScore()), nxt)
            room = Room(deal.room_id, stage_for(day), deal.created_ms, tuple(deal.committee))
            facts, fired = observe(room, facts, nxt, tuple(daily.items()), pts)
            alerts += [(day, a) for a in fired]
            nxt = next(events, None)
        room = Room(deal.room_id, stage_for(day), deal.created_ms, tuple(deal.committee))
        bands, fired = evaluate(room, facts, scores, bands, end)
        for a in fired:
            key = (a.kind, facts.last_activity_ms) if a.kind == "quiet" else (a.kind, day, a.stakeholders)
            if key not in episodes:  # one notice per quiet episode
                episodes.add(key)
                alerts.append((day, a))
        if day + 1 in score_days:
            snapshots[day + 1] = deal_score(scores, roles, len(roles), end).value
    return alerts, snapshots


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deals", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    deals = simulate(a.seed, a.deals, START)
    score_days = (20, 30, 45)
    results = [(d, *run_deal(d, score_days)) for d in deals]
    print(f"{len(deals)} simulated deals, {sum(len(d.events) for d in deals)} events, "
          f"{sum(d.won for d in deals)} won, {sum(d.stalled_day is not None for d in deals)} with a dark episode")
    for day in score_days:
        won = [s[day] for d, _, s in results if d.won and day in s]
        lost = [s[day] for d, _, s in results if not d.won and day in s]
        print(f"AUC of the deal score at day {day}: {auc(won, lost):.3f} (won {len(won)}, lost {len(lost)})")
    stall_alerts = tp = 0
    detected, delays = 0, []
    for d, alerts, _ in results:
        hits = []
        for day, al in alerts:
            if al.kind not in STALL_KINDS:
                continue
            stall_alerts += 1
            if d.stalled_day is not None and d.stalled_day <= day <= d.stalled_day + 14:
                tp += 1
                hits.append(day - d.stalled_day)
        if d.stalled_day is not None and hits:
            detected += 1
            delays.append(min(hits))
    stalled = sum(d.stalled_day is not None for d, _, _ in results)
    print(f"stall alerts: precision {tp / max(1, stall_alerts):.3f} ({tp}/{stall_alerts}), recall "
          f"{detected / max(1, stalled):.3f} ({detected}/{stalled}), median detection delay "
          f"{statistics.median(delays) if delays else float('nan'):.1f} days")
    weeks = sum(d.closed_day for d in deals) / 7
    total = sum(len(al) for _, al, _ in results)
    by_kind: dict[str, int] = {}
    for _, al, _ in results:
        for _, x in al:
            by_kind[x.kind] = by_kind.get(x.kind, 0) + 1
    print(f"alerts per deal per week: {total / weeks / 1:.2f} over {weeks:.0f} deal-weeks; by kind: "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items(), key=lambda x: -x[1])))


if __name__ == "__main__":
    main()
