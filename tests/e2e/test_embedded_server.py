"""Fresh data dir -> `dealbeacon up` -> curl a batch -> clickhouse-connect on the SQL port sees it."""
import gzip
import shutil
import subprocess
import sys
import time

import clickhouse_connect
import orjson
import pytest

from tests.support.data import SQL_AUTH, event
from tests.support.waiting import wait_until


def _add_site(data_dir, key="acme"):
    out = subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "site", "add", key, "--origin", "https://rooms.acme.test",
                          "--data-dir", str(data_dir)], check=True, capture_output=True, text=True).stdout
    return orjson.loads(out)


def _curl(url, body: bytes, *headers):
    assert shutil.which("curl"), "curl is part of the test setup"
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "-X", "POST", url, "-H", "Content-Type: text/plain",
                          *[a for h in headers for a in ("-H", h)], "--data-binary", "@-"],
                         input=body, capture_output=True, check=True).stdout.decode()
    text, status = out.rsplit("\n", 1)
    return int(status), text


def _batch(n, site="acme"):
    now = int(time.time() * 1000)
    return {"site": site, "sent_at": now, "events": [event("engagement", ts=now - 1000, room="deal-1") for _ in range(n)]}


def test_curl_batch_then_clickhouse_connect_count_and_restart_keeps_data(server_factory, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _add_site(data)
    srv = server_factory("--no-demo", data_dir=data).start()
    status, text = _curl(srv.url + "/v1/events", orjson.dumps(_batch(7)))
    assert status == 202 and orjson.loads(text) == {"accepted": 7, "rejected": []}
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=srv.sql_port, username=SQL_AUTH[0], password=SQL_AUTH[1])
    # a 202 is the local log's; the writer applies it to chdb within its interval (250 ms)
    wait_until(lambda: ch.query("SELECT count() FROM events").result_rows == [(7,)], timeout=10, what="7 events stored")
    assert ch.query("SELECT sum(engaged_ms) FROM events FINAL").result_rows == [(7 * 15_000,)]
    assert srv.stop() == 0
    srv2 = server_factory("--no-demo", data_dir=data)
    srv2.start()
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=srv2.sql_port, username=SQL_AUTH[0], password=SQL_AUTH[1])
    assert ch.query("SELECT count() FROM events").result_rows == [(7,)]


@pytest.mark.parametrize("sql", ["INSERT INTO events (site) VALUES ('x')", "CREATE TABLE t (a Int8) ENGINE = Memory",
                                 "DROP TABLE events", "ALTER TABLE events DELETE WHERE 1",
                                 "SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')"])
def test_sql_port_refuses_writes_via_clickhouse_connect(server_factory, tmp_path, sql):
    srv = server_factory("--no-demo").start()
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=srv.sql_port, username=SQL_AUTH[0], password=SQL_AUTH[1])
    with pytest.raises(Exception, match="read-only|not allowed on the SQL port"):
        ch.command(sql)
    assert ch.query("SELECT count() FROM events").result_rows == [(0,)]


def test_demo_mode_feeds_simulated_rooms(server_factory, tmp_path):
    srv = server_factory().start()  # no flags: demo site + simulated traffic
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=srv.sql_port, username=SQL_AUTH[0], password=SQL_AUTH[1])
    wait_until(lambda: len(ch.query("SELECT DISTINCT room_id FROM events").result_rows) >= 2, every=0.5,
               what="demo traffic in two rooms")
    types = {r[0] for r in ch.query("SELECT DISTINCT type FROM events").result_rows}
    assert {"room_view", "content_view", "engagement"} <= types
    # the live demo visitors carry valid stakeholder tokens; the seeded history (stored alongside, sooner or later
    # depending on how fast the writer goes) also has anonymous visitors, without a token, and nothing else
    live = "user_agent LIKE 'dealbeacon-demo/%'"
    wait_until(lambda: ch.query(f"SELECT count() FROM events WHERE {live}").result_rows[0][0] > 0, every=0.5,
               what="live demo visits")
    verified = ch.query(f"SELECT countIf(token_status = 'valid'), count() FROM events WHERE {live}").result_rows[0]
    assert verified[0] == verified[1] > 0
    assert {r[0] for r in ch.query("SELECT DISTINCT token_status FROM events").result_rows} <= {"valid", "none"}
    # the simulated history is scored, and the wall-clock ticker (first tick ~10 s after start) raises alerts
    def scored():
        got = ch.query("SELECT uniqExact(room_id), (SELECT count() FROM alerts WHERE kind = 'quiet') "
                       "FROM deal_scores_latest").result_rows[0]
        return got[0] >= 15 and got[1] > 0  # simulated deals + 3 live rooms; quiet deals flagged
    try:
        wait_until(scored, timeout=120, every=1, what="simulated deals scored and quiet ones flagged")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{srv.log()}") from None
    assert ch.query("SELECT count() FROM rooms FINAL WHERE stakeholders != '[]'").result_rows[0][0] >= 15
    import httpx

    page = httpx.get(srv.url + "/demo")  # the demo room a newcomer opens, with the beacon served alongside
    assert page.status_code == 200 and 'data-site="demo"' in page.text
    assert httpx.get(srv.url + "/snippet/v1/dealbeacon.js").headers["cache-control"].startswith("public")
    # the beacon on the wire, as curl fetches it: gzip, within the 3 KB budget
    wire = tmp_path / "beacon.gz"
    head = subprocess.run(["curl", "-s", "-D", "-", "-o", str(wire), "-H", "Accept-Encoding: gzip",
                           srv.url + "/snippet/v1/dealbeacon.js"], capture_output=True, text=True, timeout=30).stdout.lower()
    assert "content-encoding: gzip" in head and 1000 < wire.stat().st_size <= 3072, (head, wire.stat().st_size)
    assert b"dealbeacon" in gzip.decompress(wire.read_bytes())


def test_room_state_survives_a_restart(server_factory, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    site = _add_site(data)
    srv = server_factory("--no-demo", data_dir=data).start()
    auth = {"Authorization": f"Bearer {site['secret']}"}
    import httpx

    r = httpx.put(srv.url + "/v1/sites/acme/rooms/deal-1", headers=auth,
                  json={"stage": "demo", "stakeholders": [{"id": "ops", "role": "champion"}, {"id": "it", "role": "technical"}]})
    assert r.status_code == 202, r.text
    assert _curl(srv.url + "/v1/events", orjson.dumps(_batch(2)))[0] == 202
    assert srv.stop() == 0
    srv2 = server_factory("--no-demo", data_dir=data)
    srv2.start()
    assert _curl(srv2.url + "/v1/events", orjson.dumps(_batch(1)))[0] == 202
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=srv2.sql_port, username=SQL_AUTH[0], password=SQL_AUTH[1])
    wait_until(lambda: ch.query("SELECT count() FROM events").result_rows == [(3,)], timeout=10, what="3 events stored")
    # the third event continues the room's state: invited committee still known, engaged time still summed
    assert ch.query("SELECT invited FROM deal_scores_latest").result_rows == [(2,)]
    assert ch.query("SELECT reasons FROM stakeholder_scores_latest").result_rows[0][0] == '[["engagement",0.75]]'


def test_kill_9_with_logged_records_not_yet_applied_then_every_202d_event_is_stored_once(server_factory, tmp_path):
    """The local log decides the 202: with the writer held back, concurrent clients get their 202s while chdb
    holds nothing; the process is killed (-9); the restarted one replays the log and every 202'd event is in
    the events table exactly once (counted without FINAL), and the room's state machine ran over them."""
    import concurrent.futures

    import httpx

    data = tmp_path / "data"
    data.mkdir()
    site = _add_site(data)
    srv = server_factory("--no-demo", data_dir=data, env={"DEALBEACON_EMBEDDED_APPLY_MS": "600000"}).start()
    auth = {"Authorization": f"Bearer {site['secret']}"}
    assert httpx.put(srv.url + "/v1/sites/acme/rooms/deal-1", headers=auth,
                     json={"stage": "demo", "stakeholders": [{"id": "ops", "role": "champion"}]}).status_code == 202

    def send(i):
        body = _batch(100)
        r = httpx.post(srv.url + "/v1/events", content=orjson.dumps(body), headers={"Content-Type": "text/plain"})
        return r.status_code, [e["event_id"] for e in body["events"]]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(15)))
    accepted = [eid for status, ids in answers if status == 202 for eid in ids]
    assert len(accepted) == 1500, [s for s, _ in answers]
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=srv.sql_port, username=SQL_AUTH[0], password=SQL_AUTH[1])
    assert ch.query("SELECT count() FROM events").result_rows == [(0,)]  # in the log only
    srv.proc.kill()
    srv.proc.wait()
    srv2 = server_factory("--no-demo", data_dir=data).start()
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=srv2.sql_port, username=SQL_AUTH[0], password=SQL_AUTH[1])
    wait_until(lambda: ch.query("SELECT count() FROM events").result_rows[0][0] >= 1500, what="the log replayed")
    time.sleep(1)  # deliberate: a second copy, if the replay wrote one, lands within the writer's interval
    stored = [r[0] for r in ch.query("SELECT toString(event_id) FROM events").result_rows]
    assert len(stored) == 1500 and set(stored) == set(accepted)
    assert ch.query("SELECT sum(engaged_ms) FROM events").result_rows == [(1500 * 15_000,)]
    assert ch.query("SELECT room_id, stage FROM deal_scores_latest").result_rows == [("deal-1", "demo")]
