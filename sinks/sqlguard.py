"""Read-only guard for the SQL port: refuse writes, DDL and table functions that reach files or the network,
with a clear message, before the engine sees the query. The engine session is also readonly=1 (backstop).
Pure: text in, verdict out.
"""
from __future__ import annotations

import re

ALLOWED_FIRST = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"}
# table functions that read or write outside the database, or run code
DENIED_FUNCTIONS = {
    "file", "filecluster", "url", "urlcluster", "input", "executable", "python", "remote", "remotesecure",
    "cluster", "clusterallreplicas", "jdbc", "odbc", "sqlite", "redis", "gcs", "cosn", "oss", "hudi",
    "arrowflight", "ytsaurus",
}
DENIED_TABLES = {"channels"}  # delivery targets (webhook and Slack URLs carry credentials)
DENIED_PREFIXES = ("s3", "azureblob", "iceberg", "hdfs", "deltalake", "mysql", "postgresql", "mongo", "paimon")

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted>"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>.)
""", re.S | re.X)


class Refused(Exception):
    """The query is not allowed on the read-only port."""


def _tokens(sql: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def check(sql: str) -> str | None:
    """Raise Refused for anything but a single read query. Returns the FORMAT named in the query, if any."""
    toks = _tokens(sql)
    while toks and toks[-1] == ("other", ";"):
        toks.pop()
    if not toks:
        raise Refused("empty query")
    if any(t == ("other", ";") for t in toks):
        raise Refused("only one statement per request")
    first = toks[0][1].upper() if toks[0][0] == "word" else toks[0][1]
    if first == "(":
        first = next((v.upper() for k, v in toks if k == "word"), "")
    if first not in ALLOWED_FIRST:
        raise Refused(f"the SQL port is read-only: {first} statements are refused "
                      f"(allowed: {', '.join(sorted(ALLOWED_FIRST))})")
    fmt = None
    for i, (kind, val) in enumerate(toks):
        if kind != "word":
            continue
        up = val.upper()
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if nxt == ("other", "("):
            low = val.lower()
            if low in DENIED_FUNCTIONS or low.startswith(DENIED_PREFIXES):
                raise Refused(f"the SQL port is read-only: table function {val}() reaches outside the database "
                              "and is refused")
        if val.lower() in DENIED_TABLES:
            raise Refused(f"the table {val} holds delivery credentials and is not served on the SQL port")
        if up == "INTO" and nxt[1].upper() == "OUTFILE":
            raise Refused("the SQL port is read-only: INTO OUTFILE is refused")
        if up == "FORMAT" and nxt[0] == "word":
            fmt = nxt[1]
    return fmt
