"""Inputs the way attackers and broken clients write them, against the real app and the real chdb engine:
deep nesting, extreme numbers, tokens where they do not belong, one poisoned record among good ones, other
sellers' alerts. Every refusal names its field, nothing good is lost, nothing answers 5xx."""
import asyncio
import json
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dealbeacon.app.embedded import EmbeddedHandoff, EmbeddedProcessor
from dealbeacon.core import records, tokens
from dealbeacon.core.settings import Settings
from ingest.sellers import AlertHub, seller_token
from tests.support.app import SECRET, make_client
from tests.support.data import NOW_MS, batch, event

BEARER = {"Authorization": f"Bearer {SECRET}"}


def _nested(levels: int, leaf=1):
    out = leaf
    for i in range(levels):
        out = [out] if i % 2 else {"k": out}
    return out


def _rec(ev):
    return records.accepted_event(ev, site="test", received_at=NOW_MS, ts=NOW_MS, token_status="none",
                                  stakeholder_id="", ip="", user_agent="")


def _count(store, table):
    return store.query(f"SELECT count() FROM {table}")[0][0]


def test_deep_nesting_rejects_only_that_event_with_a_dead_letter(client, store):
    good = event("room_view")
    deep = orjson.dumps(event("room_view", extra="@@"))
    deep = deep.replace(b'"@@"', b'{"k":' * 1020 + b"1" + b"}" * 1020)  # 1,020 levels, as raw JSON text
    body = b'{"site":"test","sent_at":%d,"events":[%s,%s]}' % (NOW_MS, orjson.dumps(good), deep)
    r = client.post("/v1/events", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1 and r.json()["rejected"][0]["reason"] == "too_deep"
    assert store.query("SELECT toString(event_id) FROM events") == [(good["event_id"],)]
    assert store.query("SELECT reason, event_index FROM dead_letters") == [("too_deep", 1)]
    # deeper than the JSON parser goes: the whole body is refused, and kept as evidence
    text = b'{"site":"test","sent_at":%d,"events":[' % NOW_MS + b"[" * 1100 + b"]" * 1100 + b"]}"
    r = client.post("/v1/events", content=text)
    assert r.status_code == 400 and r.json()["reason"] == "malformed_json"
    assert _count(store, "dead_letters") == 2


@pytest.mark.parametrize("field, value", [
    ("proposal_shared_at", 2 ** 63 - 1), ("proposal_shared_at", -1), ("updated_at", 10 ** 30),
    ("proposal_shared_at", 1.5e308), ("expected_close", "9999-12-31"), ("expected_close", "0001-01-01"),
    ("amount", -1e308), ("updated_at", True),
])
def test_extreme_room_values_are_refused_by_field_and_kept_as_dead_letters(client, store, field, value):
    r = client.put("/v1/sites/test/rooms/deal-x", headers=BEARER, content=json.dumps({field: value}))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field, r.text
    assert store.query("SELECT reason, field, stage FROM dead_letters")[0][1:] == (field, "rooms_api")
    ok = client.put("/v1/sites/test/rooms/deal-y", headers=BEARER, json={"proposal_shared_at": NOW_MS, "amount": 1e12})
    assert ok.status_code == 202, ok.text


def test_trusted_backfill_over_ten_years_of_months_is_stored_in_one_request(store):
    settings = Settings(rate_limit_events_per_s=1e9, rate_limit_burst=10 ** 9, max_events_per_batch=200)
    with _client(store, settings) as c:
        month = 30 * 86_400_000
        evs = [event("room_view", ts=NOW_MS - i * month) for i in range(121)]  # 121 monthly partitions
        r = c.post("/v1/events", json=batch(*evs), headers=BEARER)
        assert r.status_code == 202 and r.json()["accepted"] == 121, r.text
        assert store.query("SELECT count(), uniqExact(toYYYYMM(ts)) FROM events")[0][0] == 121
        too_old = event("room_view", ts=NOW_MS - 3_700 * 86_400_000)
        future = event("room_view", ts=NOW_MS + 3 * 86_400_000)
        r = c.post("/v1/events", json=batch(too_old, future), headers=BEARER)
        assert [x["reason"] for x in r.json()["rejected"]] == ["out_of_range", "out_of_range"]
        assert {x["field"] for x in r.json()["rejected"]} == {"ts"}


def test_dead_letters_keep_no_tokens(client, store):
    tok = tokens.mint(SECRET, "room-1", "cfo", NOW_MS // 1000 + 3600)
    client.post("/v1/events", json=batch(event("engagement", engaged_ms="x", token=tok)))
    client.post("/v1/events", content=b'{"site":"test", "token": "' + tok.encode() + b'", broken')
    client.put("/v1/sites/test/rooms/r", headers=BEARER, content=b'{"stage": 7, "note": "' + tok.encode() + b'"}')
    payloads = [r[0] for r in store.query("SELECT payload FROM dead_letters")]
    assert len(payloads) == 3
    assert all(tok not in p and tok.split(".")[2] not in p for p in payloads), payloads
    assert sum("[redacted]" in p for p in payloads) == 3


def test_one_poisoned_record_fails_only_its_own_request(store):
    """The real engine refuses a row the validator let through (a gap simulated by a processor that writes an
    unparseable value for one marked event); requests folded into the same group commit still succeed."""
    real = EmbeddedProcessor(store)

    def poisoning(recs, dead):
        tables, commit = real(recs, dead)
        for row in tables.get("events", []):
            if row.get("cta") == "poison":
                row["engaged_ms"] = "not a number"
        return tables, commit

    async def scenario():
        handoff = EmbeddedHandoff(store, poisoning, linger_ms=50)
        await handoff.start()
        good_a = [_rec(event("room_view")) for _ in range(3)]
        bad = [_rec(event("room_view")), _rec(event("cta", cta="poison"))]
        good_b = [_rec(event("engagement"))]
        out = await asyncio.gather(handoff.submit(good_a, []), handoff.submit(bad, []), handoff.submit(good_b, []),
                                   return_exceptions=True)
        await handoff.stop()
        return out, good_a + good_b + bad[:1], bad[1]

    (ra, rbad, rb), kept, poisoned = asyncio.run(scenario())
    assert ra == {} and rb == {} and list(rbad) == [1], (ra, rbad, rb)
    stored = {r[0] for r in store.query("SELECT toString(event_id) FROM events FINAL")}
    assert stored == {e["event_id"] for e in kept}
    assert store.query("SELECT reason, stage, event_id FROM dead_letters") == [
        ("store_rejected", "store", poisoned["event_id"])]


def test_a_full_disk_answers_503_and_blames_no_record(store):
    """The in-process hand-off (no local log): the store refusing with a full disk (code 243, chdb's message)
    on the group commit and on the request alone, then back as the records would be tried one by one, fails
    the request (503: nothing of it stored, the client retries) instead of trying its records one by one and
    dead-lettering the ones that met the full disk."""
    class FullDiskThenBack:
        def __init__(self, refusals):
            self.left = refusals

        def insert(self, table, rows, dedup_token=None):
            if rows and self.left > 0:
                self.left -= 1
                raise RuntimeError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space")
            store.insert(table, rows, dedup_token)

        def __getattr__(self, name):
            return getattr(store, name)

    disk = FullDiskThenBack(3)

    async def scenario():
        handoff = EmbeddedHandoff(disk, EmbeddedProcessor(disk), linger_ms=20)
        await handoff.start()
        first = [_rec(event("room_view")) for _ in range(3)]
        out = await asyncio.gather(handoff.submit(first, []), return_exceptions=True)
        retried = await handoff.submit(first, [])  # the client's retry, the store back
        await handoff.stop()
        return out[0], retried, first

    failed, retried, sent = asyncio.run(scenario())
    assert "store insert failed" in str(failed) and "243" in str(failed), failed
    assert retried == {}
    assert sorted(r[0] for r in store.query("SELECT toString(event_id) FROM events FINAL")) == sorted(
        e["event_id"] for e in sent)
    assert _count(store, "dead_letters") == 0


def test_a_request_cut_short_before_its_write_is_withdrawn_and_not_stored(store):
    async def scenario():
        handoff = EmbeddedHandoff(store, EmbeddedProcessor(store), linger_ms=300)  # still pending at the deadline
        await handoff.start()
        ev = _rec(event("room_view"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(handoff.submit([ev], []), 0.05)
        await handoff.stop()  # drains whatever is still pending: the withdrawn record would be written now

    asyncio.run(scenario())
    assert _count(store, "events") == 0


def _client(store, settings=None, reader=False):
    extra = {"reader": store.query_readonly, "hub": AlertHub()} if reader else {}
    return make_client(store, settings, origins=("*",), **extra)


def _alert(owner):
    return {"alert_id": str(uuid.uuid4()), "site": "test", "room_id": "deal-1", "owner": owner, "stage": "proposal",
            "kind": "quiet", "severity": "high", "stakeholders": [], "evidence": "{}", "suggestion": "call",
            "at": NOW_MS}


def test_sellers_act_only_on_their_own_alerts_with_bounded_inputs(store):
    mine, theirs = _alert("alice"), _alert("bob")
    store.insert("alerts", [mine, theirs])
    tok = seller_token(SECRET, "alice", NOW_MS / 1000)
    with _client(store, reader=True) as c:
        base = "/v1/sites/test/sellers/alice/alerts"
        r = c.post(f"{base}/{theirs['alert_id']}/ack", params={"token": tok})
        assert r.status_code == 404
        r = c.post(f"{base}/{theirs['alert_id']}/snooze", params={"token": tok}, json={"hours": 2})
        assert r.status_code == 404
        for bad, reason, field in ((b'{"hours": 1e308}', "out_of_range", "hours"), (b'{"hours": -1}', "out_of_range", "hours"),
                                   (b'{"hours": 0}', "out_of_range", "hours"), (b'{"hours": "8"}', "invalid_type", "hours"),
                                   (b'{"hours": true}', "invalid_type", "hours"), (b'{"hours": null}', "invalid_value", "hours"),
                                   (b'{"hours": 99999999999999999999999}', "out_of_range", "hours"),
                                   (b'{"hours": 2, "days": 1}', "unknown_field", "days"), (b'[]', "invalid_body", None),
                                   (b'{"hours": NaN}', "invalid_json", None)):
            r = c.post(f"{base}/{mine['alert_id']}/snooze", params={"token": tok}, content=bad)
            assert r.status_code == 400 and r.json()["error"] == reason and r.json().get("field") == field, (
                bad, r.status_code, r.text)
        assert c.post(f"{base}/not-a-uuid/ack", params={"token": tok}).status_code == 404
        assert c.post(f"{base}/{mine['alert_id']}/snooze", params={"token": tok}, json={"hours": 4}).status_code == 202
        assert c.post(f"{base}/{mine['alert_id'].upper()}/ack", params={"token": tok}).status_code == 202
    assert store.query("SELECT alert_id, seller_id, action FROM alert_actions ORDER BY at, action") in (
        [(mine["alert_id"], "alice", "ack"), (mine["alert_id"], "alice", "snooze")],
        [(mine["alert_id"], "alice", "snooze"), (mine["alert_id"], "alice", "ack")])


def test_seller_and_stakeholder_tokens_are_not_interchangeable(store):
    seller = seller_token(SECRET, "alice", NOW_MS / 1000)
    stakeholder = tokens.mint(SECRET, "seller:alice", "alice", NOW_MS // 1000 + 3600)
    with _client(store, reader=True) as c:
        # a seller's page token on a room link is the seller's own team visiting (never a stakeholder of the room)
        r = c.post("/v1/events", json=batch(event("room_view", room="room-1", token=seller)))
        assert r.status_code == 202 and "unverified" not in r.json(), r.text
        # a stakeholder token bound to "seller:alice" is a stakeholder token: it opens no seller page, and a
        # seller token with its prefix swapped to a stakeholder's does not verify
        assert c.get("/v1/sites/test/sellers/alice/alerts", params={"token": stakeholder}).status_code == 403
        assert c.get("/v1/sites/test/sellers/alice/alerts", params={"token": seller}).status_code == 200
        swapped = "v1." + seller.split(".", 1)[1]
        r = c.post("/v1/events", json=batch(event("room_view", room="room-1", token=swapped)))
        assert r.json()["unverified"] == [{"index": 0, "reason": "token_invalid"}]
    assert sorted(store.query("SELECT stakeholder_id, token_status FROM events")) == [("", "invalid"), ("seller:alice", "seller")]
    assert store.query("SELECT count() FROM stakeholder_scores") == [(0,)]  # the team (and its device) never scored


_scalar = (st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([1e308, -1e308, 5e-324, 2 ** 53 + 1, 9_999_999_999_999, 10 ** 13, -0.0]) | st.text(max_size=8))
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=12)
_deep = st.integers(10, 250).map(_nested)  # (deeper ones are tested as raw text above: orjson writes <= 254)
_field = st.sampled_from(["ts", "engaged_ms", "page", "progress_pct", "media_position_s", "props", "room_id", "type",
                          "event_id", "scroll_pct", "share_channel", "token"])


@st.composite
def _attacked_event(draw):
    e = event(draw(st.sampled_from(["room_view", "engagement", "content_progress", "share"])), ts=NOW_MS - 1000)
    for _ in range(draw(st.integers(0, 2))):
        e[draw(_field)] = draw(_value | _deep)
    if draw(st.booleans()):
        e["x"] = draw(_deep)
    return e


@hsettings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                     HealthCheck.too_slow])
@given(evs=st.lists(_attacked_event(), min_size=1, max_size=6), envelope=st.sampled_from(["ok", "deep", "huge"]))
def test_events_endpoint_never_5xx_and_every_rejection_is_dead_lettered(client, store, evs, envelope):
    body = batch(*evs)
    if envelope == "deep":
        body["meta"] = _nested(250)
    elif envelope == "huge":
        body["sent_at"] = 2 ** 64
    before = _count(store, "dead_letters")
    r = client.post("/v1/events", content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status_code < 500, (r.status_code, r.text)
    added = _count(store, "dead_letters") - before
    if r.status_code == 202:
        rejected = r.json()["rejected"]
        assert added == len(rejected), (added, rejected)
        assert all(x["reason"] for x in rejected)
        if rejected:
            reasons = {x[0] for x in store.query("SELECT DISTINCT reason FROM dead_letters")}
            assert {x["reason"] for x in rejected} <= reasons
    else:
        assert r.status_code in (400, 401, 403, 413) and added == 1, (r.status_code, r.text, added)
