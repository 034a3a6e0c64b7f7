"""The win model (streams/winmodel.py): the prior until a site has enough closed deals, a fit that finds the
weights the outcomes were drawn with, one version per set of weights, and a model that reaches every room
of its site (those opened later too) and is named on every score row."""
import math
import random

import orjson
import pytest

from streams import deals, processors
from streams.winmodel import AGE_BANDS, FEATURES, MIN_LOST, MIN_WON, PRIOR, PRIOR_VERSION, WinModel, examples, fit

DAY = 86_400_000
TRUE = (-0.5, 0.0, 2.5, 0.0, 1.0, 0.0, 1.5, -1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0)  # intercept + FEATURES, the weights outcomes come from


def history(n_deals: int, seed: int = 1, snapshots: int = 8):
    """Closed deals: a few weekly snapshots each of features that vary a little around the deal's own, its
    outcome drawn from TRUE on the deal's features."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_deals):
        base = {name: rng.random() for name in FEATURES}
        z = TRUE[0] + sum(w * base[n] for w, n in zip(TRUE[1:], FEATURES))
        won = rng.random() < 1 / (1 + math.exp(-z))
        for k in range(snapshots):
            feats = {n: round(v + rng.gauss(0, 0.05), 4) for n, v in base.items()}
            rows.append((f"deal-{i}", 1_000_000 * DAY + k * 7 * DAY + i, feats, won))
    return rows


def test_the_prior_stands_until_the_site_has_enough_won_and_lost_deals():
    few = [(f"d{i}", 0, {}, i % 2 == 0) for i in range(MIN_WON + MIN_LOST - 2)]
    m = fit(few)
    assert m.version == PRIOR_VERSION and m.coef == PRIOR and (m.won, m.lost) == (MIN_WON - 1, MIN_LOST - 1)
    lopsided = [(f"d{i}", 0, {}, True) for i in range(500)]  # 500 wins, no loss: still nothing to learn from
    assert fit(lopsided).version == PRIOR_VERSION


def test_a_fit_finds_the_weights_the_outcomes_were_drawn_with_and_is_named_by_them():
    rows = history(6000)
    m = fit(rows)
    assert m.version.startswith("fit-") and m.won + m.lost == 6000
    # one model per age band (the deals' ages spread over all of them): on fresh deals, each predicts the
    # probabilities the outcomes were drawn with (a band's own weights: within a band age barely varies, so
    # the weights themselves are not the test, the probabilities are)
    assert len(m.coef) == len(AGE_BANDS) + 1
    rng = random.Random(11)
    fresh = [{name: rng.random() for name in FEATURES} for _ in range(3000)]
    true = [1 / (1 + math.exp(-(TRUE[0] + sum(w * f[n] for w, n in zip(TRUE[1:], FEATURES))))) for f in fresh]
    errors = [abs(m.predict(f) - t) for f, t in zip(fresh, true)]
    assert sum(errors) / len(errors) < 0.03 and max(errors) < 0.2, (sum(errors) / len(errors), max(errors))
    shuffled = rows[:]
    random.Random(5).shuffle(shuffled)
    assert fit(shuffled) == m  # the same data in another order: the same model, the same version
    assert fit(history(6000, seed=2)).version != m.version


def test_every_deal_weighs_one_however_many_snapshots_it_has():
    rows = history(400, snapshots=4)
    dup = rows + [(r, at + 1, f, w) for r, at, f, w in rows]  # a second snapshot in each weekly slot
    x1, _, w1 = examples(rows)
    x2, _, w2 = examples(dup)
    assert x1.shape == x2.shape and abs(w1.sum() - 400) < 1e-9 and abs(w2.sum() - 400) < 1e-9
    assert fit(dup) == fit(rows)


def test_a_model_record_round_trips_and_a_malformed_one_is_refused():
    m = fit(history(600))
    assert WinModel.from_record(orjson.loads(orjson.dumps(m.record("acme", 5)))) == m
    with pytest.raises(ValueError, match="coefficients expected"):
        WinModel.from_record({"version": "fit-x", "coef": [[1.0, 2.0]] * (len(AGE_BANDS) + 1)})
    with pytest.raises(ValueError, match="age bands"):
        WinModel.from_record({"version": "fit-x", "coef": [list(PRIOR[0])]})


def test_each_age_band_has_its_own_weights():
    sure, never = tuple([5.0] + [0.0] * len(FEATURES)), tuple([-5.0] + [0.0] * len(FEATURES))
    m = WinModel("fit-x", (sure, PRIOR[1], never, PRIOR[3], never))
    assert AGE_BANDS == (14, 28, 42, 63)
    assert m.predict({"age": 10 / 120}) > 0.99 and m.predict({"age": 30 / 120}) < 0.01
    assert m.predict({"age": 14 / 120}) == WinModel().predict({"age": 14 / 120})  # 14 days: the second band
    assert m.predict({"age": 100 / 120}) < 0.01


def _room(room_id, t):
    return {"record": "room", "site": "acme", "room_id": room_id, "updated_at": t, "stage": "proposal",
            "stakeholders": [{"id": "ops", "role": "champion"}, {"id": "cfo", "role": "economic_buyer"}]}


def _view(room_id, t):
    return {"type": "content_view", "ts": t, "site": "acme", "room_id": room_id, "stakeholder_id": "ops",
            "visitor_id": "v-ops", "content_id": "proposal"}


def test_a_model_reaches_every_room_of_its_site_and_rooms_opened_later_and_is_named_on_score_rows():
    states: dict = {}

    def feed(recs):
        changed, rows = processors.process_rooms(
            recs, states.get, lambda site: [k for k in states if k.startswith(f"{site}/".encode())])
        states.update(changed)
        return rows

    t = 1_790_000_000_000
    rows = feed([_room("a", t), _view("a", t + 1), {**_room("z", t), "site": "other"}])
    assert {r["model_version"] for r in rows["deal_scores"]} == {PRIOR_VERSION}
    m = fit(history(600))
    assert feed([m.record("acme", t + 2)]) == {}  # no rows of its own, no room created
    assert states[b"acme/a"].model == m and states[b"other/z"].model.version == PRIOR_VERSION
    rows = feed([_room("b", t + 3), _view("b", t + 4), _view("a", t + 5)])
    assert {r["room_id"]: r["model_version"] for r in rows["deal_scores"]} == {"a": m.version, "b": m.version}
    for r in rows["deal_scores"]:
        feats = orjson.loads(r["features"])
        assert set(feats) == set(FEATURES) and r["win_probability"] == round(m.predict(feats), 4)
        assert 0 < r["win_probability"] < 1
    assert deals.loads(deals.dumps(states[b"acme/b"])) == states[b"acme/b"]
    # a malformed model record is ignored: the room keeps its model
    feed([{"record": "model", "site": "acme", "version": "fit-bad", "coef": [[1.0]]}])
    assert states[b"acme/a"].model == m
