"""What a notice looks like on each channel: pure builders (no I/O), and webhook signature verification.

Webhook: POST JSON, headers
    X-Dealbeacon-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
    Idempotency-Key: <notice_id>   (the same on every retry)
Receivers verify with ``verify_signature`` (or the README snippet) and reject stale timestamps.
Slack: an incoming-webhook message with blocks (deal, who, what, why, next step, link to the room).
Email: a plain-text message (SMTP).
"""
from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from email.message import EmailMessage

import orjson

SIGNATURE_HEADER = "X-Dealbeacon-Signature"
_EMOJI = {"info": ":information_source:", "low": ":large_blue_circle:", "medium": ":large_orange_circle:",
          "high": ":red_circle:"}


def notice_link(base_url: str, notice) -> str:
    """Where a notice sends the seller: their page (``/seller``), opened on the deal. The page uses the seller
    token remembered on that device (or given in the link the sellers API returned)."""
    query = urllib.parse.urlencode({"site": notice.site, "seller": notice.owner, "room": notice.room_id})
    return f"{base_url.rstrip('/')}/seller?{query}" if base_url else notice.room_id


def notice_payload(notice, room_url: str) -> dict:
    return {"notice_id": notice.notice_id, "site": notice.site, "room_id": notice.room_id,
            "owner": notice.owner, "severity": notice.severity, "room_url": room_url, "first_at": notice.first_at,
            "alerts": [{k: a[k] for k in ("alert_id", "kind", "severity", "stakeholders", "evidence", "suggestion", "at")}
                       for a in notice.alerts]}


def sign(secret: str, body: bytes, t: int) -> str:
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def webhook_request(notice, secret: str, room_url: str, now_s: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(notice_payload(notice, room_url))
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body, now_s),
                  "Idempotency-Key": notice.notice_id, "User-Agent": "dealbeacon-webhooks/1"}


def activity_request(batch_id: str, site: str, room_id: str, activities: list[dict], secret: str,
                     now_s: int) -> tuple[bytes, dict[str, str]]:
    """A batch of buyer actions for a subscribed webhook (``{"type": "activity", ...}``), signed like notices."""
    body = orjson.dumps({"type": "activity", "batch_id": batch_id, "site": site, "room_id": room_id,
                         "activities": activities})
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body, now_s),
                  "Idempotency-Key": batch_id, "User-Agent": "dealbeacon-webhooks/1"}


def verify_signature(secret: str, header: str, body: bytes, now_s: int, tolerance_s: int = 300) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s``."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now_s - t) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, t), f"t={t},v1={parts.get('v1', '')}")


def _headline(notice) -> str:
    kinds = sorted({a["kind"].replace("_", " ") for a in notice.alerts})
    return f"{notice.room_id}: {', '.join(kinds)}"


def slack_message(notice, room_url: str) -> dict:
    latest = notice.alerts[-1]
    who = sorted({s for a in notice.alerts for s in a["stakeholders"]})
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": _headline(notice)[:150]}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Deal*\n<{room_url}|{notice.room_id}>"},
            {"type": "mrkdwn", "text": f"*Severity*\n{_EMOJI[notice.severity]} {notice.severity}"},
            {"type": "mrkdwn", "text": f"*Who*\n{', '.join(who) or 'the buying committee'}"},
            {"type": "mrkdwn", "text": f"*Owner*\n{notice.owner or 'unassigned'}"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*What happened*\n" + "\n".join(
            f"• {a['kind'].replace('_', ' ')}: {a['evidence']}" for a in notice.alerts[-10:])}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Suggested next step*\n{latest['suggestion']}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
                                          f"dealbeacon · notice {notice.notice_id[:8]}"}]},
    ]
    return {"text": _headline(notice), "blocks": blocks}


def email_message(notice, sender: str, to: str, room_url: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[dealbeacon] {_headline(notice)}"
    msg["From"], msg["To"] = sender, to
    msg["Message-ID"] = f"<{notice.notice_id}@dealbeacon>"
    lines = [f"Deal: {notice.room_id}  ({room_url})", f"Severity: {notice.severity}", ""]
    for a in notice.alerts:
        lines += [f"- {a['kind'].replace('_', ' ')} ({a['severity']}): {a['evidence']}",
                  f"  next step: {a['suggestion']}"]
    msg.set_content("\n".join(lines) + "\n")
    return msg
