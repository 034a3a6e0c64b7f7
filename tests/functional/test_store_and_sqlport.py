"""The schema on the real chdb engine, and the read-only SQL port over it."""
import orjson
import pytest
from starlette.testclient import TestClient

from dealbeacon.core import records
from dealbeacon.core.analysts import AnalystRegistry
from sinks.schema import COLUMNS, MIGRATIONS
from sinks.sqlengine import AnalystEngine, Limits
from sinks.sqlport import create_sql_app
from streams.processors import process
from tests.support.data import NOW_MS, event


def test_migrations_are_idempotent_and_match_the_column_map(store):
    assert store.migrate() == []  # already applied by the fixture; nothing re-applied
    assert [r[0] for r in store.query("SELECT version FROM schema_migrations FINAL ORDER BY version")] == \
        [v for v, _, _ in MIGRATIONS]
    for table, cols in COLUMNS.items():
        described = [(r[0], r[1]) for r in store.query(f"DESCRIBE TABLE {table}")]
        assert described == list(cols.items()), table


def test_insert_dedup_token_drops_a_replayed_batch(store):
    rec = records.accepted_event(event(), site="s", received_at=NOW_MS, ts=NOW_MS, token_status="none",
                                 stakeholder_id="", ip="", user_agent="")
    for _ in range(2):
        store.insert("events", process([rec], [])["events"], dedup_token="events/0/100-100")
    assert store.query("SELECT count() FROM events") == [(1,)]


def test_rows_as_json_arrays_are_stored_exactly_whatever_their_text_holds(store):
    """The sink's path: JSON arrays inserted without decoding. Values holding the literal's own delimiters
    (heredoc tags, quotes, backslashes, newlines) and edge values (nulls, a time before 1970, the largest
    ms the column takes) come back as they went in; the dicts path stores the same."""
    tricky = ["$dbk$", "$dbkx$) FORMAT x $dbk$", "it's", 'a"b', "back\\slash", "line\nbreak", "é😀", ""]
    recs = [records.accepted_event(event("link_click", href="https://x.example/" + t, props={"note": t}), site="s",
                                   received_at=NOW_MS, ts=ts, token_status="none", stakeholder_id="", ip="",
                                   user_agent=t)
            for t, ts in zip(tricky, (NOW_MS, 0, -86_400_000, 253_402_300_799_000, NOW_MS, NOW_MS, NOW_MS, NOW_MS))]
    rows = process(recs, [])["events"]
    rows[0]["page"] = None
    store.insert_json("events", [records.encode_many(rows[:3]), b"[]", records.encode_many(rows[3:])], "j/0/1-2")
    cols = "toString(event_id), href, user_agent, props, toUnixTimestamp64Milli(ts), page"
    got = sorted(store.query(f"SELECT {cols} FROM events"))
    want = sorted((r["event_id"], r["href"], r["user_agent"], r["props"], r["ts"], r["page"]) for r in rows)
    assert got == want
    store.execute("TRUNCATE TABLE events")
    store.insert("events", rows)
    assert sorted(store.query(f"SELECT {cols} FROM events")) == want


def test_inserts_leave_no_spool_file_and_stale_ones_are_cleared(store, tmp_path):
    """Each insert's rows go to chdb as a spool file: gone once the insert returns, and once it failed (rows
    that do not parse, whitespace and an empty array around them); files a crash left behind go at start."""
    import os
    import time

    from sinks.store import clear_stale

    rec = records.accepted_event(event(), site="s", received_at=NOW_MS, ts=NOW_MS, token_status="none",
                                 stakeholder_id="", ip="", user_agent="")
    store.insert_json("events", [b" \n" + records.encode_many(process([rec], [])["events"]) + b"\n ", b" [ ] "])
    with pytest.raises(Exception):
        store.insert_json("events", [b'[{"event_id": "not a uuid", "ts": "soon"}]'])
    assert os.listdir(store._spool) == []
    assert store.query(f"SELECT count() FROM events WHERE event_id = '{rec['event_id']}'") == [(1,)]
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_bytes(b"[]")
    new.write_bytes(b"[]")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert clear_stale(str(tmp_path), time.time() - 3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json"]


@pytest.fixture(scope="module")
def engine(chdb_store):
    eng = AnalystEngine(chdb_store.open_session, Limits(max_execution_s=20, max_memory_bytes=300_000_000))
    yield eng
    eng.close()


@pytest.fixture
def analysts_file(tmp_path):
    reg = AnalystRegistry()
    reg.add("ann", ["s"], "ann-pw")
    reg.add("bob", ["other"], "bob-pw")
    path = str(tmp_path / "analysts.json")
    reg.save(path)
    return path


@pytest.fixture
def sql(store, engine, analysts_file):
    for i in range(3):
        rec = records.accepted_event(event(room=f"r{i}"), site="s", received_at=NOW_MS, ts=NOW_MS, token_status="none",
                                     stakeholder_id="", ip="", user_agent="")
        store.insert("events", process([rec], [])["events"])
    return _client(create_sql_app(engine, analysts_file), ("ann", "ann-pw"))


def _client(app, auth=None):
    c = TestClient(app)
    if auth:
        c.auth = auth
    return c


def test_query_in_url_and_body_with_formats(sql):
    assert sql.get("/", params={"query": "SELECT count() FROM events"}).text == "3\n"
    r = sql.post("/", content="SELECT room_id FROM events ORDER BY room_id FORMAT JSONEachRow")
    assert [orjson.loads(line)["room_id"] for line in r.text.splitlines()] == ["r0", "r1", "r2"]
    assert r.headers["x-clickhouse-format"] == "JSONEachRow"
    r = sql.get("/", params={"query": "SELECT 1 AS one", "default_format": "JSONCompact", "wait_end_of_query": "1"})
    assert orjson.loads(r.text)["data"] == [[1]]
    assert sql.get("/ping").text == "Ok.\n" and sql.get("/").text == "Ok.\n"


def test_credentials_by_basic_auth_headers_and_url_and_516_without(sql):
    anon = _client(sql.app)
    for r in (anon.get("/", params={"query": "SELECT 1"}),
              anon.get("/", params={"query": "SELECT 1"}, auth=("ann", "wrong")),
              anon.get("/", params={"query": "SELECT 1"}, headers={"X-ClickHouse-User": "eve", "X-ClickHouse-Key": "x"})):
        assert r.status_code == 403 and r.headers["x-clickhouse-exception-code"] == "516"
        assert r.text.startswith("Code: 516.") and "Authentication failed" in r.text
    assert anon.get("/", params={"query": "SELECT 1"}, headers={"X-ClickHouse-User": "ann",
                                                                 "X-ClickHouse-Key": "ann-pw"}).text == "1\n"
    assert anon.get("/", params={"query": "SELECT 1", "user": "ann", "password": "ann-pw"}).text == "1\n"


def test_each_analyst_sees_only_its_sites_rows_in_the_engine(sql, store):
    rec = records.accepted_event(event(room="theirs"), site="other", received_at=NOW_MS, ts=NOW_MS,
                                 token_status="none", stakeholder_id="", ip="", user_agent="")
    store.insert("events", process([rec], [])["events"])
    for q in ("SELECT count() FROM events", "SELECT count() FROM events FINAL", "SELECT count() FROM default.events",
              "SELECT count() FROM (SELECT * FROM events) AS x", "WITH e AS (SELECT * FROM events) SELECT count() FROM e",
              "SELECT count() FROM events AS a JOIN events AS b USING (event_id)"):
        assert sql.get("/", params={"query": q}).text == "3\n", q
    bob = _client(sql.app, ("bob", "bob-pw"))
    assert bob.get("/", params={"query": "SELECT room_id FROM events"}).text == "theirs\n"
    assert bob.get("/", params={"query": "SELECT count() FROM events WHERE site = 's'"}).text == "0\n"


@pytest.mark.parametrize("query", [
    "INSERT INTO events (site) VALUES ('x')", "CREATE TABLE x (a Int8) ENGINE = Memory", "DROP TABLE events",
    "ALTER TABLE events DELETE WHERE 1", "SYSTEM STOP MERGES", "SET readonly = 0", "KILL QUERY WHERE 1",
    "OPTIMIZE TABLE events FINAL", "TRUNCATE TABLE events", "GRANT ALL ON *.* TO default",
])
def test_writes_ddl_and_admin_statements_are_refused(sql, store, query):
    r = sql.post("/", content=query)
    assert r.status_code in (400, 403), r.text
    assert r.headers["x-clickhouse-exception-code"] in ("164", "62"), r.text
    assert store.query("SELECT count() FROM events") == [(3,)]


@pytest.mark.parametrize("query,says", [
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
    ("SELECT * FROM `file`('/etc/passwd', 'LineAsString')", "table function file()"),
    ('SELECT * FROM "file"(\'/etc/passwd\', \'LineAsString\')', "table function file()"),
    ("SELECT file('/etc/hostname')", "function file()"),
    ("SELECT `file`('/etc/hostname')", "function file()"),
    ('SELECT "FILE"(\'/etc/hostname\')', "function FILE()"),
    ("SELECT x -> file(x)", "function file()"),
    ("SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')", "table function url()"),
    ("SELECT * FROM channels", "holds delivery credentials"),
    ('SELECT * FROM "channels"', "holds delivery credentials"),
    ("SELECT * FROM `default`.`channels`", "holds delivery credentials"),
    ("SELECT * FROM default.channels", "holds delivery credentials"),
    ("SELECT target FROM merge('default', '^chan')", "table function merge()"),
    ("SELECT * FROM view(SELECT * FROM channels)", "table function view()"),
    ("SELECT * FROM cluster('default', default.channels)", "table function cluster()"),
    ("SELECT * FROM system.disks", "system.disks is not served"),
    ('SELECT * FROM "system"."disks"', "system.disks is not served"),
    ("SELECT * FROM system.processes", "system.processes is not served"),
    ("SELECT * FROM room_state", "table room_state is not served"),
    ("SELECT 1 FROM numbers(10) WHERE 1 IN default.channels", "right of IN"),
    ("SELECT default.channels.target FROM events", "qualified with a database"),
    ("SELECT site IN channels FROM events", "right of IN"),
    ("SELECT joinGet('channels', 'target', 'x')", "function joinGet()"),
    ("SELECT dictGet('d', 'x', 1)", "function dictGet()"),
    ("SELECT getSetting('max_memory_usage')", "function getSetting()"),
    ("SELECT aiGenerate('x')", "function aiGenerate()"),
    ("SELECT demangle('x')", "function demangle()"),
    ("SELECT 1 INTO OUTFILE '/tmp/dealbeacon-outfile.csv'", "INTO OUTFILE"),
    ("SELECT 1 SETTINGS readonly = 0", "readonly mode"),
    ("SELECT count() FROM events SETTINGS additional_table_filters = {}", "readonly mode"),
    ("EXPLAIN SELECT * FROM channels", "holds delivery credentials"),
    ("SELECT 1; SELECT file('/etc/hostname')", "one statement"),
    ("EXPLAIN AST SELECT 1; SELECT * FROM channels", "one statement"),
    ("SELECT count() FROM numbers(1e12)", "capped"),
    ("SELECT `a\nFunction file` FROM events", "cannot verify"),
    ("SHOW PROCESSLIST", "not allowed"),
])
def test_outside_reaching_and_protected_reads_are_refused_however_written(sql, query, says):
    r = sql.post("/", content=query)
    assert r.status_code == 403, (query, r.status_code, r.text)
    assert says in r.text, (query, r.text)
    assert r.headers["x-clickhouse-exception-code"] in ("164", "497"), r.text
    import os

    assert not os.path.exists("/tmp/dealbeacon-outfile.csv")


def test_settings_in_the_url_are_refused(sql):
    for name in ("readonly", "max_memory_usage", "additional_table_filters", "max_execution_time"):
        r = sql.get("/", params={"query": "SELECT 1", name: "0"})
        assert r.status_code == 403 and f"'{name}'" in r.text and r.headers["x-clickhouse-exception-code"] == "164"


def test_ordinary_analytics_pass_the_allowlist(sql):
    for q in ("SELECT type, countIf(engaged_ms > 0), uniqExact(visitor_id), quantile(0.9)(engaged_ms) FROM events "
              "FINAL GROUP BY type",
              "SELECT toStartOfDay(ts) AS d, count() FROM events WHERE ts > now() - INTERVAL 1000 DAY GROUP BY d",
              "SELECT room_id, row_number() OVER (PARTITION BY site ORDER BY ts) FROM events",
              "SELECT arrayMap(x -> x * 2, [1, 2]), JSONExtractString(props, 'k'), if(1, 'a', 'b') FROM events",
              "SELECT * FROM deal_scores_latest", "SELECT count() FROM numbers(1000)",
              "DESCRIBE TABLE events", "EXISTS TABLE events", "SHOW TABLES", "EXPLAIN SELECT count() FROM events",
              "SELECT name FROM system.functions WHERE name = 'count'", "SELECT version(), timezone()",
              "select COUNT(*) from events", "SELECT sumIf(engaged_ms, type = 'x'), uniqExactMerge(s) FROM "
              "(SELECT uniqExactState(visitor_id) AS s, any(engaged_ms) AS engaged_ms, any(type) AS type FROM events)"):
        r = sql.post("/", content=q)
        assert r.status_code == 200, (q, r.text)


def test_limits_hold_heavy_queries(sql):
    r = sql.post("/", content="SELECT length(groupArray(number)) FROM numbers(400000000)")
    assert r.status_code == 400 and r.headers["x-clickhouse-exception-code"] in ("241", "158"), r.text
    r = sql.post("/", content="SELECT number FROM numbers(5000000) FORMAT TSV")
    assert r.status_code == 400 and r.headers["x-clickhouse-exception-code"] == "396", r.text[:300]


def test_body_is_capped_while_streaming(sql):
    r = sql.post("/", content=b"SELECT 1 -- " + b"x" * 400_000)
    assert r.status_code == 413 and r.headers["x-clickhouse-exception-code"] == "1001"


def test_engine_errors_come_back_in_clickhouse_form(sql):
    r = sql.get("/", params={"query": "SELECT nope FROM events"})
    assert r.status_code == 400, r.text
    assert r.text.startswith("Code: 47.") and r.headers["x-clickhouse-exception-code"] == "47"


def test_a_departed_clients_query_is_killed_in_the_engine(engine, analysts_file):
    import asyncio
    import time

    from dealbeacon.core.analysts import AnalystRegistry as Reg
    from sinks.sqlengine import QueryFailed

    ann = Reg.load(analysts_file).analysts["ann"]

    async def scenario():
        gone = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.5, gone.set_result, None)
        t0 = time.monotonic()
        with pytest.raises(QueryFailed, match="cancelled"):
            await engine.run(ann, "SELECT count() FROM numbers(1000000000) WHERE sipHash64(number) = 1", "TSV", gone)
        took = time.monotonic() - t0
        # the engine is free again at once: the same analyst's next query is admitted and answers
        result, _ = await engine.run(ann, "SELECT 1", "TSV")
        return took, result.bytes()

    took, second = asyncio.run(scenario())
    assert took < 5 and second == b"1\n", took
    assert engine.running() == 0


MIGRATION_6 = r'''
import sys
from sinks import schema
from sinks.store import ChdbStore
full = list(schema.MIGRATIONS)
store = ChdbStore(sys.argv[1])
schema.MIGRATIONS[:] = [m for m in full if m[0] < 6]
store.migrate()  # a database from before migration 6, with the old sentinels in it
store.execute("INSERT INTO deal_scores (site, room_id, at, velocity) VALUES ('s', 'young', 1, 1e9), ('s', 'idle', 1, -1), "
              "('s', 'real', 1, 0.75)")
store.execute("INSERT INTO stakeholder_scores (site, room_id, stakeholder_id, at, velocity) VALUES ('s', 'r', 'a', 1, 1e9)")
store.execute("INSERT INTO rooms (site, room_id, proposal_shared_at, updated_at) VALUES ('s', 'unset', 0, 1), "
              "('s', 'set', 1790000000, 1)")
schema.MIGRATIONS[:] = full
print(store.migrate())
print(store.query("SELECT room_id, velocity FROM deal_scores ORDER BY room_id"))
print(store.query("SELECT velocity FROM stakeholder_scores"))
print(store.query("SELECT room_id, toUnixTimestamp64Milli(proposal_shared_at) FROM rooms ORDER BY room_id"))
'''


def test_migration_6_turns_the_old_sentinels_into_null(tmp_path):
    """No sentinel values in tables: velocity 1e9 ("too young") and -1 ("no activity") and an unset
    proposal_shared_at (epoch 0) become NULL in a database written before migration 6 (a fresh chdb process)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", MIGRATION_6, str(tmp_path / "db")], capture_output=True, text=True,
                         timeout=120, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == str([v for v, _, _ in MIGRATIONS if v >= 6])
    assert lines[1] == "[('idle', None), ('real', 0.75), ('young', None)]"
    assert lines[2] == "[(None,)]"
    assert lines[3] == "[('set', 1790000000000), ('unset', None)]"
