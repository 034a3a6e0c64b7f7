"""Event and batch builders and the fixed test clock (no fakes of real parts)."""
from __future__ import annotations

import time
import uuid

NOW_MS = 1_790_000_000_000  # 2026-09-21, a fixed clock for deterministic tests
# the SQL port's test analyst (every site), provisioned for the whole run by tests.support.app.sql_analyst
SQL_AUTH = ("tester", "tester-password-1")


def event(etype: str = "room_view", *, ts: int = NOW_MS - 1_000, room: str = "room-1", **fields) -> dict:
    e = {"event_id": str(uuid.uuid4()), "type": etype, "room_id": room, "visitor_id": "visitor-1",
         "session_id": "session-1", "ts": ts}
    defaults = {"content_view": {"content_id": "proposal"}, "engagement": {"engaged_ms": 15_000},
                "content_progress": {"content_id": "proposal", "page": 3}, "download": {"href": "https://x/y.pdf"},
                "link_click": {"href": "https://x/"}, "share": {"share_channel": "email", "share_to": "a@b.c"},
                "cta": {"cta": "book-meeting"}}
    e.update(defaults.get(etype, {}))
    e.update(fields)
    return e


def batch(*events: dict, site: str = "test", sent_at: int = NOW_MS) -> dict:
    return {"site": site, "sent_at": sent_at, "events": list(events)}


def live_event(etype: str = "room_view", **fields) -> dict:
    """An event stamped with the real clock, for tests against real server processes."""
    return event(etype, ts=int(time.time() * 1000) - 1_000, **fields)
