from dealbeacon import records
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
