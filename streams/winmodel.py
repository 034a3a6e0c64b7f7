"""The deal's win probability: a logistic model over engagement features, fitted on the site's own closed deals.

Pure: features from a room's scores at an explicit ``now``; ``fit`` from training rows (the deal-score
snapshots of closed deals, as stored in ``deal_scores``); ``predict`` with a model. No I/O, no clock.

- **Features** (``FEATURES``, each roughly 0..1): breadth (engaged of invited, key roles covered), depth
  (summed stakeholder scores), recency (decays with silence), momentum (points of the last 14 days), rhythm
  (active days per day of the room's life, up to the 60 days of history a room keeps), people (engaged
  invited people of the committee), stage (position of the open stage in the site's stage list) and age
  (days since the room opened, up to 120).
- **Prior** (``PRIOR``): the documented model a site starts with, version ``prior-1``. It is used until the
  site has ``MIN_WON`` won and ``MIN_LOST`` lost deals (50 and 50); after that a fit replaces it.
- **Fit**: L2-regularised logistic regression (Newton steps), centred on the prior (a Gaussian prior of
  precision ``RIDGE`` per coefficient), each closed deal weighing 1 in total however many snapshots it has
  (one per ``EVERY_DAYS`` days of its life, before it closed). The version names the coefficients
  (``fit-`` + a hash), so the same data gives the same version in every process.
- **Delivery**: a fitted model travels to the rooms as a site-wide ``model`` record (like a clock tick); each
  room keeps the model it was last given, and every score row carries the model's version.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

FEATURES = ("breadth", "depth", "recency", "momentum", "rhythm", "people", "stage", "age")
PRIOR_VERSION = "prior-1"
# intercept first, then one weight per feature: a fit on the simulator's site history (bench/signal_quality.py,
# seed 7), rounded. Not any real site's: it stands in until a site's own closed deals replace it.
PRIOR: tuple[float, ...] = (-1.2, -0.6, 2.0, 0.2, 0.3, -0.3, 2.0, -1.3, 0.0)
MIN_WON = 50
MIN_LOST = 50
RIDGE = 1.0
EVERY_DAYS = 7
MAX_DEALS = 2000  # the most recent closed deals a fit reads


@dataclass(frozen=True)
class WinModel:
    version: str = PRIOR_VERSION
    coef: tuple[float, ...] = PRIOR  # intercept, then FEATURES in order
    won: int = 0  # closed deals it was fitted on
    lost: int = 0

    def predict(self, features: dict[str, float]) -> float:
        z = self.coef[0] + sum(w * features.get(name, 0.0) for w, name in zip(self.coef[1:], FEATURES))
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def record(self, site: str, at_ms: int) -> dict:
        """The site-wide record that hands this model to every room of ``site``."""
        return {"record": "model", "site": site, "version": self.version, "coef": list(self.coef),
                "won": self.won, "lost": self.lost, "fitted_at": at_ms}

    @classmethod
    def from_record(cls, rec: dict) -> WinModel:
        coef = tuple(float(c) for c in rec["coef"])
        if len(coef) != len(FEATURES) + 1:
            raise ValueError(f"model {rec.get('version')!r}: {len(coef)} coefficients, {len(FEATURES) + 1} expected")
        return cls(str(rec["version"]), coef, int(rec.get("won", 0)), int(rec.get("lost", 0)))


PRIOR_MODEL = WinModel()


def features(breadth: float, depth: float, recency: float, daily: Iterable[tuple[int, float]], engaged: int,
             invited: int, stage_pos: float, age_days: float, today: int) -> dict[str, float]:
    """The model's inputs. ``daily``: the room's points per day (day number, points); ``today``: the day of now."""
    daily = [(d, v) for d, v in daily if v > 0]
    recent = [(d, v) for d, v in daily if today - 14 < d <= today]
    lived = [d for d, _ in daily if today - max(1.0, age_days) < d <= today]
    return {"breadth": round(breadth, 4), "depth": round(depth, 4), "recency": round(recency, 4),
            "momentum": round(math.log1p(sum(v for _, v in recent)) / 6, 4), "rhythm": round(min(1.0, len(lived) / max(1.0, age_days)), 4),
            "people": round(min(1.0, engaged / max(1, invited)), 4), "stage": round(stage_pos, 4),
            "age": round(min(age_days, 120.0) / 120, 4)}


def examples(rows: Iterable[tuple[str, int, dict[str, float], bool]], every_days: int = EVERY_DAYS,
             day_ms: int = 86_400_000):
    """Training data from closed deals' score snapshots: ``rows`` of (room id, at ms, features, won). Keeps the
    first snapshot of each ``every_days`` stretch per deal; every deal weighs 1 in total."""
    kept: dict[str, dict[int, tuple[int, dict[str, float], bool]]] = {}
    for room, at, feats, won in rows:
        slots = kept.setdefault(room, {})
        slot = at // (every_days * day_ms)
        if slot not in slots or at < slots[slot][0]:
            slots[slot] = (at, feats, won)
    xs, ys, ws = [], [], []
    for room in sorted(kept):
        slots = kept[room]
        for slot in sorted(slots):
            _, feats, won = slots[slot]
            xs.append([1.0] + [float(feats.get(n, 0.0)) for n in FEATURES])
            ys.append(1.0 if won else 0.0)
            ws.append(1.0 / len(slots))
    return np.array(xs).reshape(-1, len(FEATURES) + 1), np.array(ys), np.array(ws)


def fit(rows: Iterable[tuple[str, int, dict[str, float], bool]], *, min_won: int = MIN_WON,
        min_lost: int = MIN_LOST, ridge: float = RIDGE, prior: Sequence[float] = PRIOR) -> WinModel:
    """The site's model from its closed deals' snapshots, or the prior while it has too few of either outcome."""
    rows = list(rows)
    outcome = {room: won for room, _, _, won in rows}
    won = sum(outcome.values())
    lost = len(outcome) - won
    if won < min_won or lost < min_lost:
        return WinModel(won=won, lost=lost)
    x, y, w = examples(rows)
    beta0 = np.array(prior, dtype=float)
    beta = beta0.copy()
    reg = np.full(len(beta), ridge)
    reg[0] = ridge / 100  # the intercept is barely held: the site's base rate is its own
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ beta, -40, 40)))
        grad = x.T @ (w * (y - p)) - reg * (beta - beta0)
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    coef = tuple(round(float(b), 6) for b in beta)
    digest = hashlib.sha1(repr(coef).encode()).hexdigest()[:10]
    return WinModel(f"fit-{digest}", coef, won, lost)
