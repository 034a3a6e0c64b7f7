"""Channel payloads and webhook signatures (pure)."""
import orjson

from sinks import channels as ch
from sinks.notify import Notice

ALERTS = ({"alert_id": "a1", "kind": "quiet", "severity": "medium", "stakeholders": ["cfo"], "at": 1,
           "evidence": "no buyer activity for 11 days", "suggestion": "Send the security pack"},
          {"alert_id": "a2", "kind": "champion_dark", "severity": "high", "stakeholders": ["ops"], "at": 2,
           "evidence": "ops went dark", "suggestion": "Reach ops directly"})
NOTICE = Notice("n-1", "acme", "deal-1", "sam", ALERTS, 1, 3)


def test_webhook_signature_verifies_and_a_tampered_body_or_old_timestamp_does_not():
    body, headers = ch.webhook_request(NOTICE, "whsec", "https://rooms/r/deal-1", now_s=1_000)
    sig = headers[ch.SIGNATURE_HEADER]
    assert headers["Idempotency-Key"] == "n-1" and orjson.loads(body)["severity"] == "high"
    assert ch.verify_signature("whsec", sig, body, now_s=1_010)
    assert not ch.verify_signature("whsec", sig, body.replace(b"deal-1", b"deal-2"), now_s=1_010)
    assert not ch.verify_signature("other", sig, body, now_s=1_010)
    assert not ch.verify_signature("whsec", sig, body, now_s=1_000 + 301)
    assert not ch.verify_signature("whsec", "garbage", body, now_s=1_000)


def test_slack_message_reads_deal_who_what_why_next_step_and_links_the_room():
    msg = ch.slack_message(NOTICE, "https://rooms/r/deal-1")
    text = orjson.dumps(msg).decode()
    for part in ("deal-1", "cfo", "ops", "no buyer activity for 11 days", "Reach ops directly", "https://rooms/r/deal-1",
                 "high", "sam"):
        assert part in text, part
    assert msg["blocks"][0]["type"] == "header" and "champion dark" in msg["text"]


def test_email_message():
    msg = ch.email_message(NOTICE, "db@seller.example", "sam@seller.example", "https://rooms/r/deal-1")
    assert msg["To"] == "sam@seller.example" and "deal-1" in msg["Subject"]
    assert "Send the security pack" in msg.get_content()
