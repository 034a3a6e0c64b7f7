"""Sellers and alert channels: configuration (site secret) and the seller page (seller token).

    PUT  /v1/sites/{site}/channels/{id}   {"kind": webhook|slack|email, "target": url|email, "owner"?, "min_severity"?,
                                           "events"?: buyer actions (webhooks)}
    PUT  /v1/sites/{site}/sellers/{id}    {"name"?, "tz"?, "quiet_hours"?: [22, 7], "muted_rooms"?, "min_severity"?,
                                           "digest"?}  -> the seller's page link (token)
    GET  /seller                          the seller page (site, seller and token in the URL)
    GET  /v1/sites/{site}/sellers/{id}/rooms | /alerts | /stream (SSE)        seller token
    POST /v1/sites/{site}/sellers/{id}/alerts/{alert_id}/ack | /snooze        seller token

Configuration and seller actions are records through the hand-off, like events. The page's reads need a
``reader`` (embedded: the read-only engine session) and its live feed a ``hub``; without them (distributed
ingest today) only the configuration endpoints exist.
"""
from __future__ import annotations

import asyncio
import re
import time

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from dealbeacon.core import tokens
from dealbeacon.core.contract import Rejected
from dealbeacon.core.sqltext import sql_string
from dealbeacon.core.tokens import webhook_secret

from . import bodies, deal_view
from .bodies import parse
from .body import read_capped

_ID = re.compile(bodies.ID_PATTERN)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TOKEN_TTL_S = 365 * 86_400



def seller_token(site_secret: str, seller_id: str, now_s: float) -> str:
    """A seller's page link: its own token purpose (``s1``), never accepted as a stakeholder's."""
    return tokens.mint(site_secret, f"seller:{seller_id}", seller_id, int(now_s + TOKEN_TTL_S),
                       prefix=tokens.SELLER_PREFIX)


def channel_record(body: object) -> dict:
    c = parse(bodies.Channel, body)
    return {"kind": c.kind, "target": c.target, "owner": c.owner, "min_severity": c.min_severity,
            "enabled": 1 if c.enabled else 0, "events": sorted(set(c.events))}


def seller_record(body: object) -> dict:
    p = parse(bodies.Seller, body)
    quiet = p.quiet_hours
    return {"name": p.name, "tz": p.tz, "quiet_start": quiet[0] if quiet else -1, "quiet_end": quiet[1] if quiet else -1,
            "muted_rooms": list(p.muted_rooms), "min_severity": p.min_severity, "digest": 1 if p.digest else 0}


class SellerAPI:
    """Routes for sellers; ``submit(records)`` hands records off (raises on failure), ``reader(sql)`` runs a
    read-only query (blocking), ``hub`` streams new alerts."""

    def __init__(self, sites, submit, page_file: str, reader=None, hub=None, clock=time.time,
                 closed_stages: tuple[str, ...] = ("closed_won", "closed_lost")):
        self.sites, self.submit, self.page_file = sites, submit, page_file
        self.reader, self.hub, self.clock, self.closed_stages = reader, hub, clock, closed_stages

    # -- configuration (site secret)
    async def put_config(self, request: Request) -> Response:
        site = self.sites.get(request.path_params["site"])
        if site is None or not site.bearer_ok(request.headers.get("authorization", "")):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        what, ident = request.url.path.split("/")[-2], request.path_params["id"]
        try:
            raw = await read_capped(request, 65_536)
            if len(raw) > 65_536:
                return JSONResponse({"error": "body_too_large", "reason": "body_too_large"}, status_code=413)
            body = orjson.loads(raw or b"{}")
            if not _ID.fullmatch(ident):
                raise Rejected("invalid_value", "id", "1-128 characters [A-Za-z0-9._:@/-]")
            clean = channel_record(body) if what == "channels" else seller_record(body)
        except orjson.JSONDecodeError:
            return JSONResponse({"error": "invalid_json"}, status_code=400)
        except Rejected as e:
            return JSONResponse({"error": e.reason, **e.as_dict()}, status_code=400)
        now_ms = int(self.clock() * 1000)
        if what == "channels":
            rec = {"record": "channel", "site": site.key, "channel_id": ident, "updated_at": now_ms, **clean}
        else:
            rec = {"record": "seller", "site": site.key, "seller_id": ident, "updated_at": now_ms, **clean}
        failed = await self.submit([rec])
        if failed:
            return failed
        out: dict[str, object] = {"accepted": True}
        if what == "channels" and clean["kind"] == "webhook":
            out["signing_secret"] = webhook_secret(site.secret, ident)
        if what == "sellers":
            tok = seller_token(site.secret, ident, self.clock())
            out["page"] = f"/seller?site={site.key}&seller={ident}&token={tok}"
            out["token"] = tok
        return JSONResponse(out, status_code=202)

    # -- the seller's own view (seller token)
    def _seller(self, request: Request) -> tuple[str, str] | None:
        site = self.sites.get(request.path_params["site"])
        seller = request.path_params["seller"]
        tok = request.query_params.get("token") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if site is None or not tok:
            return None
        check = tokens.verify(site.secret, tok, f"seller:{seller}", self.clock(), prefix=tokens.SELLER_PREFIX)
        return (site.key, seller) if check.verified and check.stakeholder_id == seller else None

    async def _query(self, sql: str) -> list[list]:
        return await asyncio.to_thread(self.reader, sql)

    async def page(self, request: Request) -> Response:
        return FileResponse(self.page_file, media_type="text/html")

    async def rooms(self, request: Request) -> Response:
        """The seller's deals: open ones ordered by what needs attention, closed ones apart."""
        who = self._seller(request)
        if who is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        site, seller = who
        now = int(self.clock() * 1000)
        rows = await self._query(deal_view.deal_list_sql(site, seller, now))
        people = await self._query(
            f"SELECT room_id, stakeholder_id, role, score, band, reasons FROM stakeholder_scores_latest "
            f"WHERE site = {sql_string(site)} AND room_id IN (SELECT room_id FROM rooms FINAL WHERE site = {sql_string(site)} "
            f"AND owner = {sql_string(seller)}) ORDER BY score DESC")
        by_room: dict[str, list] = {}
        for room_id, sid, role, score, band, reasons in people:
            by_room.setdefault(room_id, []).append({"id": sid, "role": role, "score": score, "band": band,
                                                    "reasons": orjson.loads(reasons or "[]")})
        alerts = await self._alerts(site, seller, now)
        return JSONResponse(deal_view.shape_deal_list(rows, by_room, alerts, self.closed_stages))

    async def _alerts(self, site: str, seller: str, now: int, room: str | None = None) -> list[dict]:
        rows = await self._query(deal_view.open_alerts_sql(site, seller, now, room))
        return [dict(zip(deal_view.ALERT_KEYS, r)) for r in rows]

    async def alerts(self, request: Request) -> Response:
        who = self._seller(request)
        if who is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        site, seller = who
        return JSONResponse({"alerts": await self._alerts(site, seller, int(self.clock() * 1000))})

    async def deal(self, request: Request) -> Response:
        """One deal in detail, for its own seller only: 403 for another seller's room, 404 for no such room."""
        who = self._seller(request)
        if who is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        site, seller = who
        room_id = request.path_params["room_id"]
        found = await self._query(f"SELECT room_id, name, stage, amount, stakeholders, owner, content FROM rooms FINAL "
                                  f"WHERE site = {sql_string(site)} AND room_id = {sql_string(room_id)}")
        if not found:
            return JSONResponse({"error": "not_found", "detail": f"no room {room_id!r}"}, status_code=404)
        if found[0][5] != seller:
            return JSONResponse({"error": "forbidden", "detail": "another seller's deal"}, status_code=403)
        parts = {}
        team = [p["id"] for p in orjson.loads(found[0][4] or "[]") if p.get("internal")]
        for name, sql in deal_view.deal_sqls(site, room_id, team).items():
            parts[name] = await self._query(sql)
        alerts = await self._query(deal_view.room_alerts_sql(site, room_id))
        return JSONResponse(deal_view.shape_deal(list(found[0][:5]), parts, [dict(zip(deal_view.ALERT_KEYS, r)) for r in alerts],
                                                 catalogue=orjson.loads(found[0][6] or "[]")))

    async def act(self, request: Request) -> Response:
        who = self._seller(request)
        if who is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        site, seller = who
        action = request.url.path.rsplit("/", 1)[-1]
        now = int(self.clock() * 1000)
        until = now
        if action == "snooze":
            raw = await read_capped(request, 4096)
            try:
                if len(raw) > 4096:
                    raise Rejected("too_long", "", "a body of at most 4096 bytes")
                hours = parse(bodies.Snooze, orjson.loads(raw or b"{}")).hours
            except orjson.JSONDecodeError:
                return JSONResponse({"error": "invalid_json", "reason": "invalid_json"}, status_code=400)
            except Rejected as e:
                return JSONResponse({"error": e.reason, **e.as_dict()}, status_code=400)
            until = now + int(hours * 3_600_000)
        alert_id = request.path_params["alert_id"]
        if not _UUID.fullmatch(alert_id):
            return JSONResponse({"error": "not_found", "detail": "no such alert"}, status_code=404)
        owned = await self._query(f"SELECT count() FROM alerts FINAL WHERE site = {sql_string(site)} AND owner = {sql_string(seller)} "
                                  f"AND alert_id = toUUID({sql_string(alert_id.lower())})")
        if not owned or not owned[0][0]:  # another seller's alert, or none: the same answer, nothing revealed
            return JSONResponse({"error": "not_found", "detail": "no such alert among yours"}, status_code=404)
        rec = {"record": "alert_action", "site": site, "alert_id": alert_id.lower(), "seller_id": seller,
               "action": action, "until": until, "at": now}
        failed = await self.submit([rec])
        return failed or JSONResponse({"accepted": True}, status_code=202)

    async def stream(self, request: Request) -> Response:
        who = self._seller(request)
        if who is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        queue = self.hub.subscribe(who)

        async def events():
            try:
                yield b": connected\n\n"
                while True:
                    try:
                        alert = await asyncio.wait_for(queue.get(), timeout=15)
                        yield b"event: alert\ndata: " + orjson.dumps(alert) + b"\n\n"
                    except TimeoutError:
                        yield b": keep-alive\n\n"
            finally:
                self.hub.unsubscribe(who, queue)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class AlertHub:
    """In-process fan-out of new alerts to the seller pages that are open (embedded mode)."""

    def __init__(self):
        self._subs: dict[tuple[str, str], set[asyncio.Queue]] = {}

    def subscribe(self, who: tuple[str, str]) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._subs.setdefault(who, set()).add(q)
        return q

    def unsubscribe(self, who, q) -> None:
        self._subs.get(who, set()).discard(q)

    def publish(self, alerts: list[dict]) -> None:
        for a in alerts:
            for q in self._subs.get((a["site"], a["owner"]), ()):
                if not q.full():  # a stalled page drops alerts rather than holding memory; it reloads the list
                    q.put_nowait({k: a[k] for k in ("alert_id", "room_id", "kind", "severity", "stakeholders",
                                                    "evidence", "suggestion", "at")})
