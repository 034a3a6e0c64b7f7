"""The room state machine (streams/deals.py) and its routing (streams/processors.process_rooms), explicit time."""
from hypothesis import given, settings
from hypothesis import strategies as st

from dealbeacon.sim.simulator import op_records, plan, simulate
from streams import deals, processors
from streams.alerts import ALERTS, unusual_after
from streams.scoring import DAY_MS

T0 = 1_790_000_000_000
SITE = "acme"


def ev(etype, ts, room="deal-1", sid="ops", **kw):
    return {"type": etype, "ts": ts, "site": SITE, "room_id": room, "stakeholder_id": sid,
            "visitor_id": f"v-{sid}", **kw}


def room(ts, room_id="deal-1", **kw):
    body = {"stage": "proposal", "owner": "sam",
            "stakeholders": [{"id": "ops", "role": "champion"}, {"id": "cfo", "role": "economic_buyer"}], **kw}
    return {"record": "room", "site": SITE, "room_id": room_id, "updated_at": ts, **body}


def clock(now):
    return {"record": "clock", "site": SITE, "now": now}


class Rooms:
    """An in-memory holder, as embedded mode keeps them."""

    def __init__(self):
        self.states, self.rows = {}, {}

    def feed(self, recs, partition=-1, offset=-1):
        changed, rows = processors.process_rooms(
            recs, self.states.get, lambda site: [k for k in self.states if k.startswith(f"{site}/".encode())],
            partition, offset)
        self.states.update(changed)
        for t, r in rows.items():
            self.rows.setdefault(t, []).extend(r)
        return rows


def test_events_score_stakeholders_and_the_deal_with_reasons():
    r = Rooms()
    r.feed([room(T0)])
    rows = r.feed([ev("content_view", T0 + 1000, content_id="pricing"), ev("cta", T0 + 2000, cta="book")])
    (sh,) = rows["stakeholder_scores"]
    assert sh["stakeholder_id"] == "ops" and sh["role"] == "champion" and sh["at"] == T0 + 2000
    assert sh["score"] == 12.0  # content_view 2 x pricing 2 + cta 8
    assert '"cta"' in sh["reasons"] and "content_view:pricing" in sh["reasons"]
    (deal,) = rows["deal_scores"]
    assert deal["engaged"] == 1 and deal["invited"] == 2 and deal["owner"] == "sam"
    assert "1 of 2 invited stakeholders engaged" in deal["reasons"] and "economic_buyer" in deal["reasons"]


def test_room_updates_keep_stage_history_and_unknown_fields_keep_their_value():
    r = Rooms()
    r.feed([room(T0, amount=5000.0)])
    r.feed([{"record": "room", "site": SITE, "room_id": "deal-1", "updated_at": T0 + DAY_MS, "stage": "negotiation"}])
    hist = [(h["from_stage"], h["to_stage"], h["changed_at"]) for h in r.rows["room_stage_history"]]
    assert hist == [("", "proposal", T0), ("proposal", "negotiation", T0 + DAY_MS)]
    last = r.rows["rooms"][-1]
    assert (last["stage"], last["amount"], last["owner"]) == ("negotiation", 5000.0, "sam")
    assert '"cfo"' in last["stakeholders"]


def test_quiet_alert_fires_once_per_severity_step_and_rearms_after_activity():
    r = Rooms()
    r.feed([room(T0)])
    evening = 6 * 3_600_000  # ticks at 20:13 UTC; T0 is a Monday
    visit = 3_600_000  # visits at 15:13 UTC
    for day in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11):  # two working weeks of daily visits: a busy room
        r.feed([ev("content_view", T0 + day * DAY_MS + visit, content_id="pricing"), clock(T0 + day * DAY_MS + evening)])
    for day in range(12, 36):
        r.feed([clock(T0 + day * DAY_MS + evening)])
    quiet = [(a["severity"], (a["at"] - T0) // DAY_MS) for a in r.rows["alerts"] if a["kind"] == "quiet"]
    # proposal cadence 5 working days from Friday 15:13 (day 11): low past 5 (the next Friday evening), medium
    # past 10, high past 15; weekends do not count; each once
    assert quiet == [("low", 18), ("medium", 25), ("high", 32)]
    for day in range(36, 41):  # the buyer is back on Tuesday (day 36), until Saturday
        r.feed([ev("content_view", T0 + day * DAY_MS + visit, content_id="proposal"), clock(T0 + day * DAY_MS + evening)])
    for day in range(41, 60):
        r.feed([clock(T0 + day * DAY_MS + evening)])
    quiet = [(a["severity"], (a["at"] - T0) // DAY_MS) for a in r.rows["alerts"] if a["kind"] == "quiet"]
    # re-armed, and the three silent weeks it came back from are not its rhythm: without them its rate of active
    # days (14 working days of ~29) makes ~8 silent working days unusual; with them it would be ~10
    state = r.states[b"acme/deal-1"]
    limit = unusual_after(state.facts, ALERTS, dict(state.scores), T0)
    assert 7 < limit < 8.5
    assert quiet[3:] == [("low", 51)]  # from Saturday (day 40) 15:13: 7.8 working days by Wednesday (day 51) evening
    ids = [a["alert_id"] for a in r.rows["alerts"]]
    assert len(ids) == len(set(ids))


def test_a_clock_tick_does_not_create_rooms_and_reaches_every_room_of_its_site_only():
    r = Rooms()
    assert r.feed([clock(T0)]) == {} and r.states == {}
    r.feed([room(T0, "a"), room(T0, "b"), {**room(T0, "c"), "site": "other"}])
    r.feed([clock(T0 + 8 * DAY_MS)])
    unopened = sorted(a["room_id"] for a in r.rows["alerts"] if a["kind"] == "room_unopened")
    assert unopened == ["a", "b"]


def test_closed_deals_raise_no_time_alerts_and_take_no_snapshots():
    r = Rooms()
    r.feed([room(T0, stage="closed_won"), ev("content_view", T0)])
    before = len(r.rows["deal_scores"])
    r.feed([clock(T0 + 30 * DAY_MS)])
    assert "alerts" not in r.rows and len(r.rows["deal_scores"]) == before


def test_a_replayed_source_offset_is_not_counted_twice():
    r = Rooms()
    r.feed([room(T0)], partition=2, offset=10)
    r.feed([ev("cta", T0 + 1, cta="x")], partition=2, offset=11)
    score = dict(r.states[b"acme/deal-1"].scores)["ops"].value
    assert r.feed([ev("cta", T0 + 1, cta="x")], partition=2, offset=11) == {}
    assert dict(r.states[b"acme/deal-1"].scores)["ops"].value == score
    r.feed([ev("cta", T0 + 2, cta="x")], partition=2, offset=12)
    assert dict(r.states[b"acme/deal-1"].scores)["ops"].value > score


def test_a_batch_of_messages_replays_only_what_each_room_has_not_folded():
    """A worker folds several messages of a partition at once (one offset per record). After a crash between
    saving some states and committing, the replayed batch is skipped record by record per room: a room whose
    state has the offset skips it, a room saved before it folds only what is newer."""
    r = Rooms()
    r.feed([room(T0, "a"), room(T0, "b")], partition=1, offset=[5, 5])
    r.feed([ev("cta", T0 + 1, room="a", cta="x")], partition=1, offset=6)
    a, b = (dict(r.states[k].scores).get("ops") for k in (b"acme/a", b"acme/b"))
    # the batch 6..7 again (room a saved at 6, room b never saw 7): a folds only 7, b folds 7
    batch = [ev("cta", T0 + 1, room="a", cta="x"), ev("cta", T0 + 5, room="a", cta="y"), ev("cta", T0 + 5, room="b", cta="y")]
    rows = r.feed(batch, partition=1, offset=[6, 7, 7])
    assert b is None and [x["room_id"] for x in rows["deal_scores"]] == ["a", "b"]
    assert round(dict(r.states[b"acme/a"].scores)["ops"].value, 3) == a.value + 8  # the cta at offset 6 counted once
    assert {k: s.offset for k, s in r.states.items()} == {b"acme/a": 7, b"acme/b": 7}


def test_rooms_born_in_a_batch_hear_a_site_wide_tick_later_in_it():
    """New rooms and a site-wide clock in one batch of messages: the tick reaches every room born before it
    in the batch (none is saved yet), so each raises its alert, as message by message."""
    rooms = [f"new-{i}" for i in range(5)]
    recs = [room(T0, name) for name in rooms] + [clock(T0 + 30 * DAY_MS)]
    batched, single = Rooms(), Rooms()
    batched.feed(recs, partition=0, offset=list(range(len(recs))))
    for i, rec in enumerate(recs):
        single.feed([rec], partition=0, offset=i)
    unopened = sorted(a["room_id"] for a in batched.rows["alerts"] if a["kind"] == "room_unopened")
    assert unopened == rooms
    assert sorted(a["alert_id"] for a in batched.rows["alerts"]) == sorted(a["alert_id"] for a in single.rows["alerts"])


def test_offsets_must_match_the_records():
    import pytest
    with pytest.raises(ValueError, match="one offset per record"):
        processors.process_rooms([room(T0)], lambda k: None, lambda s: [], 0, [1, 2])


def _simulated_records(n_deals=3):
    sims = simulate(4, n_deals, T0, days=50)
    ops = plan(sims, SITE, "secret", 2_000_000_000, tick_ms=12 * 3_600_000)
    return [rec for batch in op_records(ops, SITE, sims) for rec in batch]


def test_batching_does_not_change_alerts_or_final_state():
    recs = _simulated_records()
    one, many = Rooms(), Rooms()
    for rec in recs:
        one.feed([rec])
    for i in range(0, len(recs), 37):
        many.feed(recs[i:i + 37])
    def key(a):
        return a["alert_id"]
    assert sorted(one.rows["alerts"], key=key) == sorted(many.rows["alerts"], key=key)
    assert len(one.rows["alerts"]) > 5
    assert one.states == many.states


def test_state_survives_serialisation():
    r = Rooms()
    for rec in _simulated_records(2):
        r.feed([rec])
    for state in r.states.values():
        assert deals.loads(deals.dumps(state)) == state


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["content_view", "engagement", "cta", "share", "room_view"]),
                          st.integers(0, 40 * DAY_MS), st.sampled_from(["ops", "cfo", ""])), max_size=30),
       st.lists(st.integers(0, 60), max_size=10))
def test_replaying_the_same_records_in_the_same_order_gives_the_same_state_and_rows(items, tick_days):
    recs = [room(T0)]
    for etype, dt_, sid in sorted(items, key=lambda x: x[1]):
        extra = {"engaged_ms": 10_000} if etype == "engagement" else {"share_channel": "email"} if etype == "share" else {}
        recs.append(ev(etype, T0 + dt_, sid=sid, content_id="pricing", cta="x", **extra))
    recs += [clock(T0 + d * DAY_MS) for d in sorted(tick_days)]
    a, b = Rooms(), Rooms()
    a.feed(recs)
    b.feed(recs)
    assert a.states == b.states and a.rows == b.rows
    for row in a.rows.get("stakeholder_scores", []) + a.rows.get("deal_scores", []):
        assert row["score"] >= 0


def test_hot_needs_a_baseline_and_is_raised_at_most_once_a_week():
    r = Rooms()
    r.feed([room(T0)])
    for day in (0, 1, 2, 9, 12, 17):  # busy days: a CTA burst of 40+ points each
        r.feed([ev("cta", T0 + day * DAY_MS + i * 60_000, cta="book") for i in range(6)])
    hot_days = [(a["at"] - T0) // DAY_MS for a in r.rows["alerts"] if a["kind"] == "hot"]
    # days 0-2: no baseline yet (a deal's first days are not a spike); 9: hot; 12: within a week of 9; 17: hot
    assert hot_days == [9, 17]


def test_anonymous_visitors_are_bounded_per_room():
    r = Rooms()
    r.feed([room(T0)])
    r.feed([ev("room_view", T0 + i, sid="", visitor_id=f"anon-{i}") for i in range(deals.MAX_ANONYMOUS + 30)])
    r.feed([ev("room_view", T0 + 10_000)])  # a verified stakeholder is never dropped for anonymous ones
    keys = [k for k, _ in r.states[b"acme/deal-1"].scores]
    assert "ops" in keys and len([k for k in keys if k.startswith("visitor:")]) == deals.MAX_ANONYMOUS
    assert "visitor:anon-0" not in keys and f"visitor:anon-{deals.MAX_ANONYMOUS + 29}" in keys


def test_evolve_copies_fields_with_changes_with_or_without_an_instance_dict():
    """``evolve`` is ``dataclasses.replace`` without ``__init__`` for the core's value types; an object without
    ``__dict__`` (slots, or a class compiled by mypyc) goes through its constructor instead. Both give what
    ``replace`` gives, and leave the original as it was."""
    import dataclasses

    from streams.model import Room, evolve

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        a: int
        b: tuple[str, ...] = ()
        c: float = 0.5

    for obj, changes in ((Room("r-1", stage="demo", created_ms=5), {"stage": "proposal", "owner": "ana"}),
                         (Slotted(1, ("x",)), {"c": 2.5}), (Slotted(3), {})):
        out = evolve(obj, **changes)
        assert out == dataclasses.replace(obj, **changes) and type(out) is type(obj) and out is not obj
    assert Room("r-1", stage="demo", created_ms=5).stage == "demo"


def test_moved_copies_every_field_it_is_not_given():
    """``moved`` is ``evolve`` written out for the five fields runs and ticks move: a state with a distinct value
    in every field comes back equal to ``dataclasses.replace`` with the same five, whatever the field order."""
    import dataclasses

    from streams.alerts import BandState, Room, RoomFacts
    from streams.scoring import StakeholderScore
    from streams.winmodel import PRIOR, WinModel

    state = deals.RoomState(site="s-1", room=Room("r-1", stage="demo", created_ms=5),
                            facts=RoomFacts(last_activity_ms=7), scores=(("ops", StakeholderScore(1.5, 9)),),
                            bands=BandState("Active"), daily=((3, 2.0),), clock_ms=11, snapshot_day=13,
                            fired=("quiet/1/low",), partition=17, offset=19, meta=(("owner", "ana"),),
                            model=WinModel("fit-x", PRIOR, 2, 3))
    assert len(dataclasses.fields(state)) == 14  # a new field must be added to ``moved`` too
    new = dict(facts=RoomFacts(last_activity_ms=23), bands=BandState("Dark"), daily=((4, 1.0),), clock_ms=29,
               snapshot_day=31, fired=("hot/4",))
    assert deals.moved(state, **new) == dataclasses.replace(state, **new)
    scores = (("cy", StakeholderScore(2.5, 10)),)
    assert deals.moved(state, **new, scores=scores) == dataclasses.replace(state, **new, scores=scores)
    assert deals.moved(state, state.facts, state.bands, state.daily, state.clock_ms, state.snapshot_day,
                       state.fired) == state
    # the memo is not state: never compared, and only the tick's own goes on
    memo = (state.scores, {3: 2.0}, [(3, 2.0)])
    assert dataclasses.replace(state, totals=memo) == state and hash(dataclasses.replace(state, totals=memo)) == hash(state)
    assert deals.moved(dataclasses.replace(state, totals=memo), **new).totals is None
    assert deals.moved(state, **new, totals=memo).totals is memo
    assert deals.loads(deals.dumps(dataclasses.replace(state, totals=memo))).totals is None


def test_active_at_copies_every_field_but_the_last_activity():
    import dataclasses

    from streams.alerts import RoomFacts
    from streams.model import active_at

    facts = RoomFacts(1, (("ops", 2),), (("ops", "v-1"),), (3,), 4, 5.5, ("pricing",), (("a@x", "ops", 6, ""),),
                      ("v-2",), 7, (8,), ("v-3",))
    assert len(dataclasses.fields(facts)) == 12 and len({repr(getattr(facts, f.name)) for f in dataclasses.fields(facts)}) == 12
    assert active_at(facts, 9) == dataclasses.replace(facts, last_activity_ms=9)


def test_role_of_answers_as_a_dict_of_the_committee_would():
    invited = (("ana", "champion"), ("bo", "legal"), ("ana", "economic_buyer"))  # a CRM may list someone twice
    for sid in ("ana", "bo", "cy"):
        assert deals.role_of(invited, sid) == dict(invited).get(sid, "")
    assert deals.role_of((), "ana") == ""


def test_a_tick_leaves_a_closed_deal_as_it_is_and_reports_no_change():
    """A closed deal's time rules are off: a tick changes nothing of it (not even its clock), so the holder is
    not asked to save it again; an open deal of the same site is ticked as before. A reopened deal is ticked
    again."""
    r = Rooms()
    r.feed([room(T0, room_id="won-1"), ev("content_view", T0 + 1000, room="won-1", content_id="pricing"),
            room(T0, room_id="open-1"), ev("content_view", T0 + 1000, room="open-1", content_id="pricing")])
    r.feed([room(T0 + 2000, room_id="won-1", stage="closed_won")])
    won = r.states[b"acme/won-1"]
    changed, rows = processors.process_rooms(
        [clock(T0 + 3 * DAY_MS)], r.states.get, lambda site: [k for k in r.states if k.startswith(f"{site}/".encode())])
    assert set(changed) == {b"acme/open-1"}  # the closed deal is not in it
    assert all(row["room_id"] == "open-1" for table in rows.values() for row in table)
    assert changed[b"acme/open-1"].clock_ms == T0 + 3 * DAY_MS
    state, out = deals.step(won, [clock(T0 + 3 * DAY_MS)])
    assert state is won and out == {}
    r.states.update(changed)
    r.feed([room(T0 + 4 * DAY_MS, room_id="won-1", stage="negotiation")])  # reopened
    changed, _ = processors.process_rooms(
        [clock(T0 + 5 * DAY_MS)], r.states.get, lambda site: [k for k in r.states if k.startswith(f"{site}/".encode())])
    assert set(changed) == {b"acme/open-1", b"acme/won-1"} and changed[b"acme/won-1"].clock_ms == T0 + 5 * DAY_MS
