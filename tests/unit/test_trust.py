"""Alerts and scores a seller can trust (issue 12), one rule at a time with explicit time, written as a buyer
committee behaves: Monday-to-Friday visits, holidays, repeat shares, a forwarded link opened by someone new, an
anonymous visitor, a champion who stops coming."""
from datetime import UTC, datetime, timedelta

from streams import processors
from streams.alerts import AlertConfig, BandState, Room, RoomFacts, evaluate, observe, unusual_after
from streams.calendar import WorkCalendar
from streams.scoring import DAY_MS, StakeholderScore, apply_event, deal_score, stakeholder_band

HOUR = 3_600_000


def at(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def ev(etype, ts, sid="ops", visitor=None, **kw):
    return {"type": etype, "ts": ts, "site": "acme", "room_id": "deal-1", "stakeholder_id": sid,
            "visitor_id": visitor or f"v-{sid}", **kw}


class Rooms:
    def __init__(self, acfg=None):
        self.states, self.rows, self.acfg = {}, {}, acfg

    def feed(self, recs):
        kw = {"acfg": self.acfg} if self.acfg else {}
        changed, rows = processors.process_rooms(
            recs, self.states.get, lambda site: [k for k in self.states if k.startswith(f"{site}/".encode())], **kw)
        self.states.update(changed)
        for t, r in rows.items():
            self.rows.setdefault(t, []).extend(r)
        return rows

    def alerts(self, kind=None):
        return [a for a in self.rows.get("alerts", []) if kind is None or a["kind"] == kind]


def room(ts, stage="proposal", **kw):
    return {"record": "room", "site": "acme", "room_id": "deal-1", "updated_at": ts, "stage": stage, "owner": "sam",
            "stakeholders": [{"id": "ops", "role": "champion", "email": "Ops@Buyer.example"},
                             {"id": "cfo", "role": "economic_buyer"}, {"id": "it", "role": "technical"}], **kw}


def clock(ts):
    return {"record": "clock", "site": "acme", "now": ts}


# ------------------------------------------------------------------ working time

def test_working_days_skip_weekends_holidays_and_follow_the_time_zone():
    cal = WorkCalendar()
    assert cal.working_days(at("2026-11-20T17:00"), at("2026-11-23T09:00")) == 7 / 24 + 9 / 24  # Fri evening to Mon
    assert cal.working_days(at("2026-11-21T00:00"), at("2026-11-23T00:00")) == 0  # a whole weekend: no time
    xmas = WorkCalendar(holidays=("2026-12-24", "2026-12-25"))
    assert xmas.working_days(at("2026-12-23T12:00"), at("2026-12-28T12:00")) == 1.0  # Wed noon to Mon noon
    gulf = WorkCalendar(tz="Asia/Dubai", weekend=(5, 6))
    # Friday 22:00 UTC is already Saturday 02:00 in Dubai: nothing of it counts there
    assert gulf.working_days(at("2026-11-20T22:00"), at("2026-11-21T10:00")) == 0


def test_a_monday_to_friday_committee_is_not_quiet_over_a_weekend():
    r = Rooms()
    r.feed([room(at("2026-10-01T09:00"), stage="negotiation")])  # negotiation expects contact every 3 working days
    # four weeks of Monday-to-Friday visits, each day around 10:00 UTC
    day = at("2026-10-05T10:00")
    for week in range(4):
        for d in range(5):
            ts = day + (week * 7 + d) * DAY_MS
            r.feed([ev("room_view", ts), clock(ts + HOUR)])
        for h in range(8, 72, 4):  # Friday evening to Monday morning: ticks every 4 hours
            r.feed([clock(day + (week * 7 + 4) * DAY_MS + h * HOUR)])
    assert r.alerts("quiet") == []
    # then the committee stops: quiet past 3 working days (Friday 10:00 -> Wednesday 10:00), not before
    last = day + (3 * 7 + 4) * DAY_MS
    for h in range(4, 8 * 24, 4):
        r.feed([clock(last + h * HOUR)])
    first = r.alerts("quiet")[0]
    assert datetime.fromtimestamp(first["at"] / 1000, UTC).strftime("%a %H") == "Wed 14", first
    assert "working days" in first["evidence"]


def test_a_holiday_is_not_silence():
    acfg = AlertConfig(calendar=WorkCalendar(holidays=("2026-12-24", "2026-12-25", "2026-12-28")))
    rm = Room("deal-1", stage="negotiation", created_ms=at("2026-12-01T00:00"))
    facts = RoomFacts()
    for d in (1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 21, 22):  # a committee active every working day
        facts, _ = observe(rm, facts, ev("room_view", at(f"2026-12-{d:02d}T12:00")))
    # Tue noon -> Wed (1) + Thu, Fri holidays + weekend + Mon holiday -> Tue noon: 2 working days, under 3
    assert evaluate(rm, facts, {}, BandState(), at("2026-12-29T12:00"), acfg=acfg)[1] == []
    assert [a.kind for a in evaluate(rm, facts, {}, BandState(), at("2026-12-29T12:00"))[1]] == ["quiet"]  # no holidays


def _working_days_after(start: str, step: int, n: int) -> list[int]:
    day, out = datetime.fromisoformat(start), []
    for _ in range(n):
        out.append(at(day.isoformat()))
        k = 0
        while k < step:
            day += timedelta(days=1)
            k += day.weekday() < 5
    return out


def test_a_room_with_a_slow_steady_rhythm_is_quiet_only_when_unusually_silent():
    rm = Room("deal-1", stage="negotiation", created_ms=at("2026-06-29T00:00"))
    # a committee that comes back every 6 working days, like clockwork, for eleven visits
    visits = _working_days_after("2026-07-06T10:00", 6, 11)
    facts = RoomFacts()
    for ts in visits:
        facts, _ = observe(rm, facts, ev("room_view", ts))
    # its rate alone (11 active of ~66 working days) would wait ~30 working days; its steadiness says 1.5 x 6 = 9
    assert abs(unusual_after(facts, AlertConfig(), {}, rm.created_ms) - 9.0) < 1e-6
    after = _working_days_after(datetime.fromtimestamp(visits[-1] / 1000, UTC).replace(tzinfo=None).isoformat(), 1, 12)
    assert evaluate(rm, facts, {}, BandState(), after[7])[1] == []  # 7 working days: past the 3-day norm, usual here
    assert evaluate(rm, facts, {}, BandState(), after[9])[1] == []  # 9: the edge
    (q,) = evaluate(rm, facts, {}, BandState(), after[10])[1]  # 10 working days: unusual
    assert q.kind == "quiet" and "longest recent gap is 6.0" in q.evidence
    # the same visits at irregular gaps (1 to 11 working days, the same mean): the steady rule does not apply
    jumpy = RoomFacts()
    day = visits[0]
    for gap in (1, 11, 2, 10, 3, 9, 1, 11, 6, 6):
        jumpy, _ = observe(rm, jumpy, ev("room_view", day))
        day = _working_days_after(datetime.fromtimestamp(day / 1000, UTC).replace(tzinfo=None).isoformat(), gap, 2)[1]
    # (its rate alone would wait longer still: however slow a room, 20 silent working days are unusual)
    assert unusual_after(jumpy, AlertConfig(), {}, rm.created_ms) == AlertConfig().longest_usual_days == 20


# ------------------------------------------------------------------ people and shares

def test_a_repeat_share_and_a_share_to_an_invited_stakeholder_are_not_news():
    r = Rooms()
    t = at("2026-10-05T10:00")
    r.feed([room(t)])
    r.feed([ev("share", t + 1000, share_channel="email", share_to="cto@buyer.example"),
            ev("share", t + 2000, share_channel="email", share_to=" CTO@buyer.example "),  # the same person
            ev("share", t + DAY_MS, share_channel="slack", share_to="cto@buyer.example"),
            ev("share", t + DAY_MS + 1, share_channel="email", share_to="ops@buyer.example"),  # invited (by email)
            ev("share", t + DAY_MS + 2, share_channel="email", share_to="cfo")])  # invited (by id)
    news = r.alerts("new_stakeholder")
    assert [a["evidence"] for a in news] == ["ops shared the room with cto@buyer.example via email"]


def test_the_recipients_first_visit_is_news_and_names_who_shared():
    r = Rooms()
    t = at("2026-10-05T10:00")
    r.feed([room(t), ev("share", t + HOUR, share_channel="email", share_to="legal@buyer.example")])
    r.feed([ev("room_view", t + 26 * HOUR, sid="", visitor="anon-1")])  # a new, anonymous visitor the next day
    r.feed([ev("room_view", t + 27 * HOUR, sid="", visitor="anon-1")])  # the same visitor again: nothing new
    evidence = [a["evidence"] for a in r.alerts("new_stakeholder")]
    assert evidence == ["ops shared the room with legal@buyer.example via email",
                        "a new visitor opened the room: likely legal@buyer.example, shared by ops 1 day ago"]
    # a second new visitor has no unclaimed share left to be matched with
    r.feed([ev("room_view", t + 28 * HOUR, sid="", visitor="anon-2")])
    assert len(r.alerts("new_stakeholder")) == 2


def test_a_share_to_an_invited_colleague_is_never_taken_for_a_strangers_first_visit():
    r = Rooms()
    t = at("2026-10-05T10:00")
    r.feed([room(t), ev("share", t + HOUR, share_channel="email", share_to="legal@buyer.example"),
            ev("share", t + 2 * HOUR, share_channel="email", share_to="ops@buyer.example")])  # invited (by email)
    r.feed([ev("room_view", t + 26 * HOUR, sid="", visitor="anon-1")])
    assert r.alerts("new_stakeholder")[-1]["evidence"].startswith("a new visitor opened the room: likely legal@buyer")


def test_anonymous_visitors_never_count_as_engaged_committee_nor_get_dark_alerts():
    r = Rooms()
    t = at("2026-10-05T10:00")
    r.feed([room(t)])
    r.feed([ev("room_view", t + i * HOUR, sid="", visitor=f"anon-{i}") for i in range(3)]
           + [ev("cta", t + 5 * HOUR, sid="", visitor="anon-0", cta="book"), ev("content_view", t + 6 * HOUR)])
    deal = r.rows["deal_scores"][-1]
    assert deal["engaged"] == 1 and deal["invited"] == 3
    assert "1 of 3 invited stakeholders engaged" in deal["reasons"]
    visitors = [s for s in r.rows["stakeholder_scores"] if s["stakeholder_id"].startswith("visitor:")]
    assert visitors and {s["band"] for s in visitors} == {"Visitor"}
    for d in range(1, 40):
        r.feed([clock(t + d * DAY_MS)])
    dark = [a for a in r.alerts() if a["kind"] in ("stakeholder_dark", "champion_dark")]
    assert dark and all(not s.startswith("visitor:") for a in dark for s in a["stakeholders"])


def test_a_verified_non_member_is_not_counted_as_invited():
    s = {sid: apply_event(StakeholderScore(), {"type": "cta", "ts": 1_000_000, "cta": "x"}) for sid in ("ops", "cfo", "cto")}
    d = deal_score(s, {"ops": "champion", "cfo": "economic_buyer"}, 2, 1_000_000)
    assert d.reasons[:2] == ("2 of 2 invited stakeholders engaged", "1 more verified people engaged (not on the committee)")


# ------------------------------------------------------------------ time moves bands without events

def test_a_band_decays_to_dark_with_no_events_and_ticks_write_the_change():
    r = Rooms()
    t = at("2026-09-01T10:00")
    r.feed([room(t)])
    for d in range(0, 40, 2):  # the champion visits every other day for 40 days
        r.feed([ev("content_view", t + d * DAY_MS, content_id="proposal"), clock(t + d * DAY_MS + HOUR)])
    last = t + 38 * DAY_MS
    s = dict(r.states[b"acme/deal-1"].scores)["ops"]
    assert stakeholder_band(s, last, ) == "Active"
    assert stakeholder_band(s, last + 11 * DAY_MS) == "Cooling" and stakeholder_band(s, last + 22 * DAY_MS) == "Dark"
    before = len(r.rows["stakeholder_scores"])
    for d in range(1, 25):  # nothing but time
        r.feed([clock(last + d * DAY_MS)])
    rows = [(x["band"], (x["at"] - last) // DAY_MS) for x in r.rows["stakeholder_scores"][before:] if x["stakeholder_id"] == "ops"]
    assert rows == [("Cooling", 10), ("Dark", 21)]
    assert sorted(a["kind"] for a in r.alerts() if a["kind"] in ("champion_dark", "deal_went_dark")) == ["champion_dark", "deal_went_dark"]
    deal_bands = [x["band"] for x in r.rows["deal_scores"]]
    assert deal_bands[-1] == "Dark" and "Cooling" in deal_bands


def test_a_young_deal_is_new_with_no_velocity_stored():
    r = Rooms()
    t = at("2026-09-01T10:00")
    r.feed([room(t), ev("content_view", t + HOUR, content_id="proposal")])
    assert r.rows["deal_scores"][-1]["band"] == "New" and r.rows["deal_scores"][-1]["velocity"] is None
    assert r.rows["stakeholder_scores"][-1]["band"] == "New" and r.rows["stakeholder_scores"][-1]["velocity"] is None


# ------------------------------------------------------------------ the seller's own team

def test_the_sellers_team_is_stored_but_never_scored_alerted_on_or_matched_to_a_share():
    r = Rooms()
    t = at("2026-10-05T10:00")
    people = [{"id": "ops", "role": "champion", "email": "ops@buyer.example"},
              {"id": "se-tom", "role": "technical", "email": "tom@SELLER.example"},  # the company's domain
              {"id": "csm", "role": "other", "internal": True}]  # flagged by hand
    r.feed([{**room(t), "stakeholders": people, "internal_domains": ["seller.example"]}])
    r.feed([ev("room_view", t + HOUR, sid="seller:sam", visitor="v-sam"),  # the seller's own page token
            ev("engagement", t + HOUR + 1000, sid="", visitor="v-sam", engaged_ms=600_000),  # same laptop, no token
            ev("room_view", t + 2 * HOUR, sid="se-tom"), ev("room_view", t + 2 * HOUR, sid="csm"),
            ev("share", t + 3 * HOUR, sid="ops", share_channel="email", share_to="anna@seller.example")])
    scored = {row["stakeholder_id"] for row in r.rows.get("stakeholder_scores", [])}
    assert scored == {"ops"}, scored  # only the buyer's share is a buyer action
    assert r.alerts("new_stakeholder") == []  # a share to the seller's own domain is nobody new
    # nor is the next new visitor "likely anna@seller.example"
    r.feed([ev("room_view", t + 4 * HOUR, sid="", visitor="anon-1")])
    assert all("anna@" not in a["evidence"] for a in r.alerts())
    state = next(iter(r.states.values()))
    from streams.deals import dumps, loads

    assert loads(dumps(state)) == state  # the team's devices and addresses survive a restart
    assert state.facts.internal_visitors == ("v-sam", "v-se-tom", "v-csm")
    # the site's domains apply to people added later, without repeating them
    r.feed([{**room(t + 5 * HOUR), "stakeholders": [*people, {"id": "kim", "email": "kim@seller.example"}]}])
    r.feed([ev("room_view", t + 6 * HOUR, sid="kim")])
    assert "kim" not in {row["stakeholder_id"] for row in r.rows.get("stakeholder_scores", [])}


def test_buyer_actions_are_one_activity_each_with_replay_stable_ids():
    r = Rooms()
    t = at("2026-10-05T10:00")
    r.feed([room(t)])
    evs = [dict(ev("room_view", t + 1000, sid="cfo"), event_id="e1"),
           dict(ev("content_view", t + 2000, sid="cfo", content_id="proposal"), event_id="e2"),
           dict(ev("content_progress", t + 3000, sid="cfo", content_id="proposal", page=9, progress_pct=75.0), event_id="e3"),
           dict(ev("content_progress", t + 4000, sid="cfo", content_id="proposal", page=12, progress_pct=100.0), event_id="e4"),
           dict(ev("share", t + 5000, sid="cfo", share_channel="email", share_to="x@buyer.example"), event_id="e5"),
           dict(ev("room_view", t + 6000, sid="", visitor="anon-1"), event_id="e6"),
           dict(ev("room_view", t + 7000, sid="", visitor="anon-1"), event_id="e7"),
           dict(ev("room_view", t + 8000, sid="seller:sam", visitor="v-sam"), event_id="e8")]
    rows = r.feed(evs)["activities"]
    assert [(a["kind"], a["event_id"], a["who"]) for a in rows] == [
        ("new_person", "e1", "cfo"), ("room_opened", "e1", "cfo"), ("content_viewed", "e2", "cfo"),
        ("document_completed", "e4", "cfo"), ("shared", "e5", "cfo"), ("new_person", "e6", "visitor:anon-1"),
        ("room_opened", "e6", "visitor:anon-1"), ("room_opened", "e7", "visitor:anon-1")]
    assert rows[4]["detail"] == "x@buyer.example" and rows[3]["content_id"] == "proposal"
    again = Rooms()
    again.feed([room(t)])
    assert again.feed(evs)["activities"] == rows  # a replay: the same ids
    assert len({a["activity_id"] for a in rows}) == len(rows)
