"""Stakeholder link tokens: the seller's system mints one per invited person and appends it to the room link.

Format: ``v1.<base64url(JSON [room_id, stakeholder_id, expires_at_s])>.<base64url(HMAC-SHA256)>``, the MAC
keyed by the site secret over ``v1.<payload>``. Ingest verifies it against the event's room and the server
receive time; only a ``valid`` result marks an identity as verified.

The prefix states the token's purpose and is signed with it: ``v1`` for a stakeholder's room link, ``s1`` for a
seller's page link. One is never accepted as the other.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

PREFIX = "v1"  # a stakeholder's room link
SELLER_PREFIX = "s1"  # a seller's page link


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, signed: str) -> bytes:
    return hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()


def mint(secret: str, room_id: str, stakeholder_id: str, expires_at_s: int, *, prefix: str = PREFIX) -> str:
    """Mint a token for ``stakeholder_id`` in ``room_id``, valid until ``expires_at_s`` (epoch seconds)."""
    if not secret:
        raise ValueError("site secret is empty")
    payload = _b64(orjson.dumps([room_id, stakeholder_id, int(expires_at_s)]))
    signed = f"{prefix}.{payload}"
    return f"{signed}.{_b64(_mac(secret, signed))}"


@dataclass(frozen=True)
class TokenCheck:
    status: str  # valid | seller | expired | invalid | room_mismatch
    stakeholder_id: str = ""  # set only when verified

    @property
    def verified(self) -> bool:
        return self.status in ("valid", "seller")


def verify(secret: str, token: str, room_id: str, now_s: float, *, prefix: str = PREFIX) -> TokenCheck:
    """Check a token for an event in ``room_id`` received at ``now_s``. Pure: the clock is an argument."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != prefix or not secret:
        return TokenCheck("invalid")
    try:
        expected = _mac(secret, f"{parts[0]}.{parts[1]}")
        if not hmac.compare_digest(expected, _unb64(parts[2])):
            return TokenCheck("invalid")
        room, stakeholder, expires = orjson.loads(_unb64(parts[1]))
    except (ValueError, TypeError):
        return TokenCheck("invalid")
    if not (isinstance(room, str) and isinstance(stakeholder, str) and isinstance(expires, int)):
        return TokenCheck("invalid")
    if room != room_id:
        return TokenCheck("room_mismatch")
    if now_s >= expires:
        return TokenCheck("expired")
    return TokenCheck("valid", stakeholder)


SELLER_ROOM = "seller:"  # a seller token is bound to "seller:<id>", not to a room


def verify_visit(secret: str, token: str, room_id: str, now_s: float) -> TokenCheck:
    """The token a room link carried: a stakeholder's (bound to ``room_id``), or a seller's own page token, which
    opens any room of the site as the seller's team (status ``seller``, stakeholder ``seller:<id>``)."""
    if not token.startswith(SELLER_PREFIX + "."):
        return verify(secret, token, room_id, now_s)
    try:
        bound = orjson.loads(_unb64(token.split(".")[1]))[0]
    except (ValueError, TypeError, IndexError, KeyError):
        return TokenCheck("invalid")
    if not isinstance(bound, str) or not bound.startswith(SELLER_ROOM):
        return TokenCheck("invalid")
    check = verify(secret, token, bound, now_s, prefix=SELLER_PREFIX)
    return TokenCheck("seller", SELLER_ROOM + check.stakeholder_id) if check.verified else check


def webhook_secret(site_secret: str, channel_id: str) -> str:
    """A webhook channel's signing secret, derived from the site secret (never stored)."""
    return hmac.new(site_secret.encode(), f"webhook:{channel_id}".encode(), hashlib.sha256).hexdigest()
