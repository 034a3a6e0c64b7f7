"""Event contract v1: the one definition of what a beacon may send.

The field table below drives both the validator used by ingest and the JSON Schema exported to
``contract/event-v1.schema.json`` (``dealbeacon schema``; a test keeps the file in sync).

Unknown fields: the server ignores them (never stored) and counts them in the metric
``dealbeacon_ignored_fields_total``, so an older server accepts a newer beacon. The JSON Schema is strict
(``additionalProperties: false``) because it states what a producer should send. Extension data goes in
``props``.
"""
from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

VERSION = 1

EVENT_TYPES = (
    "room_view", "content_view", "engagement", "content_progress",
    "download", "link_click", "share", "cta", "identify",
)
SHARE_CHANNELS = ("email", "link", "slack", "teams", "linkedin", "sms", "other")
MAX_ENGAGED_MS = 300_000  # one heartbeat never claims more than 5 minutes
MAX_PROPS = 20
MAX_PROP_VALUE = 256
_ID_TEXT = r"[A-Za-z0-9_.:@-]+"
_UUID_TEXT = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ID_RE = re.compile(f"^{_ID_TEXT}$")
ID_RE = _ID_RE  # site keys, room ids, visitor and session ids: one pattern for the beacon and the APIs
_UUID_RE = re.compile(f"^{_UUID_TEXT}$")
_PROP_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# client timestamps: ms since epoch, 2001-09-09 .. 2286-11-20 (inside DateTime64(3)'s 1900..2299)
MIN_TS_MS, MAX_TS_MS = 1_000_000_000_000, 9_999_999_999_999
# dates (expected close): inside ClickHouse Date's 1970-01-01 .. 2149-06-06
MIN_DATE, MAX_DATE = "1970-01-01", "2149-06-06"
MAX_DEPTH = 16  # JSON nesting of one event (props are flat: an honest event is 2 deep)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # id | text | uuid | int | num | ts | enum | props
    doc: str
    max_len: int = 0
    lo: float = float("-inf")  # numeric kinds: the accepted range
    hi: float = float("inf")
    choices: tuple[str, ...] = ()

    @functools.cached_property
    def choices_set(self) -> frozenset[str]:
        return frozenset(self.choices)


ENVELOPE_FIELDS = (
    Field("site", "id", "site key the snippet was configured with", max_len=64),
    Field("sent_at", "ts", "client clock (ms since epoch) when this request was sent; used to correct skew"),
    Field("v", "int", "contract version", lo=1, hi=1),
)
COMMON_FIELDS = (
    Field("event_id", "uuid", "client-made UUID; retries reuse it and storage dedups on it"),
    Field("type", "enum", "event type", choices=EVENT_TYPES),
    Field("room_id", "id", "the sales room (deal) the event belongs to", max_len=128),
    Field("visitor_id", "id", "anonymous client-made visitor id (localStorage)", max_len=64),
    Field("session_id", "id", "client-made session id", max_len=64),
    Field("ts", "ts", "client clock (ms since epoch) when the event happened"),
    Field("token", "text", "stakeholder link token (HMAC by the site secret)", max_len=512),
    Field("content_id", "id", "content item (document, video, pricing page...)", max_len=128),
    Field("page", "int", "page or slide number reached or in view", lo=0, hi=100_000),
    Field("media_position_s", "num", "media position in seconds", lo=0, hi=86_400),
    Field("progress_pct", "num", "document or video progress in percent", lo=0, hi=100),
    Field("scroll_pct", "num", "scroll depth in percent", lo=0, hi=100),
    Field("engaged_ms", "int", "engaged time since the previous heartbeat", lo=0, hi=MAX_ENGAGED_MS),
    Field("href", "text", "download or link target", max_len=2048),
    Field("share_channel", "enum", "how the room was shared", choices=SHARE_CHANNELS),
    Field("share_to", "text", "who it was shared with (email or name)", max_len=256),
    Field("cta", "text", "call-to-action name", max_len=128),
    Field("url", "text", "page URL", max_len=2048),
    Field("referrer", "text", "document referrer", max_len=2048),
    Field("props", "props", f"free-form flat properties (<= {MAX_PROPS} keys)"),
)
REQUIRED_COMMON = ("event_id", "type", "room_id", "visitor_id", "session_id", "ts")
# type -> fields that must be present (beyond the common required ones)
REQUIRED_BY_TYPE = {
    "room_view": (),
    "content_view": ("content_id",),
    "engagement": ("engaged_ms",),
    "content_progress": ("content_id",),
    "download": ("href",),
    "link_click": ("href",),
    "share": ("share_channel",),
    "cta": ("cta",),
    "identify": (),
}
# content_progress must say how far: at least one of these
PROGRESS_ANY_OF = ("page", "progress_pct", "media_position_s")

_FIELDS = {f.name: f for f in COMMON_FIELDS}
_ENVELOPE = {f.name: f for f in ENVELOPE_FIELDS}


class Rejected(Exception):
    """A typed rejection: ``reason`` is a stable code, ``field`` the offending field (if any)."""

    def __init__(self, reason: str, field: str = "", detail: str = ""):
        super().__init__(f"{reason}: {field} {detail}".strip())
        self.reason, self.field, self.detail = reason, field, detail

    def as_dict(self) -> dict:
        d = {"reason": self.reason}
        if self.field:
            d["field"] = self.field
        if self.detail:
            d["detail"] = self.detail
        return d


def check_value(f: Field, value):
    """Validate one value against its field; return the normalised value or raise Rejected."""
    return _checker(f)(value)


@functools.cache
def _checker(f: Field) -> Callable[[Any], Any]:
    """The field's validator as one closure, built once per field (ingest runs it for every value of every
    event: no per-call dispatch on the kind)."""
    k, name = f.kind, f.name
    if k in ("id", "text", "uuid", "enum"):
        if k == "uuid":
            def check(value):
                if not isinstance(value, str):
                    raise Rejected("invalid_type", name, "must be a string")
                if not _UUID_RE.fullmatch(value):
                    raise Rejected("invalid_format", name, "must be a UUID")
                return value.lower()
        elif k == "enum":
            choices = f.choices_set
            reason = "unknown_type" if name == "type" else "invalid_value"

            def check(value):
                if not isinstance(value, str):
                    raise Rejected("invalid_type", name, "must be a string")
                if value not in choices:
                    raise Rejected(reason, name, "must be one of " + ",".join(f.choices))
                return value
        else:
            max_len, is_id = f.max_len, k == "id"

            def check(value):
                if not isinstance(value, str):
                    raise Rejected("invalid_type", name, "must be a string")
                if len(value) > max_len:
                    raise Rejected("too_long", name, f"at most {max_len} characters")
                if is_id and not _ID_RE.fullmatch(value):
                    raise Rejected("invalid_format", name, "1+ characters of A-Z a-z 0-9 _ . : @ -")
                return value
        return check
    if k in ("int", "ts"):
        lo, hi = (float(MIN_TS_MS), float(MAX_TS_MS)) if k == "ts" else (f.lo, f.hi)

        def check(value):
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise Rejected("invalid_type", name, "must be an integer")
            if not lo <= value <= hi:
                raise Rejected("out_of_range", name, f"must be within [{int(lo)}, {int(hi)}]")
            return value
        return check
    if k == "num":
        lo, hi = f.lo, f.hi

        def check(value):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Rejected("invalid_type", name, "must be a number")
            if not lo <= value <= hi:  # also rejects NaN
                raise Rejected("out_of_range", name, f"must be within [{lo:g}, {hi:g}]")
            return float(value)
        return check
    if k == "props":
        def check(value):
            if not isinstance(value, dict):
                raise Rejected("invalid_type", name, "must be an object")
            if len(value) > MAX_PROPS:
                raise Rejected("too_long", name, f"at most {MAX_PROPS} keys")
            for key, v in value.items():
                if not _PROP_KEY_RE.fullmatch(key):
                    raise Rejected("invalid_format", name, "keys are 1-64 of A-Z a-z 0-9 _ . -")
                if isinstance(v, str):
                    if len(v) > MAX_PROP_VALUE:
                        raise Rejected("too_long", name, f"values at most {MAX_PROP_VALUE} characters")
                elif not (v is None or isinstance(v, (bool, int, float))):
                    raise Rejected("invalid_type", name, "values must be strings, numbers, booleans or null")
            return value
        return check
    raise AssertionError(k)


_CHECKS = {f.name: _checker(f) for f in COMMON_FIELDS}


def check_envelope(obj) -> tuple[str, int, list, list[str]]:
    """Validate a request envelope. Returns (site, sent_at, events, ignored_field_names)."""
    if not isinstance(obj, dict):
        raise Rejected("invalid_envelope", "", "body must be a JSON object")
    for name in ("site", "sent_at", "events"):
        if name not in obj:
            raise Rejected("missing_field", name)
    site = check_value(_ENVELOPE["site"], obj["site"])
    sent_at = check_value(_ENVELOPE["sent_at"], obj["sent_at"])
    if "v" in obj:
        check_value(_ENVELOPE["v"], obj["v"])
    events = obj["events"]
    if not isinstance(events, list):
        raise Rejected("invalid_type", "events", "must be an array")
    if not events:
        raise Rejected("empty_batch", "events", "must hold at least one event")
    ignored = [k for k in obj if k not in _ENVELOPE and k != "events"]
    return site, sent_at, events, ignored


def depth(obj, limit: int = MAX_DEPTH) -> int:
    """JSON nesting depth of ``obj``, counted up to ``limit + 1`` (iterative: any depth is safe to measure)."""
    if not isinstance(obj, (dict, list)):
        return 0
    deepest, stack = 1, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > deepest:
            deepest = d
        if d > limit:
            return d
        # only containers go on the stack: a scalar adds no depth (an event's ~10 values are mostly scalars)
        stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o) if isinstance(v, (dict, list)))
    return deepest


def check_event(obj) -> tuple[dict, list[str]]:
    """Validate one event. Returns (clean event holding only known fields, ignored field names)."""
    if not isinstance(obj, dict):
        raise Rejected("invalid_type", "", "event must be a JSON object")
    for v in obj.values():
        if isinstance(v, (dict, list)):  # honest events hold one flat object (props): measured only then
            if depth(obj) > MAX_DEPTH:
                raise Rejected("too_deep", "", f"JSON nested deeper than {MAX_DEPTH} levels")
            break
    for name in REQUIRED_COMMON:
        if obj.get(name) is None:
            raise Rejected("missing_field", name)
    etype = _CHECKS["type"](obj["type"])
    clean, ignored = {}, []
    for key, value in obj.items():
        check = _CHECKS.get(key)
        if check is None:
            ignored.append(key)
        elif value is not None:
            clean[key] = check(value)
    for name in REQUIRED_BY_TYPE[etype]:
        if name not in clean:
            raise Rejected("missing_field", name, f"required for {etype}")
    if etype == "content_progress" and not any(n in clean for n in PROGRESS_ANY_OF):
        raise Rejected("missing_field", "progress_pct", "content_progress needs page, progress_pct or media_position_s")
    return clean, ignored


# check_events: one pattern per column of a batch, values joined by a newline (which neither pattern admits)
_IDS_RE = re.compile(f"{_ID_TEXT}(?:\\n{_ID_TEXT})*")
_UUIDS_RE = re.compile(f"{_UUID_TEXT}(?:\\n{_UUID_TEXT})*")
_REQUIRED_KEYS = frozenset(REQUIRED_COMMON)
_REQUIRED_BY_TYPE_KEYS = {t: frozenset(names) for t, names in REQUIRED_BY_TYPE.items()}
_COLUMNS_FROM = 4  # events per batch from which columns cost less than events one by one (3: as much)
_INT, _NUM = frozenset({int}), frozenset({int, float})


def _column_ok(f: Field, values: list) -> bool:
    """Every value of one field across a batch, with C-level passes (map, set, min/max, one regex), to the
    same rules as ``_checker(f)``; False also where that checker would normalise a value it accepts (an
    integer sent as 2.0), so the per-event path gives its exact answer."""
    k = f.kind
    if k in ("id", "text", "uuid", "enum"):
        try:  # a value that is not a string fails the join (or, for an enum, is not among the choices)
            if k == "enum":
                return set(values) <= f.choices_set
            joined = "\n".join(values)
        except TypeError:
            return False
        if k == "uuid":
            return _UUIDS_RE.fullmatch(joined) is not None
        if max(map(len, values)) > f.max_len:
            return False
        return k == "text" or _IDS_RE.fullmatch(joined) is not None
    types = frozenset(map(type, values))
    if k in ("int", "ts"):
        lo, hi = (MIN_TS_MS, MAX_TS_MS) if k == "ts" else (f.lo, f.hi)
        return types <= _INT and lo <= min(values) and max(values) <= hi
    if k == "num":  # a NaN makes the sum NaN (min and max would not order it)
        if not types <= _NUM:
            return False
        total = sum(values)
        return total == total and f.lo <= min(values) and max(values) <= f.hi
    check = _CHECKS[f.name]  # props: one flat object each
    try:
        for v in values:
            check(v)
    except Rejected:
        return False
    return True


def check_events(events: list) -> list[tuple[dict, list[str]]] | None:
    """``[check_event(e) for e in events]`` for a batch in which every event is plainly valid (known fields
    only, no nulls, values of the field's own type), checked column by column; None when any event is not
    (an unknown field, a null, a rejected value...), or when the batch is too small for columns to pay: the
    caller then checks each event on its own and gets each one's exact answer. The same results either way
    (tests/unit/test_contract.py, property-based)."""
    if len(events) < _COLUMNS_FROM or frozenset(map(type, events)) != {dict}:
        return None
    names = set().union(*events)
    if not names <= _FIELDS.keys():
        return None
    normalise = []
    for name in names:
        f = _FIELDS[name]
        try:
            values = [e[name] for e in events]
        except KeyError:
            values = [e[name] for e in events if name in e]
        if not _column_ok(f, values):
            return None
        if f.kind in ("uuid", "num"):
            normalise.append((name, str.lower if f.kind == "uuid" else float))
    out: list[tuple[dict, list[str]]] = []
    for e in events:
        keys = e.keys()
        etype = e["type"] if keys >= _REQUIRED_KEYS else None
        if etype is None or not keys >= _REQUIRED_BY_TYPE_KEYS[etype] or (
                etype == "content_progress" and keys.isdisjoint(PROGRESS_ANY_OF)):
            return None
        clean = dict(e)
        for name, fn in normalise:
            if name in clean:
                clean[name] = fn(clean[name])
        out.append((clean, []))
    return out


# check_body: a plainly valid request decoded and checked in one pass (msgspec: the JSON parsed straight into
# types built below from the same field table, lengths, ranges, choices, required fields and unknown fields
# checked as it parses); the character sets of ids, UUIDs and prop keys then checked a column at a time
_ID_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-")
_ID_CHARS = bytes(sorted(_ID_BYTES | {10}))  # and the newline that joins a column
_PROP_KEY_CHARS = bytes(sorted((_ID_BYTES - {ord(":"), ord("@")}) | {10}))
_LOWER_HEX = b"0123456789abcdef"
_ID_NAMES = tuple(f.name for f in COMMON_FIELDS if f.kind == "id")
# prop values as the per-event check takes them, integers only within int64 (orjson reads one beyond 64 bits as
# a float, msgspec as an int: such a body goes the per-event way)
_PROP_VALUE = (Annotated[str, msgspec.Meta(max_length=MAX_PROP_VALUE)]
               | Annotated[int, msgspec.Meta(ge=-(2 ** 63), le=2 ** 63 - 1)] | float | bool | None)


def _plain_type(f: Field) -> Any:
    """What the plain decoder takes for a field: a subset of what ``_checker(f)`` accepts, each value one that
    checker returns as it is (an integer sent as 2.0, an upper-case UUID or a null go the per-event way)."""
    k = f.kind
    if k == "id":
        return Annotated[str, msgspec.Meta(min_length=1, max_length=f.max_len)]
    if k == "text":
        return Annotated[str, msgspec.Meta(max_length=f.max_len)]
    if k == "uuid":
        return Annotated[str, msgspec.Meta(min_length=36, max_length=36)]
    if k == "enum":
        return Literal[f.choices]
    if k == "ts":
        return Annotated[int, msgspec.Meta(ge=MIN_TS_MS, le=MAX_TS_MS)]
    if k == "int":
        return Annotated[int, msgspec.Meta(ge=int(f.lo), le=int(f.hi))]
    if k == "num":  # an integer is read as a float, as the checker's float(value)
        return Annotated[float, msgspec.Meta(ge=f.lo, le=f.hi)]
    if k == "props":
        return Annotated[dict[str, _PROP_VALUE], msgspec.Meta(max_length=MAX_PROPS)]
    raise AssertionError(k)


def _plain_event(etype: str) -> type:
    required = set(REQUIRED_COMMON) | set(REQUIRED_BY_TYPE[etype])
    fields = [(f.name, _plain_type(f)) if f.name in required else (f.name, _plain_type(f) | msgspec.UnsetType,
                                                                    msgspec.UNSET)
              for f in COMMON_FIELDS if f.name != "type"]
    fields.sort(key=lambda x: len(x) == 3)  # required ones first
    return msgspec.defstruct(f"Plain_{etype}", fields, kw_only=True, tag_field="type", tag=etype,
                             forbid_unknown_fields=True)


_PLAIN_EVENTS = tuple(_plain_event(t) for t in EVENT_TYPES)
_PlainEnvelope = msgspec.defstruct(
    "PlainEnvelope",
    [("site", _plain_type(_ENVELOPE["site"])), ("sent_at", _plain_type(_ENVELOPE["sent_at"])),
     ("events", Annotated[list[functools.reduce(operator.or_, _PLAIN_EVENTS)],  # type: ignore[misc]
                          msgspec.Meta(min_length=1)]),
     ("v", _plain_type(_ENVELOPE["v"]) | msgspec.UnsetType, msgspec.UNSET)],
    forbid_unknown_fields=True)
_PLAIN_DECODER = msgspec.json.Decoder(_PlainEnvelope)


def _chars_ok(values: list[str], allowed: bytes) -> bool:
    """Every value of a column made only of ``allowed`` characters (a newline within a value is not: the joined
    column then holds more newlines than the joins)."""
    joined = "\n".join(values)
    return joined.isascii() and joined.count("\n") == len(values) - 1 and not joined.encode().translate(None, allowed)


def _lower_uuids(joined: str, n: int) -> bool:
    """``n`` lower-case hyphenated UUIDs joined by newlines: the length, a hyphen at each of the four places and
    a newline between each two (slices a fixed stride apart), and nothing but hex digits elsewhere."""
    return (len(joined) == 37 * n - 1 and joined.isascii() and joined[8::37] == joined[13::37] == joined[18::37]
            == joined[23::37] == "-" * n and joined[36::37] == "\n" * (n - 1)
            and not joined.encode().translate(None, _LOWER_HEX + b"-\n") and joined.count("-") == 4 * n
            and joined.count("\n") == n - 1)


def check_body(body: bytes) -> tuple[str, int, list[dict]] | None:
    """``check_envelope(parse_json(body))`` and ``check_event`` of each of its events, at once, for a request that
    is plainly valid: known fields only, no nulls, each value of its field's own type and none that the checks
    would normalise (an upper-case UUID, an integer sent as 2.0). Returns (site, sent_at, the clean events);
    None for any other body, which then goes the way that gives each rejection its answer. The same results
    either way (tests/unit/test_contract.py, property-based, on JSON text written the ways clients and
    attackers write it)."""
    try:
        env: Any = _PLAIN_DECODER.decode(body)
    except msgspec.MsgspecError:
        return None
    cleans: list[dict] = msgspec.to_builtins(env.events)
    ids = [env.site]
    for name in _ID_NAMES:
        ids += [c[name] for c in cleans if name in c]
    if not _chars_ok(ids, _ID_CHARS) or not _lower_uuids("\n".join([c["event_id"] for c in cleans]), len(cleans)):
        return None
    for c in cleans:
        if c["type"] == "content_progress" and not any(p in c for p in PROGRESS_ANY_OF):
            return None
    for props in [c["props"] for c in cleans if "props" in c]:
        if props and (not _chars_ok(list(props), _PROP_KEY_CHARS) or max(map(len, props)) > 64 or min(map(len, props)) < 1):
            return None
    return env.site, env.sent_at, cleans


def corrected_ts(client_ts: int, sent_at: int, received_at: int, tolerance_ms: int) -> int:
    """Move a client timestamp onto the server clock.

    skew = received_at - sent_at includes network latency, so small skews (<= tolerance) are left alone:
    an honest clock then yields the same ts on every retry of an event. Larger skews shift the event by
    the measured skew. The result is never later than the server receive time.
    """
    skew = received_at - sent_at
    ts = client_ts if abs(skew) <= tolerance_ms else client_ts + skew
    return min(ts, received_at)


# ---------------------------------------------------------------- JSON Schema export

def _schema_for(f: Field) -> dict:
    s: dict = {"description": f.doc}
    if f.kind in ("id", "text"):
        s.update(type="string", maxLength=f.max_len)
        if f.kind == "id":
            s.update(minLength=1, pattern=_ID_RE.pattern)
    elif f.kind == "uuid":
        s.update(type="string", pattern=_UUID_RE.pattern)
    elif f.kind == "enum":
        s.update(type="string", enum=list(f.choices))
    elif f.kind == "ts":
        s.update(type="integer", minimum=MIN_TS_MS, maximum=MAX_TS_MS)
    elif f.kind == "int":
        s.update(type="integer", minimum=int(f.lo), maximum=int(f.hi))
    elif f.kind == "num":
        s.update(type="number", minimum=f.lo, maximum=f.hi)
    elif f.kind == "props":
        s.update(type="object", maxProperties=MAX_PROPS,
                 propertyNames={"pattern": _PROP_KEY_RE.pattern},
                 additionalProperties={"type": ["string", "number", "boolean", "null"], "maxLength": MAX_PROP_VALUE})
    return s


def json_schema(max_events: int = 100) -> dict:
    event_props = {f.name: _schema_for(f) for f in COMMON_FIELDS}
    branches = []
    for etype, required in REQUIRED_BY_TYPE.items():
        branch: dict[str, Any] = {"if": {"properties": {"type": {"const": etype}}},
                  "then": {"required": list(required)}}
        if etype == "content_progress":
            branch["then"]["anyOf"] = [{"required": [n]} for n in PROGRESS_ANY_OF]
        branches.append(branch)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dealbeacon.dev/schema/event-v1.json",
        "title": "dealbeacon event batch, contract v1",
        "description": __doc__.strip(),
        "type": "object",
        "required": ["site", "sent_at", "events"],
        "additionalProperties": False,
        "properties": {
            **{f.name: _schema_for(f) for f in ENVELOPE_FIELDS},
            "events": {"type": "array", "minItems": 1, "maxItems": max_events, "items": {"$ref": "#/$defs/event"}},
        },
        "$defs": {"event": {
            "type": "object",
            "required": list(REQUIRED_COMMON),
            "additionalProperties": False,
            "properties": event_props,
            "allOf": branches,
        }},
    }


# -- rooms (deals): the server-side rooms API and the streams share these
DEFAULT_STAGES = ("prospecting", "qualification", "demo", "proposal", "negotiation", "closed_won", "closed_lost")
ROOM_ROLES = ("champion", "economic_buyer", "technical", "legal", "user", "other")
CONTENT_KINDS = ("proposal", "pricing", "contract", "security", "case_study", "video", "other")  # + a site's own
SEVERITIES = ("info", "low", "medium", "high")  # of alerts, least to most urgent
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
# buyer actions a webhook channel can subscribe to (``events`` of a channel); one per buyer action
ACTIVITY_KINDS = ("room_opened", "content_viewed", "document_completed", "downloaded", "shared", "new_person")
