"""The ingest HTTP app: POST /v1/events, the rooms API, health, metrics, OpenAPI and the beacon file."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as HTTPRequest
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from dealbeacon.core.clock import Clock, SiteClocks
from dealbeacon.core.handoff import Handoff, HandoffUnavailable
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import SiteRegistry

from .analytics import AnalyticsAPI
from .metrics import Metrics
from .netinfo import client_ip, truncate_ip
from .openapi import openapi_document
from .pipeline import IngestPipeline, Request
from .rooms import room_routes
from .sellers import SellerAPI
from .snippet import Snippet

SELLER_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seller_page.html")

SNIPPET_PATH = "/snippet/v1/dealbeacon.js"
_CORS_ALLOW = {"Access-Control-Allow-Methods": "POST, OPTIONS",
               "Access-Control-Allow-Headers": "Content-Type, Content-Encoding",
               "Access-Control-Max-Age": "86400"}


class ORJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        return orjson.dumps(content)


class _Disconnected(Exception):
    pass


class HotPath:
    """ASGI middleware: POST /v1/events goes straight to its endpoint, ahead of the router (matching a route,
    Starlette's exception wrapper for it: about 13 % of the event loop's time per request, 2026-12-06). The
    route stays in the router for the other methods (405, the CORS preflight) and the API description; an
    error still reaches Starlette's ServerErrorMiddleware, which sits outside this one."""

    def __init__(self, app, *, path: str, method: str, endpoint):
        self.app, self.path, self.method, self.endpoint = app, path, method, endpoint

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == self.method and not scope.get("root_path") \
                and scope["path"] == self.path:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class EventsEndpoint:
    """POST /v1/events as a plain ASGI app (a callable object is routed as ASGI, not wrapped in Starlette's
    Request and Response): it is the one route on the hot path, and per request those objects, their header
    mappings and the endpoint wrapper cost about a third of what the pipeline itself does (2026-12-06, py-spy
    of `dealbeacon up` under bench/ingest_bench.py). The answers are the same bytes a JSONResponse sends."""

    def __init__(self, settings: Settings, pipeline: IngestPipeline, handoff: Handoff, metrics: Metrics, clock: Clock):
        self.s, self.pipeline, self.handoff, self.metrics, self.clock = settings, pipeline, handoff, metrics, clock
        self.inflight = 0
        self._latency: dict[int, object] = {}  # the histogram's child per status (labels() per request cost ~4 us)

    async def __call__(self, scope, receive, send) -> None:
        s = self.s
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of a repeated header, as Starlette's Headers.get
        # shed load at the door, nothing parsed or kept: with room in the backlog for this request and every
        # request already let in (each at most max_events_per_batch records), so none is refused after its
        # events were checked (that wasted the CPU the backlog drains with: goodput fell under overload)
        busy = "too many requests in progress" if self.inflight >= s.max_inflight_requests else \
            "the pipeline is behind (backlog full)" if self.handoff.shedding((self.inflight + 1) * s.max_events_per_batch) else ""
        if busy:
            self.metrics.handoff_failures.inc()
            if not self.inflight >= s.max_inflight_requests:
                # the body read (bounded) but never parsed: the connection stays open for the client's retry
                # (a request left unread makes the server close it, and reconnecting cost more than reading)
                try:
                    await self._body(receive)
                except _Disconnected:
                    return
            origin = headers.get(b"origin")
            extra = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")] if origin is not None else []
            await self._send(send, 503, {"error": "unavailable", "detail": busy, "kept": 0},
                             [(b"retry-after", str(s.retry_after_s).encode()), *extra])
            return
        self.inflight += 1
        try:
            await self._events(scope, headers, receive, send)
        finally:
            self.inflight -= 1

    async def _events(self, scope, headers: dict[bytes, bytes], receive, send) -> None:
        s, clock = self.s, self.clock
        start = clock.monotonic()
        try:
            raw = await self._body(receive)
        except _Disconnected:
            return  # the client left before its body arrived: nothing to answer, nothing was accepted
        client = scope.get("client")
        origin = headers.get(b"origin")
        req = Request(
            raw=raw, content_encoding=headers.get(b"content-encoding", b"").decode("latin-1"),
            origin=origin.decode("latin-1") if origin is not None else None,
            user_agent=headers.get(b"user-agent", b"").decode("latin-1"),
            ip=truncate_ip(client_ip(client[0] if client else None,
                                     (headers[b"x-forwarded-for"].decode("latin-1") if b"x-forwarded-for" in headers
                                      else None), s.trust_proxy_headers)),
            received_at_ms=clock.wall_ms(), monotonic_s=start,
            authorization=headers.get(b"authorization", b"").decode("latin-1"))
        out = await self.pipeline.handle(req)
        latency = self._latency.get(out.status)
        if latency is None:
            latency = self._latency[out.status] = self.metrics.request_seconds.labels(str(out.status))
        latency.observe(max(0.0, clock.monotonic() - start))  # type: ignore[attr-defined]
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out.headers.items()]
        if out.allow_origin:
            extra += [(b"access-control-allow-origin", out.allow_origin.encode("latin-1")), (b"vary", b"Origin")]
        await self._send(send, out.status, out.body, extra)

    async def _body(self, receive) -> bytes:
        """At most max_body_bytes + 1 bytes of the body (enough to know it is too large, the rest not buffered)."""
        cap, chunks, size = self.s.max_body_bytes, [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    break
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    async def _send(send, status: int, body: dict, headers: list[tuple[bytes, bytes]]) -> None:
        content = orjson.dumps(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json"),
                                *headers]})
        await send({"type": "http.response.body", "body": content})


def create_app(settings: Settings, sites: SiteRegistry, handoff: Handoff, *, clock: Clock | None = None,
               metrics: Metrics | None = None, snippet_file: str | None = None, demo_page: str | None = None,
               lifespan=None, reader=None, hub=None, site_clocks: SiteClocks | None = None) -> Starlette:
    """``lifespan``: optional async context manager factory (Starlette's), e.g. to start the hand-off.
    ``reader`` (blocking read-only SQL -> rows) and ``hub`` (live alerts) enable the seller page.
    ``site_clocks``: the external clock's state, shared with whoever else follows it (alert delivery)."""
    clock = clock or Clock()
    metrics = metrics or Metrics()
    metrics.ready.set_function(lambda: 1 if handoff.ready() else 0)
    pipeline = IngestPipeline(settings, sites, handoff, metrics)

    events_endpoint = EventsEndpoint(settings, pipeline, handoff, metrics, clock)

    async def preflight(request: HTTPRequest) -> Response:
        # the site key is in the body, so the preflight cannot check it; the POST itself enforces origins
        origin = request.headers.get("origin", "*")
        return Response(status_code=204, headers={**_CORS_ALLOW, "Access-Control-Allow-Origin": origin, "Vary": "Origin"})

    async def healthz(request: HTTPRequest) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: HTTPRequest) -> Response:
        ready = handoff.ready()
        return PlainTextResponse("ready\n" if ready else "not ready\n", status_code=200 if ready else 503)

    async def openapi(request: HTTPRequest) -> Response:
        return ORJSONResponse(openapi_document(settings))

    beacon = Snippet(snippet_file)

    async def snippet(request: HTTPRequest) -> Response:
        return beacon.response(request)

    async def demo(request: HTTPRequest) -> Response:
        assert demo_page is not None  # the route exists only with a demo page
        return FileResponse(demo_page, media_type="text/html")

    async def submit(recs: list[dict], dead: Sequence[dict] = ()) -> Response | None:
        """The server-side APIs' hand-off, bounded like the events pipeline's: a 503 response or None."""
        try:
            refused = await asyncio.wait_for(handoff.submit(recs, list(dead)), settings.handoff_timeout_s)
        except (TimeoutError, HandoffUnavailable) as e:
            return ORJSONResponse({"error": "unavailable", "detail": str(e) or "hand-off timed out", "kept": 0},
                                  status_code=503, headers={"Retry-After": str(settings.retry_after_s)})
        if refused:  # the store could not hold the record (dead-lettered with the engine's reason)
            return ORJSONResponse({"error": "store_rejected", "reason": "store_rejected",
                                   "detail": next(iter(refused.values()))}, status_code=422)
        return None

    put_room, post_clock, post_erase = room_routes(settings, sites, submit, clock, site_clocks)
    sellers = SellerAPI(sites, submit, SELLER_PAGE, reader=reader, hub=hub, clock=lambda: clock.wall_ms() / 1000,
                        closed_stages=settings.closed_stage_list)
    routes = [
        Route("/v1/events", events_endpoint, methods=["POST"]),
        Route("/v1/sites/{site}/rooms/{room_id}", put_room, methods=["PUT"]),
        Route("/v1/sites/{site}/clock", post_clock, methods=["POST"]),
        Route("/v1/sites/{site}/erase", post_erase, methods=["POST"]),
        Route("/v1/events", preflight, methods=["OPTIONS"]),
        Route("/healthz", healthz), Route("/readyz", readyz),
        Route("/metrics", metrics.asgi(), methods=["GET"]), Route("/openapi.json", openapi),
        Route(SNIPPET_PATH, snippet),
        Route("/v1/sites/{site}/channels/{id}", sellers.put_config, methods=["PUT"]),
        Route("/v1/sites/{site}/sellers/{id}", sellers.put_config, methods=["PUT"]),
    ]
    if reader is not None and hub is not None:
        base = "/v1/sites/{site}/sellers/{seller}"
        routes += [Route("/seller", sellers.page), Route(base + "/rooms", sellers.rooms),
                   Route(base + "/rooms/{room_id}", sellers.deal),
                   Route(base + "/alerts", sellers.alerts), Route(base + "/stream", sellers.stream),
                   Route(base + "/alerts/{alert_id}/ack", sellers.act, methods=["POST"]),
                   Route(base + "/alerts/{alert_id}/snooze", sellers.act, methods=["POST"])]
    if reader is not None:  # the analyst layer reads the store: quotas are checked against its owners
        analytics = AnalyticsAPI(sites, submit, reader, settings.resolved_analysts_file, clock.wall_ms)
        routes += [Route("/v1/sites/{site}/quotas/{owner}", analytics.put_quotas, methods=["PUT"]),
                   Route("/v1/sites/{site}/quotas", analytics.get_quotas),
                   Route("/analytics", analytics.page), Route("/static/chart.umd.min.js", analytics.chart_js),
                   Route("/v1/sites/{site}/analytics", analytics.index),
                   Route("/v1/sites/{site}/analytics/{chart}", analytics.chart)]
    if demo_page:  # embedded demo only: a sales room to click through as a buyer
        routes.append(Route("/demo", demo))
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(HotPath, path="/v1/events", method="POST", endpoint=events_endpoint)])
    app.state.pipeline, app.state.metrics = pipeline, metrics
    return app
