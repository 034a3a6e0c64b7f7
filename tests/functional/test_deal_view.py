"""The seller's deal list and deal page through the real app and chdb: a committee that reads a proposal page by
page, shares the room, a recipient who opens it anonymously, a deal with a high alert next to a calm one, a
closed deal, another seller's deal."""
import uuid

from dealbeacon.core import tokens
from ingest.sellers import AlertHub, seller_token
from tests.support.app import SECRET, make_client
from tests.support.data import NOW_MS, batch, event

AUTH = {"Authorization": f"Bearer {SECRET}"}
MIN = 60_000
T = NOW_MS - 6 * 3_600_000  # the visit, six hours ago


def _room(c, room, owner, stage="proposal"):
    r = c.put(f"/v1/sites/test/rooms/{room}", headers=AUTH, json={
        "stage": stage, "owner": owner, "name": room.title(), "updated_at": T - 10 * 86_400_000,
        "stakeholders": [{"id": "cfo", "role": "economic_buyer"}, {"id": "ops", "role": "champion"}]})
    assert r.status_code == 202, r.text


def _as(sid, room, etype, ts, **kw):
    tok = tokens.mint(SECRET, room, sid, NOW_MS // 1000 + 3600)
    return event(etype, ts=ts, room=room, token=tok, visitor_id=f"v-{sid}", session_id=f"s-{sid}", **kw)


def test_deal_list_puts_attention_first_and_the_deal_page_shows_who_read_what_page_by_page(store):
    with make_client(store, origins=("*",), reader=store.query_readonly, hub=AlertHub()) as c:
        for room, owner, stage in (("deal-calm", "alice", "proposal"), ("deal-hot", "alice", "proposal"),
                                   ("deal-won", "alice", "closed_won"), ("deal-bob", "bob", "proposal")):
            _room(c, room, owner, stage)
        evs = [_as("cfo", "deal-calm", "room_view", T),
               _as("cfo", "deal-calm", "content_view", T + 1000, content_id="proposal")]
        for page, seconds in ((1, 30), (2, 45), (3, 15)):
            at = T + page * MIN
            evs += [_as("cfo", "deal-calm", "content_progress", at, content_id="proposal", page=page,
                        progress_pct=round(100 * page / 12, 1)),
                    _as("cfo", "deal-calm", "engagement", at + 5000, content_id="proposal", page=page,
                        engaged_ms=seconds * 1000)]
        evs += [_as("ops", "deal-calm", "share", T + 10 * MIN, share_channel="email", share_to="legal@buyer.example"),
                event("room_view", ts=T + 70 * MIN, room="deal-calm", visitor_id="anon-legal", session_id="s-anon")]
        r = c.post("/v1/events", headers=AUTH, json=batch(*evs))
        assert r.status_code == 202 and r.json()["accepted"] == len(evs), r.text
        evs = [_as("ops", "deal-hot", "room_view", T), _as("ops", "deal-won", "room_view", T)]
        assert c.post("/v1/events", headers=AUTH, json=batch(*evs)).status_code == 202
        store.insert("alerts", [{"alert_id": str(uuid.uuid4()), "site": "test", "room_id": "deal-hot", "owner": "alice",
                                 "stage": "proposal", "kind": "champion_dark", "severity": "high", "stakeholders": ["ops"],
                                 "evidence": "ops went Dark", "suggestion": "call ops", "at": T + 3600_000}])
        tok = seller_token(SECRET, "alice", NOW_MS / 1000)
        base = "/v1/sites/test/sellers/alice"

        deals = c.get(f"{base}/rooms", params={"token": tok}).json()
        assert [d["room_id"] for d in deals["rooms"]] == ["deal-hot", "deal-calm"]  # a high alert first
        assert deals["rooms"][0]["top_severity"] == "high" and deals["rooms"][0]["open_alerts"] == 1
        assert [d["room_id"] for d in deals["closed"]] == ["deal-won"]  # closed deals apart
        assert deals["rooms"][1]["last_activity"] == T + 70 * MIN
        assert deals["rooms"][1]["trend"] is None  # no score a week ago to compare with: no trend, not a jump from 0

        deal = c.get(f"{base}/rooms/deal-calm", params={"token": tok}).json()
        cell = next(m for m in deal["matrix"] if m["who"] == "cfo" and m["content_id"] == "proposal")
        assert cell["engaged_s"] == 90 and cell["visits"] == 1 and cell["stopped_at_page"] == 3
        assert cell["pages"] == [{"page": 1, "engaged_s": 30}, {"page": 2, "engaged_s": 45}, {"page": 3, "engaged_s": 15}]
        assert round(cell["completion_pct"]) == 25
        assert deal["shares"] == [{"from": "ops", "to": "legal@buyer.example", "channel": "email", "at": T + 10 * MIN}]
        assert {"id": "visitor:anon-legal", "anonymous": True} in deal["candidates"]
        assert any("likely legal@buyer.example, shared by ops" in a for a in deal["arrivals"]), deal["arrivals"]
        assert [p["id"] for p in deal["committee"]] == ["cfo", "ops"] and deal["committee"][0]["role"] == "economic_buyer"
        assert deal["visits"][0] == {"who": "visitor:anon-legal", "at": T + 70 * MIN, "url": deal["visits"][0]["url"]}
        assert deal["history"] and all(h["band"] for h in deal["history"])

        # another seller's deal: 403; no such deal: 404; no token: 403
        assert c.get(f"{base}/rooms/deal-bob", params={"token": tok}).status_code == 403
        assert c.get(f"{base}/rooms/deal-none", params={"token": tok}).status_code == 404
        assert c.get(f"{base}/rooms/deal-calm").status_code == 403
        # quoting in a room id reaches SQL only as a string literal
        assert c.get(f"{base}/rooms/x' OR '1'='1", params={"token": tok}).status_code == 404


def test_the_sellers_own_visits_move_no_number(store):
    """Visits by the seller's team are stored but leave every buyer figure as it was: a seller opening the room
    with their own page token (then again without it, from the same browser), a colleague on the committee list
    with the company's email domain, and a buyer forwarding the room to that colleague."""
    with make_client(store, origins=("*",), reader=store.query_readonly, hub=AlertHub(),
                     internal_domains=("seller.example",)) as c:
        assert c.put("/v1/sites/test/rooms/deal-1", headers=AUTH, json={
            "stage": "proposal", "owner": "alice", "name": "Deal", "updated_at": T - 10 * 86_400_000,
            "stakeholders": [{"id": "cfo", "role": "economic_buyer", "email": "cfo@buyer.example"},
                             {"id": "se-tom", "role": "technical", "email": "Tom@Seller.example"}]}).status_code == 202
        buyers = [_as("cfo", "deal-1", "room_view", T), _as("cfo", "deal-1", "content_view", T + 1000, content_id="pricing"),
                  _as("cfo", "deal-1", "engagement", T + 9000, content_id="pricing", engaged_ms=40_000)]
        assert c.post("/v1/events", headers=AUTH, json=batch(*buyers)).status_code == 202
        tok = seller_token(SECRET, "alice", NOW_MS / 1000)
        base = "/v1/sites/test/sellers/alice"

        def figures():
            deal = c.get(f"{base}/rooms/deal-1", params={"token": tok}).json()
            listed = c.get(f"{base}/rooms", params={"token": tok}).json()
            scores = store.query("SELECT stakeholder_id, score FROM stakeholder_scores_latest ORDER BY stakeholder_id")
            alerts = store.query("SELECT kind, stakeholders FROM alerts FINAL ORDER BY kind")
            return {k: deal[k] for k in ("matrix", "candidates", "shares", "visits", "committee", "arrivals")}, listed, scores, alerts

        before = figures()
        assert before[0]["committee"] == [before[0]["committee"][0]] and before[0]["committee"][0]["id"] == "cfo"
        seller_visit = dict(event("room_view", ts=T + 60 * MIN, room="deal-1", token=tok, visitor_id="v-alice-laptop",
                                  session_id="s-a1"))
        later = [event("content_view", ts=T + 61 * MIN, room="deal-1", content_id="pricing", visitor_id="v-alice-laptop",
                       session_id="s-a2"),
                 event("engagement", ts=T + 62 * MIN, room="deal-1", content_id="pricing", engaged_ms=300_000,
                       visitor_id="v-alice-laptop", session_id="s-a2"),
                 _as("se-tom", "deal-1", "room_view", T + 63 * MIN),
                 _as("se-tom", "deal-1", "engagement", T + 64 * MIN, content_id="pricing", engaged_ms=120_000),
                 _as("cfo", "deal-1", "share", T + 65 * MIN, share_channel="email", share_to="TOM@seller.example"),
                 _as("cfo", "deal-1", "share", T + 66 * MIN, share_channel="email", share_to="anna@seller.example")]
        r = c.post("/v1/events", headers=AUTH, json=batch(seller_visit))
        assert r.status_code == 202 and r.json()["accepted"] == 1 and "unverified" not in r.json(), r.text
        assert c.post("/v1/events", headers=AUTH, json=batch(*later[:4])).status_code == 202
        assert store.query("SELECT token_status, stakeholder_id FROM events WHERE visitor_id = 'v-alice-laptop' "
                           "AND stakeholder_id != ''") == [("seller", "seller:alice")]
        after = figures()
        assert after[0] == before[0] and after[2] == before[2] and after[3] == before[3], (before, after)
        assert [(d["room_id"], d["last_activity"], d["score"]) for d in after[1]["rooms"]] == [
            (d["room_id"], d["last_activity"], d["score"]) for d in before[1]["rooms"]]
        # the buyer's shares are buyer actions (shown), but a share to the seller's own team raises nothing
        assert c.post("/v1/events", headers=AUTH, json=batch(*later[4:])).status_code == 202
        deal = c.get(f"{base}/rooms/deal-1", params={"token": tok}).json()
        assert [s["to"] for s in deal["shares"]] == ["TOM@seller.example", "anna@seller.example"]
        assert store.query("SELECT count() FROM alerts FINAL WHERE kind = 'new_stakeholder'") == [(0,)]
        assert deal["team"] == ["se-tom"] and all(m["who"] == "cfo" for m in deal["matrix"])
        assert store.query("SELECT count() FROM events WHERE room_id = 'deal-1'") == [(3 + 1 + 6,)]  # all stored


def test_open_alerts_are_recent_and_one_per_kind_per_deal(store):
    """What a seller is asked to act on: the latest alert of each kind per deal, from the last two weeks."""
    with make_client(store, origins=("*",), reader=store.query_readonly, hub=AlertHub()) as c:
        _room(c, "deal-a", "alice")
        day = 86_400_000

        def alert(kind, days_ago, severity="medium"):
            return {"alert_id": str(uuid.uuid4()), "site": "test", "room_id": "deal-a", "owner": "alice", "stage": "proposal",
                    "kind": kind, "severity": severity, "stakeholders": [], "evidence": f"{kind} {days_ago}",
                    "suggestion": "", "at": NOW_MS - days_ago * day}
        store.insert("alerts", [alert("quiet", 20, "high"), alert("quiet", 9), alert("quiet", 2, "low"), alert("hot", 1),
                                alert("pricing_revisited", 15)])
        tok = seller_token(SECRET, "alice", NOW_MS / 1000)
        shown = c.get("/v1/sites/test/sellers/alice/alerts", params={"token": tok}).json()["alerts"]
        assert [a["evidence"] for a in shown] == ["hot 1", "quiet 2"]
        (deal,) = c.get("/v1/sites/test/sellers/alice/rooms", params={"token": tok}).json()["rooms"]
        assert deal["open_alerts"] == 2 and deal["top_severity"] == "medium"
        # the deal page keeps the whole history
        assert len(c.get("/v1/sites/test/sellers/alice/rooms/deal-a", params={"token": tok}).json()["alerts"]) == 5
