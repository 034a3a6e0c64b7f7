"""A read-only SQL port speaking the ClickHouse HTTP interface over the embedded chdb engine.

Enough of the protocol for curl, clickhouse-connect and Grafana: ``GET /?query=`` or the query in a POST
body (query param + body are joined, as ClickHouse does), ``default_format``, a FORMAT clause passed
through to the engine, other settings params tolerated and ignored, ``/ping``, errors as
``Code: N. DB::Exception: ...`` with ``X-ClickHouse-Exception-Code``. Refused statements answer 403.
"""
from __future__ import annotations

import asyncio
import re
import uuid

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .sqlguard import Refused, check

MAX_QUERY_BYTES = 1_000_000
_CODE = re.compile(r"Code: (\d+)")
_MEDIA = {"json": "application/json; charset=UTF-8", "csv": "text/csv; charset=UTF-8",
          "tabseparated": "text/tab-separated-values; charset=UTF-8", "tsv": "text/tab-separated-values; charset=UTF-8"}


def _media_type(fmt: str) -> str:
    low = fmt.lower()
    for prefix, media in _MEDIA.items():
        if low.startswith(prefix):
            return media
    return "application/octet-stream" if low.startswith(("native", "rowbinary", "arrow", "parquet")) else "text/plain; charset=UTF-8"


def _error(status: int, code: int, message: str, name: str) -> Response:
    body = f"Code: {code}. DB::Exception: {message}. ({name}) (dealbeacon SQL port)\n"
    return PlainTextResponse(body, status_code=status, headers={"X-ClickHouse-Exception-Code": str(code)})


def create_sql_app(session, *, server_name: str = "dealbeacon") -> Starlette:
    """``session`` is a chdb connection set to readonly=1 (ChdbStore.readonly_session())."""

    def run(sql: str, fmt: str):
        return session.query(sql, fmt)

    async def handle(request: Request) -> Response:
        params = request.query_params
        query = params.get("query", "")
        if request.method == "POST":
            body = await request.body()
            if len(body) > MAX_QUERY_BYTES:
                return _error(413, 1001, "query too large", "QUERY_IS_TOO_LARGE")
            if body:
                query = f"{query} {body.decode('utf-8', 'replace')}" if query else body.decode("utf-8", "replace")
        if not query.strip():
            return PlainTextResponse("Ok.\n")
        if params.get("database", "default") != "default":
            return _error(404, 81, f"Database {params['database']} does not exist", "UNKNOWN_DATABASE")
        try:
            named_format = check(query)
        except Refused as e:
            return _error(403, 164, str(e), "READONLY")
        fmt = named_format or params.get("default_format") or "TabSeparated"
        try:
            result = await asyncio.to_thread(run, query, fmt)
        except Exception as e:  # the engine's own message already reads "Code: N. DB::Exception: ..."
            msg = str(e)
            m = _CODE.search(msg)
            code = int(m.group(1)) if m else 1002
            status = 403 if code == 164 else 400 if code in (46, 47, 60, 62, 81) else 500
            return PlainTextResponse(msg.rstrip() + "\n", status_code=status,
                                     headers={"X-ClickHouse-Exception-Code": str(code)})
        summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                   "written_rows": "0", "written_bytes": "0", "elapsed_ns": str(int(result.elapsed() * 1e9))}
        return Response(result.bytes(), media_type=_media_type(fmt), headers={
            "X-ClickHouse-Format": fmt, "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
            "X-ClickHouse-Server-Display-Name": server_name,
            "X-ClickHouse-Summary": orjson.dumps(summary).decode()})

    async def ping(request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    return Starlette(routes=[Route("/", handle, methods=["GET", "POST"]), Route("/ping", ping),
                             Route("/replicas_status", ping)])
