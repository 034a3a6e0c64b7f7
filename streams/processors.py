"""Pure processors: accepted-event and dead-letter records in, table rows out. No I/O, no clock.

Embedded mode calls ``process`` inside the ingest hand-off; distributed mode calls it from Faust agents.
Later stages (scores, alerts) add tables to the output here, so both modes stay identical. Rows use the
column names of sinks/schema.py (a test checks the two agree); times are integer milliseconds.
"""
from __future__ import annotations

import orjson

_EVENT_STRINGS = ("site", "type", "room_id", "visitor_id", "session_id", "stakeholder_id", "token_status",
                  "content_id", "href", "share_channel", "share_to", "cta", "url", "referrer", "ip", "user_agent")
_EVENT_NULLABLE = ("page", "progress_pct", "scroll_pct", "media_position_s")


def event_row(rec: dict) -> dict:
    row = {k: rec.get(k, "") for k in _EVENT_STRINGS}
    row.update({k: rec.get(k) for k in _EVENT_NULLABLE})
    row["event_id"] = rec["event_id"]
    row["ts"], row["client_ts"], row["received_at"] = rec["ts"], rec["client_ts"], rec["received_at"]
    row["engaged_ms"] = rec.get("engaged_ms", 0)
    props = rec.get("props")
    row["props"] = orjson.dumps(props).decode() if props else ""
    return row


_DEAD_FIELDS = ("dl_id", "received_at", "site", "stage", "reason", "field", "detail", "event_index", "event_id",
                "payload", "ip", "user_agent")


def dead_letter_row(rec: dict) -> dict:
    return {k: rec[k] for k in _DEAD_FIELDS}


def process(events: list[dict], dead_letters: list[dict]) -> dict[str, list[dict]]:
    """Turn one batch of records into rows per table."""
    out: dict[str, list[dict]] = {}
    if events:
        out["events"] = [event_row(r) for r in events]
    if dead_letters:
        out["dead_letters"] = [dead_letter_row(r) for r in dead_letters]
    return out
