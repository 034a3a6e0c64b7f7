import json
import pathlib
import uuid

import jsonschema
import pytest
from hypothesis import event as hyp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from dealbeacon.core import contract
from dealbeacon.core.contract import Rejected, check_envelope, check_event, corrected_ts
from tests.support.data import NOW_MS, batch, event

SCHEMA_FILE = pathlib.Path(__file__).parents[2] / "contract" / "event-v1.schema.json"


def test_schema_file_is_generated_from_the_contract():
    assert json.loads(SCHEMA_FILE.read_text()) == contract.json_schema(100), "run: dealbeacon schema > contract/event-v1.schema.json"


@pytest.mark.parametrize("etype", contract.EVENT_TYPES)
def test_every_type_has_a_valid_minimal_event(etype):
    clean, ignored = check_event(event(etype))
    assert clean["type"] == etype and ignored == []
    jsonschema.validate(batch(event(etype)), contract.json_schema())


@pytest.mark.parametrize("mutate, reason, field", [
    (lambda e: e.pop("event_id"), "missing_field", "event_id"),
    (lambda e: e.update(event_id="not-a-uuid"), "invalid_format", "event_id"),
    (lambda e: e.update(type="teleport"), "unknown_type", "type"),
    (lambda e: e.update(ts="yesterday"), "invalid_type", "ts"),
    (lambda e: e.update(ts=12), "out_of_range", "ts"),
    (lambda e: e.update(room_id="r" * 129), "too_long", "room_id"),
    (lambda e: e.update(room_id="has space"), "invalid_format", "room_id"),
    # a trailing newline: re's "$" matches before one, so the patterns are matched whole (as the schema's are)
    (lambda e: e.update(room_id="room-1\n"), "invalid_format", "room_id"),
    (lambda e: e.update(event_id=e["event_id"] + "\n"), "invalid_format", "event_id"),
    (lambda e: e.update(props={"key\n": 1}), "invalid_format", "props"),
    (lambda e: e.update(url="u" * 2049), "too_long", "url"),
    (lambda e: e.update(page=-1), "out_of_range", "page"),
    (lambda e: e.update(page=True), "invalid_type", "page"),
    (lambda e: e.update(scroll_pct=float("nan")), "out_of_range", "scroll_pct"),
    (lambda e: e.update(props={"k": "v" * 300}), "too_long", "props"),
    (lambda e: e.update(props={"k": {"nested": 1}}), "invalid_type", "props"),
    (lambda e: e.update(props={f"k{i}": i for i in range(21)}), "too_long", "props"),
])
def test_invalid_events_have_typed_reasons(mutate, reason, field):
    e = event("room_view")
    mutate(e)
    with pytest.raises(Rejected) as info:
        check_event(e)
    assert (info.value.reason, info.value.field) == (reason, field)


@pytest.mark.parametrize("etype, missing", [("content_view", "content_id"), ("engagement", "engaged_ms"),
                                            ("download", "href"), ("share", "share_channel"), ("cta", "cta")])
def test_type_specific_required_fields(etype, missing):
    e = event(etype)
    e.pop(missing)
    with pytest.raises(Rejected) as info:
        check_event(e)
    assert info.value.reason == "missing_field" and info.value.field == missing


def test_engagement_heartbeat_is_capped():
    with pytest.raises(Rejected) as info:
        check_event(event("engagement", engaged_ms=contract.MAX_ENGAGED_MS + 1))
    assert info.value.reason == "out_of_range"


def test_content_progress_needs_a_position():
    e = event("content_progress")
    e.pop("page")
    with pytest.raises(Rejected):
        check_event(e)
    assert check_event({**e, "progress_pct": 40})[0]["progress_pct"] == 40.0


def test_unknown_fields_are_ignored_and_reported():
    clean, ignored = check_event(event("room_view", color="blue"))
    assert "color" not in clean and ignored == ["color"]


def test_envelope_errors():
    for obj, reason in [([], "invalid_envelope"), ({"sent_at": NOW_MS, "events": []}, "missing_field"),
                        ({"site": "s", "sent_at": NOW_MS, "events": []}, "empty_batch"),
                        ({"site": "s", "sent_at": NOW_MS, "events": {}}, "invalid_type"),
                        ({"site": "s", "sent_at": "now", "events": [1]}, "invalid_type")]:
        with pytest.raises(Rejected) as info:
            check_envelope(obj)
        assert info.value.reason == reason


def test_clock_skew_small_skew_keeps_client_time():
    # 300 ms of latency is not skew: retries of the same event keep the same ts
    assert corrected_ts(NOW_MS - 5_000, NOW_MS - 300, NOW_MS, 5_000) == NOW_MS - 5_000
    assert corrected_ts(NOW_MS - 5_000, NOW_MS - 900, NOW_MS, 5_000) == NOW_MS - 5_000


def test_clock_skew_large_skew_is_corrected():
    hour = 3_600_000
    # client clock one hour behind: the event happened 5 s before the request was sent
    sent_at = NOW_MS - hour
    assert corrected_ts(sent_at - 5_000, sent_at, NOW_MS, 5_000) == NOW_MS - 5_000
    # client clock one hour ahead
    sent_at = NOW_MS + hour
    assert corrected_ts(sent_at - 5_000, sent_at, NOW_MS, 5_000) == NOW_MS - 5_000


def test_corrected_time_is_never_in_the_future():
    assert corrected_ts(NOW_MS + 60_000, NOW_MS, NOW_MS, 5_000) == NOW_MS


# -- the validator and the exported JSON Schema agree

_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 2 * 10**13), st.floats(allow_nan=False, width=32),
                    st.text(max_size=40), st.sampled_from(contract.EVENT_TYPES + contract.SHARE_CHANNELS))
_known = [f.name for f in contract.COMMON_FIELDS if f.name != "props"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(contract.EVENT_TYPES), st.dictionaries(st.sampled_from(_known), _values, max_size=6))
def test_validator_and_json_schema_agree(etype, overrides):
    e = event(etype)
    e.update({k: v for k, v in overrides.items() if v is not None})
    schema = contract.json_schema()
    try:
        check_event(e)
        ours = True
    except Rejected:
        ours = False
    theirs = jsonschema.Draft202012Validator(schema).is_valid(batch(e))
    assert ours == theirs, e


def test_row_ids_are_the_standard_uuid5():
    import random
    import uuid

    from streams.ids import Namespace

    rng = random.Random(3)
    for _ in range(300):
        ns = uuid.UUID(int=rng.getrandbits(128))
        name = "".join(rng.choice("ab/é😀-0") for _ in range(rng.randint(0, 40)))
        assert Namespace(ns).name(name) == str(uuid.uuid5(ns, name))

# -- the validator against the rules as first written (one kind dispatch per value, every value walked for
#    depth): drawn events of any shape must get the same clean event, ignored names or refusal


def _reference_check_value(f, value):
    k = f.kind
    if k in ("id", "text", "uuid", "enum"):
        if not isinstance(value, str):
            raise Rejected("invalid_type", f.name, "must be a string")
        if k == "uuid":
            if not contract._UUID_RE.match(value):
                raise Rejected("invalid_format", f.name, "must be a UUID")
            return value.lower()
        if k == "enum":
            if value not in f.choices:
                raise Rejected("unknown_type" if f.name == "type" else "invalid_value", f.name,
                               "must be one of " + ",".join(f.choices))
            return value
        if len(value) > f.max_len:
            raise Rejected("too_long", f.name, f"at most {f.max_len} characters")
        if k == "id" and not contract._ID_RE.match(value):
            raise Rejected("invalid_format", f.name, "1+ characters of A-Z a-z 0-9 _ . : @ -")
        return value
    if k in ("int", "ts"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise Rejected("invalid_type", f.name, "must be an integer")
        lo, hi = (float(contract.MIN_TS_MS), float(contract.MAX_TS_MS)) if k == "ts" else (f.lo, f.hi)
        if not lo <= value <= hi:
            raise Rejected("out_of_range", f.name, f"must be within [{int(lo)}, {int(hi)}]")
        return value
    if k == "num":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Rejected("invalid_type", f.name, "must be a number")
        if not f.lo <= value <= f.hi:  # also rejects NaN
            raise Rejected("out_of_range", f.name, f"must be within [{f.lo:g}, {f.hi:g}]")
        return float(value)
    if k == "props":
        if not isinstance(value, dict):
            raise Rejected("invalid_type", f.name, "must be an object")
        if len(value) > contract.MAX_PROPS:
            raise Rejected("too_long", f.name, f"at most {contract.MAX_PROPS} keys")
        for key, v in value.items():
            if not contract._PROP_KEY_RE.match(key):
                raise Rejected("invalid_format", f.name, "keys are 1-64 of A-Z a-z 0-9 _ . -")
            if isinstance(v, str):
                if len(v) > contract.MAX_PROP_VALUE:
                    raise Rejected("too_long", f.name, f"values at most {contract.MAX_PROP_VALUE} characters")
            elif not (v is None or isinstance(v, (bool, int, float))):
                raise Rejected("invalid_type", f.name, "values must be strings, numbers, booleans or null")
        return value
    raise AssertionError(k)


def _reference_depth(obj, limit=contract.MAX_DEPTH):
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            deepest = max(deepest, d)
            if d > limit:
                return d
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


def _reference_check_event(obj):
    if not isinstance(obj, dict):
        raise Rejected("invalid_type", "", "event must be a JSON object")
    if _reference_depth(obj) > contract.MAX_DEPTH:
        raise Rejected("too_deep", "", f"JSON nested deeper than {contract.MAX_DEPTH} levels")
    for name in contract.REQUIRED_COMMON:
        if name not in obj or obj[name] is None:
            raise Rejected("missing_field", name)
    fields = {f.name: f for f in contract.COMMON_FIELDS}
    etype = _reference_check_value(fields["type"], obj["type"])
    clean, ignored = {}, []
    for key, value in obj.items():
        f = fields.get(key)
        if f is None:
            ignored.append(key)
        elif value is not None:
            clean[key] = _reference_check_value(f, value)
    for name in contract.REQUIRED_BY_TYPE[etype]:
        if name not in clean:
            raise Rejected("missing_field", name, f"required for {etype}")
    if etype == "content_progress" and not any(n in clean for n in contract.PROGRESS_ANY_OF):
        raise Rejected("missing_field", "progress_pct", "content_progress needs page, progress_pct or media_position_s")
    return clean, ignored


def _outcome(check, obj):
    try:
        return ("ok", *check(obj))
    except Rejected as r:
        return ("refused", r.as_dict())


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                     st.integers(0, 120), st.floats(0, 120), st.integers(contract.MIN_TS_MS - 5, contract.MIN_TS_MS + 5),
                     st.text(max_size=80), st.sampled_from(["3f2504e0-4f89-11d3-9a0c-0305e82c3301", "room-1", "x y",
                                                            "email", "engagement", "content_progress", "share"]))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                     max_leaves=30)
_names = st.sampled_from([f.name for f in contract.COMMON_FIELDS] + ["extra", "nested", ""])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_names, st.one_of(_json, _scalars), max_size=6), st.booleans(), st.integers(0, 2),
       st.integers(0, 20))
def test_check_event_agrees_with_the_reference_rules(drawn, complete, keep, nest):
    obj = dict(drawn)
    if complete:  # mostly-valid events too, so the per-type rules and the normalisation are reached
        obj = {"event_id": "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "type": "content_progress", "room_id": "r-1",
               "visitor_id": "v", "session_id": "s", "ts": 1_767_225_600_000.0, "progress_pct": 50, "content_id": "deck",
               **dict(list(drawn.items())[:keep])}
    deep: object = 1
    for _ in range(nest):
        deep = [deep]
    obj["props_deep"] = deep
    got = _outcome(contract.check_event, obj)
    assert got == _outcome(_reference_check_event, obj)
    assert contract.depth(obj) == _reference_depth(obj)
    hyp_event(got[0])  # how often the drawn events passed (pytest --hypothesis-show-statistics)


# -- a batch checked column by column (the ingest's fast path) answers as its events checked one by one

def _valid_values(f: contract.Field):
    """Values the field takes, and its edges (one past a bound, an integer sent as a float, a NaN...)."""
    if f.kind == "uuid":
        return st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()) | st.just(str(uuid.uuid4()) + "\n")
    if f.kind == "enum":
        return st.sampled_from(f.choices)
    if f.kind in ("id", "text"):
        edge = st.integers(f.max_len - 1, f.max_len + 1).map(lambda n: "a" * n)
        if f.kind == "id":
            return st.from_regex(r"\A[A-Za-z0-9_.:@-]{1,12}\Z") | edge | st.just("room-1\n") | st.just("r\u00e9")
        return st.text(max_size=30) | edge
    if f.kind in ("int", "ts"):
        lo, hi = (contract.MIN_TS_MS, contract.MAX_TS_MS) if f.kind == "ts" else (int(f.lo), int(f.hi))
        return st.integers(lo - 1, hi + 1) | st.sampled_from([lo, hi, float(lo), True])
    if f.kind == "num":
        return st.floats(f.lo - 1, f.hi + 1) | st.integers(int(f.lo), int(f.hi)) | st.sampled_from([-0.0, float("nan")])
    return st.dictionaries(st.text(max_size=70), st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=300),
                                                            st.lists(st.integers(), max_size=1)), max_size=3)


_VALID = {f.name: _valid_values(f) for f in contract.COMMON_FIELDS}


@st.composite
def _batch_event(draw):
    e = event(draw(st.sampled_from(contract.EVENT_TYPES)))
    changed = draw(st.lists(st.sampled_from(sorted(_VALID)), max_size=3)) if draw(st.integers(0, 5)) == 0 else []
    for name in changed:  # mostly honest events, so whole batches pass and the columns are compared
        e[name] = draw(_VALID[name]) if draw(st.integers(0, 9)) else draw(_scalars)
    if draw(st.integers(0, 49)) == 0:
        e.pop(draw(st.sampled_from(sorted(e))))
    if draw(st.integers(0, 49)) == 0:
        e["extra"] = 1
    return e


@settings(max_examples=500, deadline=None)
@given(st.lists(_batch_event(), min_size=1, max_size=10))
def test_a_batch_checked_by_columns_gets_each_events_own_answer(events):
    by_columns = contract.check_events(events)
    one_by_one = [_outcome(check_event, e) for e in events]
    if by_columns is not None:  # taken: every event valid, each with the clean copy check_event makes
        assert [("ok", *r) for r in by_columns] == one_by_one
    hyp_event("by columns" if by_columns is not None else "one by one")


def test_an_honest_batch_is_checked_by_columns():
    events = [event(t, token="v1.aaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb") for t in contract.EVENT_TYPES]
    events += [event("content_progress", progress_pct=12, scroll_pct=40.5, media_position_s=3, props={"a": 1}),
               event("engagement", event_id=str(uuid.uuid4()).upper(), url="https://rooms.example.com/r/1")]
    by_columns = contract.check_events(events)
    assert by_columns is not None
    assert by_columns == [check_event(e) for e in events]
    assert by_columns[-1][0]["event_id"] == events[-1]["event_id"].lower()
    assert isinstance(by_columns[-2][0]["progress_pct"], float)
    for bad in ({"scroll_pct": float("nan")}, {"page": 2.0}, {"room_id": "r\n"}, {"url": None}, {"unknown": 1}):
        assert contract.check_events([*events[:-1], {**events[-1], **bad}]) is None, bad


# -- a plainly valid request parsed and checked in one pass (contract.check_body) answers as the per-event way

def _per_event_way(text: bytes):
    """What the ingest makes of a body parsed, its envelope and then each event checked on its own: the site,
    the client's send time and the clean events when nothing is rejected or ignored; else None."""
    from ingest.body import BodyError, parse_json
    try:
        site, sent_at, events, ignored = check_envelope(parse_json(text))
        checked = [check_event(e) for e in events]
    except (Rejected, BodyError):
        return None
    if ignored or any(extra for _, extra in checked):
        return None
    return site, sent_at, [clean for clean, _ in checked]


def _write(value, draw) -> str:
    """JSON text of ``value`` the ways clients and attackers write it: escaped or raw non-ASCII, whitespace, an
    integer as 2.0 or 2e0, an object with a key written twice (the last one counts)."""
    if isinstance(value, dict):
        pairs = [f"{json.dumps(k)}:{_write(v, draw)}" for k, v in value.items()]
        if value and draw(st.integers(0, 29)) == 0:  # a key twice: first a decoy value, then the real one
            k = draw(st.sampled_from(sorted(value)))
            pairs.insert(0, f"{json.dumps(k)}:{_write(draw(_scalars), draw)}")
        return "{" + draw(st.sampled_from(["", " ", "\n"])).join([",".join(pairs)]) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_write(v, draw) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int) and draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([f"{value}.0", f"{value}e0", f"{value}.000"]))
    if isinstance(value, float) and value != value:
        return "NaN"
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@settings(max_examples=600, deadline=None)
@given(st.data(), st.lists(_batch_event(), min_size=1, max_size=8))
def test_a_plain_body_checked_in_one_pass_answers_as_the_per_event_way(data, events):
    def mostly(honest: list, awkward: list):  # mostly honest, so that most bodies are taken and compared
        return data.draw(st.sampled_from(honest) if data.draw(st.integers(0, 9)) else st.sampled_from(awkward))

    body = {"site": mostly(["bench", "s.1:x@y-z", "a" * 64], ["a" * 65, "", "s t", "s\n", 7, None]),
            "sent_at": mostly([contract.MIN_TS_MS, 1_767_225_600_000], [contract.MAX_TS_MS + 1, 1.7e12, "1"]),
            "events": events, **mostly([{}, {"v": 1}], [{"v": 1.0}, {"v": 2}, {"extra": 1}, {"v": None}])}
    text = _write(body, data.draw).encode()
    fast = contract.check_body(text)
    if fast is not None:  # taken: exactly what the per-event way makes of the body
        assert fast == _per_event_way(text)
    hyp_event("one pass" if fast is not None else "per-event way")


def test_an_honest_body_is_checked_in_one_pass_and_each_awkward_one_the_per_event_way():
    events = [event(t, token="v1.aaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb") for t in contract.EVENT_TYPES]
    events += [event("content_progress", progress_pct=12, scroll_pct=40, media_position_s=3.5, props={"a.b": 1, "c": None}),
               event("engagement", url="https://rooms.example.com/r/1?q=\u00e9", props={})]
    honest = {"site": "bench", "sent_at": NOW_MS, "v": 1, "events": events}
    text = json.dumps(honest).encode()
    assert contract.check_body(text) == _per_event_way(text) is not None
    assert contract.check_body(text)[2][-2]["scroll_pct"] == 40.0  # an integer for a number: read as a float

    def one_pass(text: bytes) -> bool:
        return contract.check_body(text) is not None

    def changed(**change) -> bytes:
        return json.dumps({**honest, "events": [*events[:-1], {**events[-1], **change}]}).encode()

    assert one_pass(changed())
    # each of these is valid but normalised, or ignored in part, or invalid: the per-event way answers it
    for change in ({"event_id": events[-1]["event_id"].upper()}, {"page": 2.0}, {"url": None}, {"unknown": 1},
                   {"room_id": "r\n"}, {"room_id": "r\u00e9"}, {"room_id": ""}, {"props": {"a:b": 1}},
                   {"props": {"": 1}}, {"props": {"k" * 65: 1}}, {"props": {"a": 2**63}}, {"props": {"a": [1]}},
                   {"event_id": events[-1]["event_id"].replace("-", "")}, {"event_id": "{" + str(uuid.uuid4()) + "}"},
                   {"type": "content_progress", "content_id": "deck"}, {"engaged_ms": True}, {"ts": 1.7e12}):
        assert not one_pass(changed(**change)), change
    for text in (b"", b"[]", b"{}", json.dumps({**honest, "events": []}).encode(),
                 json.dumps({**honest, "site": "x" * 65}).encode(), json.dumps(honest).encode() + b" x",
                 json.dumps(honest).encode().replace(b'"bench"', b'"b\\ud800"'),
                 json.dumps(honest).encode().replace(b'"bench"', b'"b\xff"'),
                 b'{"site": "bench", "sent_at": 1767225600000, "events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
                 b'{"site": "bench", "sent_at": 1767225600000, "events": [{"type": "room_view", "type": "share"}]}'):
        assert not one_pass(text)
