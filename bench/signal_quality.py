"""Signal-quality report (a script, not a test): do the win probabilities and stall notices mean something?

A site's history from the simulator (dealbeacon/sim/simulator.py): rooms open one after another over a year,
each with a latent win propensity that draws its outcome and drives its committee's engagement (weekday
rhythms in the buyer's own time zone, the site's holidays, second devices, repeat shares, forwarded links
opened by new people, dark stretches that may revive, content ids that do not name their kind). Every
room's operations (room updates with the catalogue and stage changes, events, a tick every 6 hours) run in
time order through the state machine both modes run (streams/processors.process_rooms -> streams/deals.py);
as deals close, the site's win model is refitted from their stored score snapshots (streams/winmodel.fit,
what the model fitter does on deal_scores) and handed to the rooms as a site-wide ``model`` record.

Reported:
- the oracle AUC (the simulator's own propensity vs outcomes) next to the AUC of the win probability at day
  30, on the deals scored by a fitted model (and, apart, those scored by the prior);
- a calibration table (predicted vs observed win rate per decile) and its error (mean |predicted - observed|);
- the first stall notice per silent stretch (the first quiet / went-dark alert between two buyer visits):
  precision (the notice falls inside a true dark stretch), recall (true dark stretches that outlast their
  stage's cadence and get a notice while still dark), and the median delay in working days past the moment
  the silence outlasted the stage's cadence (the seller's own expectation of contact; no rule can speak
  earlier without alerting on ordinary gaps);
- notices per deal per week after the delivery policy, and stall alerts caused by weekends in deals whose
  committee works Monday to Friday (silence within the stage's cadence when counted in the buyer's calendar).

    python bench/signal_quality.py [--deals 1600] [--seed 7]
"""
from __future__ import annotations

import argparse
import heapq
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dealbeacon.sim.simulator import DAY_MS, SITE_ZONE, holidays, op_records, plan, simulate  # noqa: E402
from sinks.notify import NotifyState, SellerPrefs, due, offer  # noqa: E402
from streams.alerts import AlertConfig  # noqa: E402
from streams.calendar import WorkCalendar  # noqa: E402
from streams.processors import process_rooms  # noqa: E402
from streams.winmodel import PRIOR_MODEL, fit  # noqa: E402

STALL_KINDS = {"quiet", "deal_went_dark"}
START = 1_780_000_000_000
SITE = "sim"
TICK_MS = 6 * 3_600_000
REFIT_EVERY = 25  # closed deals between refits
SCORE_DAY = 30


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


def deal_batches(deal, n):
    """(at, order, deal index, records) for one deal: its ops as ingest would hand them off, and a tick every
    6 hours until a day after it closed."""
    ops = plan([deal], SITE, "secret", 4_000_000_000)
    out = [(op.at_ms, {"room": 0, "events": 1}[op.kind], n, recs) for op, recs in zip(ops, op_records(ops, SITE, [deal]))]
    end = deal.created_ms + (deal.closed_day + 1) * DAY_MS
    out += [(t, 2, n, [{"record": "tick", "site": SITE, "room_id": deal.room_id, "now": t}])
            for t in range(deal.created_ms + TICK_MS, end + 1, TICK_MS)]
    return sorted(out, key=lambda x: x[:2])


def run_site(deals, acfg: AlertConfig):
    """The whole history in time order. Returns per deal: alerts, deal-score rows; and the fits made."""
    states: dict = {}
    alerts: dict[str, list[dict]] = {d.room_id: [] for d in deals}
    scores: dict[str, list[dict]] = {d.room_id: [] for d in deals}
    by_room = {d.room_id: d for d in deals}
    open_rooms: set[bytes] = set()
    training: list = []
    closed = last_fit = 0
    model = PRIOR_MODEL
    fits = []
    merged = heapq.merge(*(deal_batches(d, n) for n, d in enumerate(deals)), key=lambda x: x[:3])
    for at, _, _, recs in merged:
        changed, out = process_rooms(recs, states.get, lambda site: sorted(open_rooms), acfg=acfg)
        states.update(changed)
        for a in out.get("alerts", []):  # with the last buyer activity the core knew of when it raised it
            alerts[a["room_id"]].append({**a, "known_last": states[f"{SITE}/{a['room_id']}".encode()].facts.last_activity_ms})
        for r in out.get("deal_scores", []):
            scores[r["room_id"]].append(r)
        for rec in recs:
            key = f"{SITE}/{rec.get('room_id', '')}".encode()
            if rec.get("record") == "room" and rec.get("stage") in ("closed_won", "closed_lost"):
                open_rooms.discard(key)
                d = by_room[rec["room_id"]]
                training += [(d.room_id, r["at"], _features(r), d.won) for r in scores[d.room_id] if r["at"] < at]
                closed += 1
            elif key in changed and states[key].room.stage not in ("closed_won", "closed_lost"):
                open_rooms.add(key)
        if closed - last_fit >= REFIT_EVERY:
            last_fit = closed
            new = fit(training)
            if new.version != model.version:
                model = new
                fits.append((at, model))
                changed, _ = process_rooms([model.record(SITE, at)], states.get, lambda site: sorted(open_rooms), acfg=acfg)
                states.update(changed)
    return alerts, scores, fits


def _features(row: dict) -> dict[str, float]:
    import orjson
    return orjson.loads(row["features"])


def score_at(rows: list[dict], at_ms: int) -> dict | None:
    upto = [r for r in rows if r["at"] <= at_ms]
    return upto[-1] if upto else None


def calibration(pairs: list[tuple[float, bool]], bins: int = 10) -> list[tuple[float, float, int]]:
    ranked = sorted(pairs)
    out = []
    for b in range(bins):
        chunk = ranked[b * len(ranked) // bins:(b + 1) * len(ranked) // bins]
        if chunk:
            out.append((statistics.fmean(p for p, _ in chunk), statistics.fmean(1.0 if w else 0.0 for _, w in chunk),
                        len(chunk)))
    return out


def stall_report(deals, alerts, acfg: AlertConfig, hol):
    """First stall notice per silent stretch against the simulator's dark stretches."""
    cal = acfg.calendar
    notices = correct = 0
    delays: list[float] = []
    detectable = detected = 0
    weekend_caused = 0
    for d in deals:
        visits = sorted({e["ts"] for e in d.events})
        closed_ms = d.created_ms + d.closed_day * DAY_MS
        stall = sorted((a for a in alerts[d.room_id] if a["kind"] in STALL_KINDS and a["at"] < closed_ms),
                       key=lambda a: a["at"])
        firsts: dict[int, dict] = {}
        for a in stall:
            last = a["known_last"] or d.created_ms
            firsts.setdefault(last, a)
            if a["kind"] == "quiet" and d.weekdays_only and not any(s <= a["at"] < e for s, e in d.episodes):
                buyer = WorkCalendar(d.tz, (5, 6), hol)
                if buyer.working_days(last, a["at"]) <= (acfg.cadence(a["stage"]) or 0):
                    weekend_caused += 1
                    if os.environ.get("SQ_DEBUG"):
                        print("weekend", d.room_id, d.tz, last, a["at"], a["evidence"])
        for last, a in firsts.items():
            notices += 1
            ok = any(s <= a["at"] < e for s, e in d.episodes)
            correct += ok
            if os.environ.get("SQ_DEBUG"):
                print("notice", ok, a["kind"], a["severity"], d.room_id, round(d.propensity, 2),
                      round(cal.working_days(last, a["at"]), 1), a["evidence"][:120])
        for s, e in d.episodes:
            last = max((t for t in visits if t < s), default=d.created_ms)
            stage = next((a["stage"] for a in stall if a["at"] >= s), None) or _stage_at(d, s)
            cadence = acfg.cadence(stage)
            if not cadence or cal.working_days(last, min(e, closed_ms)) <= cadence:
                continue  # over before it outlasted the stage's cadence: not a stall the seller asked to hear of
            detectable += 1
            hit = next((a for a in stall if s <= a["at"] < e and a["at"] > last), None)
            if hit is not None:
                detected += 1
                delays.append(max(0.0, cal.working_days(last, hit["at"]) - cadence))
            elif os.environ.get("SQ_DEBUG"):
                print("missed", d.room_id, round(d.propensity, 2), stage, round(cal.working_days(last, min(e, closed_ms)), 1),
                      [round(cal.working_days(last, a["at"]), 1) for a in stall if a["at"] > last][:3])
    return notices, correct, detectable, detected, delays, weekend_caused


def _stage_at(d, ms: int) -> str:
    from dealbeacon.sim.simulator import stage_for
    return stage_for((ms - d.created_ms) // DAY_MS, d)


def notices_per_week(alerts: dict[str, list[dict]], weeks: float) -> float:
    """What sellers would receive: every deal's alerts through the delivery policy (defaults), in time order."""
    total = 0
    for al in alerts.values():
        state, pending = NotifyState(), sorted(al, key=lambda a: a["at"])
        for a in pending:
            state, out = due(state, {}, a["at"])
            total += len(out)
            state = offer(state, a, SellerPrefs())
        _, out = due(state, {}, 10**14)
        total += len(out)
    return total / weeks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deals", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--spread-days", type=int, default=365)
    a = ap.parse_args()
    deals = simulate(a.seed, a.deals, START, days=100, spread_days=a.spread_days)
    hol = holidays(START, 100 + a.spread_days)
    acfg = AlertConfig(calendar=WorkCalendar(SITE_ZONE, (5, 6), hol))
    alerts, scores, fits = run_site(deals, acfg)
    print(f"{len(deals)} simulated deals over {a.spread_days} days (seed {a.seed}), "
          f"{sum(len(d.events) for d in deals)} events, {sum(d.won for d in deals)} won, "
          f"{sum(bool(d.episodes) for d in deals)} with a dark stretch, {sum(d.weekdays_only for d in deals)} "
          f"working Monday to Friday, {len(hol)} holidays; {len(fits)} model fits")
    if fits:
        at, m = fits[-1]
        print(f"last model: {m.version} on {m.won} won / {m.lost} lost, coefficients {list(m.coef)}")
    day_ms = SCORE_DAY * DAY_MS
    rows = [(d, score_at(scores[d.room_id], d.created_ms + day_ms)) for d in deals if d.closed_day > SCORE_DAY]
    for label, pick in (("fitted model", lambda r: r["model_version"].startswith("fit-")),
                        ("prior", lambda r: not r["model_version"].startswith("fit-"))):
        sel = [(d, r) for d, r in rows if r is not None and pick(r)]
        if not sel:
            continue
        won = [r["win_probability"] for d, r in sel if d.won]
        lost = [r["win_probability"] for d, r in sel if not d.won]
        oracle = auc([d.propensity for d, _ in sel if d.won], [d.propensity for d, _ in sel if not d.won])
        eng = auc([r["score"] for d, r in sel if d.won], [r["score"] for d, r in sel if not d.won])
        print(f"\nday-{SCORE_DAY} win probability, {label}: {len(sel)} deals ({len(won)} won)")
        print(f"  oracle AUC {oracle:.3f}   win-probability AUC {auc(won, lost):.3f}   (engagement score AUC {eng:.3f})")
        table = calibration([(r["win_probability"], d.won) for d, r in sel])
        print("  decile  predicted  observed    n")
        for i, (p, o, n) in enumerate(table, 1):
            print(f"  {i:6d}  {p:9.3f}  {o:8.3f}  {n:4d}")
        print(f"  calibration error (mean |predicted - observed| over deciles): "
              f"{statistics.fmean(abs(p - o) for p, o, _ in table):.3f}")
    notices, correct, detectable, detected, delays, weekend = stall_report(deals, alerts, acfg, hol)
    print(f"\nfirst stall notice per silent stretch: precision {correct / max(1, notices):.3f} ({correct}/{notices}), "
          f"recall {detected / max(1, detectable):.3f} ({detected}/{detectable} dark stretches that outlast their "
          f"stage's cadence), median delay past the cadence "
          f"{statistics.median(delays) if delays else float('nan'):.2f} working days")
    print(f"stall alerts caused by weekends in Monday-to-Friday deals: {weekend}")
    weeks = sum(d.closed_day for d in deals) / 7
    by_kind: dict[str, int] = {}
    for al in alerts.values():
        for x in al:
            by_kind[x["kind"]] = by_kind.get(x["kind"], 0) + 1
    print(f"alerts per deal per week: {sum(by_kind.values()) / weeks:.2f} over {weeks:.0f} deal-weeks; by kind: "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items(), key=lambda x: -x[1])))
    print(f"notices per deal per week after the delivery policy (aggregation, cooldown): "
          f"{notices_per_week(alerts, weeks):.2f}")


if __name__ == "__main__":
    main()
