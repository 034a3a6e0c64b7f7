"""The deal's win probability: a logistic model over engagement features, fitted on the site's own closed deals.

Pure: features from a room's scores at an explicit ``now``; ``fit`` from training rows (the deal-score
snapshots of closed deals, as stored in ``deal_scores``); ``predict`` with a model. No I/O, no clock.

- **Features** (``FEATURES``, each roughly 0..1): breadth (engaged of invited, key roles covered), depth
  (summed stakeholder scores), recency (decays with silence), momentum (points of the last 14 days), rhythm
  (active days per day of the room's life, up to the 60 days of history a room keeps), people (engaged
  invited people of the committee), stage (position of the open stage in the site's stage list) and age
  (days since the room opened, up to 120), intensity (active days per member who took part, per day of the
  room's life, on a log scale: 1 is every day, 0 once in 150 days), reached (the share of the committee that
  ever took part), per_visit (points per member per active day, on a log scale), and the squares of the last
  three (the best deals are better than a straight line says).
- **Prior** (``PRIOR``): the documented model a site starts with, version ``prior-1``. It is used until the
  site has ``MIN_WON`` won and ``MIN_LOST`` lost deals (50 and 50); after that a fit replaces it.
- **Fit**: one model per age band (``AGE_BANDS``: a deal's first two weeks, weeks 2-4, 4-6, 6-9, after:
  early and late engagement do not mean the same), each an L2-regularised logistic regression (Newton
  steps) centred on the prior (a Gaussian prior of precision ``RIDGE`` per coefficient), each closed deal
  weighing 1 in a band however many snapshots it has there (one per ``EVERY_DAYS`` days of its life, before
  it closed). The version names the coefficients
  (``fit-`` + a hash), so the same data gives the same version in every process.
- **Delivery**: a fitted model travels to the rooms as a site-wide ``model`` record (like a clock tick); each
  room keeps the model it was last given, and every score row carries the model's version.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from streams.scoring import rounded

FEATURES: Final = ("breadth", "depth", "recency", "momentum", "rhythm", "people", "stage", "age", "intensity", "reached",
            "per_visit", "intensity2", "per_visit2", "reached2")
PRIOR_VERSION: Final = "prior-1"
# per age band, intercept first, then one weight per feature: a fit on the simulator's site history
# (bench/signal_quality.py, seed 7), rounded. Not any real site's: it stands in until a site's own closed deals
# replace it.
PRIOR: Final[tuple[tuple[float, ...], ...]] = (  # per age band
    (-1.3, -3.8, 2.3, 1.8, 0.4, -1.7, 3.4, 0.5, -13.4, -6.5, -0.7, -2.9, 7.0, 9.5, 0.7),
    (-7.4, -1.4, 1.3, -1.7, 0.1, -0.5, 2.5, -0.2, 0.6, -0.6, 3.6, 3.9, 5.3, 7.0, -2.7),
    (-10.3, -0.9, 1.0, -1.4, -0.6, -0.1, -1.9, 0.7, -0.2, 1.7, 7.2, 6.9, 3.7, 8.5, -2.4),
    (-11.6, -0.5, 1.0, -0.5, -0.8, -0.8, -1.5, 0.5, 0.4, 1.7, 6.3, 8.8, 3.1, 9.8, -2.2),
    (-10.1, -0.2, 1.3, 0.2, -1.0, -1.7, -1.4, 0.5, -1.4, 0.4, 5.1, 9.2, 3.4, 10.5, -1.8),
)
MIN_WON: Final = 50
MIN_LOST: Final = 50
RIDGE: Final = 0.1
AGE_BANDS: Final = (14, 28, 42, 63)  # days: one model per stretch of a deal's life (2, 4, 6 and 9 weeks, after)
AGE_SCALE_DAYS: Final = 120.0  # the age feature is days / this
EVERY_DAYS: Final = 7
MIN_RATE_DAYS: Final = 7.0  # rates of activity are over at least this many days
MAX_DEALS: Final = 2000  # the most recent closed deals a fit reads


def band_of(age_days: float) -> int:
    """The age band a snapshot falls in: one model per band (``AGE_BANDS``)."""
    band = 0
    for b in AGE_BANDS:
        if age_days >= b:
            band += 1
    return band


@dataclass(frozen=True)
class WinModel:
    version: str = PRIOR_VERSION
    # per age band: intercept, then FEATURES in order
    coef: tuple[tuple[float, ...], ...] = PRIOR
    won: int = 0  # closed deals it was fitted on
    lost: int = 0

    def predict(self, features: dict[str, float]) -> float:
        coef = self.coef[band_of(features.get("age", 0.0) * AGE_SCALE_DAYS)]
        total = 0.0  # ``sum``'s floats (from 0.0, in FEATURES' order), in a loop: compiled, a third cheaper
        for w, name in zip(coef[1:], FEATURES):
            total += w * features.get(name, 0.0)
        z = coef[0] + total
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def record(self, site: str, at_ms: int) -> dict:
        """The site-wide record that hands this model to every room of ``site``."""
        return {"record": "model", "site": site, "version": self.version, "bands": list(AGE_BANDS),
                "coef": [list(c) for c in self.coef], "won": self.won, "lost": self.lost, "fitted_at": at_ms}

    @classmethod
    def from_record(cls, rec: dict) -> WinModel:
        coef = tuple(tuple(float(c) for c in band) for band in rec["coef"])
        if len(coef) != len(AGE_BANDS) + 1 or any(len(c) != len(FEATURES) + 1 for c in coef):
            raise ValueError(f"model {rec.get('version')!r}: {len(AGE_BANDS) + 1} age bands of {len(FEATURES) + 1} "
                             "coefficients expected")
        return cls(str(rec["version"]), coef, int(rec.get("won", 0)), int(rec.get("lost", 0)))


PRIOR_MODEL: Final = WinModel()


def features(breadth: float, depth: float, recency: float, daily: dict[int, float], engaged: int,
             invited: int, stage_pos: float, age_days: float, today: int,
             person_days: Sequence[tuple[str, tuple[tuple[int, float], ...]]] = ()) -> dict[str, float]:
    """The model's inputs. ``daily``: the room's points per day (day number -> points); ``today``: the day of now;
    ``person_days``: (person, their (day, points)) for each committee member (the history a room keeps; days with
    points count as active)."""
    since = today - max(1.0, age_days)
    momentum = 0.0
    lived = 0
    for d, v in daily.items():
        if v > 0 and d <= today:
            if d > today - 14:
                momentum += v
            if d > since:
                lived += 1
    pairs = 0  # (person, day) with points in the room's lifetime so far (a person's days are distinct)
    points = 0.0
    people = 0
    for _, days in person_days:
        mine = 0
        for d, v in days:
            if v > 0 and since < d <= today:
                mine += 1
                points += v
        pairs += mine
        people += mine > 0
    out = {"breadth": rounded(breadth, 4), "depth": rounded(depth, 4), "recency": rounded(recency, 4),
            "momentum": rounded(math.log1p(momentum) / 6, 4),
            # rates over at least a week: a room two days old with a visit on each is not yet "every day"
            "rhythm": rounded(min(1.0, lived / max(MIN_RATE_DAYS, age_days)), 4),
            "people": rounded(min(1.0, engaged / max(1, invited)), 4), "stage": rounded(stage_pos, 4),
            "age": rounded(min(age_days, AGE_SCALE_DAYS) / AGE_SCALE_DAYS, 4),
            # how often each member who took part comes back, and how much of the committee ever did
            "intensity": rounded(1 + math.log(max(0.01, min(1.0, pairs / max(1, people)
                                                          / max(MIN_RATE_DAYS, min(age_days, 60.0))))) / 5, 4),
            "reached": rounded(min(1.0, people / max(1, invited)), 4),
            # how much a member takes in on a day they come (pages, minutes, content), on a log scale
            "per_visit": rounded(math.log1p(points / max(1, pairs)) / 4, 4)}
    # the curve at the top
    out["intensity2"] = rounded(out["intensity"] ** 2, 4)
    out["per_visit2"] = rounded(out["per_visit"] ** 2, 4)
    out["reached2"] = rounded(out["reached"] ** 2, 4)
    return out


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
        min_lost: int = MIN_LOST, ridge: float = RIDGE,
        prior: Sequence[Sequence[float]] = PRIOR) -> WinModel:
    """The site's model from its closed deals' snapshots, or the prior while it has too few of either outcome.
    One logistic model per age band, each from the snapshots taken at that age."""
    rows = list(rows)
    outcome = {room: won for room, _, _, won in rows}
    won = sum(outcome.values())
    lost = len(outcome) - won
    if won < min_won or lost < min_lost:
        return WinModel(won=won, lost=lost)
    bands: list[list] = [[] for _ in range(len(AGE_BANDS) + 1)]
    for row in rows:
        bands[band_of(row[2].get("age", 0.0) * AGE_SCALE_DAYS)].append(row)
    coef = tuple(_fit_band(band, ridge, centre) if band else tuple(centre) for band, centre in zip(bands, prior))
    digest = hashlib.sha1(repr(coef).encode()).hexdigest()[:10]
    return WinModel(f"fit-{digest}", coef, won, lost)


def _fit_band(rows: list, ridge: float, prior: Sequence[float]) -> tuple[float, ...]:
    """Penalised maximum likelihood by Newton steps, each halved until the objective improves (no divergence
    on separable or collinear data)."""
    x, y, w = examples(rows)
    beta0 = np.array(prior, dtype=float)
    reg = np.full(len(beta0), ridge)
    reg[0] = ridge / 100  # the intercept is barely held: the site's base rate is its own

    def objective(b):
        z = np.clip(x @ b, -40, 40)
        return float(np.sum(w * (y * z - np.logaddexp(0, z))) - 0.5 * np.sum(reg * (b - beta0) ** 2))

    beta, best = beta0.copy(), objective(beta0)
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(x @ beta, -40, 40)))
        grad = x.T @ (w * (y - p)) - reg * (beta - beta0)
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        for _ in range(30):
            value = objective(beta + step)
            if value >= best:
                break
            step = step / 2
        else:
            break
        beta, gain, best = beta + step, value - best, value
        if gain < 1e-10 or float(np.max(np.abs(step))) < 1e-8:
            break
    return tuple(round(float(b), 6) for b in beta)
