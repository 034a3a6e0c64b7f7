"""Signal-quality report (a script, not a test): do the scores and stall alerts mean something?

Simulates buying committees (dealbeacon/sim/simulator.py), replays each deal's operations (stage changes from
the rooms API, events, a clock tick every 6 hours) through the state machine both modes run
(streams/processors.process_rooms -> streams/deals.py), and reports:
- AUC of the deal score at fixed days for won vs lost;
- stall-alert precision and recall against the simulator's ground truth (an alert is right when it falls
  within 14 days after the true start of a dark episode), and the median detection delay;
- alerts per deal per week, by kind (one alert per episode and severity step, as the core raises them).

    python bench/signal_quality.py [--deals 300] [--seed 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dealbeacon.sim.simulator import DAY_MS, op_records, plan, simulate  # noqa: E402
from sinks.notify import NotifyState, SellerPrefs, due, offer  # noqa: E402
from streams.processors import process_rooms  # noqa: E402

STALL_KINDS = {"quiet", "deal_went_dark", "champion_dark", "stakeholder_dark"}
START = 1_780_000_000_000


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


def run_deal(deal, score_days, tick_ms=6 * 3_600_000):
    """The deal's operations (room updates with stage changes, events, clock ticks) through the same core
    both modes run (streams.processors.process_rooms); returns (day, alert row) pairs and the deal score
    at each of ``score_days``."""
    states, alerts, scores = {}, [], []
    ops = plan([deal], "sim", "secret", 4_000_000_000, tick_ms=tick_ms)
    for recs in op_records(ops, "sim", [deal]):
        changed, out = process_rooms(recs, states.get, lambda site: list(states))
        states.update(changed)
        alerts += [((a["at"] - deal.created_ms) // DAY_MS, a) for a in out.get("alerts", [])]
        scores += [(r["at"], r["score"]) for r in out.get("deal_scores", [])]
    snapshots = {}
    for day in score_days:
        upto = [v for at, v in scores if at <= deal.created_ms + day * DAY_MS]
        if upto and day < deal.closed_day:
            snapshots[day] = upto[-1]
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
    first = [(d, [(day, a) for day, a in alerts if a["kind"] in STALL_KINDS and a["severity"] != "high"
                  and not (a["kind"] == "quiet" and a["severity"] == "medium")]) for d, alerts, _ in results]
    f_tp = sum(1 for d, al in first for day, _ in al
               if d.stalled_day is not None and d.stalled_day <= day <= d.stalled_day + 14)
    f_all = sum(len(al) for _, al in first)
    print(f"stall alerts, first notice per quiet stretch (no escalations): precision {f_tp / max(1, f_all):.3f} "
          f"({f_tp}/{f_all})")
    stall_alerts = tp = 0
    detected, delays = 0, []
    for d, alerts, _ in results:
        hits = []
        for day, al in alerts:
            if al["kind"] not in STALL_KINDS:
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
            by_kind[x["kind"]] = by_kind.get(x["kind"], 0) + 1
    print(f"alerts per deal per week: {total / weeks / 1:.2f} over {weeks:.0f} deal-weeks; by kind: "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items(), key=lambda x: -x[1])))
    print(f"notices per deal per week after the delivery policy (aggregation, cooldown): "
          f"{notices_per_week(results, weeks):.2f}")


def notices_per_week(results, weeks: float) -> float:
    """What sellers would receive: every deal's alerts through the delivery policy (defaults), in time order."""
    total = 0
    for _, alerts, _ in results:
        state, pending = NotifyState(), sorted((a for _, a in alerts), key=lambda a: a["at"])
        for a in pending:
            state, out = due(state, {}, a["at"])
            total += len(out)
            state = offer(state, a, SellerPrefs())
        _, out = due(state, {}, 10**14)
        total += len(out)
    return total / weeks


if __name__ == "__main__":
    main()
