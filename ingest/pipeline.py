"""The ingest pipeline: named steps from raw request to durable hand-off.

    read body (cap) -> decompress (cap) -> parse JSON -> envelope -> site (401) -> origin (403)
    -> rate limit (429) -> server-side sender? (Bearer site secret: own timeline) -> bot filter
    -> per-event validate + enrich -> hand off (503 if it cannot)

A plainly valid body is parsed and all its checks made in one pass (``contract.check_body``); any other is
parsed, then checked envelope first and event by event, and each rejection gets its own answer.

Every rejection has a typed reason. Request-level rejections (4xx) and per-event ones become dead letters,
handed off with the accepted events of the same request. 429 and 503 are not rejections: the client keeps
the events and retries, so they are counted in metrics, not dead-lettered.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from dealbeacon.core import contract, records, tokens
from dealbeacon.core.contract import Rejected
from dealbeacon.core.handoff import Handoff, HandoffUnavailable
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import SiteRegistry

from . import bots
from .body import BodyError, decompress, parse_json
from .metrics import Metrics
from .ratelimit import RateLimiter


@dataclass
class Request:
    raw: bytes
    content_encoding: str
    origin: str | None
    user_agent: str
    ip: str  # already truncated
    received_at_ms: int  # server wall clock, ms
    monotonic_s: float  # for the rate limiter
    authorization: str = ""  # "Bearer <site secret>": a server-side sender (import, simulator, backend)


@dataclass
class Outcome:
    status: int
    body: dict
    headers: dict = field(default_factory=dict)
    allow_origin: str | None = None


_NO_TOKEN = tokens.TokenCheck("none")


class IngestPipeline:
    def __init__(self, settings: Settings, sites: SiteRegistry, handoff: Handoff, metrics: Metrics):
        self.s, self.sites, self.handoff, self.metrics = settings, sites, handoff, metrics
        self.limiter = RateLimiter(settings.rate_limit_events_per_s, settings.rate_limit_burst)

    def _dead(self, req: Request, site: str, err: Rejected, *, index=-1, event_id="", payload=b"") -> dict:
        return records.dead_letter(
            received_at=req.received_at_ms, site=site, stage="ingest", reason=err.reason, field=err.field,
            detail=err.detail, event_index=index, event_id=event_id, payload=payload or req.raw, ip=req.ip,
            user_agent=req.user_agent, max_payload=self.s.dead_letter_payload_bytes)

    async def _reject_request(self, req: Request, site: str, status: int, err: Rejected,
                              allow_origin: str | None = None, body=None) -> Outcome:
        self.metrics.rejected_requests.labels(err.reason).inc()
        payload = records.payload_of(body) if body is not None else b""
        try:  # keep the evidence; the client is told not to retry, so a failed hand-off loses only evidence
            await asyncio.wait_for(self.handoff.submit([], [self._dead(req, site, err, payload=payload)]),
                                   self.s.handoff_timeout_s)
        except (TimeoutError, HandoffUnavailable):
            self.metrics.dead_letters_unsaved.inc()
        return Outcome(status, {"error": err.reason, **err.as_dict()}, allow_origin=allow_origin)

    def _plain_batch(self, cleans: list[dict], req: Request, site_key: str, sent_at: int,
                     oldest: int) -> list[dict] | None:
        """The records of a browser's batch checked at once (``contract.check_body`` or ``check_events``) when
        none of its events needs a look of its own: no token to verify, no id twice, none stale after skew
        correction. The same records, in the same order, as the loop in ``handle`` makes one event at a time
        (tests/unit/test_pipeline_batch.py); None otherwise, and the loop gives each event its own answer. The
        clean events become the records (``records.accepted_events``)."""
        if len({c["event_id"] for c in cleans}) != len(cleans) or True in ["token" in c for c in cleans]:
            return None
        received = req.received_at_ms
        skew = received - sent_at  # contract.corrected_ts, for the whole batch at once
        shift = skew if abs(skew) > self.s.clock_skew_tolerance_ms else 0
        ts = [min(c["ts"] + shift, received) for c in cleans]
        if min(ts) < oldest:
            return None
        return records.accepted_events(cleans, ts, site=site_key, received_at=received, ip=req.ip,
                                       user_agent=req.user_agent)

    async def handle(self, req: Request) -> Outcome:
        s = self.s
        # 1-3. body
        if len(req.raw) > s.max_body_bytes:
            return await self._reject_request(req, "", 413, Rejected("body_too_large", "", f"more than {s.max_body_bytes} bytes"))
        try:
            data = decompress(req.raw, req.content_encoding, s.max_decompressed_bytes)
            # 3-4. a plainly valid request is parsed and checked in one pass (contract.check_body); any other is
            # parsed, then checked envelope first and event by event, each rejection with its own answer
            plain_body = contract.check_body(data)
            obj = parse_json(data) if plain_body is None else None
        except BodyError as e:
            return await self._reject_request(req, "", e.status, e)
        events: list = []  # the events as sent; with a plain body, parsed only for a rejection's evidence
        cleans: list[dict] | None = None  # the clean events when all are checked at once (none has extra fields)
        if plain_body is not None:
            site_key, sent_at, cleans = plain_body
            n_events = len(cleans)
            ignored: list[str] = []
        else:
            # 4. envelope
            site_key = obj["site"] if isinstance(obj, dict) and isinstance(obj.get("site"), str) else ""
            try:
                site_key, sent_at, events, ignored = contract.check_envelope(obj)
            except Rejected as e:
                return await self._reject_request(req, site_key, 400, e, body=obj)
            n_events = len(events)

        def as_sent() -> Any:  # the request as sent, the evidence of a rejection (a plain body parsed for it, once)
            nonlocal obj
            if obj is None:
                obj = parse_json(data)
            return obj

        # 5-6. site and origin
        site = self.sites.get(site_key)
        if site is None:
            return await self._reject_request(req, site_key, 401, Rejected("unknown_site", "site"), body=as_sent())
        if not site.origin_allowed(req.origin):
            return await self._reject_request(req, site_key, 403, Rejected("origin_not_allowed", "", req.origin or ""),
                                              body=as_sent())
        allow_origin = req.origin
        # server-side senders that prove the site secret send their own timeline (imports, replays): their
        # timestamps are kept as given, old ones included, and they are not bot-filtered
        trusted = site.bearer_ok(req.authorization)
        if n_events > s.max_events_per_batch:
            return await self._reject_request(
                req, site_key, 413, Rejected("too_many_events", "events", f"at most {s.max_events_per_batch}"), allow_origin,
                body=as_sent())
        # 7. rate limit
        wait = self.limiter.take(site_key, n_events, req.monotonic_s, site.rate_limit_events_per_s)
        if wait > 0:
            self.metrics.rate_limited.labels(site_key).inc(n_events)
            retry = max(1, math.ceil(wait))
            return Outcome(429, {"error": "rate_limited", "retry_after_s": retry}, {"Retry-After": str(retry)}, allow_origin)
        # 8-9. events
        accepted, dead, rejected, unverified, accepted_index = [], [], [], [], []
        is_bot = not trusted and bots.is_bot(req.user_agent, req.origin is not None)
        seen: set[str] = set()
        if is_bot:  # each event gets its dead letter, with the event as sent
            cleans, events = None, events or as_sent()["events"]
        elif cleans is None:  # a batch of plainly valid events is checked column by column at once
            checked = contract.check_events(events)
            cleans = None if checked is None else [c for c, _ in checked]
        received, skew_tolerance = req.received_at_ms, s.clock_skew_tolerance_ms
        oldest = received - s.max_event_age_s * 1000
        backfill = (received - s.max_backfill_days * 86_400_000, received + 86_400_000)
        plain = None if cleans is None or trusted else self._plain_batch(cleans, req, site_key, sent_at, oldest)
        if plain is not None:
            accepted, accepted_index = plain, list(range(len(plain)))
        for i in range(n_events if plain is None else 0):  # event by event, each with its own answer
            try:
                if is_bot:
                    raise Rejected("bot", "", "user agent matches a known crawler")
                clean, extra = (cleans[i], []) if cleans is not None else contract.check_event(events[i])
                if clean["event_id"] in seen:
                    raise Rejected("duplicate_in_batch", "event_id")
                seen.add(clean["event_id"])
                if trusted:
                    ts = clean["ts"]
                    if not backfill[0] <= ts <= backfill[1]:
                        raise Rejected("out_of_range", "ts", f"a server-side sender's events lie within the last "
                                       f"{s.max_backfill_days} days and at most one day ahead")
                else:
                    ts = contract.corrected_ts(clean["ts"], sent_at, received, skew_tolerance)
                    if ts < oldest:
                        raise Rejected("stale_event", "ts", f"older than {s.max_event_age_s} s after skew correction")
            except Rejected as e:
                ev = (events or as_sent()["events"])[i]
                eid = ev.get("event_id", "") if isinstance(ev, dict) else ""
                rejected.append({"index": i, **e.as_dict()})
                dead.append(self._dead(req, site_key, e, index=i, event_id=eid, payload=records.payload_of(ev)))
                continue
            if extra:
                ignored += extra
            check = _NO_TOKEN
            if "token" in clean:
                check = tokens.verify_visit(site.secret, clean["token"], clean["room_id"], received / 1000)
                if not check.verified:
                    unverified.append({"index": i, "reason": "token_" + check.status})
            accepted_index.append(i)
            accepted.append(records.accepted_event(
                clean, site=site_key, received_at=received, ts=ts, token_status=check.status,
                stakeholder_id=check.stakeholder_id, ip=req.ip, user_agent=req.user_agent))
        # 10. hand off
        try:
            async with asyncio.timeout(s.handoff_timeout_s):  # no task per request, as wait_for makes
                refused = await self.handoff.submit(accepted, dead) or {}
        except (TimeoutError, HandoffUnavailable) as e:
            self.metrics.handoff_failures.inc()
            return Outcome(503, {"error": "unavailable", "detail": str(e) or "hand-off timed out",
                                 "kept": getattr(e, "kept", 0)},
                           {"Retry-After": str(s.retry_after_s)}, allow_origin)
        if refused:  # the store could not hold these (dead-lettered with the engine's reason by the hand-off)
            for pos, why in refused.items():
                rejected.append({"index": accepted_index[pos], "reason": "store_rejected", "detail": why})
            accepted = [r for pos, r in enumerate(accepted) if pos not in refused]
            rejected.sort(key=lambda r: r["index"])
        self.metrics.count_batch(site_key, accepted, rejected, ignored)
        body = {"accepted": len(accepted), "rejected": rejected}
        if unverified:
            body["unverified"] = unverified
        return Outcome(202, body, allow_origin=allow_origin)
