from dealbeacon.core import records
from sinks.schema import COLUMNS
from streams.processors import process
from tests.helpers import NOW_MS, event


def _accepted(e):
    return records.accepted_event(e, site="s", received_at=NOW_MS, ts=e["ts"], token_status="none",
                                  stakeholder_id="", ip="203.0.113.0", user_agent="ua")


def test_rows_have_exactly_the_columns_of_the_schema():
    out = process([_accepted(event("share"))], [records.dead_letter(received_at=NOW_MS, site="s", stage="ingest",
                                                                    reason="bot")])
    assert set(out["events"][0]) == set(COLUMNS["events"])
    assert set(out["dead_letters"][0]) == set(COLUMNS["dead_letters"])


def test_token_is_never_part_of_a_record():
    rec = _accepted(event("room_view", token="v1.secret.sig"))
    assert "token" not in rec and "token" not in process([rec], [])["events"][0]


def test_props_are_stored_as_json_text():
    row = process([_accepted(event("cta", props={"plan": "pro", "seats": 12}))], [])["events"][0]
    assert row["props"] == '{"plan":"pro","seats":12}'


def test_processing_is_deterministic():
    recs = [_accepted(event(t)) for t in ("room_view", "engagement", "download")]
    assert process(recs, []) == process(recs, [])


def test_kafka_messages_are_arrays_grouped_by_room():
    recs = [_accepted(event(room=r)) for r in ("a", "b", "a")]
    groups = records.group_by_room(recs)
    assert [len(g) for g in groups.values()] == [2, 1] and list(groups) == [b"s/a", b"s/b"]
    assert records.decode_many(records.encode_many(groups[b"s/a"])) == groups[b"s/a"]


def test_decode_many_refuses_non_records():
    import pytest

    for bad in (b"[1, 2]", b'"x"', b"not json"):
        with pytest.raises(ValueError):
            records.decode_many(bad)
