import gzip

import pytest

from ingest.body import BodyError, decompress
from ingest.netinfo import truncate_ip
from ingest.ratelimit import RateLimiter
from sinks.sqlguard import Refused, check_tree, parse_tree, policy_from_catalog, precheck


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


POLICY = policy_from_catalog(
    [("count", 1, 1, "", "Aggregate Functions"), ("sum", 1, 1, "", "Aggregate Functions"),
     ("plus", 0, 0, "", "Arithmetic"), ("file", 0, 0, "", "Other"), ("lcase", 0, 1, "lower", ""),
     ("lower", 0, 1, "", "String"), ("aiGenerate", 0, 0, "", "AI"), ("toTypeName", 0, 0, "", "Other")],
    ["If", "Merge", "State", "OrNull"], ["events", "channels", "room_state"], max_numbers=1000)


def _tree(*lines):
    return "\n".join(lines) + "\n"


SELECT_FROM = ("SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 2)",
               "   ExpressionList (children 1)", "    Asterisk", "   TablesInSelectQuery (children 1)",
               "    TablesInSelectQueryElement (children 1)", "     TableExpression (children 1)")


def test_sql_guard_reads_the_engines_tree_and_its_format():
    text = _tree("SelectWithUnionQuery (children 2)", " ExpressionList (children 1)", "  SelectQuery (children 1)",
                 "   ExpressionList (children 2)", "    Function count (alias n) (children 1)",
                 "     ExpressionList", "    Function LCASE (children 1)", "     ExpressionList (children 1)",
                 "      Literal \\'A\\'", " Identifier JSONEachRow")
    assert check_tree(parse_tree(text), POLICY) == "JSONEachRow"


@pytest.mark.parametrize("lines, says", [
    (SELECT_FROM + ("      TableIdentifier channels",), "delivery credentials"),
    (SELECT_FROM + ("      TableIdentifier default.room_state",), "room_state is not served"),
    (SELECT_FROM + ("      TableIdentifier system.disks",), "system.disks"),
    (SELECT_FROM + ("      TableIdentifier other_db.events",), "database other_db"),
    (SELECT_FROM + ("      Function merge (children 1)", "       ExpressionList"), "table function merge()"),
    (SELECT_FROM + ("      Function numbers (children 1)", "       ExpressionList (children 1)",
                    "        Literal UInt64_1000000"), "capped at 1000"),
    (("SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 1)",
      "   ExpressionList (children 1)", "    Function file (children 1)", "     ExpressionList"), "function file()"),
    (("SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 1)",
      "   ExpressionList (children 1)", "    Function aiGenerate (children 1)", "     ExpressionList"), "aiGenerate()"),
    (("SelectWithUnionQuery (children 2)", " ExpressionList (children 1)", "  SelectQuery (children 1)",
      "   ExpressionList (children 1)", "    Literal UInt64_1", " Literal \\'/tmp/x\\'"), "INTO OUTFILE"),
    (("SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 2)",
      "   ExpressionList (children 1)", "    Literal UInt64_1", "   Set"), "SETTINGS are fixed"),
    (("InsertQuery (children 1)", " Identifier events"), "InsertQuery is not allowed"),
    (("SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 1)",
      "   ExpressionList (children 1)", "    Identifier a", "Function file", "    Literal UInt64_1"), "cannot verify"),
    (("SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 1)",
      "   ExpressionList (children 1)", "    Identifier a", "    Function file"), "cannot verify"),
])
def test_sql_guard_refuses_what_is_not_listed(lines, says):
    with pytest.raises(Refused) as info:
        check_tree(parse_tree(_tree(*lines)), POLICY)
    assert says in str(info.value)


def test_sql_guard_knows_aggregate_combinators_and_aliases():
    assert POLICY.function_allowed("countIf") and POLICY.function_allowed("sumStateIf")
    assert POLICY.function_allowed("COUNT") and POLICY.function_allowed("lcase") and POLICY.function_allowed("toTypeName")
    assert not POLICY.function_allowed("fileIf") and not POLICY.function_allowed("plusIf")
    assert not POLICY.function_allowed("file") and not POLICY.function_allowed("nosuch")


@pytest.mark.parametrize("sql, says", [("SELECT 1; SELECT 2", "one statement"), ("  ;; ", "empty"),
                                       ("SELECT ';'", "one statement"), ("SELECT 1\x00", "NUL")])
def test_sql_precheck_refuses_several_statements_before_any_parse(sql, says):
    with pytest.raises(Refused) as info:
        precheck(sql, 1000)
    assert says in str(info.value)
    assert precheck("SELECT 1;;  ", 1000) == "SELECT 1"


def test_bot_rules():
    from ingest.bots import is_bot

    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
    assert is_bot(googlebot, has_origin=True) and is_bot(googlebot, has_origin=False)
    assert not is_bot(chrome, has_origin=True)
    assert not is_bot("curl/7.88.1", has_origin=False)  # server-side sender with the site key
    assert is_bot("curl/7.88.1", has_origin=True)  # a tool pretending to be a page


def test_kraft_cluster_ids_never_start_with_a_dash():
    from dealbeacon.kafka.local import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]  # about 31 of 2000 raw draws start with '-'
    assert not any(i.startswith("-") for i in ids) and all(len(i) == 22 for i in ids)
