"""The schema on the real chdb engine, and the read-only SQL port over it."""
import orjson
import pytest
from starlette.testclient import TestClient

from dealbeacon import records
from sinks.schema import COLUMNS, MIGRATIONS
from sinks.sqlport import create_sql_app
from streams.processors import process
from tests.helpers import NOW_MS, event


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


@pytest.fixture
def sql(store):
    for i in range(3):
        rec = records.accepted_event(event(room=f"r{i}"), site="s", received_at=NOW_MS, ts=NOW_MS, token_status="none",
                                     stakeholder_id="", ip="", user_agent="")
        store.insert("events", process([rec], [])["events"])
    return TestClient(create_sql_app(store.readonly_session()))


def test_query_in_url_and_body_with_formats(sql):
    assert sql.get("/", params={"query": "SELECT count() FROM events"}).text == "3\n"
    r = sql.post("/", content="SELECT room_id FROM events ORDER BY room_id FORMAT JSONEachRow")
    assert [orjson.loads(line)["room_id"] for line in r.text.splitlines()] == ["r0", "r1", "r2"]
    assert r.headers["x-clickhouse-format"] == "JSONEachRow"
    r = sql.get("/", params={"query": "SELECT 1 AS one", "default_format": "JSONCompact", "max_threads": "2",
                             "wait_end_of_query": "1"})
    assert orjson.loads(r.text)["data"] == [[1]]
    assert sql.get("/ping").text == "Ok.\n" and sql.get("/").text == "Ok.\n"


@pytest.mark.parametrize("query", [
    "INSERT INTO events (site) VALUES ('x')", "CREATE TABLE x (a Int8) ENGINE = Memory", "DROP TABLE events",
    "ALTER TABLE events DELETE WHERE 1", "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')",
])
def test_writes_ddl_and_outside_table_functions_are_refused(sql, store, query):
    r = sql.post("/", content=query)
    assert r.status_code == 403 and "read-only" in r.text and r.headers["x-clickhouse-exception-code"] == "164"
    assert store.query("SELECT count() FROM events") == [(3,)]


def test_engine_session_is_readonly_even_past_the_guard(store):
    import chdb  # noqa: F401  the backstop: the session itself refuses writes

    with pytest.raises(Exception, match="readonly"):
        store.readonly_session().query("INSERT INTO dead_letters (site) VALUES ('x')")


def test_engine_errors_come_back_in_clickhouse_form(sql):
    r = sql.get("/", params={"query": "SELECT nope FROM events"})
    assert r.status_code == 400 and r.text.startswith("Code: 47.") and r.headers["x-clickhouse-exception-code"] == "47"
