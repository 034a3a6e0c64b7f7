"""Alert delivery end to end (embedded server process): simulated committees raise alerts that reach a real
local webhook receiver (signatures verified, first attempts failing), a fake Slack endpoint and a local SMTP
server (aiosmtpd); every alert is delivered exactly once per channel."""
import asyncio
import collections
import time
import uuid

import httpx
import orjson
from aiosmtpd.controller import Controller

from dealbeacon.core import tokens
from dealbeacon.sim.simulate import replay
from dealbeacon.sim.simulator import plan, simulate
from sinks.channels import SIGNATURE_HEADER, verify_signature
from tests.support.data import SQL_AUTH
from tests.support.ports import unbound_port
from tests.support.servers import Receiver, Server
from tests.support.waiting import wait_until

START = 1_767_225_600_000
SECRET = "s3cret"


def start_smtp(handler, attempts=3):
    """aiosmtpd must be told its port up front (its readiness check connects to it): retry on a clash."""
    for attempt in range(attempts):
        smtp = Controller(handler, hostname="127.0.0.1", port=unbound_port())
        try:
            smtp.start()
            return smtp
        except (OSError, RuntimeError):
            if attempt == attempts - 1:
                raise


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode())
        return "250 OK"


def test_alerts_reach_webhook_slack_and_email_exactly_once(tmp_path):
    hook, slack, mailbox = Receiver(fail_first=2), Receiver(), Mailbox()
    smtp = start_smtp(mailbox)
    data = tmp_path / "data"
    data.mkdir()
    (data / "sites.json").write_text('[{"key": "acme", "secret": "%s", "origins": ["*"]}]' % SECRET)
    srv = Server(data, "--no-demo", env={
        "DEALBEACON_CLOCK": "external", "DEALBEACON_SMTP_HOST": "127.0.0.1", "DEALBEACON_SMTP_PORT": str(smtp.port),
        "DEALBEACON_NOTIFY_AGGREGATE_S": "0", "DEALBEACON_NOTIFY_MAX_WAIT_S": "0",
        "DEALBEACON_NOTIFY_COOLDOWN_S": "0"}).start()
    try:
        auth = {"Authorization": f"Bearer {SECRET}"}
        r = httpx.put(f"{srv.url}/v1/sites/acme/channels/hook", headers=auth, json={"kind": "webhook", "target": hook.url})
        assert r.status_code == 202, r.text
        signing = r.json()["signing_secret"]
        assert httpx.put(f"{srv.url}/v1/sites/acme/channels/slack", headers=auth,
                         json={"kind": "slack", "target": slack.url, "min_severity": "medium"}).status_code == 202
        assert httpx.put(f"{srv.url}/v1/sites/acme/channels/mail", headers=auth,
                         json={"kind": "email", "target": "seller-1@seller.example", "owner": "seller-1",
                               "min_severity": "medium"}).status_code == 202
        bad = httpx.put(f"{srv.url}/v1/sites/acme/channels/x", headers=auth, json={"kind": "pigeon", "target": "x"})
        assert bad.status_code == 400 and bad.json()["field"] == "kind"
        ops = plan(simulate(5, 3, START, days=50), "acme", SECRET, 4_000_000_000, tick_ms=12 * 3_600_000)
        asyncio.run(replay(srv.url, "acme", SECRET, ops, deadline_s=120))

        sql = f"http://127.0.0.1:{srv.sql_port}/"
        alerts = {a[0]: a for a in httpx.post(sql, auth=SQL_AUTH, content="SELECT toString(alert_id), severity, owner FROM alerts "
                                                   "FINAL FORMAT JSONCompact").json()["data"]}
        assert len(alerts) >= 5
        sev = {"info": 0, "low": 1, "medium": 2, "high": 3}
        wait_until(lambda: len([a for _, b in hook.received for a in orjson.loads(b)["alerts"]]) >= len(alerts),
                   timeout=60, every=0.5, what="every alert at the webhook")
        time.sleep(2)  # deliberate: anything extra would arrive in this window
        # webhook: every alert exactly once, in a correctly signed body, after two refused attempts each
        got = [a["alert_id"] for _, b in hook.received for a in orjson.loads(b)["alerts"]]
        assert sorted(got) == sorted(alerts)
        now = int(time.time())
        for headers, body in hook.received:
            assert verify_signature(signing, headers[SIGNATURE_HEADER], body, now)
            assert not verify_signature(signing, headers[SIGNATURE_HEADER], body.replace(b'"acme"', b'"acmf"'), now)
            assert hook.attempts[headers["Idempotency-Key"]] == 3
        # a channel's min_severity applies to the notice (its most severe alert); the notice carries its context
        notices = [orjson.loads(b) for _, b in hook.received]
        want_slack = {a["alert_id"] for n in notices if sev[n["severity"]] >= 2 for a in n["alerts"]}
        want_mail = {a["alert_id"] for n in notices if sev[n["severity"]] >= 2 and n["owner"] == "seller-1"
                     for a in n["alerts"]}
        assert want_slack and len(want_slack) < len(alerts)
        # Slack: blocks, notices of medium or high severity, each alert once
        assert slack.received and all(orjson.loads(b)["blocks"] for _, b in slack.received)
        delivered = httpx.post(sql, auth=SQL_AUTH, content="SELECT channel_id, arrayJoin(alert_ids) FROM deliveries FINAL WHERE "
                                            "status = 'delivered' FORMAT JSONCompact").json()["data"]
        per_channel = collections.defaultdict(list)
        for channel, alert_id in delivered:
            per_channel[channel].append(alert_id)
        assert sorted(per_channel["hook"]) == sorted(alerts)
        assert sorted(per_channel["slack"]) == sorted(want_slack)
        slack_notices = httpx.post(sql, auth=SQL_AUTH, content="SELECT toString(notice_id) FROM deliveries FINAL WHERE "
                                                 "channel_id = 'slack' FORMAT JSONCompact").json()["data"]
        assert len(slack.received) == len(slack_notices)  # one message per notice, none repeated
        assert sorted(per_channel["mail"]) == sorted(want_mail)
        mail_notices = httpx.post(sql, auth=SQL_AUTH, content="SELECT toString(notice_id) FROM deliveries FINAL WHERE "
                                                "channel_id = 'mail' FORMAT JSONCompact").json()["data"]
        assert len(mailbox.messages) == len(mail_notices)
        assert want_mail and all("To: seller-1@seller.example" in m for m in mailbox.messages)
        assert httpx.post(sql, auth=SQL_AUTH, content="SELECT * FROM channels").status_code == 403  # credentials stay private
    finally:
        srv.stop()
        smtp.stop()
        hook.close()
        slack.close()


def _ms(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp() * 1000)


def test_a_notice_held_for_quiet_hours_is_delivered_once_after_a_restart(tmp_path):
    """A quiet alert raised at 23:00 for a seller with quiet hours 22-7 is held; the process is killed (-9) and
    started again; when the site's clock reaches 07:00 the notice goes out, once."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "sites.json").write_text(orjson.dumps([{"key": "acme", "secret": SECRET, "origins": ["*"]}]).decode())
    env = {"DEALBEACON_CLOCK": "external", "DEALBEACON_NOTIFY_AGGREGATE_S": "0", "DEALBEACON_NOTIFY_MAX_WAIT_S": "0",
           "DEALBEACON_NOTIFY_COOLDOWN_S": "0"}
    auth = {"Authorization": f"Bearer {SECRET}"}
    with Receiver() as hook:
        srv = Server(data, "--no-demo", env=env).start()
        try:
            assert httpx.put(f"{srv.url}/v1/sites/acme/channels/hook", headers=auth,
                             json={"kind": "webhook", "target": hook.url}).status_code == 202
            assert httpx.put(f"{srv.url}/v1/sites/acme/sellers/sam", headers=auth,
                             json={"tz": "UTC", "quiet_hours": [22, 7]}).status_code == 202
            monday = _ms("2026-01-05T10:00")
            assert httpx.post(f"{srv.url}/v1/sites/acme/clock", headers=auth, json={"now": monday}).status_code == 202
            assert httpx.put(f"{srv.url}/v1/sites/acme/rooms/deal-1", headers=auth, json={
                "stage": "proposal", "owner": "sam", "stakeholders": [{"id": "cfo", "role": "economic_buyer"}]}).status_code == 202
            visit = {"event_id": str(uuid.uuid4()), "type": "room_view", "room_id": "deal-1", "visitor_id": "v-cfo",
                     "session_id": "s-1", "ts": monday + 60_000}
            assert httpx.post(f"{srv.url}/v1/events", headers=auth,
                              json={"site": "acme", "sent_at": monday + 61_000, "events": [visit]}).status_code == 202
            # eleven and a half working days of silence (one visit: a young room is quiet after ten), at 23:00:
            # quiet hours
            late = _ms("2026-01-20T23:00")
            assert httpx.post(f"{srv.url}/v1/sites/acme/clock", headers=auth, json={"now": late}).status_code == 202
            sql = f"http://127.0.0.1:{srv.sql_port}/"

            def quiet_alert():
                rows = httpx.post(sql, auth=SQL_AUTH, content="SELECT toString(alert_id) FROM alerts FINAL "
                                  "WHERE kind = 'quiet' FORMAT JSONCompact").json()["data"]
                return rows[0][0] if rows else None
            held = wait_until(quiet_alert, what="the quiet alert")
            # the deliverer hears of the alert once its range is stored: the file may not be written yet
            wait_until(lambda: held in (data / "notify-state.json").read_text(), what="the held notice kept on disk",
                       errors=(FileNotFoundError,))
            time.sleep(2)  # deliberate: the delivery loop runs every second; a notice sent now would arrive here
            assert hook.received == []  # held: 23:00 is inside the seller's quiet hours
        finally:
            srv.proc.kill()  # -9: nothing gets to flush
            srv.proc.wait()
        srv = Server(data, "--no-demo", env=env).start()
        try:
            assert hook.received == []  # the restart alone sends nothing: the site's clock still says 23:00
            morning = _ms("2026-01-21T07:00")
            assert httpx.post(f"{srv.url}/v1/sites/acme/clock", headers=auth, json={"now": morning}).status_code == 202
            wait_until(lambda: any(held in b.decode() for _, b in hook.received), what="the held notice after 07:00")
            time.sleep(3)  # deliberate: a second copy, if any, would arrive in this window
            copies = [a["alert_id"] for _, b in hook.received for a in orjson.loads(b)["alerts"] if a["alert_id"] == held]
            assert copies == [held], hook.received
        finally:
            srv.stop()


def test_a_webhook_gets_each_buyer_action_it_subscribed_to_once_signed_through_retries(tmp_path):
    """A CRM subscribes a webhook to some buyer actions: it receives each of those once (signed, same
    Idempotency-Key on every retry, the first two attempts refused), nothing it did not subscribe to, and
    nothing of the seller's own visits."""
    from ingest.sellers import seller_token

    data = tmp_path / "data"
    data.mkdir()
    (data / "sites.json").write_text(orjson.dumps([{"key": "acme", "secret": SECRET, "origins": ["*"]}]).decode())
    auth = {"Authorization": f"Bearer {SECRET}"}
    with Receiver(fail_first=2) as crm:
        srv = Server(data, "--no-demo").start()
        try:
            bad = httpx.put(f"{srv.url}/v1/sites/acme/channels/crm", headers=auth,
                            json={"kind": "webhook", "target": crm.url, "events": ["room_opened", "page_turned"]})
            assert bad.status_code == 400 and bad.json()["field"] == "events[1]", bad.text
            r = httpx.put(f"{srv.url}/v1/sites/acme/channels/crm", headers=auth, json={
                "kind": "webhook", "target": crm.url, "min_severity": "high",
                "events": ["room_opened", "shared", "document_completed", "new_person"]})
            assert r.status_code == 202, r.text
            signing = r.json()["signing_secret"]
            assert httpx.put(f"{srv.url}/v1/sites/acme/rooms/deal-1", headers=auth, json={
                "stage": "proposal", "owner": "sam", "stakeholders": [{"id": "cfo", "role": "economic_buyer"}]}).status_code == 202
            now = int(time.time() * 1000)
            cfo = tokens.mint(SECRET, "deal-1", "cfo", now // 1000 + 3600)

            def ev(etype, i, **kw):
                return {"event_id": str(uuid.uuid4()), "type": etype, "room_id": "deal-1", "visitor_id": "v-cfo",
                        "session_id": f"s-{i // 10}", "ts": now - 60_000 + i * 1000, "token": cfo, **kw}
            buyer = [ev("room_view", 0), ev("content_view", 1, content_id="proposal"),
                     ev("content_progress", 2, content_id="proposal", page=12, progress_pct=100.0),
                     ev("share", 3, share_channel="email", share_to="legal@buyer.example"),
                     ev("room_view", 10), ev("download", 11, href="https://x.example/a.pdf")]
            seller = {**ev("room_view", 20), "token": seller_token(SECRET, "sam", now / 1000), "visitor_id": "v-sam"}
            r = httpx.post(f"{srv.url}/v1/events", json={"site": "acme", "sent_at": now, "events": [*buyer, seller]})
            assert r.status_code == 202 and r.json()["accepted"] == 7, r.text
            want = {("new_person", buyer[0]["event_id"]), ("room_opened", buyer[0]["event_id"]),
                    ("document_completed", buyer[2]["event_id"]), ("shared", buyer[3]["event_id"]),
                    ("room_opened", buyer[4]["event_id"])}

            def received():
                return [(a["kind"], a["event_id"]) for _, b in crm.received for a in orjson.loads(b)["activities"]]
            wait_until(lambda: len(received()) >= len(want), what="the subscribed buyer actions at the webhook")
            time.sleep(3)  # deliberate: a second copy, if any, would arrive in this window
            assert sorted(received()) == sorted(want)  # each once; content_viewed, downloaded, the seller: not sent
            for headers, body in crm.received:
                assert orjson.loads(body)["type"] == "activity"
                assert verify_signature(signing, headers[SIGNATURE_HEADER], body, int(time.time()))
                assert crm.attempts[headers["Idempotency-Key"]] == 3  # two refusals, then accepted
        finally:
            srv.stop()
