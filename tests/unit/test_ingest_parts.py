import gzip

import pytest

from ingest.body import BodyError, decompress
from ingest.netinfo import truncate_ip
from ingest.ratelimit import RateLimiter
from sinks.sqlguard import Refused, check


def test_rate_limiter_refills_with_explicit_clock():
    rl = RateLimiter(rate=10, burst=20)
    assert rl.take("s", 20, now=0.0) == 0.0
    wait = rl.take("s", 5, now=0.0)
    assert wait == pytest.approx(0.5)
    assert rl.take("s", 5, now=0.5) == 0.0
    assert rl.take("other", 20, now=0.5) == 0.0  # buckets are per site


def test_ip_truncation():
    assert truncate_ip("203.0.113.77") == "203.0.113.0"
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert truncate_ip("::ffff:198.51.100.9") == "198.51.100.0"
    assert truncate_ip("not-an-ip") == ""


def test_gzip_by_header_and_by_magic_bytes():
    raw = b'{"a": 1}'
    assert decompress(gzip.compress(raw), "gzip", 100) == raw
    assert decompress(gzip.compress(raw), "", 100) == raw
    assert decompress(raw, "", 100) == raw


def test_gzip_bomb_is_refused_without_inflating_it():
    bomb = gzip.compress(b"0" * 50_000_000)
    with pytest.raises(BodyError) as info:
        decompress(bomb, "gzip", 1_000_000)
    assert (info.value.status, info.value.reason) == (413, "decompressed_too_large")


def test_bad_gzip_and_unknown_encoding():
    with pytest.raises(BodyError) as info:
        decompress(b"\x1f\x8bnot gzip", "gzip", 100)
    assert info.value.reason == "bad_gzip"
    with pytest.raises(BodyError) as info:
        decompress(b"x", "br", 100)
    assert info.value.status == 415


@pytest.mark.parametrize("sql", [
    "SELECT 1", "select count() from events FINAL", "WITH x AS (SELECT 1) SELECT * FROM x",
    "SHOW TABLES", "DESCRIBE TABLE events", "EXPLAIN SELECT 1", "SELECT 'drop table x; insert'",
    "SELECT 1;", "/* hi */ SELECT 1 -- bye", "(SELECT 1) UNION ALL (SELECT 2)",
])
def test_sql_guard_allows_reads(sql):
    check(sql)


@pytest.mark.parametrize("sql, words", [
    ("INSERT INTO events VALUES (1)", "INSERT"), ("CREATE TABLE x (a Int8) ENGINE=Memory", "CREATE"),
    ("DROP TABLE events", "DROP"), ("ALTER TABLE events DELETE WHERE 1", "ALTER"), ("TRUNCATE TABLE events", "TRUNCATE"),
    ("SYSTEM STOP MERGES", "SYSTEM"), ("SET readonly = 0", "SET"), ("OPTIMIZE TABLE events", "OPTIMIZE"),
    ("SELECT * FROM file('/etc/passwd')", "file()"), ("SELECT * FROM url('http://x', CSV)", "url()"),
    ("select * from S3('http://x')", "S3()"), ("SELECT * FROM remote('h', default.events)", "remote()"),
    ("SELECT * FROM Python(x)", "Python()"), ("SELECT * FROM events INTO OUTFILE '/tmp/x'", "OUTFILE"),
    ("SELECT 1; DROP TABLE events", "one statement"), ("SELECT * FROM mysql('h','d','t','u','p')", "mysql()"),
])
def test_sql_guard_refuses_writes_ddl_and_outside_table_functions(sql, words):
    with pytest.raises(Refused) as info:
        check(sql)
    assert words in str(info.value)


def test_sql_guard_reports_format_clause():
    assert check("SELECT 1 FORMAT JSONEachRow") == "JSONEachRow"
    assert check("SELECT format('{}', 1)") is None


def test_bot_rules():
    from ingest.bots import is_bot

    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
    assert is_bot(googlebot, has_origin=True) and is_bot(googlebot, has_origin=False)
    assert not is_bot(chrome, has_origin=True)
    assert not is_bot("curl/7.88.1", has_origin=False)  # server-side sender with the site key
    assert is_bot("curl/7.88.1", has_origin=True)  # a tool pretending to be a page


def test_kraft_cluster_ids_never_start_with_a_dash():
    from dealbeacon.kafka_local import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]  # about 31 of 2000 raw draws start with '-'
    assert not any(i.startswith("-") for i in ids) and all(len(i) == 22 for i in ids)
