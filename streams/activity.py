"""Buyer activity: what a CRM logs, one row per buyer action (pure).

An event of the buyer (never the seller's own team) becomes one or two activities: ``room_opened``
(room_view), ``content_viewed``, ``document_completed`` (a document read to 100 %), ``downloaded``, ``shared``,
and ``new_person`` for the first sight of a person in the room (a verified stakeholder's first event, an
anonymous visitor's first room view). Ids derive from the event id and the kind, so a replay gives the
same ids and a subscriber receives each action once.
"""
from __future__ import annotations

import uuid
from typing import Final

from streams.ids import Namespace
from streams.model import RoomFacts
from streams.scoring import ms

_IDS: Final = Namespace(uuid.UUID("6a1f0e1c-3b8d-4d52-9a57-0f5c2e7d8b13"))
EVENT_ACTIVITY: Final = {"room_view": "room_opened", "content_view": "content_viewed", "download": "downloaded",
                  "share": "shared"}


def activity_kinds(facts: RoomFacts, rec: dict) -> list[str]:
    """The buyer actions one event is, judged on the room's facts before the event."""
    etype, sid, visitor = rec.get("type", ""), rec.get("stakeholder_id") or "", rec.get("visitor_id") or ""
    kinds = []
    if (sid and not any(s == sid for s, _ in facts.stakeholders)) or (
            not sid and etype == "room_view" and visitor and visitor not in facts.visitors):
        kinds.append("new_person")
    if etype in EVENT_ACTIVITY:
        kinds.append(EVENT_ACTIVITY[etype])
    if etype == "content_progress" and (rec.get("progress_pct") or 0) >= 100:
        kinds.append("document_completed")
    return kinds


def activity_row(site: str, room_id: str, owner: str, rec: dict, kind: str) -> dict:
    who = rec.get("stakeholder_id") or f"visitor:{rec.get('visitor_id', '')}"
    detail = rec.get("share_to") or rec.get("href") or ""
    return {"activity_id": _IDS.name(f"{rec.get('event_id', '')}/{kind}"), "site": site, "room_id": room_id,
            "owner": owner, "kind": kind, "who": who, "content_id": rec.get("content_id") or "",
            "page": rec.get("page"), "detail": str(detail)[:512], "event_id": str(rec.get("event_id", "")),
            "at": ms(rec["ts"])}
