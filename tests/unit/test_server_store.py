"""ServerStore's columnar conversion (pure logic). No ClickHouse server >= 24 runs on this machine, so the
network half is exercised only by docker compose users; this pins what it sends."""
import datetime as dt

from dealbeacon.core import records
from sinks.schema import COLUMNS
from sinks.store import ServerStore, open_store
from streams.processors import process
from tests.support.data import NOW_MS, event


class RecordingClient:
    def __init__(self):
        self.calls = []

    def execute(self, sql, data=None, **kw):
        self.calls.append((sql, data, kw))
        return []


def test_columnar_insert_in_schema_order_with_utc_datetimes_and_dedup_token():
    store = ServerStore("clickhouse://u:p@ch:9000/db")
    store._local.client = client = RecordingClient()
    rec = records.accepted_event(event("content_progress", progress_pct=50), site="s", received_at=NOW_MS,
                                 ts=NOW_MS - 5, token_status="none", stakeholder_id="", ip="", user_agent="ua")
    rows = process([rec], [])["events"]
    store.insert("events", rows, dedup_token="t/0/1-9")
    sql, columns, kw = client.calls[0]
    assert sql == f"INSERT INTO events ({', '.join(COLUMNS['events'])}) VALUES"
    assert kw == {"columnar": True, "settings": {"max_partitions_per_insert_block": 1000,
                                                "insert_deduplication_token": "t/0/1-9"}}
    by_name = dict(zip(COLUMNS["events"], columns))
    assert by_name["ts"] == [dt.datetime.fromtimestamp((NOW_MS - 5) / 1000, dt.UTC)]
    assert by_name["event_id"] == [rec["event_id"]] and by_name["progress_pct"] == [50.0] and by_name["page"] == [3]
    assert by_name["scroll_pct"] == [None]  # Nullable stays NULL


def test_open_store_picks_the_backend_by_url():
    assert isinstance(open_store("clickhouse://ch:9000/db"), ServerStore)


def test_the_analyst_layers_rows_convert_for_a_server():
    """Quota periods are Dates, field history times UTC datetimes, the configured stages plain integers: the rows
    the state machine, the quotas API and ``sync_stages`` produce, as the server's driver receives them."""
    from sinks.kpi_sql import stage_rows
    from streams import deals

    store = ServerStore("clickhouse://u:p@ch:9000/db")
    store._local.client = client = RecordingClient()
    _, out = deals.step(None, [{"record": "room", "site": "s", "room_id": "r", "updated_at": NOW_MS, "owner": "ana",
                                "stage": "proposal", "amount": 1200.5, "expected_close": "2026-12-31"}])
    store.insert("deal_field_history", out["deal_field_history"])
    store.insert("quotas", [{"site": "s", "owner": "ana", "period": "2026-Q4", "period_start": "2026-10-01",
                             "period_end": "2026-12-31", "amount": 9e4, "updated_at": NOW_MS}])
    store.insert("deal_stages", stage_rows(("a", "won", "lost"), ("won", "lost"), ("won",), 7))
    (fields_sql, fields, _), (_, quotas, _), (_, stages, _) = client.calls
    assert fields_sql == f"INSERT INTO deal_field_history ({', '.join(COLUMNS['deal_field_history'])}) VALUES"
    history = dict(zip(COLUMNS["deal_field_history"], fields))
    assert sorted(zip(history["field"], history["new_value"])) == [
        ("amount", "1200.5"), ("expected_close", "2026-12-31"), ("owner", "ana"), ("stage", "proposal")]
    assert set(history["changed_at"]) == {dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC)}
    q = dict(zip(COLUMNS["quotas"], quotas))
    assert q["period_start"] == [dt.date(2026, 10, 1)] and q["period_end"] == [dt.date(2026, 12, 31)]
    s = dict(zip(COLUMNS["deal_stages"], stages))
    assert s["stage"] == ["a", "won", "lost"] and s["position"] == [1, 2, 3] and s["won"] == [0, 1, 0] and s["closed"] == [0, 1, 1]


def test_store_unavailable_tells_a_store_that_takes_nothing_from_a_refused_record():
    """Errors as both drivers raise them: clickhouse-driver's exceptions carry ``code``; chdb's RuntimeError
    carries "Code: N." at the start of its message (the real engine's refusal of a bad value is dead-lettered, not
    retried: tests/functional/test_local_log.py). Disk, memory, parts, network: the store; parse errors: the
    record."""
    from clickhouse_driver import errors

    from sinks.store import error_code, store_unavailable
    # chdb 26's text for SELECT toInt32('not a number') (no engine here: a second chdb session in the suite's
    # process would be refused)
    parse_error = RuntimeError("Code: 6. DB::Exception: Cannot parse string 'not a number' as Int32: syntax error "
                               "at begin of string. (CANNOT_PARSE_TEXT)")
    assert error_code(parse_error) == 6 and not store_unavailable(parse_error)
    for down in (RuntimeError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space"),
                 RuntimeError("Code: 241. DB::Exception: Memory limit (total) exceeded"),
                 errors.ServerException("DB::Exception: Too many parts (3000)", code=252),
                 errors.NetworkError("Code: 210. Connection refused (ch:9000)"), errors.SocketTimeoutError("x"),
                 ConnectionResetError(104, "reset"), EOFError()):
        assert store_unavailable(down), down
    for refused in (ValueError(), RuntimeError("Code: 53. DB::Exception: Type mismatch"),
                    errors.ServerException("DB::Exception: Cannot parse input", code=27),
                    RuntimeError("a message that only mentions Code: 243 later")):
        assert not store_unavailable(refused), refused
