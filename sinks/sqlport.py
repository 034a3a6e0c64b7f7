"""The analysts' SQL port: the ClickHouse HTTP interface over the embedded chdb engine.

Enough of the protocol for curl, clickhouse-connect and Grafana: ``GET /?query=`` or the query in a POST body
(query param + body are joined, as ClickHouse does), ``default_format``, a FORMAT clause, ``/ping``, errors as
``Code: N. DB::Exception: ...`` with ``X-ClickHouse-Exception-Code``.

Every query is authenticated like a ClickHouse server's (HTTP basic auth, ``X-ClickHouse-User`` /
``X-ClickHouse-Key`` headers, or ``?user=&password=``; a failure answers 403 with code 516), its body read with a
cap, then judged on the engine's parse tree and run within limits (``sinks/sqlengine.py``). Settings in the URL
are never applied: one that would change a limit or the tenancy answers code 164, as a readonly user gets.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import re
import uuid

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dealbeacon.core.analysts import Analyst, AnalystsFile, basic_credentials

from .sqlengine import AnalystEngine, QueryFailed, TooManyQueries
from .sqlguard import Refused

_CODE = re.compile(r"Code: (\d+)")
_MEDIA = {"json": "application/json; charset=UTF-8", "csv": "text/csv; charset=UTF-8",
          "tabseparated": "text/tab-separated-values; charset=UTF-8", "tsv": "text/tab-separated-values; charset=UTF-8"}
# URL parameters of the HTTP protocol itself (not settings); everything else is a setting and is not applied
PROTOCOL_PARAMS = frozenset({"query", "database", "default_format", "user", "password", "query_id", "session_id",
                             "session_timeout", "session_check", "compress", "decompress", "buffer_size",
                             "wait_end_of_query", "enable_http_compression", "send_progress_in_http_headers",
                             "http_headers_progress_interval_ms", "http_zlib_compression_level", "quota_key",
                             "client_protocol_version", "add_http_cors_header", "cancel_http_readonly_queries_on_client_close"})
# formatting settings a client may send for its own parsing; they do not change what is read, so they are ignored
IGNORED_PREFIXES = ("output_format_", "input_format_", "format_", "date_time_", "http_", "session_")


def _media_type(fmt: str) -> str:
    low = fmt.lower()
    for prefix, media in _MEDIA.items():
        if low.startswith(prefix):
            return media
    return "application/octet-stream" if low.startswith(("native", "rowbinary", "arrow", "parquet")) else "text/plain; charset=UTF-8"


def _error(status: int, code: int, message: str, name: str) -> Response:
    body = f"Code: {code}. DB::Exception: {message}. ({name}) (dealbeacon SQL port)\n"
    return PlainTextResponse(body, status_code=status, headers={"X-ClickHouse-Exception-Code": str(code)})


def _credentials(request: Request) -> tuple[str, str] | None:
    h = request.headers
    auth = h.get("authorization", "")
    if auth[:6].lower() == "basic ":
        return basic_credentials(auth)
    if "x-clickhouse-user" in h:
        return h["x-clickhouse-user"], h.get("x-clickhouse-key", "")
    if "user" in request.query_params:
        return request.query_params["user"], request.query_params.get("password", "")
    return None


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None once it passes ``cap`` (the rest is never buffered)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_sql_app(engine: AnalystEngine, analysts_file: str, *, server_name: str = "dealbeacon") -> Starlette:
    analysts = AnalystsFile(analysts_file)
    cap = engine.limits.max_query_bytes
    auth_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sql-auth")

    async def handle(request: Request) -> Response:
        params = request.query_params
        creds = _credentials(request)
        analyst: Analyst | None = None
        if creds:  # scrypt on a thread of its own: a flood of wrong passwords queues there, nowhere else
            analyst = await asyncio.wrap_future(auth_pool.submit(analysts.current().authenticate, *creds))
        if analyst is None:
            user = creds[0] if creds else "default"
            return _error(403, 516, f"{user}: Authentication failed: password is incorrect, or there is no user "
                                    "with such name", "AUTHENTICATION_FAILED")
        query = params.get("query", "")
        if request.method == "POST":
            body = await _read_capped(request, cap)
            if body is None:
                return _error(413, 1001, f"query longer than {cap} bytes", "QUERY_IS_TOO_LARGE")
            if body:
                text = body.decode("utf-8", "replace")
                query = f"{query} {text}" if query else text
        if not query.strip():
            return PlainTextResponse("Ok.\n")
        if params.get("database", "default") != "default":
            return _error(404, 81, f"Database {params['database']} does not exist", "UNKNOWN_DATABASE")
        for name in params:
            if name not in PROTOCOL_PARAMS and not name.startswith(IGNORED_PREFIXES) and not name.startswith("param_"):
                return _error(403, 164, f"Cannot modify '{name}' setting in readonly mode: limits and tenancy "
                                        "are fixed on the SQL port", "READONLY")
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            result, fmt = await engine.run(analyst, query, params.get("default_format") or "TabSeparated", gone)
        except TooManyQueries as e:
            return _error(429, e.code, str(e), "TOO_MANY_SIMULTANEOUS_QUERIES")
        except Refused as e:
            return _error(403 if e.code in (164, 497, 516) else 400, e.code, str(e),
                          {164: "READONLY", 497: "ACCESS_DENIED", 62: "SYNTAX_ERROR",
                           1001: "QUERY_IS_TOO_LARGE"}.get(e.code, "BAD_ARGUMENTS"))
        except QueryFailed as e:  # the engine's own message already reads "Code: N. DB::Exception: ..."
            msg = str(e)
            m = _CODE.search(msg)
            code = int(m.group(1)) if m else 1002
            # the query's own fault (syntax, unknown column, a limit it ran into) is a 4xx; 5xx is the engine's
            status = 403 if code in (164, 497) else 429 if code == 202 else 400 if code < 1000 else 500
            return PlainTextResponse(msg.rstrip() + "\n", status_code=status,
                                     headers={"X-ClickHouse-Exception-Code": str(code)})
        finally:
            gone.cancel()
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


async def _disconnected(request: Request) -> None:
    """Completes when the client disconnects (the body has been read by then)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
