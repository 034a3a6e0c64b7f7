"""Settings that must work as written, through the real app and chdb: a deployment's own stage list gets quiet
alerts at its own cadence, a clock value that cannot work refuses to start, notice links open a real page, and
the rooms API refuses room ids the beacon's contract refuses."""
import subprocess
import sys

import pytest

from dealbeacon.core.settings import Settings
from sinks.channels import notice_link
from sinks.notify import Notice
from tests.support.app import SECRET, make_client
from tests.support.data import NOW_MS, batch, event

AUTH = {"Authorization": f"Bearer {SECRET}"}
DAY = 86_400_000


def _quiet(store):
    return store.query("SELECT room_id, evidence FROM alerts FINAL WHERE kind = 'quiet' ORDER BY room_id")


def test_a_custom_stage_list_gets_quiet_alerts_at_its_own_cadence(store):
    s = Settings(stages="discovery,evaluation,pilot,signed,lost", closed_stages="signed,lost",
                 stage_cadence_days="discovery=10,evaluation=4", clock="external",
                 rate_limit_events_per_s=1e6, rate_limit_burst=10 ** 6)
    with make_client(store, s) as c:
        for room, stage in (("d-eval", "evaluation"), ("d-disc", "discovery"), ("d-pilot", "pilot"), ("d-won", "signed")):
            assert c.put(f"/v1/sites/test/rooms/{room}", headers=AUTH, json={
                "stage": stage, "owner": "sam", "updated_at": NOW_MS - 15 * DAY}).status_code == 202
            # a busy room (a visit every working day for two weeks): its own rhythm makes a silence of 4 working
            # days unusual, so the stage's cadence decides when it is quiet
            visits = [event("room_view", room=room, ts=NOW_MS - d * DAY) for d in (14, 13, 12, 11, 10, 7, 6, 5, 4, 3, 0)]
            assert c.post("/v1/events", headers=AUTH, json=batch(*visits, sent_at=NOW_MS)).status_code == 202
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS + 3 * DAY}).status_code == 202
        assert _quiet(store) == []
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS + 5 * DAY}).status_code == 202
        # NOW_MS is a Monday: +5 days is 4.4 working days, +10 is 8, +15 is 11 (weekends do not count)
        assert [(r, "every 4 working days" in e) for r, e in _quiet(store)] == [("d-eval", True)]
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS + 10 * DAY}).status_code == 202
        assert sorted({r for r, _ in _quiet(store)}) == ["d-eval", "d-pilot"]  # pilot: the default 7 days
        assert c.post("/v1/sites/test/clock", headers=AUTH, json={"now": NOW_MS + 15 * DAY}).status_code == 202
        assert sorted({r for r, _ in _quiet(store)}) == ["d-disc", "d-eval", "d-pilot"]  # never the closed one


@pytest.mark.parametrize("env, says", [({"DEALBEACON_CLOCK": "Wall"}, "DEALBEACON_CLOCK='Wall': must be one of: wall, external"),
                                       ({"DEALBEACON_STAGE_CADENCE_DAYS": "proposal=soon"}, "STAGE_CADENCE_DAYS"),
                                       ({"DEALBEACON_STAGES": "only"}, "at least two"),
                                       ({"DEALBEACON_WON_STAGES": "proposal"}, "WON_STAGES='proposal': must be among")])
def test_settings_that_cannot_work_refuse_to_start(tmp_path, env, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        Settings.from_env(env)
    out = subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "up", "--no-demo", "--data-dir", str(tmp_path)],
                         env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and says in out.stderr, (out.returncode, out.stderr[-500:])


def test_notice_links_open_the_sellers_page_on_the_deal(store):
    notice = Notice("n-1", "test", "deal-7", "sam", ({"severity": "high"},), NOW_MS, NOW_MS)
    link = notice_link("https://dealbeacon.example", notice)
    assert link.startswith("https://dealbeacon.example/seller?") and "room=deal-7" in link and "seller=sam" in link
    with make_client(store, reader=store.query_readonly, hub=__import__("ingest.sellers").sellers.AlertHub()) as c:
        page = c.get(link.removeprefix("https://dealbeacon.example"))
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "localStorage" in page.text  # the page finds the seller's token remembered on this device


def test_rooms_api_refuses_room_ids_the_event_contract_refuses(client, store):
    for room in ("deal%2F7", "deal%207", "d" * 129, "d%C3%A9al"):
        r = client.put(f"/v1/sites/test/rooms/{room}", headers=AUTH, json={"stage": "proposal"})
        assert r.status_code in (400, 404), (room, r.status_code)
        if r.status_code == 400:
            assert r.json()["field"] == "room_id"
    assert client.put("/v1/sites/test/rooms/deal:7@acme.x-1", headers=AUTH, json={"stage": "proposal"}).status_code == 202
    assert store.query("SELECT room_id FROM rooms FINAL") == [("deal:7@acme.x-1",)]
