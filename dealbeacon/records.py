"""Records that flow between stages (the inter-stage half of the contract).

An *accepted event* is a validated event plus what the server knows: site, receive time, skew-corrected
``ts``, token verdict, truncated IP and user agent. A *dead letter* is anything rejected, with its reason and its own id (``dl_id``) so replays collapse.
Both are flat dicts, encoded with orjson on Kafka. Stages depend on this module, never on each other.
"""
from __future__ import annotations

import uuid

import orjson

RECORD_VERSION = 1


def accepted_event(clean: dict, *, site: str, received_at: int, ts: int, token_status: str,
                   stakeholder_id: str, ip: str, user_agent: str) -> dict:
    rec = dict(clean)
    rec.pop("token", None)  # the token itself is a credential: never stored
    rec.update(rv=RECORD_VERSION, site=site, received_at=received_at, client_ts=clean["ts"], ts=ts,
               token_status=token_status, stakeholder_id=stakeholder_id, ip=ip, user_agent=user_agent)
    return rec


def dead_letter(*, received_at: int, site: str, stage: str, reason: str, field: str = "", detail: str = "",
                event_index: int = -1, event_id: str = "", payload: bytes | str = b"", ip: str = "",
                user_agent: str = "", max_payload: int = 4096) -> dict:
    if isinstance(payload, bytes):
        payload = payload[:max_payload].decode("utf-8", "replace")
    else:
        payload = payload[:max_payload]
    return {"rv": RECORD_VERSION, "dl_id": str(uuid.uuid4()), "received_at": received_at, "site": site[:128], "stage": stage,
            "reason": reason, "field": field[:128], "detail": detail[:512], "event_index": event_index,
            "event_id": str(event_id)[:64], "payload": payload, "ip": ip, "user_agent": user_agent[:512]}


def encode(record: dict) -> bytes:
    return orjson.dumps(record)


def encode_many(items: list[dict]) -> bytes:
    """Kafka messages carry JSON arrays: the events of one room from one request (events topic), the dead
    letters of one request, or a chunk of rows of one table (row topics). Per-message cost dominates in
    the stream processors, so batching at the source is what makes them fast."""
    return orjson.dumps(items)


def decode_many(data: bytes) -> list[dict]:
    items = orjson.loads(data)
    if isinstance(items, dict):
        return [items]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("expected a JSON array of objects")
    return items


def group_by_room(recs: list[dict]) -> dict[bytes, list[dict]]:
    groups: dict[bytes, list[dict]] = {}
    for r in recs:
        groups.setdefault(room_key(r), []).append(r)
    return groups


def room_key(record: dict) -> bytes:
    """Partition key: a deal's events stay ordered on one partition."""
    return f"{record.get('site', '')}/{record.get('room_id', '')}".encode()
