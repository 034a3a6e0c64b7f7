"""ClickHouse stores: chdb in-process (embedded mode, or a sink given a local directory) and a
ClickHouse server through clickhouse-driver (distributed mode). Same schema, same row dicts.

Rows are dicts keyed by column; DateTime64 columns carry integer milliseconds since the epoch. All
methods block: callers on an event loop run them in a thread.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import re
import tempfile
import threading
import time
import urllib.parse
from typing import Any, Protocol

import orjson

from dealbeacon.core import records
from dealbeacon.core.sqltext import sql_string

from .schema import COLUMNS, migrate

_UTC = dt.UTC
# partitions are months: a server-side backfill may span Settings.max_backfill_days (~10 years, 122 months) in
# one group commit; ClickHouse's default of 100 would fail the whole batch, other clients' requests included
MAX_PARTITIONS_PER_INSERT = 1000


def _time_columns(table: str) -> list[str]:
    return [c for c, t in COLUMNS[table].items() if t.startswith(("DateTime64", "Nullable(DateTime64"))]


# ClickHouse error codes that say the engine cannot take anything now, whatever the rows: memory, disk, too many
# parts, timeouts, a read-only or shutting-down server, the network. A record refused with one of these is not a
# bad record: the writer keeps it and tries again later; dead-lettering it would lose good data that only met a
# bad moment (a store coming back between two records of an isolated request once dead-lettered all of them).
# Everything else (a type the engine cannot parse, a value out of range) is the record's own: dead-lettered.
UNAVAILABLE_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE (a connection cut mid-answer)
    102,  # UNEXPECTED_PACKET_FROM_SERVER (clickhouse-driver: a desynchronised connection)
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    243,  # NOT_ENOUGH_SPACE
    252,  # TOO_MANY_PARTS
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
})
_CODE = re.compile(r"\s*Code:\s*(\d+)\b")


def error_code(e: BaseException) -> int | None:
    """The ClickHouse error code of an engine error: clickhouse-driver's ``code`` attribute, or the leading
    "Code: N." of chdb's message; None for an error that carries none."""
    code = getattr(e, "code", None)
    if isinstance(code, int):
        return code
    m = _CODE.match(str(e))
    return int(m.group(1)) if m else None


def store_unavailable(e: BaseException) -> bool:
    """True when an insert failed because the store cannot take anything now (see UNAVAILABLE_CODES), or the
    connection failed (OSError, EOFError; clickhouse-driver's NetworkError and SocketTimeoutError carry codes 210
    and 209), not because of its rows."""
    if isinstance(e, (OSError, EOFError, TimeoutError, MemoryError)):
        return True
    return error_code(e) in UNAVAILABLE_CODES


class Store(Protocol):
    def insert(self, table: str, rows: list[dict], dedup_token: str | None = None) -> None: ...
    def insert_json(self, table: str, arrays: list[bytes], dedup_token: str | None = None) -> None: ...
    def query(self, sql: str) -> list[tuple]: ...
    def migrate(self) -> list[int]: ...
    def close(self) -> None: ...


# columns whose JSON input may also come in a record's own shape, and the expression that makes it the row's:
# ``events.props`` is the props object's JSON text, or "" for none. An event row (streams.processors.event_row)
# carries that text already; an accepted-event record (embedded mode inserts the records themselves, no row built
# in Python) carries the object, which the engine reads as its exact JSON text (objects read as strings), and an
# empty object must become "" as event_row makes it. Omitted fields take the structure's defaults ("", NULL, 0),
# which are event_row's defaults. Same rows either way (tests/functional/test_event_records.py).
_INPUT_EXPR = {("events", "props"): "if(props = '{}', '', props)"}


@functools.cache
def _json_insert_shape(table: str) -> tuple[str, str, str]:
    """Column list, SELECT list and format() structure of a table's JSON insert: DateTime64 columns read as
    Int64 milliseconds and converted (a bare integer would read as seconds)."""
    cols = COLUMNS[table]
    times = set(_time_columns(table))
    structure = ", ".join(f"{c} {('Nullable(Int64)' if t.startswith('Nullable') else 'Int64') if c in times else t}"
                          for c, t in cols.items())
    select = ", ".join(f"fromUnixTimestamp64Milli({c})" if c in times else _INPUT_EXPR.get((table, c), c) for c in cols)
    return ", ".join(cols), select, sql_string(structure)


def _array_items(array: bytes) -> memoryview:
    """The items of a JSON array (``[a,b]`` -> ``a,b``) as a view of its bytes; a bare object stays whole."""
    v = memoryview(array)
    start, end = 0, len(v)
    while start < end and v[start] in b" \t\r\n":
        start += 1
    while end > start and v[end - 1] in b" \t\r\n":
        end -= 1
    if start < end and v[start] == 0x5B:  # "["
        start, end = start + 1, end - 1
        while start < end and v[start] in b" \t\r\n":
            start += 1
        while end > start and v[end - 1] in b" \t\r\n":
            end -= 1
    return v[start:end]


def clear_stale(spool: str, before: float) -> int:
    """Remove the spool files last written before ``before`` (epoch seconds); returns how many."""
    removed = 0
    for entry in os.scandir(spool):
        try:
            if entry.is_file() and entry.stat().st_mtime < before:
                os.unlink(entry.path)
                removed += 1
        except OSError:  # removed meanwhile
            pass
    return removed


class ChdbStore:
    """chdb engine bound to ``path``. One per process; a second process on the same path fails."""

    reads_event_records = True  # ``insert("events", ...)`` takes accepted-event records as well as rows (_INPUT_EXPR)

    def __init__(self, path: str):
        import chdb  # imported here so a server-only deployment does not load the engine

        self.path = path
        self._conn = chdb.connect(path)
        self._lock = threading.Lock()
        self._readonly = None
        # inserts hand chdb their rows as a file it reads itself (see _insert_json); files a crash left behind
        # (an hour old: never one another store on the same directory is inserting) are removed here
        self._spool = os.path.join(path, "dealbeacon-insert-spool")
        os.makedirs(self._spool, exist_ok=True)
        clear_stale(self._spool, time.time() - 3600)

    def open_session(self, statements: list[str]):
        """A new session on the same engine, configured by ``statements`` (e.g. limits, then readonly)."""
        import chdb

        session = chdb.connect(self.path)
        for sql in statements:
            session.query(sql)
        return session

    def readonly_session(self):
        """The server's own read session (seller page, analytics dashboard, model refit): readonly=1, introspection
        off, each query bounded in time and memory."""
        if self._readonly is None:
            self._readonly = self.open_session(["SET allow_introspection_functions = 0", "SET max_execution_time = 120",
                                                "SET max_memory_usage = 2000000000", "SET readonly = 1"])
        return self._readonly

    def execute(self, sql: str) -> None:
        with self._lock:
            self._conn.query(sql)

    def query_readonly(self, sql: str) -> list[list]:
        """A read on the readonly=1 session (the seller page's queries)."""
        out = self.readonly_session().query(sql, "JSONCompactEachRow").bytes()
        return [orjson.loads(line) for line in out.splitlines() if line]

    def query(self, sql: str) -> list[tuple]:
        with self._lock:  # the writer's thread reads room states between inserts made from other threads
            out = self._conn.query(sql, "JSONCompactEachRow").bytes()
        return [tuple(orjson.loads(line)) for line in out.splitlines() if line]

    def migrate(self) -> list[int]:
        return migrate(self.execute, lambda sql: [r[0] for r in self.query(sql)])

    def insert(self, table: str, rows: list[dict], dedup_token: str | None = None) -> None:
        if rows:
            self._insert_json(table, [orjson.dumps(rows)], dedup_token)

    def insert_json(self, table: str, arrays: list[bytes], dedup_token: str | None = None) -> None:
        """Rows as they travel (JSON arrays of row objects, e.g. Kafka messages), inserted without decoding them."""
        self._insert_json(table, arrays, dedup_token)

    def _insert_json(self, table: str, arrays: list[bytes], dedup_token: str | None) -> None:
        # the rows' own JSON (one orjson call, or the arrays as they came) written to a spool file as one array
        # (each array's items, no copy of them in memory) that chdb reads with file(..., JSONEachRow), times as
        # integer milliseconds converted in the SELECT. No Python work per row; 1.7x the rate of the same JSON
        # inlined in the query as a heredoc literal (the query parser scans every byte of it), which was itself
        # 1.5x per-row positional arrays (bench/stream_bench.py --parts sink). The file is the engine's input,
        # not a copy of record: deleted once the insert returns or fails.
        items = [m for m in (_array_items(a) for a in arrays) if len(m)]
        if not items:
            return
        cols, select, structure = _json_insert_shape(table)
        settings = (f"max_partitions_per_insert_block = {MAX_PARTITIONS_PER_INSERT}, input_format_skip_unknown_fields = 1, "
                    "input_format_json_read_objects_as_strings = 1")
        if dedup_token:
            settings += ", insert_deduplication_token = " + sql_string(dedup_token)
        fd, name = tempfile.mkstemp(suffix=".json", dir=self._spool)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"[")
                for i, m in enumerate(items):
                    if i:
                        f.write(b",")
                    f.write(m)
                f.write(b"]")
            sql = (f"INSERT INTO {table} ({cols}) SELECT {select} FROM file({sql_string(name)}, JSONEachRow, "
                   f"{structure}) SETTINGS {settings}")
            with self._lock:
                self._conn.query(sql)
        finally:
            os.unlink(name)

    def close(self) -> None:
        for c in (self._readonly, self._conn):
            if c is not None:
                c.close()


class ServerStore:
    """A ClickHouse server over the native protocol (clickhouse-driver, columnar inserts).

    A clickhouse-driver Client is not thread-safe: one per thread."""

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()

    def _client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            from clickhouse_driver import Client

            c = self._local.client = Client.from_url(self.url)
        return c

    def execute(self, sql: str) -> None:
        self._client().execute(sql)

    def query(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self._client().execute(sql)]

    def migrate(self) -> list[int]:
        return migrate(self.execute, lambda sql: [r[0] for r in self.query(sql)])

    def insert(self, table: str, rows: list[dict], dedup_token: str | None = None) -> None:
        if not rows:
            return
        cols = COLUMNS[table]
        times = set(_time_columns(table))
        columns = []
        for c, ctype in cols.items():
            default = None if ctype.startswith("Nullable") else (0 if c in times or "Int" in ctype else "")
            values: list[Any] = [r.get(c, default) for r in rows]
            if c in times:
                values = [None if v is None else dt.datetime.fromtimestamp(v / 1000, _UTC) for v in values]
            elif "Date" in ctype and "DateTime" not in ctype:  # ISO dates ('2026-12-31') or None
                values = [dt.date.fromisoformat(v) if v else None for v in values]
            columns.append(values)
        settings: dict[str, Any] = {"max_partitions_per_insert_block": MAX_PARTITIONS_PER_INSERT}
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        self._client().execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES", columns,
                               columnar=True, settings=settings)

    def insert_json(self, table: str, arrays: list[bytes], dedup_token: str | None = None) -> None:
        """Rows as they travel (JSON arrays of row objects): decoded, then a columnar insert."""
        self.insert(table, [r for a in arrays for r in records.decode_many(a)], dedup_token)

    def close(self) -> None:
        c = getattr(self._local, "client", None)
        if c is not None:
            c.disconnect()


def open_store(url_or_path: str) -> Store:
    """``clickhouse://...`` -> ServerStore; anything else is a chdb data directory."""
    if urllib.parse.urlparse(url_or_path).scheme in ("clickhouse", "clickhouses"):
        return ServerStore(url_or_path)
    return ChdbStore(url_or_path)
