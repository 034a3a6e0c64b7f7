"""The ingest pipeline parses and checks a plainly valid request in one pass (``contract.check_body``), makes a
plainly valid browser batch's records at once (``IngestPipeline._plain_batch``), and takes any other request
event by event. Both must give the same answer and the same records (the log and the store read them by name:
key order is not compared), the same dead letters with the events as sent: drawn batches with repeated ids,
tokens, clocks skewed past the tolerance, events older than the age limit, upper-case ids, trusted senders and
crawlers."""
from __future__ import annotations

import asyncio
import uuid

import orjson
from hypothesis import event as hyp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from dealbeacon.core import contract
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import Site, SiteRegistry
from ingest.metrics import Metrics
from ingest.pipeline import IngestPipeline, Request

NOW = 1_767_225_600_000
AGE_S = 3_600
TOLERANCE = 5_000
SECRET = "s" * 32
_IDS = [str(uuid.UUID(int=i)) for i in range(1, 6)]


class Capture:
    def __init__(self):
        self.events: list[dict] = []
        self.dead: list[dict] = []

    async def submit(self, events, dead):
        self.events.extend(events)
        self.dead.extend(dead)
        return {}


_SETTINGS = Settings(rate_limit_events_per_s=1e9, rate_limit_burst=10**9, max_event_age_s=AGE_S,
                     clock_skew_tolerance_ms=TOLERANCE)
_SITES = SiteRegistry({"s": Site("s", SECRET, ("*",))})
_METRICS = Metrics()


def _handle(body: dict, user_agent: str, authorization: str, plain: bool = True):
    """The request through a fresh pipeline: its outcome, the records and dead letters handed off, and whether the
    batch's records were made at once (``plain=False``: never, and the body parsed and checked the per-event
    way: every event goes through the loop)."""
    cap = Capture()
    pipeline = IngestPipeline(_SETTINGS, _SITES, cap, _METRICS)
    taken: list = []
    real = pipeline._plain_batch
    pipeline._plain_batch = (lambda *a: taken.append(real(*a)) or taken[-1]) if plain else (  # type: ignore[method-assign]
        lambda *a: None)
    check_body = contract.check_body
    try:
        if not plain:
            contract.check_body = lambda body: None
        out = asyncio.run(pipeline.handle(Request(raw=orjson.dumps(body), content_encoding="", origin=None,
                                                  user_agent=user_agent, ip="198.51.100.0", received_at_ms=NOW,
                                                  monotonic_s=1.0, authorization=authorization)))
    finally:
        contract.check_body = check_body
    return out, cap, bool(taken) and taken[-1] is not None


def _run(body: dict, user_agent: str, authorization: str, plain: bool) -> tuple[int, dict, list[dict], list[dict]]:
    out, cap, at_once = _handle(body, user_agent, authorization, plain)
    if plain:
        hyp_event("at once" if at_once else "event by event")
    dead = [{k: v for k, v in d.items() if k != "dl_id"} for d in cap.dead]  # a dead letter's id is random
    return out.status, out.body, cap.events, dead


@st.composite
def _event(draw):
    etype = draw(st.sampled_from(["room_view", "engagement", "content_view", "share"]))
    rare = draw(st.integers(0, 29)) == 0  # mostly honest events, so whole batches are made at once and compared
    ids = st.sampled_from(_IDS) if rare else st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
    age = st.integers(-AGE_S * 1000 - 60_000, -AGE_S * 1000 + 60_000) if rare else st.integers(-600_000, 60_000)
    e: dict = {"event_id": draw(ids), "type": etype, "room_id": draw(st.sampled_from(["r1", "r.2", "deal:3@x"])),
               "visitor_id": "v", "session_id": "s", "ts": NOW + draw(age)}
    if etype == "engagement":
        e["engaged_ms"] = draw(st.integers(0, 300_000))
    if etype == "content_view":
        e["content_id"] = "deck"
    if etype == "share":
        e["share_channel"] = "email"
    if draw(st.integers(0, 3)) == 0:
        e["scroll_pct"] = draw(st.integers(0, 100) | st.floats(0, 100))
    if draw(st.integers(0, 5)) == 0:
        e["props"] = draw(st.dictionaries(st.sampled_from(["a", "b.c"]), st.integers(-2**53, 2**53) | st.text(max_size=5), max_size=2))
    if draw(st.integers(0, 39)) == 0:
        e["token"] = "v1.aaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb"
    return e


@settings(max_examples=500, deadline=None)
@given(st.lists(_event(), min_size=1, max_size=24), st.integers(-20_000, 20_000),
       st.sampled_from(["Mozilla/5.0 Chrome/126"] * 4 + ["Googlebot/2.1"]), st.sampled_from([""] * 4 + [f"Bearer {SECRET}"]))
def test_a_batch_made_at_once_answers_and_records_as_one_made_event_by_event(events, skew, ua, auth):
    body = {"site": "s", "sent_at": NOW - skew, "events": events}
    assert _run(body, ua, auth, plain=True) == _run(body, ua, auth, plain=False)


def test_an_honest_browser_batch_is_made_at_once_and_each_awkward_one_event_by_event():
    def batch(**change):
        evs = [{"event_id": str(uuid.uuid4()), "type": "engagement", "room_id": "r1", "visitor_id": "v", "session_id": "s",
                "ts": NOW - 1000, "engaged_ms": 1000} for _ in range(contract._COLUMNS_FROM + 2)]
        evs[-1].update(change)
        return {"site": "s", "sent_at": NOW, "events": evs}

    def made_at_once(body, auth=""):
        out, _, at_once = _handle(body, "Mozilla/5.0", auth)
        assert out.status == 202
        return at_once

    assert made_at_once(batch())
    assert not made_at_once(batch(token="v1.aaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb"))
    assert not made_at_once(batch(ts=NOW - AGE_S * 1000 - 10_000))
    honest = batch()
    honest["events"][-1]["event_id"] = honest["events"][0]["event_id"]
    assert not made_at_once(honest)
    assert not made_at_once(batch(), auth=f"Bearer {SECRET}")  # a trusted sender's own timeline: its own checks
