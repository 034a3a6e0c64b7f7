"""The beacon in real headless Chromium against the real ingest server in embedded mode: what lands in
ClickHouse after a visit that scrolls, dwells, watches, hides, navigates SPA-style, goes offline and closes."""
import time

from dealbeacon.core import tokens
from tests.support.browser import room_stack, run_scenario, sql_reader, wait_stored


def test_beacon_visit_lands_in_clickhouse(built_snippet, tmp_path):
    # the sales-room site (its own origin) and dealbeacon in embedded mode
    secret = "e2e-secret"
    with room_stack(tmp_path, "deal-e2e", "room.html", secret) as (site_url, srv):
        token = tokens.mint(secret, "deal-e2e", "cfo-jane", int(time.time()) + 3600)
        out = run_scenario("scenario.mjs", f"{site_url}/r/deal-e2e/?dbt={token}", 180)
        sql = sql_reader(srv)
        wait_stored(sql, out)  # the scenario's last beacons (sent as the page closed) have landed

        sent = [e for p in out["payloads"] for e in p["body"]["events"]]
        # every payload the snippet produced validates against the contract's JSON Schema
        assert out["payloads"] and out["invalid"] == [], out["invalid"][:2]
        # nothing lost: every event the browser sent is stored exactly once, and nothing was dead-lettered
        stored = {r[0] for r in sql("SELECT toString(event_id) FROM events FINAL")}
        assert {e["event_id"] for e in sent} <= stored
        # the rows Playwright did not see leave went by sendBeacon (hide and close)
        beaconed = {i for b in out["steps"]["beacons_on_hide"] for i in b["ids"]} | set(out["steps"]["last_event"])
        # (and the engaged time credited between the last snapshot and the close: only the pagehide beacon carried it)
        unseen = stored - {e["event_id"] for e in sent} - beaconed
        closing = sql(f"SELECT toString(event_id), type, client_ts >= fromUnixTimestamp64Milli({out['t_end']}) FROM events "
                      f"WHERE toString(event_id) IN ({','.join(repr(i) for i in unseen) or 'NULL'})")
        assert all(t == "engagement" and late for _, t, late in closing), closing
        twice = "SELECT type, ts, event_id, count() c FROM events GROUP BY ALL HAVING c > 1"
        assert sql("SELECT count() FROM events") == [[len(stored)]], sql(twice)  # and nothing twice
        assert sql("SELECT count() FROM dead_letters") == [[0]], sql("SELECT reason, detail FROM dead_letters")
        # identity: the link token verified; it was removed from the address bar; one visitor
        assert "dbt=" not in out["steps"]["url_after_load"]
        assert sql("SELECT DISTINCT stakeholder_id, token_status FROM events") == [["cfo-jane", "valid"]]
        assert sql("SELECT uniqExact(visitor_id), uniqExact(session_id) FROM events") == [[1, 1]]

        def types(where=""):
            return [r[0] for r in sql(f"SELECT type FROM events FINAL {where} ORDER BY ts")]

        assert types().count("room_view") == 2  # landing + SPA navigation
        assert sql("SELECT url FROM events WHERE type = 'room_view' ORDER BY ts")[1][0].endswith("/r/deal-e2e/pricing")
        assert {r[0] for r in sql("SELECT content_id FROM events WHERE type = 'content_view'")} >= {"proposal", "demo-video"}
        assert sql("SELECT groupArray(page) FROM (SELECT page FROM events WHERE type = 'content_progress' "
                   "AND content_id = 'proposal' ORDER BY page)") == [[[1, 2, 3, 4]]]
        assert sql("SELECT groupArray(toUInt8(progress_pct)) FROM (SELECT progress_pct FROM events WHERE "
                   "type = 'content_progress' AND content_id = 'demo-video' ORDER BY ts)") == [[[25, 50, 75, 100]]]
        watched = sql("SELECT JSONExtractFloat(props, 'watched_s') FROM events WHERE content_id = 'demo-video' "
                      "AND progress_pct = 100")[0][0]
        assert 6 <= watched <= 9  # 8 s of media, played at 4x
        # engaged time: heartbeats only while visible and active; the 3 s hidden are not counted
        engaged = sql("SELECT sum(engaged_ms) FROM events WHERE type = 'engagement'")[0][0]
        assert abs(engaged - out["visible_ms"]) <= 3000, (engaged, out["visible_ms"], out["hidden_ms"])
        # hiding the tab hands the queue to sendBeacon, and what it carried arrived
        hide = out["steps"]["beacons_on_hide"]
        assert hide and all(b["ok"] for b in hide), hide
        assert {i for b in hide for i in b["ids"]} <= stored
        assert sql("SELECT count() FROM events WHERE type = 'engagement' AND content_id = 'proposal'")[0][0] >= 3
        # offline: queued in localStorage, delivered after coming back online
        assert out["steps"]["queued_while_offline"] >= 3 and out["failed"] >= 1
        assert sql("SELECT count() FROM events WHERE type = 'download' AND href LIKE '%security-whitepaper.pdf'") == [[1]]
        assert sql("SELECT share_channel FROM events WHERE type = 'share' ORDER BY ts") == [["link"], ["email"]]
        assert sql("SELECT cta, props FROM events WHERE type = 'cta' ORDER BY ts") == [
            ["compare-plans", ""], ["request-quote", '{"plan":"enterprise"}']]
        # the pagehide beacon delivered what was queued right before close
        assert out["steps"]["last_event"] and set(out["steps"]["last_event"]) <= stored
        assert sql("SELECT share_to FROM events WHERE type = 'share' AND share_channel = 'email'") == [["legal@northwind.example"]]
