"""Alert delivery as its own consumer on the real broker: simulated committees over HTTP -> Kafka -> Faust ->
alerts topic -> `dealbeacon deliver` -> a local webhook receiver that refuses the first attempts. Every alert
arrives exactly once, signed; a restarted deliverer sends nothing twice. A second webhook subscribed to two
kinds of buyer action gets each of them once, through the same restart."""
import asyncio
import time

import httpx
import orjson

from dealbeacon.sim.simulate import replay
from dealbeacon.sim.simulator import plan, simulate
from sinks.channels import SIGNATURE_HEADER, verify_signature
from tests.support.servers import Receiver
from tests.support.waiting import wait_until

START = 1_767_225_600_000


def test_deliver_consumer_sends_every_alert_once_through_retries_and_a_restart(stack_factory):
    with Receiver(fail_first=2) as hook, Receiver(fail_first=1) as crm:
        st = stack_factory()
        st.env.update(DEALBEACON_CLOCK="external", DEALBEACON_NOTIFY_AGGREGATE_S="0", DEALBEACON_NOTIFY_MAX_WAIT_S="0",
                      DEALBEACON_NOTIFY_COOLDOWN_S="0")
        st.start()
        auth = {"Authorization": "Bearer secret"}
        r = httpx.put(f"{st.url}/v1/sites/acme/channels/hook", headers=auth, json={"kind": "webhook", "target": hook.url})
        assert r.status_code == 202, r.text
        signing = r.json()["signing_secret"]
        assert httpx.put(f"{st.url}/v1/sites/acme/channels/crm", headers=auth, json={
            "kind": "webhook", "target": crm.url, "min_severity": "high", "events": ["room_opened", "shared"]}).status_code == 202
        # the subscriptions are in effect once their rows are out of the stream processor (the sink stored them:
        # its metrics say so; the table is not served on the SQL port, it holds credentials): the consumer reads
        # them at start. Started earlier, it could see a buyer action before the subscription
        # that covers it (another topic, no order between them) and rightly not send it
        wait_until(lambda: _sink_rows(st, "channels") >= 2, timeout=60, what="the subscriptions' rows")
        st.proc("deliver", "deliver")
        ops = plan(simulate(8, 3, START, days=50), "acme", "secret", 4_000_000_000, tick_ms=12 * 3_600_000)
        half = len(ops) // 2
        asyncio.run(replay(st.url, "acme", "secret", ops[:half], deadline_s=120))
        wait_until(lambda: hook.received, timeout=60, what="a first delivery before the restart")
        st.procs["deliver"].stop()  # a restart in the middle: it must not send again what it sent
        asyncio.run(replay(st.url, "acme", "secret", ops[half:], deadline_s=120))
        st.proc("deliver", "deliver")
        def all_delivered():
            st.assert_alive()
            n_alerts = st.sql("SELECT count() FROM alerts FINAL")[0][0]
            got = [a["alert_id"] for _, b in hook.received for a in orjson.loads(b)["alerts"]]
            return n_alerts and len(got) >= int(n_alerts)
        wait_until(all_delivered, timeout=120, every=1, what="every alert delivered")
        time.sleep(3)  # deliberate: a duplicate, if any, would arrive in this window
        alerts = {r[0] for r in st.sql("SELECT toString(alert_id) FROM alerts FINAL")}
        got = [a["alert_id"] for _, b in hook.received for a in orjson.loads(b)["alerts"]]
        assert len(alerts) >= 5 and sorted(got) == sorted(alerts), (len(got), len(alerts))
        now = int(time.time())
        for headers, body in hook.received:
            assert verify_signature(signing, headers[SIGNATURE_HEADER], body, now)
            assert hook.attempts[headers["Idempotency-Key"]] == 3
        # the sink stored the delivery records the consumer produced
        st.wait_rows("SELECT uniqExact(arrayJoin(alert_ids)) FROM deliveries FINAL WHERE status = 'delivered' AND channel_id = 'hook'",
                     [[len(alerts)]])
        # buyer actions: every stored room_opened / shared activity reached the CRM exactly once, nothing else
        st.wait_rows("SELECT count() > 0 FROM activities FINAL WHERE kind = 'shared'", [[1]])
        want = sorted(r[0] for r in st.sql("SELECT toString(activity_id) FROM activities FINAL "
                                           "WHERE kind IN ('room_opened', 'shared')"))

        def crm_ids():
            return [a["activity_id"] for _, b in crm.received for a in orjson.loads(b).get("activities", [])]
        seen: dict = {}

        def every_action():
            seen.update(sent=len(crm_ids()), stored=len(want), kinds=sorted({a["kind"] for _, b in crm.received
                                                                             for a in orjson.loads(b).get("activities", [])}))
            return seen["sent"] >= seen["stored"]
        try:
            wait_until(every_action, timeout=120, every=1, what="every subscribed buyer action")
        except AssertionError as e:
            raise AssertionError(f"{e}: {seen}") from None
        assert sorted(crm_ids()) == want and len(want) > 20, (len(crm_ids()), len(want))


def _sink_rows(st, table: str) -> float:
    """Rows the sink inserted into ``table``, from its Prometheus metrics."""
    text = httpx.get(f"http://127.0.0.1:{st.metrics_port}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f'dealbeacon_sink_rows_total{{table="{table}"}}'))
