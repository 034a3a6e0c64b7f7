"""Prometheus metrics for ingest (one registry per app, so tests can build several)."""
from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, make_asgi_app


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        self.accepted = Counter("dealbeacon_events_accepted_total", "Events durably handed off", ["site"], registry=r)
        self.rejected = Counter("dealbeacon_events_rejected_total", "Events rejected (dead-lettered)", ["reason"], registry=r)
        self.rejected_requests = Counter("dealbeacon_requests_rejected_total", "Whole requests rejected", ["reason"], registry=r)
        self.rate_limited = Counter("dealbeacon_events_rate_limited_total", "Events answered 429", ["site"], registry=r)
        self.handoff_failures = Counter("dealbeacon_handoff_failures_total", "Requests answered 503", registry=r)
        self.dead_letters_unsaved = Counter("dealbeacon_dead_letters_unsaved_total",
                                            "Dead letters of 4xx requests that could not be handed off", registry=r)
        # no field-name label: names are client-controlled and would explode the label set
        self.ignored_fields = Counter("dealbeacon_ignored_fields_total", "Unknown fields ignored", registry=r)
        self.request_seconds = Histogram("dealbeacon_ingest_request_seconds", "POST /v1/events latency", ["status"],
                                         registry=r, buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.ready = Gauge("dealbeacon_ready", "1 when the hand-off is ready", registry=r)
        self._accepted_by_site: dict[str, Counter] = {}  # sites are the configured ones (a 401 comes first)

    def count_batch(self, site: str, accepted: list, rejected: list, ignored: list[str]) -> None:
        """Once per request: a site's child counter is looked up once (``labels`` takes a lock and builds a key
        each call), and a batch with nothing rejected builds no tally."""
        if accepted:
            child = self._accepted_by_site.get(site)
            if child is None:
                child = self._accepted_by_site[site] = self.accepted.labels(site)
            child.inc(len(accepted))
        if rejected:
            for reason, n in Tally(r["reason"] for r in rejected).items():
                self.rejected.labels(reason).inc(n)
        if ignored:
            self.ignored_fields.inc(len(ignored))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def asgi(self) -> ASGIEndpoint:
        """prometheus-client's own ASGI app over this registry (text format, gzip when accepted)."""
        return ASGIEndpoint(make_asgi_app(self.registry))


class ASGIEndpoint:
    """An ASGI app as a Starlette route endpoint (a callable object is routed as ASGI, a function is not)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
