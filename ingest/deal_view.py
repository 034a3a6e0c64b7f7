"""The seller's view of deals: the list ordered by what needs attention, and one deal in detail (who read what,
page by page, who shared with whom, the visits, the score history, the alerts). Queries are plain SQL over the
documented tables (the same text on chdb and a ClickHouse server); shaping is pure (rows in, JSON out)."""
from __future__ import annotations

from collections.abc import Sequence

import orjson

from dealbeacon.core.contract import SEVERITY_RANK
from dealbeacon.core.sqltext import sql_string

WEEK_MS = 7 * 86_400_000
WHO = "if(stakeholder_id != '', stakeholder_id, concat('visitor:', visitor_id))"


ALERT_SELECT = ("SELECT toString(alert_id), room_id, kind, severity, stakeholders, evidence, suggestion, "
                "toUnixTimestamp64Milli(at) FROM alerts FINAL")  # columns in ALERT_KEYS order


def room_alerts_sql(site: str, room: str) -> str:
    """Every alert of one deal (acknowledged or not), newest first."""
    return f"{ALERT_SELECT} WHERE site = {sql_string(site)} AND room_id = {sql_string(room)} ORDER BY at DESC LIMIT 100"


OPEN_DAYS = 14  # an alert older than this is history, not something to act on


def open_alerts_sql(site: str, seller: str, now_ms: int, room: str | None = None) -> str:
    """What the seller should act on, newest first: alerts of the last OPEN_DAYS days, not acknowledged and
    not snoozed, and of each kind only the latest per deal (a newer "quiet" replaces the older one)."""
    only_room = f" AND room_id = {sql_string(room)}" if room else ""
    return (f"{ALERT_SELECT} WHERE site = {sql_string(site)} AND owner = {sql_string(seller)}"
            f"{only_room} AND toUnixTimestamp64Milli(at) > {int(now_ms) - OPEN_DAYS * 86_400_000} "
            f"AND toString(alert_id) NOT IN (SELECT alert_id FROM alert_actions FINAL WHERE "
            f"site = {sql_string(site)} AND (action = 'ack' OR toUnixTimestamp64Milli(until) > {int(now_ms)})) "
            "ORDER BY at DESC LIMIT 1 BY room_id, kind LIMIT 100")


ALERT_KEYS = ("alert_id", "room_id", "kind", "severity", "stakeholders", "evidence", "suggestion", "at")


def deal_list_sql(site: str, seller: str, now_ms: int) -> str:
    """One row per deal of the seller: the room, its latest score and band, the score a week ago (trend), the
    last buyer activity, the win probability and the model that gave it."""
    s = sql_string(site)
    return (
        "SELECT r.room_id, r.name, r.stage, r.amount, d.score, d.band, d.reasons, d.engaged, d.invited, "
        "if(w.n > 0, w.score_then, NULL), toUnixTimestamp64Milli(e.last_activity), d.win_probability, d.model_version "
        f"FROM (SELECT * FROM rooms FINAL WHERE site = {s} AND owner = {sql_string(seller)}) AS r "
        "LEFT JOIN deal_scores_latest AS d ON d.site = r.site AND d.room_id = r.room_id "
        f"LEFT JOIN (SELECT room_id, argMax(score, at) AS score_then, count() AS n FROM deal_scores WHERE site = {s} "
        f"AND toUnixTimestamp64Milli(at) <= {int(now_ms) - WEEK_MS} GROUP BY room_id) AS w ON w.room_id = r.room_id "
        # the last buyer activity as the deal core saw it (the seller's own team is never scored)
        f"LEFT JOIN (SELECT room_id, max(last_seen) AS last_activity FROM stakeholder_scores_latest WHERE site = {s} "
        "GROUP BY room_id) AS e ON e.room_id = r.room_id")


def shape_deal_list(rows: list, people: dict[str, list], alerts: list[dict], closed: tuple[str, ...]) -> dict:
    """Open deals first, ordered by what needs attention: the most severe open alert, then how many, then the
    score falling fastest; closed deals apart, most recent activity first."""
    open_by_room: dict[str, list[dict]] = {}
    for a in alerts:
        open_by_room.setdefault(a["room_id"], []).append(a)
    deals = []
    for r in rows:
        room_id, name, stage, amount, score, band, reasons, engaged, invited, then, last, win, model = r
        mine = open_by_room.get(room_id, [])
        top = max((SEVERITY_RANK.get(a["severity"], 0) for a in mine), default=-1)
        deals.append({
            "room_id": room_id, "name": name, "stage": stage, "amount": amount, "score": score, "band": band,
            "reasons": orjson.loads(reasons or "[]"), "engaged": engaged, "invited": invited,
            "trend": None if score is None or then is None else round(score - then, 1),
            "last_activity": last or None, "open_alerts": len(mine),
            "win_probability": win, "model_version": model or None,
            "top_severity": next((k for k, v in SEVERITY_RANK.items() if v == top), None),
            "stakeholders": people.get(room_id, []), "closed": stage in closed})
    opened = sorted((d for d in deals if not d["closed"]), key=lambda d: (
        -SEVERITY_RANK.get(d["top_severity"] or "", -1), -d["open_alerts"], d["trend"] if d["trend"] is not None else 0,
        -(d["score"] or 0), d["room_id"]))
    done = sorted((d for d in deals if d["closed"]), key=lambda d: (-(d["last_activity"] or 0), d["room_id"]))
    return {"rooms": opened, "closed": done}


def team_sql(internal_ids: list[str]) -> str:
    """Events of the seller's own team: a seller token, or a stakeholder flagged internal."""
    ids = f" OR stakeholder_id IN ({', '.join(sql_string(i) for i in internal_ids)})" if internal_ids else ""
    return f"(startsWith(stakeholder_id, 'seller:'){ids})"


def deal_sqls(site: str, room: str, internal_ids: Sequence[str] = ()) -> dict[str, str]:
    """The deal page's reads, one per part. Buyer figures leave out the seller's own team: its people and the
    devices it used in this room (an anonymous visit from such a device is the team's too)."""
    room_where = f"site = {sql_string(site)} AND room_id = {sql_string(room)}"
    team = team_sql(list(internal_ids))
    where = (f"{room_where} AND NOT {team} AND NOT (stakeholder_id = '' AND visitor_id IN "
             f"(SELECT visitor_id FROM events WHERE {room_where} AND {team}))")
    return {
        # who x content: engaged minutes, visits (sessions that viewed it), last seen, completion
        "matrix": f"SELECT {WHO} AS who, content_id, sumIf(engaged_ms, type = 'engagement'), "
                  "uniqExactIf(session_id, type = 'content_view'), toUnixTimestamp64Milli(max(ts)), "
                  "maxIf(progress_pct, type = 'content_progress') "
                  f"FROM events FINAL WHERE {where} AND content_id != '' GROUP BY who, content_id ORDER BY who, content_id",
        # time per page per reader, and the last page each reached
        "pages": f"SELECT {WHO} AS who, content_id, page, sum(engaged_ms) FROM events FINAL WHERE {where} "
                 "AND type = 'engagement' AND page IS NOT NULL GROUP BY who, content_id, page ORDER BY who, content_id, page",
        "stopped": f"SELECT {WHO} AS who, content_id, max(page) FROM events FINAL WHERE {where} "
                   "AND type = 'content_progress' AND page IS NOT NULL GROUP BY who, content_id ORDER BY who, content_id",
        "shares": f"SELECT {WHO}, share_to, share_channel, toUnixTimestamp64Milli(ts) FROM events FINAL WHERE {where} "
                  "AND type = 'share' ORDER BY ts",
        "visits": f"SELECT {WHO}, toUnixTimestamp64Milli(ts), url FROM events FINAL WHERE {where} "
                  "AND type = 'room_view' ORDER BY ts DESC LIMIT 50",
        "history": f"SELECT toUnixTimestamp64Milli(at), score, band FROM deal_scores WHERE {room_where} "
                   "ORDER BY at DESC LIMIT 90",
        "people": f"SELECT stakeholder_id, role, score, band, reasons, toUnixTimestamp64Milli(last_seen) "
                  f"FROM stakeholder_scores_latest WHERE {room_where} ORDER BY score DESC",
    }


def shape_deal(room: list, parts: dict[str, list], alerts: list[dict], catalogue: Sequence[dict] = ()) -> dict:
    """One deal for its seller. ``room``: room_id, name, stage, amount, stakeholders JSON; ``catalogue``: the
    room's content (titles shown instead of ids)."""
    titles = {c["id"]: c.get("title") or c["id"] for c in catalogue}
    room_id, name, stage, amount, committee_json = room
    everyone = orjson.loads(committee_json or "[]")
    committee = [p for p in everyone if not p.get("internal")]  # the buyers; the seller's team is listed apart
    invited = {p["id"] for p in everyone}
    people = {p[0]: {"id": p[0], "role": p[1], "score": p[2], "band": p[3], "reasons": orjson.loads(p[4] or "[]"),
                     "last_seen": p[5]} for p in parts["people"]}
    pages: dict[tuple[str, str], dict[int, int]] = {}
    for who, cid, page, ms in parts["pages"]:
        pages.setdefault((who, cid), {})[int(page)] = int(ms)
    stopped = {(who, cid): int(page) for who, cid, page in parts["stopped"]}
    matrix = [{"who": who, "content_id": cid, "title": titles.get(cid, cid), "engaged_s": round(ms / 1000, 1), "visits": visits, "last_seen": last,
               "completion_pct": pct, "pages": [{"page": p, "engaged_s": round(v / 1000, 1)}
                                                for p, v in sorted(pages.get((who, cid), {}).items())],
               "stopped_at_page": stopped.get((who, cid))}
              for who, cid, ms, visits, last, pct in parts["matrix"]]
    shares = [{"from": who, "to": to, "channel": ch, "at": at} for who, to, ch, at in parts["shares"]]
    # candidates: people who are not on the committee (verified off-committee, anonymous visitors), with how
    # they arrived when an alert linked them to a share
    seen = {m["who"] for m in matrix} | set(people) | {v[0] for v in parts["visits"]}
    arrivals = [a["evidence"] for a in alerts if a["kind"] == "new_stakeholder"]
    candidates = [{"id": who, "anonymous": who.startswith("visitor:")} for who in sorted(seen - invited)]
    return {
        "room_id": room_id, "name": name, "stage": stage, "amount": amount,
        "committee": [{**p, **{k: v for k, v in people.get(p["id"], {}).items() if k != "id"}} for p in committee],
        "team": [p["id"] for p in everyone if p.get("internal")],
        "candidates": candidates, "arrivals": arrivals, "matrix": matrix, "shares": shares,
        "visits": [{"who": who, "at": at, "url": url} for who, at, url in parts["visits"]],
        "history": [{"at": at, "score": score, "band": band} for at, score, band in parts["history"]],
        "alerts": alerts,
    }
