"""The server-side rooms API and clock, and server-side senders, through the real app and chdb."""
import orjson

from dealbeacon.core import tokens
from dealbeacon.core.settings import Settings
from tests.support.app import SECRET, make_client
from tests.support.data import NOW_MS, batch, event

AUTH = {"Authorization": f"Bearer {SECRET}"}
DAY = 86_400_000
COMMITTEE = [{"id": "ops", "email": "ops@buyer.example", "role": "champion"},
             {"id": "cfo", "email": "cfo@buyer.example", "role": "economic_buyer"}]


def test_room_create_update_and_stage_history(client, store):
    r = client.put("/v1/sites/test/rooms/deal-9", headers=AUTH, json={
        "name": "Northwind", "owner": "sam@seller.example", "stage": "qualification", "amount": 42000,
        "expected_close": "2026-12-31", "stakeholders": COMMITTEE})
    assert r.status_code == 202, r.text
    assert client.put("/v1/sites/test/rooms/deal-9", headers=AUTH, json={"stage": "proposal", "updated_at": NOW_MS + 1}).status_code == 202
    assert store.query("SELECT name, owner, stage, amount, toString(expected_close), JSONLength(stakeholders) "
                       "FROM rooms FINAL") == [("Northwind", "sam@seller.example", "proposal", 42000, "2026-12-31", 2)]
    assert store.query("SELECT from_stage, to_stage FROM room_stage_history ORDER BY changed_at, to_stage") == [
        ("", "qualification"), ("qualification", "proposal")]


def test_rooms_api_needs_the_site_secret_and_rejects_bad_fields_with_a_dead_letter(client, store):
    assert client.put("/v1/sites/test/rooms/d", json={"stage": "proposal"}).status_code == 401
    assert client.put("/v1/sites/test/rooms/d", headers={"Authorization": "Bearer nope"}, json={}).status_code == 401
    assert client.put("/v1/sites/nosuch/rooms/d", headers=AUTH, json={}).status_code == 401
    for body, field in (({"stage": "won"}, "stage"), ({"amount": -1}, "amount"), ({"expected_close": "soon"}, "expected_close"),
                        ({"stakeholders": [{"id": "a", "role": "ceo"}]}, "stakeholders[0].role")):
        r = client.put("/v1/sites/test/rooms/d", headers=AUTH, json=body)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert client.put("/v1/sites/test/rooms/d", headers=AUTH, content=b"{not json").status_code == 400
    r = client.put("/v1/sites/test/rooms/d%0A", headers=AUTH, json={"stage": "proposal"})  # a trailing newline
    assert r.status_code == 400 and r.json()["field"] == "room_id", r.text
    assert [r[0] for r in store.query("SELECT field FROM dead_letters WHERE stage = 'rooms_api' ORDER BY field")] == [
        "", "amount", "expected_close", "room_id", "stage", "stakeholders[0].role"]
    assert store.query("SELECT count() FROM rooms") == [(0,)]


def test_clock_is_refused_on_a_wall_clock_server(client):
    r = client.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS})
    assert r.status_code == 409 and r.json()["error"] == "clock_not_external"


def test_external_clock_drives_the_time_rules(store):
    s = Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000, clock="external")
    with make_client(store, s) as c:
        c.put("/v1/sites/test/rooms/deal-1", headers=AUTH, json={"stage": "proposal", "stakeholders": COMMITTEE,
                                                                "updated_at": NOW_MS - 30 * DAY})
        old = event("content_view", ts=NOW_MS - 30 * DAY, room="deal-1", content_id="pricing")
        r = c.post("/v1/events", headers=AUTH, json=batch(old, sent_at=NOW_MS - 30 * DAY))
        assert r.status_code == 202 and r.json()["accepted"] == 1
        for day in (29, 24, 19, 12):  # Sat, Thu, Tue, Tue: 0, 4, 7 and 12 working days after a Friday visit
            # (one visit: a young room, so silence is unusual after 10 working days, past the 5-day cadence)
            assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS - day * DAY}).status_code == 202
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": "soon"}).status_code == 400
    assert store.query("SELECT kind, severity, toUnixTimestamp64Milli(at) FROM alerts FINAL ORDER BY at, kind") == [
        ("quiet", "low", NOW_MS - 12 * DAY)]
    # the only visitor was anonymous: no one of the committee engaged, so no single-threaded alert, and the
    # suggestion names the committee's first member (the room has no engaged contact to lean on)
    (suggestion,) = store.query("SELECT suggestion FROM alerts FINAL WHERE severity = 'low'")[0]
    assert suggestion.startswith(f"Reach out to {COMMITTEE[0]['id']} ({COMMITTEE[0]['role']})"), suggestion


def test_server_side_senders_keep_their_timestamps_browsers_do_not(client, store):
    old_ts = NOW_MS - 40 * DAY
    trusted = event("room_view", ts=old_ts)
    r = client.post("/v1/events", headers=AUTH, json=batch(trusted, sent_at=NOW_MS - 40 * DAY))
    assert r.status_code == 202 and r.json()["accepted"] == 1
    browser = event("room_view", ts=old_ts)
    r = client.post("/v1/events", json=batch(browser, sent_at=NOW_MS - 40 * DAY))
    assert r.status_code == 202  # skew-corrected to the server's time: not stale, but not its own timeline
    got = dict(store.query("SELECT toString(event_id), toUnixTimestamp64Milli(ts) FROM events"))
    assert got[trusted["event_id"]] == old_ts and got[browser["event_id"]] != old_ts
    r = client.post("/v1/events", headers={"Authorization": "Bearer wrong"}, json=batch(event(ts=old_ts), sent_at=old_ts + 1))
    assert r.json()["accepted"] == 1 and store.query("SELECT count() FROM events WHERE ts = fromUnixTimestamp64Milli("
                                                     f"{old_ts})") == [(1,)]


def test_events_are_scored_in_embedded_mode(client, store):
    client.put("/v1/sites/test/rooms/room-1", headers=AUTH, json={"stage": "demo", "stakeholders": COMMITTEE})
    r = client.post("/v1/events", json=batch(event("content_view", content_id="pricing"), event("cta")))
    assert r.status_code == 202
    assert store.query("SELECT stakeholder_id, score FROM stakeholder_scores_latest") == [("visitor:visitor-1", 12.0)]
    # an anonymous visitor is scored (and shown apart: band Visitor) but is not an engaged committee member
    assert store.query("SELECT engaged, invited FROM deal_scores_latest") == [(0, 2)]
    assert store.query("SELECT band FROM stakeholder_scores_latest") == [("Visitor",)]


def test_room_bodies_with_unknown_fields_are_refused_by_name(client, store):
    for body, field in (({"stage": "demo", "stakeholder": []}, "stakeholder"),  # a typo, not silently dropped
                        ({"Stage": "demo"}, "Stage"),
                        ({"stakeholders": [{"id": "cfo", "role": "economic_buyer", "phone": "+1"}]}, "stakeholders[0].phone"),
                        ({"x" * 500: 1}, "x" * 64)):
        r = client.put("/v1/sites/test/rooms/r-strict", headers=AUTH, json=body)
        assert r.status_code == 400 and r.json() == {**r.json(), "error": "unknown_field", "field": field}, r.text
    assert store.query("SELECT count() FROM rooms") == [(0,)]
    assert store.query("SELECT count() FROM dead_letters WHERE reason = 'unknown_field'") == [(4,)]


def test_an_unset_proposal_date_reads_back_as_null(client, store):
    assert client.put("/v1/sites/test/rooms/r-new", headers=AUTH, json={"stage": "demo"}).status_code == 202
    assert client.put("/v1/sites/test/rooms/r-sent", headers=AUTH,
                      json={"stage": "proposal", "proposal_shared_at": NOW_MS - DAY}).status_code == 202
    assert store.query("SELECT room_id, toUnixTimestamp64Milli(proposal_shared_at) FROM rooms FINAL ORDER BY room_id") == [
        ("r-new", None), ("r-sent", NOW_MS - DAY)]


def test_a_rooms_time_zone_is_an_iana_name_and_counts_silence_in_the_buyers_week(store):
    s = Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000, clock="external", timezone="America/Los_Angeles")
    with make_client(store, s) as c:
        for tz in ("Mars/Olympus", "+05:00", "../../etc/passwd", "", "x" * 300):
            r = c.put("/v1/sites/test/rooms/r-tz", headers=AUTH, json={"stage": "negotiation", "timezone": tz,
                                                                      "updated_at": NOW_MS})
            assert r.status_code == 400 and r.json()["field"] == "timezone", (tz, r.text)
        # a Singapore committee, a seller's calendar in Los Angeles: silence is counted in the buyer's week
        monday = NOW_MS - NOW_MS % DAY  # NOW_MS is a Monday afternoon: its midnight (UTC)
        busy = [monday - d * DAY + 20 * 3_600_000 for d in (14, 13, 12, 11, 10, 7, 6, 5, 4, 3)]  # 20:00 UTC
        c.put("/v1/sites/test/rooms/r-sg", headers=AUTH, json={"stage": "negotiation", "timezone": "Asia/Singapore",
                                                               "updated_at": NOW_MS - 15 * DAY})
        c.put("/v1/sites/test/rooms/r-la", headers=AUTH, json={"stage": "negotiation", "updated_at": NOW_MS - 15 * DAY})
        for room in ("r-sg", "r-la"):
            visits = [event("room_view", room=room, ts=t) for t in busy]
            assert c.post("/v1/events", headers=AUTH, json=batch(*visits, sent_at=NOW_MS)).status_code == 202
        # the last visit, Friday 20:00 UTC, was Saturday 04:00 in Singapore (their weekend) and Friday noon in
        # Los Angeles; at Thursday 20:00 UTC (Friday 04:00 / Thursday noon) Singapore has had 4 + 4/24 working
        # days of silence, Los Angeles 0.5 + 3 + 0.5
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": monday + 3 * DAY + 20 * 3_600_000}).status_code == 202
    quiet = store.query("SELECT room_id, evidence FROM alerts FINAL WHERE kind = 'quiet' ORDER BY room_id")
    assert [(r, e.split(";")[0]) for r, e in quiet] == [("r-la", "no buyer activity for 4.0 working days"),
                                                        ("r-sg", "no buyer activity for 4.2 working days")]
    assert store.query("SELECT room_id, timezone FROM rooms FINAL ORDER BY room_id") == [
        ("r-la", ""), ("r-sg", "Asia/Singapore")]  # r-tz was never stored


def test_with_an_external_clock_room_updates_take_the_sites_clock_not_the_wall(store):
    s = Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000, clock="external")
    past = NOW_MS - 400 * DAY  # a replay of last year's CRM history
    with make_client(store, s) as c:
        r = c.put("/v1/sites/test/rooms/r-replay", headers=AUTH, json={"stage": "demo"})
        assert r.status_code == 400 and r.json()["field"] == "updated_at"  # no clock yet: say when
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": past}).status_code == 202
        assert c.put("/v1/sites/test/rooms/r-replay", headers=AUTH, json={"stage": "demo"}).status_code == 202
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": past + 3 * DAY}).status_code == 202
        assert c.put("/v1/sites/test/rooms/r-replay", headers=AUTH, json={"stage": "proposal"}).status_code == 202
    assert store.query("SELECT to_stage, toUnixTimestamp64Milli(changed_at) FROM room_stage_history FINAL "
                       "WHERE room_id = 'r-replay' ORDER BY changed_at") == [("demo", past), ("proposal", past + 3 * DAY)]


def test_a_content_catalogue_is_validated_field_by_field(client, store):
    item = {"id": "q3-quote-v2", "title": "Your quote", "kind": "pricing"}
    for content, field in (([{**item, "kind": "brochure"}], "content[0].kind"),  # unknown kind
                           ([item, {**item, "title": "again"}], "content[1].id"),  # duplicate id
                           ([{**item, "title": "x" * 201}], "content[0].title"),  # oversized title
                           ([{**item, "pages": 0}], "content[0].pages"), ([{**item, "pages": True}], "content[0].pages"),
                           ([{**item, "duration_s": 1e308}], "content[0].duration_s"),
                           ([{**item, "id": "a/b"}], "content[0].id"), ([{**item, "owner": "x"}], "content[0].owner"),
                           ({"id": "x"}, "content"), ([item] * 201, "content")):
        r = client.put("/v1/sites/test/rooms/r-cat", headers=AUTH, json={"content": content})
        assert r.status_code == 400 and r.json()["field"] == field, (field, r.text)
    ok = [item, {"id": "deck", "title": "Proposal", "kind": "proposal", "pages": 12},
          {"id": "tour", "title": "Product tour", "kind": "video", "duration_s": 95.5}]
    assert client.put("/v1/sites/test/rooms/r-cat", headers=AUTH, json={"content": ok}).status_code == 202
    (stored,) = store.query("SELECT content FROM rooms FINAL WHERE room_id = 'r-cat'")[0]
    assert orjson.loads(stored)[1] == {"id": "deck", "title": "Proposal", "kind": "proposal", "pages": 12}


def test_declared_kinds_drive_scores_and_alerts_and_custom_kinds_come_from_settings(store):
    s = Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000, content_kinds="roi_model")
    with make_client(store, s) as c:
        assert c.put("/v1/sites/test/rooms/r-kinds", headers=AUTH, json={"stage": "proposal", "content": [
            {"id": "q3-quote-v2", "title": "Your quote", "kind": "pricing"},
            {"id": "calc", "title": "ROI", "kind": "roi_model"}]}).status_code == 202
        r = c.put("/v1/sites/test/rooms/r-kinds", headers=AUTH, json={"content": [{"id": "x", "kind": "faq"}]})
        assert r.status_code == 400 and "roi_model" in r.json()["detail"]  # the site's own kinds are listed
        evs = [event("content_view", room="r-kinds", content_id="q3-quote-v2"),
               event("content_view", room="r-kinds", content_id="calc")]
        assert c.post("/v1/events", headers=AUTH, json=batch(*evs)).status_code == 202
    (reasons,) = store.query("SELECT reasons FROM stakeholder_scores_latest WHERE room_id = 'r-kinds'")[0]
    got = dict(orjson.loads(reasons))
    # a quote whose id does not say "pricing" still scores as pricing (2 x 2 points); the custom kind as itself
    assert got["content_view:pricing"] == 4.0 and got["content_view:roi_model"] == 2.0, got


def test_internal_stakeholders_are_stored_but_never_move_a_number(store):
    with make_client(store) as c:
        assert c.put("/v1/sites/test/rooms/r-int", headers=AUTH, json={"stage": "proposal", "stakeholders": [
            {"id": "cfo", "role": "economic_buyer"}, {"id": "sam-se", "role": "other", "internal": True}]}).status_code == 202
        buyer = [event("cta", room="r-int", stakeholder_id="cfo")]
        tok = tokens.mint(SECRET, "r-int", "cfo", NOW_MS // 1000 + 3600)
        buyer[0]["token"] = tok
        assert c.post("/v1/events", headers=AUTH, json=batch(*buyer)).status_code == 202
        before = store.query("SELECT count(), max(score) FROM deal_scores WHERE room_id = 'r-int'")
        own = tokens.mint(SECRET, "r-int", "sam-se", NOW_MS // 1000 + 3600)
        team = [event(t, room="r-int", token=own, visitor_id="v-sam", content_id="pricing") for t in ("content_view", "cta")]
        assert c.post("/v1/events", headers=AUTH, json=batch(*team)).status_code == 202
    assert store.query("SELECT count() FROM events WHERE room_id = 'r-int' AND stakeholder_id = 'sam-se'") == [(2,)]  # stored
    assert store.query("SELECT count(), max(score) FROM deal_scores WHERE room_id = 'r-int'") == before
    assert store.query("SELECT count() FROM stakeholder_scores WHERE stakeholder_id = 'sam-se'") == [(0,)]
    assert store.query("SELECT count() FROM alerts WHERE room_id = 'r-int' AND has(stakeholders, 'sam-se')") == [(0,)]


def test_the_documented_body_schema_is_the_one_the_api_enforces(client):
    """The OpenAPI request schemas come from the same models that judge the bodies: a body the document
    allows is accepted, one it forbids is refused, for fields added after the document was first written."""
    import jsonschema

    doc = client.get("/openapi.json").json()
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/RoomUpdate", "components": doc["components"]})
    good = {"stage": "demo", "amount": 10, "stakeholders": [{"id": "it", "role": "technical", "internal": True}],
            "content": [{"id": "q3-quote-v2", "title": "Quote", "kind": "pricing", "pages": 3}], "updated_at": NOW_MS}
    assert validator.is_valid(good)
    assert client.put("/v1/sites/test/rooms/r-doc", headers=AUTH, json=good).status_code == 202
    for bad, field in (({"stage": None}, "stage"), ({"content": [{"id": "x", "kind": "pricing", "pages": None}]}, "content[0].pages"),
                       ({"stakeholders": [{"id": "a", "internal": "yes"}]}, "stakeholders[0].internal"),
                       ({"amount": True}, "amount"), ({"amount": "12"}, "amount")):
        assert not validator.is_valid(bad), bad
        r = client.put("/v1/sites/test/rooms/r-doc", headers=AUTH, json=bad)
        assert r.status_code == 400 and r.json()["field"] == field, (bad, r.text)


def test_channel_and_seller_bodies_are_judged_the_same_way(client):
    for path, body, reason, field in (
            ("channels/c1", {"kind": "webhook", "target": "https://x.example", "headers": {"X": "1"}}, "unknown_field", "headers"),
            ("channels/c1", {"kind": "slack", "target": "https://x.example", "events": ["shared"]}, "invalid_value", "events"),
            ("channels/c1", {"kind": "webhook", "target": "https://x.example", "events": ["opened"]}, "invalid_value", "events[0]"),
            ("channels/c1", {"kind": "webhook", "target": "ftp://x.example"}, "invalid_value", "target"),
            ("channels/c1", {"kind": "pager", "target": "https://x.example"}, "invalid_value", "kind"),
            ("sellers/sam", {"tz": "Mars/Olympus"}, "invalid_value", "tz"),
            ("sellers/sam", {"quiet_hours": [22, 7, 1]}, "too_long", "quiet_hours"),
            ("sellers/sam", {"quiet_hours": [22, 24]}, "out_of_range", "quiet_hours[1]"),
            ("sellers/sam", {"digest": "yes"}, "invalid_type", "digest")):
        r = client.put(f"/v1/sites/test/{path}", headers=AUTH, json=body)
        assert r.status_code == 400 and (r.json()["error"], r.json()["field"]) == (reason, field), (body, r.text)
    assert client.put("/v1/sites/test/sellers/sam", headers=AUTH, json={"tz": "Europe/Berlin", "quiet_hours": [22, 7]}).status_code == 202
