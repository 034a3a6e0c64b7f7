"""Server-side API, authenticated with the site's secret (``Authorization: Bearer <secret>``):

    PUT  /v1/sites/{site}/rooms/{room_id}   create or update a room (deal); fields left out keep their value
    POST /v1/sites/{site}/clock             {"now": ms}: run the time rules at ``now`` (external clock only)
    POST /v1/sites/{site}/erase             {"stakeholder": id, "room_id"?}: erase a person (privacy; audited)

A room update travels the same path as events (hand-off -> room's state machine), so it is ordered with the
room's events and both modes handle it alike. Every stage change lands in ``room_stage_history``.
Rejections are dead-lettered with their reason, like events.
"""
from __future__ import annotations

import uuid

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dealbeacon.core import records
from dealbeacon.core.clock import Clock, SiteClocks
from dealbeacon.core.contract import ID_RE, Rejected
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import SiteRegistry

from . import bodies
from .bodies import parse
from .body import read_capped


def room_routes(settings: Settings, sites: SiteRegistry, submit, clock: Clock, site_clocks: SiteClocks | None = None):
    """``submit(records, dead_letters)``: the app's bounded hand-off; returns a 503 response or None.

    With an external clock, a room update without ``updated_at`` takes the site's clock (the last ``now``
    POSTed to this process), never the wall clock; before any, ``updated_at`` is required."""
    site_now = site_clocks if site_clocks is not None else SiteClocks()
    async def _read(request: Request):
        site = sites.get(request.path_params["site"])
        if site is None or not site.bearer_ok(request.headers.get("authorization", "")):
            return None, JSONResponse({"error": "unauthorized", "detail": "Authorization: Bearer <site secret>"},
                                      status_code=401)
        raw = await read_capped(request, settings.max_body_bytes)
        if len(raw) > settings.max_body_bytes:
            return None, JSONResponse({"error": "body_too_large"}, status_code=413)
        try:
            return (site, raw, orjson.loads(raw or b"{}")), None
        except orjson.JSONDecodeError:
            return (site, raw, None), None

    async def _reject(site, raw, err: Rejected) -> Response:
        dead = records.dead_letter(received_at=clock.wall_ms(), site=site.key, stage="rooms_api", reason=err.reason,
                                   field=err.field, detail=err.detail, payload=raw)  # redacted by dead_letter
        await submit([], [dead])  # evidence; the client is told not to retry
        return JSONResponse({"error": err.reason, **err.as_dict()}, status_code=400)

    async def put_room(request: Request) -> Response:
        got, denied = await _read(request)
        if denied:
            return denied
        site, raw, body = got
        room_id = request.path_params["room_id"]
        try:
            if not (len(room_id) <= 128 and ID_RE.fullmatch(room_id)):  # what the event contract accepts, or no events
                raise Rejected("invalid_value", "room_id", "1-128 characters [A-Za-z0-9_.:@-], as in the beacon's events")
            if body is None:
                raise Rejected("invalid_json", "")
            clean = parse(bodies.RoomUpdate, body, stages=settings.stage_list, kinds=settings.content_kind_list).clean()
            if settings.clock == "external" and "updated_at" not in clean and site_now.get(site.key) is None:
                raise Rejected("missing_field", "updated_at", "with an external clock, give updated_at or POST the "
                               "site's clock first")
        except Rejected as e:
            return await _reject(site, raw, e)
        external = site_now.get(site.key) if settings.clock == "external" else None
        now = external if external is not None else clock.wall_ms()
        rec = {"record": "room", "rv": records.RECORD_VERSION, "site": site.key, "room_id": room_id,
               "updated_at": now, **clean}
        if "stakeholders" in clean:  # who of them is the seller's own team (by the site's email domains)
            rec["internal_domains"] = list(site.internal_domains)
        failed = await submit([rec], [])
        return failed or JSONResponse({"accepted": True, "room": rec}, status_code=202)

    async def post_clock(request: Request) -> Response:
        got, denied = await _read(request)
        if denied:
            return denied
        site, raw, body = got
        if settings.clock != "external":
            return JSONResponse({"error": "clock_not_external", "detail": "time rules follow the wall clock here; "
                                 "start with DEALBEACON_CLOCK=external to drive them"}, status_code=409)
        try:
            now = parse(bodies.Clock, body).now
        except Rejected as e:
            return await _reject(site, raw, e)
        failed = await submit([{"record": "clock", "site": site.key, "now": now}], [])
        if not failed:
            site_now.advance(site.key, now)
        return failed or JSONResponse({"accepted": True, "now": now}, status_code=202)

    async def post_erase(request: Request) -> Response:
        got, denied = await _read(request)
        if denied:
            return denied
        site, raw, body = got
        try:
            erase = parse(bodies.Erase, body)
            who, room = erase.stakeholder, erase.room_id
        except Rejected as e:
            return await _reject(site, raw, e)
        rec = {"record": "erase", "rv": records.RECORD_VERSION, "site": site.key, "stakeholder": who, "room_id": room,
               "erasure_id": str(uuid.uuid4()), "requested_at": clock.wall_ms()}
        failed = await submit([rec], [])
        return failed or JSONResponse({"accepted": True, "erasure_id": rec["erasure_id"]}, status_code=202)

    return put_room, post_clock, post_erase
