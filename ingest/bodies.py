"""Every JSON body of the server-side APIs as a pydantic model, and one way to judge them.

``parse(Model, body, **context)`` validates a decoded body and returns the model, or raises the contract's
``Rejected`` with a reason code and the field path a client can act on (``stakeholders[0].role``): an unknown
field is refused by name (``unknown_field``), never silently dropped. The OpenAPI document takes its request
schemas from these models (``schemas()``), so the document and the validation cannot drift apart.

Beacon events are not here: they are judged per event inside a batch by the event contract
(``dealbeacon.core.contract``), the published schema of the beacon's wire format.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dealbeacon.core.clock import check_zone
from dealbeacon.core.contract import ACTIVITY_KINDS, ID_RE, MAX_DATE, MAX_TS_MS, MIN_DATE, MIN_TS_MS, ROOM_ROLES, SEVERITIES, Rejected
from dealbeacon.core.periods import period_bounds

MAX_SNOOZE_HOURS = 24 * 90

ID_PATTERN = r"^[A-Za-z0-9._:@/-]{1,128}$"  # stakeholder, channel and seller ids
EVENT_ID_PATTERN = ID_RE.pattern  # room and content ids: what the beacon's events may carry

EpochMs = Annotated[int, Field(ge=MIN_TS_MS, le=MAX_TS_MS, description="epoch milliseconds")]
Number = Annotated[float, Field(allow_inf_nan=False)]  # strict: an int is taken, a bool or a string is not


def iso_day(v: str) -> str:
    """A day as YYYY-MM-DD (normalised: 20261231 is taken as 2026-12-31), within what ClickHouse's Date holds."""
    try:
        day = dt.date.fromisoformat(v).isoformat()
    except ValueError:
        raise ValueError("a date, YYYY-MM-DD") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValueError(f"a date within {MIN_DATE} .. {MAX_DATE}")
    return day


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        """A JSON null is refused: leave a field out to keep its value (null would read as "unset it")."""
        if value is None:
            raise PydanticCustomError("null", "null is not a value here; leave the field out")
        return value


class Person(Body):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    email: Annotated[str, Field(max_length=256)] = ""
    role: Literal[ROOM_ROLES] = "other"  # type: ignore[valid-type]
    internal: bool = Field(False, description="the seller's own team: stored, never scored or alerted on")


class Content(Body):
    id: Annotated[str, Field(pattern=EVENT_ID_PATTERN, max_length=128, description="as the beacon's content_id")]
    title: Annotated[str, Field(max_length=200)] = ""
    kind: str = Field(description="proposal, pricing, contract, security, case_study, video, other, or a kind "
                                  "the site declared (DEALBEACON_CONTENT_KINDS)")
    pages: Annotated[int, Field(ge=1, le=100_000)] | None = None
    duration_s: Annotated[Number, Field(gt=0, le=86_400)] | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str, info: ValidationInfo) -> str:
        kinds = (info.context or {}).get("kinds", ())
        if v not in kinds:
            raise ValueError("one of " + ", ".join(kinds))
        return v


class RoomUpdate(Body):
    """A room (deal) update; fields left out keep their value."""
    name: Annotated[str, Field(max_length=256)] | None = None
    owner: Annotated[str, Field(max_length=256)] | None = None
    stage: str | None = None
    amount: Annotated[Number, Field(ge=0)] | None = None
    expected_close: str | None = Field(None, description="YYYY-MM-DD")
    proposal_shared_at: EpochMs | None = None
    updated_at: EpochMs | None = Field(None, description="when it changed in the CRM (default: now)")
    stakeholders: Annotated[list[Person], Field(max_length=100)] | None = None
    content: Annotated[list[Content], Field(max_length=200)] | None = None
    timezone: str | None = Field(None, description="the buyer's IANA time zone (Europe/Berlin): silence is counted "
                                 "in their working days; default: the site's (DEALBEACON_TIMEZONE)")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return v if v is None else check_zone(v)

    @field_validator("stage")
    @classmethod
    def _stage(cls, v: str | None, info: ValidationInfo) -> str | None:
        stages = (info.context or {}).get("stages", ())
        if v is not None and v not in stages:
            raise ValueError("one of " + ", ".join(stages))
        return v

    @field_validator("expected_close")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        return v if v is None else iso_day(v)

    @model_validator(mode="after")
    def _unique(self) -> RoomUpdate:
        for name, ids in (("stakeholders", [p.id for p in self.stakeholders or ()]),
                          ("content", [c.id for c in self.content or ()])):
            for i, ident in enumerate(ids):
                if ident in ids[:i]:
                    raise Rejected("duplicate", f"{name}[{i}].id", f"{ident!r} is listed twice")
        return self

    def clean(self) -> dict[str, Any]:
        """The fields given, as the room record carries them."""
        out = self.model_dump(exclude_unset=True, exclude={"stakeholders", "content"})
        if "amount" in out:
            out["amount"] = float(out["amount"])
        if self.stakeholders is not None:
            out["stakeholders"] = [p.model_dump() for p in self.stakeholders]
        if self.content is not None:
            out["content"] = [{k: float(v) if k == "duration_s" else v for k, v in c.model_dump(exclude_none=True).items()}
                              for c in self.content]
        return out


class Clock(Body):
    now: EpochMs


class Erase(Body):
    stakeholder: Annotated[str, Field(pattern=ID_PATTERN, description="a stakeholder id, or visitor:<visitor id>")]
    room_id: Annotated[str, Field(max_length=128, description="only this room (default: every room)")] = ""

    @field_validator("room_id")
    @classmethod
    def _room(cls, v: str) -> str:
        if v and not ID_RE.fullmatch(v):
            raise ValueError("1-128 characters [A-Za-z0-9_.:@-], or left out")
        return v


class Channel(Body):
    kind: Literal["webhook", "slack", "email"]
    target: Annotated[str, Field(min_length=1, max_length=2048, description="a URL (webhook, slack) or an email address")]
    owner: Annotated[str, Field(max_length=256, description="a seller id ('' for every seller)")] = ""
    min_severity: Literal[SEVERITIES] = "info"  # type: ignore[valid-type]
    enabled: bool = True
    events: Annotated[list[Literal[ACTIVITY_KINDS]], Field(max_length=len(ACTIVITY_KINDS),  # type: ignore[valid-type]
                      description="buyer actions to receive as they happen (webhooks only)")] = []

    @model_validator(mode="after")
    def _target(self) -> Channel:
        if self.events and self.kind != "webhook":
            raise Rejected("invalid_value", "events", "buyer actions go to webhooks only")
        if self.kind in ("webhook", "slack") and not self.target.startswith(("http://", "https://")):
            raise Rejected("invalid_value", "target", "an http(s) URL")
        if self.kind == "email" and "@" not in self.target:
            raise Rejected("invalid_value", "target", "an email address")
        return self


class Seller(Body):
    name: Annotated[str, Field(max_length=256)] = ""
    tz: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin")
    quiet_hours: Annotated[list[Annotated[int, Field(ge=0, le=23)]], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[start hour, end hour] in tz: notices wait until the end")
    muted_rooms: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=10_000)] = []
    min_severity: Literal[SEVERITIES] = "info"  # type: ignore[valid-type]
    digest: bool = False

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_zone(v)


class QuotaPeriod(Body):
    period: Annotated[str, Field(max_length=16, description="2026 (year), 2026-Q3 (quarter) or 2026-07 (month)")] = ""
    start: str = Field("", description="first day, YYYY-MM-DD (instead of period)")
    end: str = Field("", description="last day, YYYY-MM-DD (with start)")
    amount: Annotated[Number, Field(ge=0, le=1e15, description="the quota, in the rooms' currency")]

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        if v:
            period_bounds(v)  # ValueError says what is accepted
        return v

    @field_validator("start", "end")
    @classmethod
    def _day(cls, v: str) -> str:
        return iso_day(v) if v else v

    @model_validator(mode="after")
    def _bounds(self) -> QuotaPeriod:
        if bool(self.period) == bool(self.start or self.end) or (self.start and not self.end) or (self.end and not self.start):
            raise ValueError("give either period (2026-Q3) or start and end (YYYY-MM-DD)")
        if self.end < self.start:
            raise ValueError("end must be on or after start")
        return self

    def bounds(self) -> tuple[str, str, str]:
        """(label, first day, last day)."""
        if self.period:
            a, b = period_bounds(self.period)
            return self.period, a.isoformat(), b.isoformat()
        return f"{self.start}..{self.end}", self.start, self.end


class Quotas(Body):
    """An owner's quota plan: every period it has (a PUT replaces the plan); periods may not overlap."""
    periods: Annotated[list[QuotaPeriod], Field(max_length=240)]

    @model_validator(mode="after")
    def _no_overlap(self) -> Quotas:
        spans = [p.bounds() for p in self.periods]
        for i, (label, a, b) in enumerate(spans):
            for j, (other, c, d) in enumerate(spans[:i]):
                if a <= d and c <= b:
                    raise Rejected("overlap", f"periods[{i}]", f"{label} ({a} .. {b}) overlaps periods[{j}], {other} "
                                   f"({c} .. {d})")
        return self


class Snooze(Body):
    hours: Annotated[Number, Field(gt=0, le=MAX_SNOOZE_HOURS)] = 24


_REASONS = {"extra_forbidden": "unknown_field", "missing": "missing_field", "greater_than": "out_of_range",
            "greater_than_equal": "out_of_range", "less_than": "out_of_range", "less_than_equal": "out_of_range",
            "finite_number": "out_of_range", "string_too_long": "too_long", "too_long": "too_long",
            "too_short": "invalid_value", "string_too_short": "invalid_value"}


def parse(model: type[Body], body: object, **context: Any) -> Any:
    """``body`` (decoded JSON) as ``model``, or ``Rejected(reason, field path, detail)`` for its first fault."""
    if not isinstance(body, dict):
        raise Rejected("invalid_body", "", f"expected a JSON object ({model.__name__})")
    try:
        return model.model_validate(body, context=context)
    except ValidationError as e:
        errors = sorted(e.errors(include_url=False), key=lambda err: err["type"] != "extra_forbidden")
        err = errors[0]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{str(part)[:64]}" for part in err["loc"]).lstrip(".")
        kind = err["type"]
        reason = _REASONS.get(kind) or ("invalid_type" if kind.endswith("_type") else "invalid_value")
        raise Rejected(reason, path, err["msg"].removeprefix("Value error, ")) from None


def schemas(stages: tuple[str, ...], kinds: tuple[str, ...]) -> dict[str, dict]:
    """OpenAPI component schemas of every body, with this deployment's stages and content kinds."""
    out: dict[str, dict] = {}
    for model in (RoomUpdate, Clock, Erase, Channel, Seller, Snooze, Quotas):
        doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(doc.pop("$defs", {}))
        out[model.__name__] = doc
    out["RoomUpdate"]["properties"]["stage"] = {"enum": list(stages)}
    out["Content"]["properties"]["kind"] = {"enum": list(kinds)}
    for doc in out.values():  # optional means "leave it out": null is refused, so it is not documented
        for name, prop in doc.get("properties", {}).items():
            branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
            if "anyOf" in prop and len(branches) == 1:
                doc["properties"][name] = {**{k: v for k, v in prop.items() if k not in ("anyOf", "default")}, **branches[0]}
    return out
