"""Alert fatigue policy (sinks/notify.py), explicit clocks; the burst test runs the real deals core."""
import uuid

from sinks.notify import NotifyConfig, NotifyState, SellerPrefs, due, offer
from streams import processors

T0 = 1_790_000_000_000  # 2026-09-21 14:13:20 UTC
MIN = 60_000


def alert(at, kind="hot", severity="medium", room="deal-1", owner="sam"):
    return {"alert_id": str(uuid.uuid4()), "site": "acme", "room_id": room, "owner": owner, "kind": kind,
            "severity": severity, "at": at, "stakeholders": [], "evidence": "", "suggestion": ""}


def run(alerts, prefs=SellerPrefs(), until=T0 + 24 * 60 * MIN, step=MIN, cfg=NotifyConfig()):
    state, sent = NotifyState(), []
    queue = sorted(alerts, key=lambda a: a["at"])
    t = T0
    while t <= until:
        while queue and queue[0]["at"] <= t:
            state = offer(state, queue.pop(0), prefs)
        state, out = due(state, {("acme", "sam"): prefs}, t, cfg)
        sent += out
        t += step
    return sent


def test_a_burst_of_1000_events_from_one_visit_yields_one_notice():
    room = {"record": "room", "site": "acme", "room_id": "deal-1", "updated_at": T0, "stage": "proposal", "owner": "sam",
            "stakeholders": [{"id": "ops", "role": "champion"}, {"id": "cfo", "role": "economic_buyer"}]}
    events = [{"type": t, "ts": T0 + i * 1_000, "site": "acme", "room_id": "deal-1", "stakeholder_id": "ops",
               "visitor_id": "v-new", "content_id": c, "engaged_ms": 10_000, "progress_pct": 100.0,
               "share_channel": "email", "share_to": "cto@buyer.example"}
              for i, (t, c) in enumerate([("content_view", "pricing"), ("engagement", "pricing"),
                                          ("content_progress", "proposal"), ("share", "")] * 250)]
    _, rows = processors.process_rooms([room, *events], lambda k: None, lambda s: [])
    alerts = rows["alerts"]
    # proposal read and the share (once per recipient; no "hot" on a deal's first day): 1000 events, 2 alerts
    assert sorted(a["kind"] for a in alerts) == ["new_stakeholder", "proposal_read"]
    sent = run(alerts)
    assert len(sent) == 1 and {a["alert_id"] for a in sent[0].alerts} == {a["alert_id"] for a in alerts}
    assert 3 * MIN <= sent[0].send_at - alerts[-1]["at"] < 4 * MIN  # 3 minutes after the visit calmed down


def test_a_long_visit_is_reported_at_the_latest_after_30_minutes_and_later_alerts_wait_for_the_cooldown():
    sent = run([alert(T0 + i * 2 * MIN) for i in range(30)])  # an alert every 2 minutes for an hour
    assert [((n.send_at - T0) // MIN, len(n.alerts)) for n in sent] == [(30, 16), (90, 14)]
    assert len({a["alert_id"] for n in sent for a in n.alerts}) == 30  # each alert in exactly one notice


def test_quiet_hours_hold_notices_until_they_end_in_the_sellers_time_zone():
    # T0 is 23:13 in Tokyo (UTC+9): inside 22-7 quiet hours; held until 07:00 local = 22:00 UTC
    prefs = SellerPrefs(tz="Asia/Tokyo", quiet_hours=(22, 7))
    sent = run([alert(T0)], prefs)
    assert len(sent) == 1
    morning = 1_790_028_000_000  # 2026-09-22 07:00 JST
    assert morning <= sent[0].send_at < morning + MIN  # (1-minute ticks)
    assert len(run([alert(T0)], SellerPrefs(tz="America/New_York", quiet_hours=(22, 7)))[0].alerts) == 1
    assert run([alert(T0)], SellerPrefs(tz="America/New_York", quiet_hours=(22, 7)))[0].send_at == T0 + 3 * MIN  # 10:16 there


def test_muted_rooms_and_low_severities_never_notify_and_replays_are_ignored():
    a = alert(T0, severity="low")
    assert run([a], SellerPrefs(muted_rooms=("deal-1",))) == []
    assert run([a], SellerPrefs(min_severity="medium")) == []
    sent = run([a, dict(a)])
    assert len(sent) == 1 and len(sent[0].alerts) == 1


def test_digest_sellers_get_one_notice_a_day():
    prefs = SellerPrefs(tz="UTC", digest=True, digest_hour=8)
    sent = run([alert(T0), alert(T0 + 60 * MIN, room="deal-2"), alert(T0 + 90 * MIN, room="deal-1")], prefs)
    assert all(1_790_064_000_000 <= n.send_at < 1_790_064_000_000 + MIN for n in sent)  # 2026-09-22 08:00 UTC
    assert sorted(len(n.alerts) for n in sent) == [1, 2]


def test_notice_ids_are_stable_for_the_same_alerts():
    a = alert(T0)
    assert run([a])[0].notice_id == run([dict(a)])[0].notice_id


def test_held_and_half_sent_notices_survive_a_restart_through_the_state_file(tmp_path):
    """The Deliverer keeps its policy state on disk: a notice held for quiet hours and one cut off before all its
    channels had their try are both there for the next process, and only for it."""
    import asyncio
    import datetime as dt

    from sinks.delivery import Deliverer

    path = str(tmp_path / "notify-state.json")
    night = int(dt.datetime(2026, 9, 21, 23, 0, tzinfo=dt.UTC).timestamp() * 1000)
    prefs_row = {"site": "acme", "seller_id": "sam", "tz": "UTC", "quiet_start": 22, "quiet_end": 7,
                 "muted_rooms": [], "min_severity": "info", "digest": 0}
    held, sent_half = alert(night), alert(night - 3 * 3_600_000, room="deal-2")

    async def first_life():
        d = Deliverer({"acme": "s"}, None, cfg=NotifyConfig(0, 0, 0), state_file=path)
        d.apply({"sellers": [prefs_row]})
        d.apply({"alerts": [sent_half]})
        d.tick(night - 3 * 3_600_000 + 1)  # 20:00: due at once; its delivery task is cut off by the "crash"
        d.apply({"alerts": [held]})
        assert d.tick(night) == []  # 23:00: held for quiet hours
        for t in d._inflight:
            t.cancel()

    async def second_life():
        d = Deliverer({"acme": "s"}, None, cfg=NotifyConfig(0, 0, 0), state_file=path)
        d.apply({"sellers": [prefs_row]})
        assert [n.room_id for n in d._sending.values()] == ["deal-2"]  # resumed by run(), channels not yet tried
        assert d.tick(night + 7 * 3_600_000) == []  # 06:00: still quiet hours
        (notice,) = d.tick(night + 8 * 3_600_000 + 1)  # 07:00
        assert [a["alert_id"] for a in notice.alerts] == [held["alert_id"]]
        d.apply({"alerts": [held]})  # a replay of the same alert is not news
        assert d.tick(night + 9 * 3_600_000) == []
        for t in d._inflight:
            t.cancel()

    asyncio.run(first_life())
    asyncio.run(second_life())


def test_a_resumed_buyer_action_already_delivered_is_not_sent_again(tmp_path):
    """A crash between a batch's send and the state file's update: the next process finds the action still
    queued, but ``deliveries`` says it reached the channel, so it is dropped from the queue without a send."""
    import asyncio

    from sinks.delivery import Deliverer

    path = str(tmp_path / "notify-state.json")
    channel = {"site": "acme", "channel_id": "crm", "kind": "webhook", "target": "http://127.0.0.1:9/x", "owner": "",
               "min_severity": "high", "enabled": 1, "events": ["room_opened"]}
    act = {"activity_id": str(uuid.uuid4()), "site": "acme", "room_id": "deal-1", "owner": "sam", "kind": "room_opened",
           "who": "cfo", "content_id": "", "page": None, "detail": "", "event_id": "e1", "at": T0}
    recorded = []

    async def record(rows):
        recorded.extend(rows)

    async def first_life():
        d = Deliverer({"acme": "s"}, record, state_file=path)
        d.apply({"channels": [channel]})
        d.apply({"activities": [act]})  # queued and written; the process dies before any tick
        assert (("acme", "crm", "deal-1"), [act]) in [(k, v) for k, v in d.activity_queue.items()]

    async def second_life():
        d = Deliverer({"acme": "s"}, record, state_file=path)
        d.apply({"channels": [channel], "deliveries": [{"status": "delivered", "channel_id": "crm",
                                                        "alert_ids": [act["activity_id"]]}]})
        d.tick(T0)
        await asyncio.gather(*d._inflight)
        assert recorded == [] and d.activity_queue[("acme", "crm", "deal-1")] == []  # no send, nothing recorded
        d.apply({"activities": [act]})  # and a replay of it is not queued again
        assert d.activity_queue[("acme", "crm", "deal-1")] == []

    asyncio.run(first_life())
    asyncio.run(second_life())
