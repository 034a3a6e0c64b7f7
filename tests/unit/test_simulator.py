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
