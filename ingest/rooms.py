"""Server-side API, authenticated with the site's secret (``Authorization: Bearer <secret>``):

    PUT  /v1/sites/{site}/rooms/{room_id}   create or update a room (deal); fields left out keep their value
    POST /v1/sites/{site}/clock             {"now": ms}: run the time rules at ``now`` (external clock only)
    POST /v1/sites/{site}/erase             {"stakeholder": id, "room_id"?}: erase a person (privacy; audited)

A room update travels the same path as events (hand-off -> room's state machine), so it is ordered with the
room's events and both modes handle it alike. Every stage change lands in ``room_stage_history``.
Rejections are dead-lettered with their reason, like events.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dealbeacon.core import records
from dealbeacon.core.clock import Clock
from dealbeacon.core.contract import CONTENT_KINDS, ID_RE, MAX_DATE, MAX_TS_MS, MIN_DATE, MIN_TS_MS, ROOM_ROLES, Rejected
from dealbeacon.core.settings import Settings
from dealbeacon.core.sites import SiteRegistry

from .body import read_capped

_ID = re.compile(r"^[A-Za-z0-9._:@/-]{1,128}$")


def check_ms(value, name: str) -> int:
    """Epoch milliseconds that a DateTime64(3) column can hold (2001 .. 2286, like event timestamps)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("invalid_value", name, "epoch milliseconds (an integer)")
    if not MIN_TS_MS <= value <= MAX_TS_MS:
        raise Rejected("out_of_range", name, f"epoch milliseconds within [{MIN_TS_MS}, {MAX_TS_MS}]")
    return value


ROOM_FIELDS = ("name", "owner", "stage", "amount", "expected_close", "proposal_shared_at", "updated_at", "stakeholders",
               "content")
PERSON_FIELDS = ("id", "email", "role", "internal")
CONTENT_FIELDS = ("id", "title", "kind", "pages", "duration_s")
MAX_CONTENT = 200


def check_content(items: object, kinds: tuple[str, ...]) -> list[dict]:
    """The room's content catalogue: [{id, title, kind, pages?, duration_s?}], ids as in the beacon's events."""
    if not isinstance(items, list) or len(items) > MAX_CONTENT:
        raise Rejected("invalid_type", "content", f"a list of at most {MAX_CONTENT} {{id, title, kind, pages, duration_s}}")
    seen, out = set(), []
    for i, c in enumerate(items):
        f = f"content[{i}]"
        if not isinstance(c, dict):
            raise Rejected("invalid_type", f, "an object {id, title, kind, pages, duration_s}")
        for name in c:
            if name not in CONTENT_FIELDS:
                raise Rejected("unknown_field", f"{f}.{str(name)[:64]}", "fields: " + ", ".join(CONTENT_FIELDS))
        cid = c.get("id")
        if not isinstance(cid, str) or len(cid) > 128 or not ID_RE.match(cid):
            raise Rejected("invalid_value", f"{f}.id", "1-128 characters [A-Za-z0-9_.:@-], as the beacon's content_id")
        if cid in seen:
            raise Rejected("duplicate", f"{f}.id", f"{cid!r} is listed twice")
        seen.add(cid)
        title = c.get("title", "")
        if not isinstance(title, str) or len(title) > 200:
            raise Rejected("invalid_value", f"{f}.title", "a string of at most 200 characters")
        if c.get("kind") not in kinds:
            raise Rejected("invalid_value", f"{f}.kind", "one of " + ", ".join(kinds))
        item = {"id": cid, "title": title, "kind": c["kind"]}
        if "pages" in c:
            if isinstance(c["pages"], bool) or not isinstance(c["pages"], int) or not 1 <= c["pages"] <= 100_000:
                raise Rejected("invalid_value", f"{f}.pages", "an integer 1..100000")
            item["pages"] = c["pages"]
        if "duration_s" in c:
            d = c["duration_s"]
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 86_400:
                raise Rejected("invalid_value", f"{f}.duration_s", "seconds, > 0 and <= 86400")
            item["duration_s"] = float(d)
        out.append(item)
    return out


def check_room(body: object, stages: tuple[str, ...], kinds: tuple[str, ...] = CONTENT_KINDS) -> dict:
    """Validate a room update body; returns the clean fields (only those given). A field the API does not
    know is refused by name, never silently dropped (a typo would otherwise lose the seller's update)."""
    if not isinstance(body, dict):
        raise Rejected("invalid_body", "", "expected a JSON object")
    for name in body:
        if name not in ROOM_FIELDS:
            raise Rejected("unknown_field", str(name)[:64], "fields: " + ", ".join(ROOM_FIELDS))
    clean: dict = {}
    for name in ("name", "owner"):
        if name in body:
            if not isinstance(body[name], str) or len(body[name]) > 256:
                raise Rejected("invalid_type", name, "a string of at most 256 characters")
            clean[name] = body[name]
    if "stage" in body:
        if body["stage"] not in stages:
            raise Rejected("invalid_value", "stage", "one of " + ", ".join(stages))
        clean["stage"] = body["stage"]
    if "amount" in body:
        a = body["amount"]
        if isinstance(a, bool) or not isinstance(a, (int, float)) or a < 0:
            raise Rejected("invalid_value", "amount", "a number >= 0")
        clean["amount"] = float(a)
    if "expected_close" in body:
        try:
            clean["expected_close"] = dt.date.fromisoformat(body["expected_close"]).isoformat()
        except (TypeError, ValueError):
            raise Rejected("invalid_value", "expected_close", "a date, YYYY-MM-DD") from None
        if not MIN_DATE <= clean["expected_close"] <= MAX_DATE:
            raise Rejected("out_of_range", "expected_close", f"a date within {MIN_DATE} .. {MAX_DATE}")
    for name in ("proposal_shared_at", "updated_at"):  # updated_at: when it changed in the CRM (default: now)
        if name in body:
            clean[name] = check_ms(body[name], name)
    if "stakeholders" in body:
        people = body["stakeholders"]
        if not isinstance(people, list) or len(people) > 100:
            raise Rejected("invalid_type", "stakeholders", "a list of at most 100 {id, email, role}")
        seen, out = set(), []
        for i, p in enumerate(people):
            if not isinstance(p, dict) or not isinstance(p.get("id"), str) or not _ID.match(p["id"]):
                raise Rejected("invalid_value", f"stakeholders[{i}].id", "an id of 1-128 characters [A-Za-z0-9._:@/-]")
            for name in p:
                if name not in PERSON_FIELDS:
                    raise Rejected("unknown_field", f"stakeholders[{i}].{str(name)[:64]}", "fields: " + ", ".join(PERSON_FIELDS))
            if p.get("role", "other") not in ROOM_ROLES:
                raise Rejected("invalid_value", f"stakeholders[{i}].role", "one of " + ", ".join(ROOM_ROLES))
            email = p.get("email", "")
            if not isinstance(email, str) or len(email) > 256:
                raise Rejected("invalid_type", f"stakeholders[{i}].email", "a string")
            if not isinstance(p.get("internal", False), bool):
                raise Rejected("invalid_type", f"stakeholders[{i}].internal", "true or false")
            if p["id"] in seen:
                raise Rejected("duplicate", f"stakeholders[{i}].id")
            seen.add(p["id"])
            out.append({"id": p["id"], "email": email, "role": p.get("role", "other"), "internal": p.get("internal", False)})
        clean["stakeholders"] = out
    if "content" in body:
        clean["content"] = check_content(body["content"], kinds)
    return clean


def room_routes(settings: Settings, sites: SiteRegistry, submit, clock: Clock):
    """``submit(records, dead_letters)``: the app's bounded hand-off; returns a 503 response or None.

    With an external clock, a room update without ``updated_at`` takes the site's clock (the last ``now``
    POSTed to this process), never the wall clock; before any, ``updated_at`` is required."""
    site_now: dict[str, int] = {}
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
            if not (len(room_id) <= 128 and ID_RE.match(room_id)):  # what the event contract accepts, or no events
                raise Rejected("invalid_value", "room_id", "1-128 characters [A-Za-z0-9_.:@-], as in the beacon's events")
            if body is None:
                raise Rejected("invalid_json", "")
            clean = check_room(body, settings.stage_list, settings.content_kind_list)
            if settings.clock == "external" and "updated_at" not in clean and site.key not in site_now:
                raise Rejected("missing_field", "updated_at", "with an external clock, give updated_at or POST the "
                               "site's clock first")
        except Rejected as e:
            return await _reject(site, raw, e)
        now = site_now[site.key] if settings.clock == "external" and site.key in site_now else clock.wall_ms()
        rec = {"record": "room", "rv": records.RECORD_VERSION, "site": site.key, "room_id": room_id,
               "updated_at": now, **clean}
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
            now = check_ms(body.get("now") if isinstance(body, dict) else None, "now")
        except Rejected as e:
            return await _reject(site, raw, e)
        failed = await submit([{"record": "clock", "site": site.key, "now": now}], [])
        if not failed:
            site_now[site.key] = max(now, site_now.get(site.key, now))
        return failed or JSONResponse({"accepted": True, "now": now}, status_code=202)

    async def post_erase(request: Request) -> Response:
        got, denied = await _read(request)
        if denied:
            return denied
        site, raw, body = got
        try:
            if not isinstance(body, dict):
                raise Rejected("invalid_body", "", "expected a JSON object {stakeholder, room_id?}")
            who, room = body.get("stakeholder"), body.get("room_id", "")
            if not isinstance(who, str) or not _ID.match(who):
                raise Rejected("invalid_value", "stakeholder", "a stakeholder id, or visitor:<visitor id>")
            if not isinstance(room, str) or (room and not (len(room) <= 128 and ID_RE.match(room))):
                raise Rejected("invalid_value", "room_id", "1-128 characters [A-Za-z0-9_.:@-], or left out")
        except Rejected as e:
            return await _reject(site, raw, e)
        rec = {"record": "erase", "rv": records.RECORD_VERSION, "site": site.key, "stakeholder": who, "room_id": room,
               "erasure_id": str(uuid.uuid4()), "requested_at": clock.wall_ms()}
        failed = await submit([rec], [])
        return failed or JSONResponse({"accepted": True, "erasure_id": rec["erasure_id"]}, status_code=202)

    return put_room, post_clock, post_erase
