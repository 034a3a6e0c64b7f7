from dealbeacon.sim.simulator import DAY_MS, simulate

T0 = 1_780_000_000_000


def test_simulation_is_deterministic_and_plausible():
    a, b = simulate(3, 20, T0), simulate(3, 20, T0)
    assert [(d.room_id, d.won, d.stalled_day, len(d.events)) for d in a] == \
        [(d.room_id, d.won, d.stalled_day, len(d.events)) for d in b]
    assert any(d.won for d in a) and any(not d.won for d in a)
    for d in a:
        assert [e["ts"] for e in d.events] == sorted(e["ts"] for e in d.events)
        assert all(d.created_ms <= e["ts"] < d.created_ms + d.closed_day * DAY_MS for e in d.events)
        assert {r for _, r in d.committee} >= {"champion", "economic_buyer"}


def test_dark_episodes_are_quiet():
    for d in simulate(5, 40, T0):
        if d.stalled_day is None:
            continue
        start = d.created_ms + d.stalled_day * DAY_MS
        during = [e for e in d.events if start <= e["ts"] < start + 7 * DAY_MS]
        before = [e for e in d.events if start - 7 * DAY_MS <= e["ts"] < start]
        assert len(during) <= max(len(before), 30)


def _demo_alerts(now_ms: int, quiet_one: bool = True) -> tuple[str, list[dict]]:
    """The demo's history as `dealbeacon up` seeds it, through the pure core, then the wall-clock ticker's first
    tick: the alerts that tick raises."""
    import pytest

    from dealbeacon.core import records
    from dealbeacon.sim import demo
    from dealbeacon.sim.simulator import op_records
    from streams.processors import process_batch

    if quiet_one:
        ops, stalled = demo.demo_history("demo", "s" * 32, deals=40, seed=7, days=90, now_ms=now_ms, spread_days=120)
    else:  # the plain simulation, as the demo laid it out before one deal was made to go quiet
        ops, stalled = demo.build("demo", "s" * 32, deals=40, seed=7, days=90, tick_hours=0, now_ms=now_ms,
                                  start_ms=demo.history_start(now_ms, 90, 120), spread_days=120), ""
    sim = simulate(7, 40, demo.history_start(now_ms, 90, 120), 90, spread_days=120)
    recs = [r for batch in op_records(ops, "demo", sim) for r in batch]
    for r in recs:
        if "record" not in r:
            r.update(rv=records.RECORD_VERSION, client_ts=r["ts"], received_at=r["ts"] + 400, ip="203.0.113.0",
                     user_agent="Mozilla/5.0 Chrome/126")
    states: dict = {}
    for i in range(0, len(recs), 5000):
        changed, _ = process_batch(recs[i:i + 5000], [], states.get, lambda site: list(states))
        states.update(changed)
    if not states:
        pytest.fail("the demo history made no rooms")
    _, tables = process_batch([{"record": "clock", "site": "demo", "now": now_ms + 10_000}], [], states.get,
                              lambda site: list(states))
    return stalled, tables.get("alerts", [])


def test_the_demo_always_has_a_deal_gone_quiet():
    """The demo's history is laid out back from the moment it starts, so which simulated deals happen to be quiet
    then depends on the day and hour: at these four (a Saturday, a Sunday, a Tuesday and a Thursday night or
    morning, UTC) none was, the demo showed no quiet alert and its end-to-end test failed. One open deal's buyers
    now fall silent 35 days before the start, whatever the hour."""
    import datetime as dt

    for at in ("2026-12-05T01:44", "2026-12-06T01:44", "2026-12-08T01:44", "2026-12-10T07:44"):
        now_ms = int(dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC).timestamp() * 1000)
        stalled, alerts = _demo_alerts(now_ms)
        assert stalled, at
        assert any(a["kind"] == "quiet" and a["room_id"] == stalled for a in alerts), (at, alerts)


def test_without_the_quiet_deal_the_demo_hours_above_raise_no_quiet_alert():
    """The case the test above guards (and proof it can fail): the plain simulation at that Sunday hour."""
    import datetime as dt

    now_ms = int(dt.datetime(2026, 12, 6, 1, 44, tzinfo=dt.UTC).timestamp() * 1000)
    _, alerts = _demo_alerts(now_ms, quiet_one=False)
    assert not any(a["kind"] == "quiet" for a in alerts)
