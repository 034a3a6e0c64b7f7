"""Starlette ingest against a real chdb store: statuses, reasons, dead letters, and what lands in the tables."""
import gzip

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dealbeacon.core import tokens
from dealbeacon.core.clock import FixedClock
from dealbeacon.core.settings import Settings
from tests.support.app import ORIGIN, SECRET, make_client
from tests.support.data import NOW_MS, batch, event

BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def rows(store, sql):
    return store.query(sql)


def dead(store):
    return rows(store, "SELECT reason, field, event_index, site FROM dead_letters ORDER BY event_index, reason")


def test_valid_batch_is_stored_and_answered_202(client, store):
    evs = [event("room_view"), event("content_view"), event("engagement", engaged_ms=12_000),
           event("content_progress", progress_pct=50), event("download"), event("link_click"),
           event("share"), event("cta", props={"plan": "pro"}), event("identify")]
    r = client.post("/v1/events", json=batch(*evs), headers={"Origin": ORIGIN})
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 9, "rejected": []}
    assert r.headers["access-control-allow-origin"] == ORIGIN
    stored = dict(rows(store, "SELECT toString(event_id), type FROM events"))
    assert stored == {e["event_id"]: e["type"] for e in evs}
    assert rows(store, "SELECT engaged_ms, site, ip FROM events WHERE type = 'engagement'") == [[12000, "test", ""]] or \
        rows(store, "SELECT engaged_ms, site, ip FROM events WHERE type = 'engagement'") == [(12000, "test", "")]


def test_mixed_batch_stores_valid_and_dead_letters_invalid(client, store):
    good1, good2 = event("room_view"), event("engagement")
    bad_type = event("engagement", engaged_ms="lots")
    too_long = event("room_view", url="u" * 5000)
    r = client.post("/v1/events", json=batch(good1, bad_type, good2, too_long, {"junk": True}))
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2
    assert [(x["index"], x["reason"], x.get("field")) for x in body["rejected"]] == [
        (1, "invalid_type", "engaged_ms"), (3, "too_long", "url"), (4, "missing_field", "event_id")]
    assert {r[0] for r in rows(store, "SELECT toString(event_id) FROM events")} == {good1["event_id"], good2["event_id"]}
    assert dead(store) == [("invalid_type", "engaged_ms", 1, "test"), ("too_long", "url", 3, "test"),
                           ("missing_field", "event_id", 4, "test")]
    payload = rows(store, "SELECT payload, event_id FROM dead_letters WHERE event_index = 1")[0]
    assert orjson.loads(payload[0])["engaged_ms"] == "lots" and payload[1] == bad_type["event_id"]


@pytest.mark.parametrize("body, headers, status, reason", [
    (b"{not json", {}, 400, "malformed_json"),
    (b"[1,2]", {}, 400, "invalid_envelope"),
    (orjson.dumps({"site": "test", "events": []}), {}, 400, "missing_field"),
    (orjson.dumps(batch(event(), site="nope")), {}, 401, "unknown_site"),
    (orjson.dumps(batch(event())), {"Origin": "https://evil.example"}, 403, "origin_not_allowed"),
    (orjson.dumps(batch(*[event() for _ in range(101)])), {}, 413, "too_many_events"),
    (gzip.compress(b" " * 20_000_000), {"Content-Encoding": "gzip"}, 413, "decompressed_too_large"),
    (b"x" * 1_000_001, {}, 413, "body_too_large"),
    (b"{}", {"Content-Encoding": "br"}, 415, "unsupported_encoding"),
])
def test_request_level_rejections_have_status_reason_and_a_dead_letter(client, store, body, headers, status, reason):
    r = client.post("/v1/events", content=body, headers={"Content-Type": "text/plain", **headers})
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason
    assert [d[0] for d in dead(store)] == [reason]
    assert rows(store, "SELECT count() FROM events") == [(0,)]


def test_text_plain_gzip_body_is_accepted(client, store):
    body = gzip.compress(orjson.dumps(batch(event(), event())))
    r = client.post("/v1/events", content=body, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert r.status_code == 202 and r.json()["accepted"] == 2


def test_bots_are_dropped_with_a_reason(client, store):
    r = client.post("/v1/events", json=batch(event(), event()), headers={"User-Agent": BOT_UA})
    assert r.status_code == 202
    assert r.json() == {"accepted": 0, "rejected": [{"index": 0, "reason": "bot", "detail": "user agent matches a known crawler"},
                                                     {"index": 1, "reason": "bot", "detail": "user agent matches a known crawler"}]}
    assert [d[0] for d in dead(store)] == ["bot", "bot"]


def test_stakeholder_tokens_valid_expired_forged(client, store):
    valid = tokens.mint(SECRET, "room-1", "cfo", NOW_MS // 1000 + 3600)
    expired = tokens.mint(SECRET, "room-1", "cto", NOW_MS // 1000 - 1)
    forged = tokens.mint("not-the-secret", "room-1", "ceo", NOW_MS // 1000 + 3600)
    other_room = tokens.mint(SECRET, "room-2", "legal", NOW_MS // 1000 + 3600)
    evs = [event(token=t) for t in (valid, expired, forged, other_room)]
    r = client.post("/v1/events", json=batch(*evs))
    assert r.status_code == 202
    assert r.json()["unverified"] == [{"index": 1, "reason": "token_expired"}, {"index": 2, "reason": "token_invalid"},
                                      {"index": 3, "reason": "token_room_mismatch"}]
    got = {r[0]: (r[1], r[2]) for r in rows(store, "SELECT toString(event_id), stakeholder_id, token_status FROM events")}
    assert got == {evs[0]["event_id"]: ("cfo", "valid"), evs[1]["event_id"]: ("", "expired"),
                   evs[2]["event_id"]: ("", "invalid"), evs[3]["event_id"]: ("", "room_mismatch")}
    assert rows(store, "SELECT countIf(position(props, 'v1.') > 0) FROM events") == [(0,)]  # tokens never stored


def test_client_retries_never_double_count(client, store):
    e = event("engagement", engaged_ms=10_000)
    for sent_at in (NOW_MS, NOW_MS - 200):  # the retry is sent later with a new sent_at
        assert client.post("/v1/events", json=batch(e, sent_at=sent_at)).status_code == 202
    assert rows(store, "SELECT count(), sum(engaged_ms) FROM events FINAL") == [(1, 10000)]


def test_duplicate_in_one_batch_is_rejected(client, store):
    e = event()
    r = client.post("/v1/events", json=batch(e, e))
    assert r.json()["rejected"] == [{"index": 1, "reason": "duplicate_in_batch", "field": "event_id"}]


def test_clock_skew_is_corrected_on_the_way_in(client, store):
    hour = 3_600_000
    e = event(ts=NOW_MS - hour - 7_000)  # client clock an hour slow; event 7 s before sending
    assert client.post("/v1/events", json=batch(e, sent_at=NOW_MS - hour)).status_code == 202
    ts, client_ts, received = rows(store, "SELECT toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(client_ts), "
                                          "toUnixTimestamp64Milli(received_at) FROM events")[0]
    assert (ts, client_ts, received) == (NOW_MS - 7_000, NOW_MS - hour - 7_000, NOW_MS)


def test_stale_events_are_rejected(client, store):
    old = event(ts=NOW_MS - 8 * 86_400_000)
    r = client.post("/v1/events", json=batch(old))
    assert r.json()["rejected"][0]["reason"] == "stale_event"


def test_rate_limit_answers_429_with_retry_after(store):
    clock = FixedClock(NOW_MS)
    with make_client(store, Settings(rate_limit_events_per_s=10, rate_limit_burst=20), clock=clock) as c:
        assert c.post("/v1/events", json=batch(*[event() for _ in range(20)])).status_code == 202
        r = c.post("/v1/events", json=batch(*[event() for _ in range(10)]))
        assert r.status_code == 429 and r.headers["retry-after"] == "1" and r.json()["error"] == "rate_limited"
        clock.advance(1.0)
        assert c.post("/v1/events", json=batch(*[event() for _ in range(10)])).status_code == 202
    assert rows(store, "SELECT count() FROM events") == [(30,)]


def test_hand_off_unavailable_answers_503_and_not_202(store):
    with make_client(store, started=False) as c:
        r = c.post("/v1/events", json=batch(event()))
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert c.get("/readyz").status_code == 503
    assert rows(store, "SELECT count() FROM events") == [(0,)]


def test_cors_preflight(client):
    r = client.options("/v1/events", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == ORIGIN


def test_health_metrics_and_openapi(client):
    assert client.get("/healthz").text == "ok\n"
    assert client.get("/readyz").status_code == 200
    client.post("/v1/events", json=batch(event(), event(type="nope")))
    m = client.get("/metrics").text
    assert 'dealbeacon_events_accepted_total{site="test"} 1.0' in m
    assert 'dealbeacon_events_rejected_total{reason="unknown_type"} 1.0' in m
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1") and "/v1/events" in spec["paths"]
    assert set(spec["components"]["schemas"]["Event"]["properties"]) >= {"event_id", "engaged_ms", "share_to"}


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=20)
_event_like = st.fixed_dictionaries({}, optional={k: _json | st.just(v) for k, v in event("share", token="x").items()})


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(
    st.binary(max_size=200),
    _json.map(orjson.dumps),
    st.fixed_dictionaries({"site": st.sampled_from(["test", "x"]) | _json, "sent_at": st.just(NOW_MS) | _json,
                           "events": st.lists(_event_like | _json, max_size=5) | _json}).map(orjson.dumps),
))
def test_arbitrary_payloads_never_produce_a_5xx(client, payload):
    r = client.post("/v1/events", content=payload, headers={"Content-Type": "text/plain"})
    assert r.status_code < 500, (r.status_code, r.text)
    assert r.status_code in (202, 400, 401, 403, 413, 415)
