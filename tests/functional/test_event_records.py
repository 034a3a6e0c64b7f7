"""Embedded mode inserts the accepted-event records themselves into ``events`` (chdb reads them into rows); the
distributed worker sends ``event_row``'s rows. Both must give the same rows, column for column, in the real
engine: first for events written by hand the way an attacker or an odd client writes them (run through the real
ingest pipeline, so the records are what ingest makes), then for a simulated buying committee's traffic."""
from __future__ import annotations

import asyncio
import time

import orjson

from dealbeacon.app.embedded import EmbeddedProcessor
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import Site, SiteRegistry
from dealbeacon.sim.simulator import DAY_MS, op_records, plan, simulate
from ingest.metrics import Metrics
from ingest.pipeline import IngestPipeline, Request
from sinks.schema import COLUMNS
from streams.processors import event_row, is_event, process_batch

# written by hand as JSON text, not built from dicts: escapes, odd numbers and absent fields as a client sends them
BODY = r"""{"site": "odd", "sent_at": %(now)d, "events": [
 {"event_id": "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9", "type": "room_view", "room_id": "r:1@x", "visitor_id": "v.1",
  "session_id": "s-1", "ts": %(now)d},
 {"event_id": "00000000-0000-4000-8000-000000000001", "type": "engagement", "room_id": "r:1@x", "visitor_id": "v.1",
  "session_id": "s-1", "ts": %(now)d, "engaged_ms": 0, "scroll_pct": 0, "props": {}},
 {"event_id": "00000000-0000-4000-8000-000000000002", "type": "content_progress", "room_id": "r:1@x",
  "visitor_id": "v.1", "session_id": "s-1", "ts": %(now)d, "content_id": "deck", "page": 0, "progress_pct": 33.333333333,
  "media_position_s": 86400, "props": {"q": "it's \"quoted\" \\ back\\slash", "nul": "a\u0000b", "ls": "\u2028\u2029",
  "emoji": "\ud83d\ude80 🚀", "n": null, "t": true, "f": false, "big": 1.7976931348623157e308, "neg": -0.0,
  "int": 9007199254740993, "e": ""}},
 {"event_id": "00000000-0000-4000-8000-000000000003", "type": "share", "room_id": "r:1@x", "visitor_id": "v.1",
  "session_id": "s-1", "ts": %(now)d, "share_channel": "email", "share_to": "O'Brien <ob@example.com>; DROP TABLE events --",
  "url": "https://rooms.example.com/r?q=\"'\\%%00\u00e9", "referrer": "", "page": 100000, "props": {"k.1-_": "v"}},
 {"event_id": "00000000-0000-4000-8000-000000000004", "type": "download", "room_id": "r:1@x", "visitor_id": "v.1",
  "session_id": "s-1", "ts": %(now)d, "href": "https://cdn.example.com/Prix d\u2019achat.pdf\n\ttab", "cta": "\u00e9",
  "engaged_ms": 300000, "scroll_pct": 100, "progress_pct": 1e-7},
 {"event_id": "00000000-0000-4000-8000-000000000005", "type": "cta", "room_id": "r:1@x", "visitor_id": "v.1",
  "session_id": "s-1", "ts": %(now)d, "cta": "Book a call", "page": 7.0, "unknown_field": [1, 2]}
]}"""


def _records(body: bytes, user_agent: str) -> list[dict]:
    got: list[dict] = []

    class Capture:
        async def submit(self, events, dead):
            got.extend(events)
            return {}

    sites = SiteRegistry({"odd": Site("odd", "s" * 32, ("*",))})
    pipeline = IngestPipeline(Settings(), sites, Capture(), Metrics())
    now = int(time.time() * 1000)
    out = asyncio.run(pipeline.handle(Request(raw=body, content_encoding="", origin=None, user_agent=user_agent,
                                              ip="2001:db8::", received_at_ms=now, monotonic_s=time.monotonic())))
    assert out.status == 202 and not out.body["rejected"], out.body
    return got


def _rows(store, site: str) -> list[list]:
    cols = ", ".join(f"toString({c})" if c != "site" else "''" for c in COLUMNS["events"])
    return [list(r) for r in store.query(f"SELECT {cols} FROM events FINAL WHERE site = '{site}' ORDER BY event_id")]


def _both_ways(store, recs: list[dict]) -> tuple[list[list], list[list]]:
    """``recs`` written once as ``event_row``'s rows (site "as-rows") and once as the records (site "as-records")."""
    as_rows = [event_row({**r, "site": "as-rows"}) for r in recs]
    as_records = [{**r, "site": "as-records"} for r in recs]
    store.insert("events", as_rows)
    store.insert("events", as_records)
    return _rows(store, "as-rows"), _rows(store, "as-records")


def test_hand_written_odd_events_make_the_same_rows_as_records_and_as_event_rows(store):
    now = int(time.time() * 1000)
    recs = _records((BODY % {"now": now}).encode(), "Mozilla/5.0 (\"quoted\") é \\ UA")
    assert len(recs) == 6 and {} in [r.get("props") for r in recs]  # an empty props object reached the record
    rows, from_records = _both_ways(store, recs)
    assert len(rows) == 6
    assert from_records == rows
    props = {r[0]: r[list(COLUMNS["events"]).index("props")] for r in rows}
    assert props["00000000-0000-4000-8000-000000000001"] == ""  # an empty object is no props, as event_row says
    assert orjson.loads(props["00000000-0000-4000-8000-000000000002"])["nul"] == "a\x00b"


def test_a_simulated_committees_traffic_makes_the_same_rows_both_ways(store):
    start = 1_767_225_600_000
    sim = simulate(3, 4, start, 60, spread_days=60)
    ops = plan(sim, "sim", "sim-secret", start // 1000 + 400 * 86_400, tick_ms=DAY_MS)
    recs: list[dict] = []
    for group in op_records(ops, "sim", sim):
        for r in group:
            if is_event(r):
                r.update(rv=1, client_ts=r["ts"], received_at=r["ts"] + 400, ip="203.0.113.0", user_agent="UA")
                recs.append(r)
    assert len(recs) > 300 and len({r["type"] for r in recs}) >= 5
    rows, from_records = _both_ways(store, recs)
    assert len(rows) == len({r["event_id"] for r in recs})
    assert from_records == rows


def test_the_embedded_processor_hands_chdb_the_records_and_a_row_building_store_the_rows(store):
    recs = _records((BODY % {"now": int(time.time() * 1000)}).encode(), "UA")

    class RowStore:  # a store that takes rows only (as the server store's columnar insert does)
        def __getattr__(self, name):
            return getattr(store, name)

        reads_event_records = False

    tables, _ = EmbeddedProcessor(store)(recs, [])
    assert tables["events"] is not None and all(a is b for a, b in zip(tables["events"], recs, strict=True))
    row_tables, _ = EmbeddedProcessor(RowStore())(recs, [])
    assert row_tables["events"] == [event_row(r) for r in recs]
    _, reference = process_batch(recs, [], lambda k: None, lambda s: ())
    assert reference["events"] == row_tables["events"]
