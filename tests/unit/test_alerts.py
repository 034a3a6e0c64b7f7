"""Every alert rule with an explicit clock."""
from streams.alerts import ALERTS, BandState, Room, RoomFacts, evaluate, observe, unusual_after
from streams.scoring import DAY_MS, StakeholderScore, apply_event

T0 = 1_790_000_000_000
ROOM = Room("deal-1", stage="proposal", created_ms=T0,
            invited=(("cfo", "economic_buyer"), ("ops", "champion"), ("it", "technical")))


def ev(etype, ts, **kw):
    return {"type": etype, "ts": ts, "room_id": "deal-1", "visitor_id": "v1", **kw}


def run(events, room=ROOM):
    facts, out = RoomFacts(), []
    for e in events:
        facts, alerts = observe(room, facts, e)
        out += alerts
    return facts, out


def kinds(alerts):
    return [a.kind for a in alerts]


def test_quiet_past_the_stage_cadence_with_severity_by_overshoot():
    # a busy room: two working weeks of daily visits (Monday T0 to Friday T0 + 11 days), then silence
    facts, _ = run([ev("content_view", T0 + d * DAY_MS, content_id="pricing", stakeholder_id="ops")
                    for d in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11)])
    # its own rhythm makes 2 silent working days unusual, so the proposal cadence (5 working days) decides
    assert unusual_after(facts, ALERTS, {}, T0) < 5
    # the last visit is on a Friday afternoon (14:13 UTC): Thu 4, Fri 5.0, Sat 5.4, Thu 9.0, Fri 10.0 (2x),
    # Thu 14.0, Fri 15.0 (3x) working days
    for days, want in ((17, None), (18, None), (19, "low"), (24, "low"), (25, "medium"), (31, "medium"), (32, "high")):
        alerts = evaluate(ROOM, facts, {}, BandState(), T0 + days * DAY_MS)[1]
        assert [(a.kind, a.severity) for a in alerts] == ([("quiet", want)] if want else []), days
    # no one scored: the suggestion names a person the room has, no content or role it does not
    assert alerts[0].suggestion.startswith("Reach out to cfo (economic_buyer)")


def test_a_young_or_sparse_room_is_quiet_only_once_silence_is_unusual_for_it():
    # one visit, then nothing: too little history to call 6 working days unusual (a young room counts as active
    # on 0.3 of working days); (1 - 2/4.33)^g < 0.002 from g = 10.04 working days
    facts, _ = run([ev("content_view", T0, content_id="pricing", stakeholder_id="ops")])
    assert abs(unusual_after(facts, ALERTS, {}, T0) - 10.04) < 0.01
    assert evaluate(ROOM, facts, {}, BandState(), T0 + 14 * DAY_MS)[1] == []  # 10 working days
    (q,) = evaluate(ROOM, facts, {}, BandState(), T0 + 15 * DAY_MS)[1]  # 11
    assert (q.kind, q.severity) == ("quiet", "low") and "unusual for this room after 10.0" in q.evidence
    # a room nobody opened is not quiet (no buyer went silent): it is unopened, once
    (u,) = evaluate(ROOM, RoomFacts(), {}, BandState(), T0 + 8 * DAY_MS)[1]
    assert u.kind == "room_unopened" and u.episode == "room_unopened" and "cfo" in u.suggestion
    assert evaluate(ROOM, RoomFacts(), {}, BandState(), T0 + 6 * DAY_MS)[1] == []  # 5 working days: not yet


def test_closed_deals_raise_nothing():
    closed = Room("deal-1", stage="closed_won", created_ms=T0)
    assert evaluate(closed, RoomFacts(last_activity_ms=T0), {}, BandState(), T0 + 90 * DAY_MS)[1] == []


def _score(days):
    s = StakeholderScore()
    for d in days:
        s = apply_event(s, {"type": "cta", "ts": T0 + d * DAY_MS})
    return s


def test_active_to_dark_for_the_deal_and_the_champion():
    busy = _score(range(0, 60, 2))  # steady: Active at day 59
    at = T0 + 59 * DAY_MS
    bands, alerts = evaluate(ROOM, RoomFacts(last_activity_ms=at), {"ops": busy}, BandState(), at)
    assert bands.deal == "Active" and dict(bands.stakeholders)["ops"] == "Active"
    later = T0 + 100 * DAY_MS  # nothing for 40 days
    bands2, alerts = evaluate(ROOM, RoomFacts(last_activity_ms=at), {"ops": busy}, bands, later)
    assert {"deal_went_dark", "champion_dark"} <= set(kinds(alerts))
    champion = next(a for a in alerts if a.kind == "champion_dark")
    assert champion.severity == "high" and champion.stakeholders == ("ops",)
    assert "deal_went_dark" not in kinds(evaluate(ROOM, RoomFacts(last_activity_ms=at), {"ops": busy}, bands2, later)[1])


def test_single_threaded_after_n_days():
    one = {"ops": _score([0, 1, 2])}
    facts = RoomFacts(last_activity_ms=T0 + 2 * DAY_MS)
    assert "single_threaded" not in kinds(evaluate(ROOM, facts, one, BandState(), T0 + 5 * DAY_MS)[1])
    alerts = evaluate(ROOM, facts, one, BandState(), T0 + 11 * DAY_MS)[1]
    st = next(a for a in alerts if a.kind == "single_threaded")
    assert st.stakeholders == ("ops",) and "cfo" in st.suggestion


def test_proposal_shared_but_unopened():
    room = Room("deal-1", stage="proposal", created_ms=T0, proposal_shared_ms=T0)
    facts, _ = run([ev("content_view", T0 + DAY_MS, content_id="pricing")], room)
    assert "proposal_unopened" in kinds(evaluate(room, facts, {}, BandState(), T0 + 3 * DAY_MS)[1])
    facts, _ = run([ev("content_view", T0 + DAY_MS, content_id="proposal")], room)
    assert "proposal_unopened" not in kinds(evaluate(room, facts, {}, BandState(), T0 + 3 * DAY_MS)[1])


def test_new_stakeholder_uninvited_forwarded_or_shared():
    _, alerts = run([ev("room_view", T0, stakeholder_id="cto")])
    assert kinds(alerts) == ["new_stakeholder"] and "not on the invited committee" in alerts[0].evidence
    # a second device is the same person's phone or laptop; a third reads as forwarded, once
    _, alerts = run([ev("room_view", T0, stakeholder_id="cfo"), ev("room_view", T0 + 1, stakeholder_id="cfo", visitor_id="v9")])
    assert alerts == []
    _, alerts = run([ev("room_view", T0 + i, stakeholder_id="cfo", visitor_id=f"v{i}") for i in range(5)])
    assert {a.episode for a in alerts} == {"devices/cfo"}  # one episode: the room raises it once
    assert "forwarded" in alerts[0].suggestion and "device 3" in alerts[0].evidence
    _, alerts = run([ev("room_view", T0, stakeholder_id="cfo"), ev("room_view", T0 + 1, stakeholder_id="cfo")])
    assert alerts == []  # same person, same device
    _, alerts = run([ev("share", T0, share_channel="email", share_to="legal@buyer.example")])
    assert kinds(alerts) == ["new_stakeholder"] and "legal@buyer.example" in alerts[0].evidence


def test_pricing_revisited_fires_once_on_the_second_day():
    _, alerts = run([ev("content_view", T0, content_id="pricing"), ev("content_view", T0 + 3600_000, content_id="pricing"),
                     ev("content_view", T0 + DAY_MS, content_id="pricing"), ev("content_view", T0 + 2 * DAY_MS, content_id="pricing")])
    assert kinds(alerts) == ["pricing_revisited"]


def test_proposal_read_to_the_end_fires_once():
    _, alerts = run([ev("content_progress", T0 + i, content_id="proposal", progress_pct=p) for i, p in
                     enumerate((25, 50, 100, 100))])
    assert kinds(alerts) == ["proposal_read"]


def test_engagement_spike_is_hot():
    today = (T0 + 20 * DAY_MS) // DAY_MS
    history = tuple((today - d, 2.0) for d in range(1, 15))  # 2 points a day for two weeks
    facts = RoomFacts()
    _, alerts = observe(ROOM, facts, ev("cta", T0 + 20 * DAY_MS), history + ((today, 28.0),), points=8.0)
    assert alerts == []  # 28 < max(30, 3 x 2)
    _, alerts = observe(ROOM, facts, ev("cta", T0 + 20 * DAY_MS), history + ((today, 36.0),), points=8.0)
    assert kinds(alerts) == ["hot"] and alerts[0].severity == "medium"
    _, alerts = observe(ROOM, facts, ev("cta", T0 + 20 * DAY_MS), history + ((today, 44.0),), points=8.0)
    assert alerts == []  # already past the threshold before this event: no second notice


def test_each_rule_is_one_function_and_time_rules_carry_their_episode():
    from streams.alerts import EVENT_RULES, TIME_RULES

    assert [r.__name__ for r in TIME_RULES] == ["quiet", "room_unopened", "deal_went_dark", "stakeholder_dark",
                                                "single_threaded", "proposal_unopened"]
    # every rule documented, read from the source (a compiled core's functions carry no __doc__)
    import ast
    import os

    import streams
    with open(os.path.join(os.path.dirname(streams.__file__), "alerts.py")) as fh:
        docs = {f.name: ast.get_docstring(f) for f in ast.parse(fh.read()).body if isinstance(f, ast.FunctionDef)}
    assert len(EVENT_RULES) == 6 and all(docs.get(r.__name__) for r in (*EVENT_RULES, *TIME_RULES))
    room = Room("deal-1", stage="proposal", created_ms=T0, invited=ROOM.invited, proposal_shared_ms=T0)
    facts, _ = run([ev("content_view", T0, content_id="pricing", stakeholder_id="ops")], room)
    scores = {"ops": apply_event(StakeholderScore(), {**ev("content_view", T0 + 9 * DAY_MS), "content_id": "x"})}
    alerts = evaluate(room, facts, scores, BandState(), T0 + 15 * DAY_MS)[1]
    assert {a.kind for a in alerts} == {"quiet", "single_threaded", "proposal_unopened"}
    assert all(a.episode for a in alerts)  # the deal core raises each once per episode
    again = evaluate(room, facts, scores, BandState(), T0 + 15 * DAY_MS + 3_600_000)[1]
    assert {a.episode for a in again} == {a.episode for a in alerts}  # the same situation, the same keys


def test_the_rules_called_by_name_are_the_rule_lists_in_order():
    """``event_alerts`` and ``time_alerts`` call each rule by name (cheaper compiled): the same rules as
    EVENT_RULES and TIME_RULES, in their order, and the same alerts as a loop over them."""
    import ast
    import os

    import streams
    from streams.alerts import EVENT_RULES, TIME_RULES, EventView, TimeView, event_alerts, time_alerts
    from streams.scoring import DEFAULT

    with open(os.path.join(os.path.dirname(streams.__file__), "alerts.py")) as fh:
        funcs = {f.name: f for f in ast.parse(fh.read()).body if isinstance(f, ast.FunctionDef)}
    for runner, rules in (("event_alerts", EVENT_RULES), ("time_alerts", TIME_RULES)):
        called = [n.func.id for n in ast.walk(funcs[runner]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        assert called == [r.__name__ for r in rules], runner
    room = Room("deal-1", stage="proposal", created_ms=T0, invited=ROOM.invited, proposal_shared_ms=T0)
    facts, _ = run([ev("content_view", T0, content_id="pricing", stakeholder_id="ops")], room)
    scores = {"ops": apply_event(StakeholderScore(), {**ev("content_view", T0 + 9 * DAY_MS), "content_id": "x"})}
    kinds_seen: set[str] = set()
    for now in (T0 + 2 * DAY_MS, T0 + 15 * DAY_MS, T0 + 40 * DAY_MS):
        tv = TimeView(room, facts, scores, BandState("Active", (("ops", "Active"),)), BandState("Dark", (("ops", "Dark"),)), now)
        got = time_alerts(tv, DEFAULT, ALERTS)
        assert got == [a for r in TIME_RULES for a in r(tv, DEFAULT, ALERTS)]
        kinds_seen.update(a.kind for a in got)
    assert {"quiet", "champion_dark", "proposal_unopened"} <= kinds_seen  # ops is the champion
    raised = 0
    for e in (ev("share", T0 + DAY_MS, stakeholder_id="ops", share_to="new@buyer.example"),
              ev("content_view", T0 + 2 * DAY_MS, content_id="pricing", stakeholder_id="cfo"),
              ev("room_view", T0 + 3 * DAY_MS, visitor_id="v-9")):
        v = EventView(room, facts, e, e["ts"], e.get("stakeholder_id", ""), "pricing", ((e["ts"] // DAY_MS, 40.0),), 40.0)
        got = event_alerts(v, DEFAULT, ALERTS)
        assert got == [a for r in EVENT_RULES for a in r(v, DEFAULT, ALERTS)]
        raised += len(got)
    assert raised >= 2  # a share onward, pricing again on a second day


def test_one_deal_velocity_and_one_definition_of_engaged():
    from streams.scoring import DEFAULT, deal_score, deal_velocity, engaged_ids, is_engaged, value_at

    fresh = apply_event(StakeholderScore(), {**ev("cta", T0), "cta": "book"})
    faded = apply_event(StakeholderScore(), {**ev("room_view", T0 - 200 * DAY_MS)})
    scores = {"a": fresh, "b": faded}
    assert is_engaged(fresh, T0) and not is_engaged(faded, T0)
    assert value_at(faded, T0) < DEFAULT.engaged_min_score <= value_at(fresh, T0)
    assert engaged_ids(scores, T0) == ["a"]
    d = deal_score(scores, {"a": "champion", "b": "technical"}, 2, T0)
    assert d.velocity == deal_velocity(scores, T0)
    assert d.reasons[0] == "1 of 2 invited stakeholders engaged"
