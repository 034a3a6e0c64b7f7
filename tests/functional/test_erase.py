"""Erasing a person through the API, against the real app and chdb: their events, scores and alerts go, the
others' stay, the room forgets them (a later tick writes nothing of them), and the erasure is audited."""
from dealbeacon.core import tokens
from dealbeacon.core.settings import Settings
from tests.support.app import SECRET, make_client
from tests.support.data import NOW_MS, batch, event

AUTH = {"Authorization": f"Bearer {SECRET}"}
DAY = 86_400_000


def _who(store, table, col="stakeholder_id"):
    return {r[0] for r in store.query(f"SELECT DISTINCT {col} FROM {table} FINAL")}


def test_erase_a_stakeholder_and_an_anonymous_visitor(store):
    settings = Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000, clock="external")
    with make_client(store, settings) as c:
        assert c.put("/v1/sites/test/rooms/deal-1", headers=AUTH, json={
            "owner": "sam", "stage": "proposal", "stakeholders": [
                {"id": "cfo", "email": "cfo@buyer.example", "role": "economic_buyer"},
                {"id": "ops", "email": "ops@buyer.example", "role": "champion"}], "updated_at": NOW_MS - 9 * DAY}
                     ).status_code == 202
        evs = []
        for who, visitor in (("cfo", "v-cfo"), ("ops", "v-ops"), ("", "v-anon")):
            tok = {"token": tokens.mint(SECRET, "deal-1", who, NOW_MS // 1000 + 3600)} if who else {}
            for day in (8, 7, 1):
                evs.append(event("content_view", ts=NOW_MS - day * DAY, room="deal-1", visitor_id=visitor,
                                 content_id="proposal", **tok))
        assert c.post("/v1/events", json=batch(*evs), headers=AUTH).json()["accepted"] == 9
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS}).status_code == 202
        assert {"cfo", "ops", "visitor:v-anon"} <= _who(store, "stakeholder_scores")

        r = c.post("/v1/sites/test/erase", headers=AUTH, json={"stakeholder": "cfo"})
        assert r.status_code == 202 and r.json()["erasure_id"]
        r = c.post("/v1/sites/test/erase", headers=AUTH, json={"stakeholder": "visitor:v-anon", "room_id": "deal-1"})
        assert r.status_code == 202
        assert c.post("/v1/sites/test/erase", json={"stakeholder": "ops"}).status_code == 401
        bad = c.post("/v1/sites/test/erase", headers=AUTH, json={"stakeholder": "a b'; DROP"})
        assert bad.status_code == 400 and bad.json()["field"] == "stakeholder"

        assert _who(store, "events") == {"ops"}
        assert _who(store, "events", "visitor_id") == {"v-ops"}
        assert _who(store, "stakeholder_scores") == {"ops"}
        assert all("cfo" not in r[0] for r in store.query("SELECT arrayStringConcat(stakeholders, ',') FROM alerts"))
        assert store.query("SELECT stakeholders FROM rooms FINAL")[0][0].count("cfo") == 0
        # a later tick and later events of the others never bring the erased back
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS + 2 * DAY}).status_code == 202
        c.post("/v1/events", json=batch(event("engagement", ts=NOW_MS, room="deal-1", visitor_id="v-ops",
                                             token=tokens.mint(SECRET, "deal-1", "ops", NOW_MS // 1000 + 3600))),
               headers=AUTH)
        assert _who(store, "stakeholder_scores") == {"ops"}
        audit = store.query("SELECT stakeholder, room_id FROM erasures FINAL ORDER BY requested_at, stakeholder")
        assert sorted(audit) == [("cfo", ""), ("visitor:v-anon", "deal-1")]
