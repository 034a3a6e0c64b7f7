"""The win model's refit on the real ClickHouse engine (chdb): the closed deals' snapshots are read with the
same SQL a ClickHouse server runs, only from before each deal closed, only the site's, only deals whose
last stage is a closed one; a fitted model is handed over as a site-wide record that rooms take in."""
import asyncio
import math
import random

import orjson
import pytest

from dealbeacon.app.embedded import EmbeddedProcessor
from dealbeacon.app.modelfit import refit_site
from sinks.modelfit import read_training, training_sql
from streams.winmodel import FEATURES, PRIOR_VERSION, fit

pytestmark = pytest.mark.functional

DAY = 86_400_000
T0 = 1_790_000_000_000
WON, CLOSED = ("closed_won",), ("closed_won", "closed_lost")


def _deal_rows(site: str, n: int, seed: int = 3):
    """n closed deals: weekly snapshots before the close, outcome drawn from depth and people; one snapshot
    after the close that must not be read (its features would give the outcome away)."""
    rng = random.Random(seed)
    scores, stages, expected = [], [], []
    for i in range(n):
        room = f"{site}-deal-{i}"
        base = {f: rng.random() for f in FEATURES}
        won = rng.random() < 1 / (1 + math.exp(-(3 * base["depth"] + 2 * base["people"] - 2.5)))
        closed_at = T0 + (40 + i % 20) * DAY
        for k in range(5):
            at = T0 + k * 7 * DAY
            feats = {f: round(v + rng.gauss(0, 0.05), 4) for f, v in base.items()}
            scores.append(_score(site, room, at, feats))
            expected.append((room, at, feats, won))
        scores.append(_score(site, room, closed_at + DAY, {f: (9.0 if won else -9.0) for f in FEATURES}))
        stages += [_stage(site, room, "", "qualification", T0), _stage(site, room, "qualification", "proposal", T0 + DAY),
                   _stage(site, room, "proposal", "closed_won" if won else "closed_lost", closed_at)]
    return scores, stages, expected


def _score(site, room, at, feats):
    return {"site": site, "room_id": room, "owner": "sam", "stage": "proposal", "at": at, "score": 50.0,
            "breadth": 0.5, "depth": 0.5, "recency": 0.5, "velocity": None, "band": "Active", "engaged": 1,
            "invited": 2, "reasons": "[]", "win_probability": 0.5, "model_version": PRIOR_VERSION,
            "features": orjson.dumps(feats).decode()}


def _stage(site, room, frm, to, at):
    return {"site": site, "room_id": room, "from_stage": frm, "to_stage": to, "changed_at": at, "owner": "sam"}


def test_the_refit_reads_closed_deals_before_they_closed_and_hands_a_new_model_over_once(store):
    scores, stages, expected = _deal_rows("acme", 160)
    other, other_stages, _ = _deal_rows("other", 30, seed=9)
    # a deal that closed and was reopened is not a closed deal; an open deal teaches nothing yet
    scores += [_score("acme", "reopened", T0, {f: 0.5 for f in FEATURES}), _score("acme", "open", T0, {f: 0.5 for f in FEATURES})]
    stages += [_stage("acme", "reopened", "proposal", "closed_lost", T0 + DAY),
               _stage("acme", "reopened", "closed_lost", "negotiation", T0 + 2 * DAY),
               _stage("acme", "open", "", "proposal", T0)]
    store.insert("deal_scores", scores + other)
    store.insert("room_stage_history", stages + other_stages)

    rows = read_training(store.query_readonly, "acme", WON, CLOSED, 2000)
    assert sorted(rows, key=lambda r: (r[0], r[1])) == sorted(expected, key=lambda r: (r[0], r[1]))
    recent = {r[0] for r in read_training(store.query_readonly, "acme", WON, CLOSED, 10)}
    assert len(recent) == 10  # the limit keeps the most recently closed deals

    sent: list = []

    async def submit(recs, dead):
        sent.append(recs)

    last: dict = {}
    model = asyncio.run(refit_site("acme", store.query_readonly, submit, WON, CLOSED, T0 + 90 * DAY, last))
    assert model == fit(expected) and model.version.startswith("fit-")
    assert sent == [[model.record("acme", T0 + 90 * DAY)]]
    # the same data, the same version, handed over again (rooms opened since take it; the others keep it)
    assert asyncio.run(refit_site("acme", store.query_readonly, submit, WON, CLOSED, T0 + 91 * DAY, last)) == model
    assert sent[1] == [model.record("acme", T0 + 91 * DAY)]
    # too few closed deals: the prior stays and nothing is sent
    assert asyncio.run(refit_site("other", store.query_readonly, submit, WON, CLOSED, T0, last)).version == PRIOR_VERSION
    assert len(sent) == 2

    # the record through the embedded processor: every room of the site takes it, and scores name it
    proc = EmbeddedProcessor(store)
    room = {"record": "room", "site": "acme", "room_id": "r1", "updated_at": T0, "stage": "proposal",
            "stakeholders": [{"id": "ops", "role": "champion"}]}
    view = {"type": "content_view", "ts": T0 + 1, "site": "acme", "room_id": "r1", "stakeholder_id": "ops",
            "visitor_id": "v1", "content_id": "proposal", "event_id": "e1", "client_ts": T0, "received_at": T0}
    for recs in ([room], sent[0], [view]):
        tables, commit = proc(recs, [])
        commit()
    (row,) = tables["deal_scores"]
    assert row["model_version"] == model.version
    assert row["win_probability"] == round(model.predict(orjson.loads(row["features"])), 4)


def test_site_and_stage_names_are_quoted_in_the_training_sql():
    sql = training_sql("a'b", ("won'; DROP TABLE x --",), ("c",), 5)
    assert "'a\\'b'" in sql and "'won\\'; DROP TABLE x --'" in sql and "LIMIT 5" in sql
