"""Analyst queries on the embedded chdb engine: parsed, judged, bounded and cancellable.

Each analyst gets its own engine sessions (at most ``max_concurrent`` at once), configured once and then made
``readonly=1`` so nothing in a query or its URL can change them:
- limits: ``max_execution_time``, ``max_memory_usage``, ``max_rows_to_read``, ``max_result_rows`` /
  ``max_result_bytes`` (throw), ``max_threads``; introspection off;
- tenancy: ``additional_table_filters`` restricts every analyst table to the analyst's sites inside the engine
  (it holds through views, joins, subqueries and FINAL).
A query is first parsed by the engine (``EXPLAIN AST``) and judged by ``sqlguard``; only then does it run, in a
thread pool of its own (ingest's hand-off never waits behind an analyst), on threads niced below ingest's.
Every running query carries a marker comment, so a client that leaves, or a shutdown, kills it in the engine.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass

from dealbeacon.core.analysts import Analyst
from dealbeacon.core.sqltext import sql_string

from .sqlguard import ANALYST_TABLES, Policy, Refused, check_tree, parse_tree, policy_from_catalog, precheck

log = logging.getLogger("dealbeacon.sql")
# tables (and views) with a site column: the tenancy filter applies to each
SITE_TABLES = tuple(sorted(ANALYST_TABLES))


@dataclass(frozen=True)
class Limits:
    max_execution_s: float = 30.0
    max_memory_bytes: int = 1_000_000_000
    max_rows_to_read: int = 2_000_000_000
    max_result_rows: int = 1_000_000
    max_result_bytes: int = 100_000_000
    max_threads: int = 1
    max_concurrent: int = 2  # per analyst
    pool: int = 2  # analyst queries running at once, all analysts together
    max_query_bytes: int = 256_000


class TooManyQueries(Refused):
    def __init__(self, name: str, cap: int):
        super().__init__(f"Too many simultaneous queries for user {name}. Maximum: {cap}", 202)


class QueryFailed(Exception):
    """The engine refused or failed the query; ``str`` is its ClickHouse-style message."""



def session_setup(analyst: Analyst, limits: Limits) -> list[str]:
    """The statements that configure an analyst's session; the last one makes it read-only."""
    stmts = [
        f"SET max_execution_time = {float(limits.max_execution_s)}, timeout_overflow_mode = 'throw', "
        f"max_memory_usage = {int(limits.max_memory_bytes)}, max_rows_to_read = {int(limits.max_rows_to_read)}, "
        f"read_overflow_mode = 'throw', max_result_rows = {int(limits.max_result_rows)}, "
        f"max_result_bytes = {int(limits.max_result_bytes)}, result_overflow_mode = 'throw', "
        f"max_threads = {int(limits.max_threads)}, os_thread_priority = 19, allow_introspection_functions = 0, "
        "allow_ddl = 0"]
    if not analyst.all_sites:
        cond = "site IN (" + ", ".join(sql_string(s) for s in analyst.sites) + ")"
        filters = ", ".join(f"{sql_string(t)}: {sql_string(cond)}" for t in SITE_TABLES)
        stmts.append("SET additional_table_filters = {" + filters + "}")
    stmts.append("SET readonly = 1")
    return stmts


def _nice_thread() -> None:
    with contextlib.suppress(OSError, AttributeError):  # Linux: a thread's own nice value
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class AnalystEngine:
    """``open_session(statements)`` opens a new engine session on the store and runs the statements in it."""

    def __init__(self, open_session, limits: Limits = Limits()):
        self.open_session, self.limits = open_session, limits
        self._idle: dict[tuple, list] = {}
        self._running: dict[str, set[str]] = {}  # analyst -> markers of its running queries
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(limits.pool, thread_name_prefix="analyst-sql",
                                                           initializer=_nice_thread)
        self._admin = open_session([])  # KILL QUERY and the catalogue; never runs analyst text
        self._policy: Policy | None = None
        self._closing = False
        self.killed = 0

    # -- the catalogue the guard needs
    def policy(self) -> Policy:
        if self._policy is None:
            fns = self._rows("SELECT name, is_aggregate, case_insensitive, alias_to, categories FROM system.functions")
            combs = [r[0] for r in self._rows("SELECT name FROM system.aggregate_function_combinators")]
            tables = [r[0] for r in self._rows("SELECT name FROM system.tables WHERE database = 'default'")]
            self._policy = policy_from_catalog([tuple(r) for r in fns], combs, tables,
                                               max_numbers=self.limits.max_rows_to_read)
        return self._policy

    def refresh(self) -> None:
        """Forget the catalogue (after migrations added tables)."""
        self._policy = None

    def _rows(self, sql: str) -> list[list]:
        import orjson

        out = self._admin.query(sql, "JSONCompactEachRow").bytes()
        return [orjson.loads(line) for line in out.splitlines() if line]

    # -- sessions
    def _session(self, analyst: Analyst):
        key = (analyst.name, analyst.sites)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if idle:
                return idle.pop()
        return self.open_session(session_setup(analyst, self.limits))

    def _release(self, analyst: Analyst, session) -> None:
        with self._lock:
            self._idle.setdefault((analyst.name, analyst.sites), []).append(session)

    # -- one query
    def judge(self, session, text: str) -> str | None:
        """Parse with the engine and judge the tree; returns the FORMAT named in the query."""
        try:
            printed = session.query("EXPLAIN AST " + text, "TabSeparatedRaw").bytes().decode("utf-8", "replace")
        except Exception as e:
            raise QueryFailed(str(e)) from None
        return check_tree(parse_tree(printed), self.policy())

    def _run(self, analyst: Analyst, text: str, fmt_default: str, marker: str):
        session = self._session(analyst)
        healthy = False
        try:
            named = self.judge(session, text)
            fmt = named or fmt_default
            if self._closing:  # shutting down: nothing new starts (see shutdown)
                raise QueryFailed("Code: 394. DB::Exception: the server is shutting down. (QUERY_WAS_CANCELLED)")
            try:
                result = session.query(f"/* {marker} */ {text}", fmt)
            except Exception as e:
                raise QueryFailed(str(e)) from None
            healthy = True
            return result, fmt
        finally:
            # a session whose query failed can hand the failed query's partial output to its next query (seen
            # with chdb 4.4 after a result-size limit): it is closed, never reused
            if healthy:
                self._release(analyst, session)
            else:
                with contextlib.suppress(Exception):
                    session.close()

    async def run(self, analyst: Analyst, sql: str, default_format: str, gone: asyncio.Future | None = None):
        """Run an analyst's query. Raises Refused (not allowed), TooManyQueries, QueryFailed (engine error).
        ``gone`` completes when the client disconnects: the query is then killed in the engine."""
        text = precheck(sql, self.limits.max_query_bytes)
        marker = "dbq:" + uuid.uuid4().hex
        with self._lock:
            running = self._running.setdefault(analyst.name, set())
            if len(running) >= self.limits.max_concurrent:
                raise TooManyQueries(analyst.name, self.limits.max_concurrent)
            running.add(marker)
        try:
            fut = asyncio.wrap_future(self._pool.submit(self._run, analyst, text, default_format, marker))
            if gone is not None:
                done, _ = await asyncio.wait({fut, gone}, return_when=asyncio.FIRST_COMPLETED)
                if fut not in done:
                    fut.cancel()  # still queued: never starts; already running: killed in the engine
                    await asyncio.to_thread(self.kill, marker)
                    with contextlib.suppress(BaseException):
                        await fut
                    raise QueryFailed("Code: 394. DB::Exception: the client went away; query cancelled. "
                                      "(QUERY_WAS_CANCELLED)")
            return await fut
        finally:
            with self._lock:
                running.discard(marker)

    def kill(self, marker: str) -> None:
        with contextlib.suppress(Exception):
            self._admin.query(f"KILL QUERY WHERE query LIKE {sql_string('%' + marker + '%')} "
                              "AND query NOT LIKE 'KILL%' ASYNC")
            self.killed += 1

    def running(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._running.values())

    def shutdown(self, grace_s: float = 10.0) -> None:
        """Kill every running analyst query and stop the pool (a shutdown never waits for a heavy query).

        Nothing new starts once this is called; a query that was between its checks and the engine when the
        first KILL ran is caught by the next: the kill repeats (in a daemon thread, every 100 ms, at most
        ``grace_s``) while analyst queries are still running."""
        self._closing = True
        self._kill_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.running():
            threading.Thread(target=self._keep_killing, args=(time.monotonic() + grace_s,), daemon=True).start()

    def _kill_all(self) -> None:
        with contextlib.suppress(Exception):
            self._admin.query("KILL QUERY WHERE query LIKE '%/* dbq:%' AND query NOT LIKE 'KILL%' ASYNC")

    def _keep_killing(self, deadline: float) -> None:
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
            self._kill_all()

    def close(self, grace_s: float = 10.0) -> None:
        """Shut down, keep killing until no analyst query runs (bounded), then close every session: the pool's
        threads must end for the process to exit, so the admin session stays open until they have."""
        self.shutdown(grace_s)
        self._keep_killing(time.monotonic() + grace_s)
        with self._lock:
            sessions = [s for v in self._idle.values() for s in v]
            self._idle.clear()
        for s in sessions + [self._admin]:
            with contextlib.suppress(Exception):
                s.close()
