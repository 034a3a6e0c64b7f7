"""The beacon on a room built like a modern single-page app (e2e/app-room.html): an app shell whose main pane
scrolls, a case study and a video player mounted after load, a long proposal with pages taller than the pane
(the last two rendered on demand, the page count declared by the markup), a table of contents with # links,
a section loaded when the end is reached and a routed tab rendered after pushState. What the scenario
measured is compared with the rows dealbeacon stored in ClickHouse."""
import collections
import subprocess
import time

import httpx
import orjson

from dealbeacon.core import tokens
from tests.support.browser import SNIPPET, room_stack, run_scenario, sql_reader, wait_stored

ROOM = "deal-spa"


def test_app_shell_room_lands_true_in_clickhouse(built_snippet, tmp_path):
    secret = "spa-secret"
    with room_stack(tmp_path, ROOM, "app-room.html", secret) as (site_url, srv):
        auth = {"Authorization": f"Bearer {secret}"}
        assert httpx.put(f"{srv.url}/v1/sites/acme/rooms/{ROOM}", headers=auth, json={
            "stage": "proposal", "owner": "sam", "name": "Northwind",
            "stakeholders": [{"id": "vp-ops", "role": "champion"}, {"id": "cfo", "role": "economic_buyer"}]}).status_code == 202
        token = tokens.mint(secret, ROOM, "vp-ops", int(time.time()) + 3600)
        out = run_scenario("app-scenario.mjs", f"{site_url}/r/{ROOM}/?dbt={token}", 240,
                           env={"PATH": "/usr/bin:/bin", "SCREENSHOT": str(tmp_path / "app-room.png")})
        sql = sql_reader(srv)
        wait_stored(sql, out)  # the scenario's last beacons (sent as the page closed) have landed

        assert out["payloads"] and out["invalid"] == [], out["invalid"][:2]
        assert sql("SELECT count() FROM dead_letters") == [[0]], sql("SELECT reason, detail FROM dead_letters")
        assert sql("SELECT DISTINCT stakeholder_id, token_status FROM events") == [["vp-ops", "valid"]]

        # every content item viewed, including those mounted after load, lazily loaded and routed
        viewed = {r[0] for r in sql("SELECT content_id FROM events FINAL WHERE type = 'content_view'")}
        assert viewed == {"case-study", "tour-video", "proposal", "security", "pricing"}, viewed
        # every page reached once, progress from the declared count (6) although 4 pages existed at first
        pages = sql("SELECT page, round(progress_pct, 1) FROM events FINAL WHERE type = 'content_progress' "
                    "AND content_id = 'proposal' ORDER BY client_ts")
        assert [p for p, _ in pages] == [1, 2, 3, 4, 5, 6], pages
        assert [pct for _, pct in pages] == [16.7, 33.3, 50, 66.7, 83.3, 100], pages
        # the video mounted after load: its milestones
        assert sql("SELECT groupArray(toUInt8(progress_pct)) FROM (SELECT progress_pct FROM events FINAL WHERE "
                   "type = 'content_progress' AND content_id = 'tour-video' ORDER BY client_ts)") == [[[25, 50, 75, 100]]]
        # the landing and the routed tab are room views; the # links (table of contents, overview) are not
        views = sql("SELECT url FROM events FINAL WHERE type = 'room_view' ORDER BY client_ts")
        assert len(views) == 2, views
        assert views[1][0].endswith(f"/r/{ROOM}/pricing") and out["url_end"].endswith("/pricing#overview")
        assert out["steps"]["after_toc"]["hash"] == "#proposal-p3" and abs(out["steps"]["after_toc"]["top"] - 60) < 2

        # engaged time per content item and per page, against what the scenario measured (+-3 s)
        stored = collections.Counter()
        for c, p, ms in sql("SELECT content_id, page, sum(engaged_ms) FROM events FINAL WHERE type = 'engagement' "
                            "GROUP BY content_id, page"):
            stored[(c, p)] += ms
            stored[(c, None)] += ms if p is not None else 0
        measured = collections.Counter()
        for t in out["truth"]:
            measured[(t["c"], t["p"])] += t["ms"]
            if t["p"] is not None:
                measured[(t["c"], None)] += t["ms"]
        report = {f"{c}:{p}": (measured[(c, p)], stored[(c, p)]) for c, p in sorted(measured, key=str)}
        assert set(report) == {"case-study:None", "tour-video:None", "proposal:None", "security:None", "pricing:None",
                               *(f"proposal:{n}" for n in range(1, 7))}, report
        print("engaged ms (measured, stored):", report)
        for key, (m, s) in report.items():
            assert abs(m - s) <= 3000, (key, report)
        # time on each proposal page is a real figure, not a share: every page was read for about 4 s
        assert all(3000 <= stored[("proposal", n)] <= 6000 for n in range(1, 7)), report

        # scroll depth of the pane (the document itself never scrolls), within 5 points of what the scenario saw
        mid = sql(f"SELECT max(scroll_pct) FROM events FINAL WHERE type = 'engagement' "
                  f"AND client_ts <= fromUnixTimestamp64Milli({out['t_mid']} + 100)")[0][0]
        print("depth mid", mid, out["depth_mid"], "pages", pages, "views", views)
        assert abs(mid - out["depth_mid"]) <= 5 and 20 < out["depth_mid"] < 80, (mid, out["depth_mid"])
        end = sql(f"SELECT max(scroll_pct) FROM events FINAL WHERE type = 'engagement' "
                  f"AND client_ts <= fromUnixTimestamp64Milli({out['t_route']} + 1000)")[0][0]
        assert abs(end - out["depth_before_route"]) <= 5, (end, out["depth_before_route"])

        # the seller's deal page renders the same reading, page by page (screenshot kept with the test's files)
        r = httpx.put(f"{srv.url}/v1/sites/acme/sellers/sam", headers=auth, json={"name": "Sam"})
        page_url = srv.url + r.json()["page"] + f"&room={ROOM}"
        shown = subprocess.run(["node", "e2e/deal-page.mjs", page_url, str(tmp_path / "deal-page.png")], cwd=SNIPPET,
                               capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr[-3000:]
        view = orjson.loads(shown.stdout.strip().splitlines()[-1])
        (doc,) = [row for row in view["rows"] if row["who"] == "vp-ops" and row["content"] == "proposal"]
        assert [p["page"] for p in doc["pages"]] == [1, 2, 3, 4, 5, 6] and doc["stopped"] == "page 6"
        for p in doc["pages"]:
            assert abs(p["s"] * 1000 - measured[("proposal", p["page"])]) <= 3000, (p, report)
        assert doc["time"].endswith(" s") and abs(int(doc["time"][:-2]) * 1000 - measured[("proposal", None)]) <= 3000
