"""The seller page in real headless Chromium against a real embedded server: rooms and scores, a new alert
live within 2 s without reload, snooze hides it, and a second seller cannot see the first seller's rooms."""
import pathlib
import shutil
import subprocess
import uuid

import httpx
import orjson

from tests.support.browser import sql_reader
from tests.support.servers import Server
from tests.support.waiting import wait_until

ROOT = pathlib.Path(__file__).parents[2]
DAY = 86_400_000
START = 1_767_225_600_000
SECRET = "s3cret"


def test_seller_page_live_alerts_snooze_and_isolation(tmp_path):
    assert shutil.which("node")
    data = tmp_path / "data"
    data.mkdir()
    (data / "sites.json").write_text('[{"key": "acme", "secret": "%s", "origins": ["*"]}]' % SECRET)
    srv = Server(data, "--no-demo", env={"DEALBEACON_CLOCK": "external"}).start()
    try:
        auth = {"Authorization": f"Bearer {SECRET}"}
        pages = {}
        for seller in ("sam", "kim"):
            r = httpx.put(f"{srv.url}/v1/sites/acme/sellers/{seller}", headers=auth, json={"name": seller.title()})
            assert r.status_code == 202, r.text
            pages[seller] = srv.url + r.json()["page"]
        for room, owner in (("deal-sam", "sam"), ("deal-kim", "kim")):
            assert httpx.put(f"{srv.url}/v1/sites/acme/rooms/{room}", headers=auth, json={
                "stage": "proposal", "owner": owner, "updated_at": START, "name": room.upper(),
                "stakeholders": [{"id": "cfo", "role": "economic_buyer"}, {"id": "ops", "role": "champion"}]}).status_code == 202
            ev = {"event_id": str(uuid.uuid4()),
                  "type": "content_view", "room_id": room, "visitor_id": "v1", "session_id": "s1", "ts": START + 1000,
                  "content_id": "pricing"}
            r = httpx.post(f"{srv.url}/v1/events", headers=auth, json={"site": "acme", "sent_at": START, "events": [ev]})
            assert r.status_code == 202 and r.json()["accepted"] == 1
        # kim's token does not open sam's data
        kim_token = pages["kim"].split("token=")[1]
        assert httpx.get(f"{srv.url}/v1/sites/acme/sellers/sam/rooms?token={kim_token}").status_code == 403
        assert httpx.get(f"{srv.url}/v1/sites/acme/sellers/sam/alerts").status_code == 403
        cfg = {"page": pages["sam"], "otherPage": pages["kim"],
               "trigger": {"url": f"{srv.url}/v1/sites/acme/clock", "headers": {**auth, "Content-Type": "application/json"},
                           # 20 quiet days after one visit: past the proposal cadence (5 working days) and past what
                           # is unusual for a room with one visit (10 working days): quiet
                           "body": {"now": START + 20 * DAY}}}
        run = subprocess.run(["node", "e2e/seller.mjs", orjson.dumps(cfg).decode()], cwd=ROOT / "js-snippet",
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        out = orjson.loads(run.stdout.strip().splitlines()[-1])
        assert [r["id"] for r in out["rooms"]] == ["deal-sam"] and "DEAL-SAM" in out["rooms"][0]["text"]
        assert "of 2 invited stakeholders engaged" in out["rooms"][0]["text"]  # score reasons are shown
        assert out["triggerStatus"] == 202 and out["alertsBefore"] == []
        # the new alert reached the open page over its live feed, without a reload (seller.mjs waits for it);
        # how fast is a speed figure, printed here, never asserted in a test
        print("seller page: new alert shown", out["liveMs"], "ms after the trigger")
        assert any("deal-sam: quiet" in a["text"] for a in out["alertsLive"])
        assert all("deal-kim" not in a["text"] for a in out["alertsLive"])
        assert out["snoozed"] not in out["alertsAfterReload"]
        assert out["otherRooms"] == ["deal-kim"] and out["snoozed"] not in out["otherAlerts"]
        sql = sql_reader(srv)
        action = wait_until(lambda: sql("SELECT action, seller_id FROM alert_actions"), what="the snooze stored")
        assert action == [["snooze", "sam"]]
    finally:
        srv.stop()
