"""Records that flow between stages (the inter-stage half of the contract).

An *accepted event* is a validated event plus what the server knows: site, receive time, skew-corrected
``ts``, token verdict, truncated IP and user agent. A *dead letter* is anything rejected, with its reason and its
own id (``dl_id``) so replays collapse.
Both are flat dicts, encoded with orjson on Kafka. Stages depend on this module, never on each other.
"""
from __future__ import annotations

import re
import uuid

import orjson

# stakeholder (v1.) and seller (s1.) link tokens: credentials, never kept in dead letters
_TOKEN_TEXT = re.compile(r"\b[vs]1\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
REDACTED = "[redacted]"
SECRET_FIELDS = ("token", "authorization", "password", "secret")

RECORD_VERSION = 1


def accepted_event(clean: dict, *, site: str, received_at: int, ts: int, token_status: str,
                   stakeholder_id: str, ip: str, user_agent: str) -> dict:
    rec = {**clean, "rv": RECORD_VERSION, "site": site, "received_at": received_at, "client_ts": clean["ts"], "ts": ts,
           "token_status": token_status, "stakeholder_id": stakeholder_id, "ip": ip, "user_agent": user_agent}
    if "token" in rec:
        del rec["token"]  # the token itself is a credential: never stored
    return rec


def accepted_events(cleans: list[dict], ts: list[int], *, site: str, received_at: int, ip: str,
                    user_agent: str) -> list[dict]:
    """``accepted_event`` for each of a batch's events that carry no token (the same keys and values), made from
    the clean events themselves: each is given the request's fields in place (the caller's own dicts, made by
    the checks for this request; a copy of each cost 1.5x as much, bench/ingest_bench.py --pipeline)."""
    common = {"rv": RECORD_VERSION, "site": site, "received_at": received_at, "token_status": "none",
              "stakeholder_id": "", "ip": ip, "user_agent": user_agent}
    for c, t in zip(cleans, ts, strict=True):
        c["client_ts"] = c["ts"]
        c.update(common)
        c["ts"] = t
    return cleans


def _clip(obj, depth: int):
    """A copy of ``obj`` cut at ``depth`` levels, secret fields redacted (what a dead letter may keep)."""
    if isinstance(obj, dict):
        if depth <= 0:
            return "[nested]"
        return {k: REDACTED if str(k).lower() in SECRET_FIELDS else _clip(v, depth - 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return "[nested]" if depth <= 0 else [_clip(v, depth - 1) for v in obj]
    return obj


def redact(text: str) -> str:
    """Token-shaped strings replaced (raw bodies that could not be parsed keep no credentials either)."""
    return _TOKEN_TEXT.sub(REDACTED, text)


def payload_of(obj) -> bytes:
    """A rejected event or body as dead-letter payload: secrets redacted, nesting cut, never failing."""
    return orjson.dumps(_clip(obj, 8), default=str)


def dead_letter(*, received_at: int, site: str, stage: str, reason: str, field: str = "", detail: str = "",
                event_index: int = -1, event_id: str = "", payload: bytes | str = b"", ip: str = "",
                user_agent: str = "", max_payload: int = 4096) -> dict:
    if isinstance(payload, bytes):
        payload = payload[:max_payload].decode("utf-8", "replace")
    else:
        payload = payload[:max_payload]
    payload = redact(payload)
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


ROWS_HEADER = "rows"  # on row-topic messages: how many rows the array holds (the sink counts without decoding)


def rows_header(n: int) -> list[tuple[str, bytes]]:
    return [(ROWS_HEADER, str(n).encode())]


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


def room_site(key: bytes) -> str:
    """The site of a ``room_key``."""
    return key.split(b"/", 1)[0].decode()
