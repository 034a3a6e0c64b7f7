import json
import pathlib

import jsonschema
import pytest
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


def test_uuid5_text_is_the_standard_uuid5():
    import random
    import uuid

    from dealbeacon.core.records import uuid5_text

    rng = random.Random(3)
    for _ in range(300):
        ns = uuid.UUID(int=rng.getrandbits(128))
        name = "".join(rng.choice("ab/é😀-0") for _ in range(rng.randint(0, 40)))
        assert uuid5_text(ns, name) == str(uuid.uuid5(ns, name))
