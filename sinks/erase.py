"""Erasing a person (privacy): what the store runs once an erasure's audit row is written.

An erasure travels as a record like any other (``record: "erase"``, from ``POST /v1/sites/{site}/erase`` or
``dealbeacon erase``): the rooms' state machines forget the person (scores, bands, facts, invitation) and
write the audit row to ``erasures``; whoever writes that row (embedded hand-off, distributed sink) then runs
these deletes, so both modes erase the same rows:
- ``events`` of the stakeholder (or of the anonymous visitor, for ``visitor:<id>``);
- ``stakeholder_scores`` rows of that id;
- ``alerts`` naming them;
- ``dead_letters`` whose payload mentions them.
A rooms row without them is written by the state machine itself (it replaces the older one).
"""
from __future__ import annotations


def _q(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def erase_statements(row: dict) -> list[str]:
    site, who, room = str(row["site"]), str(row["stakeholder"]), str(row.get("room_id") or "")
    where = f"site = {_q(site)}" + (f" AND room_id = {_q(room)}" if room else "")
    visitor = who[len("visitor:"):] if who.startswith("visitor:") else ""
    person = f"visitor_id = {_q(visitor)}" if visitor else f"stakeholder_id = {_q(who)}"
    raw = visitor or who
    return [f"DELETE FROM events WHERE {where} AND {person}",
            f"DELETE FROM stakeholder_scores WHERE {where} AND stakeholder_id = {_q(who)}",
            f"DELETE FROM alerts WHERE {where} AND has(stakeholders, {_q(who)})",
            f"DELETE FROM dead_letters WHERE site = {_q(site)} AND position(payload, {_q(raw)}) > 0"]


def apply_erasures(execute, rows: list[dict]) -> None:
    """Run each erasure's deletes (``execute(sql)`` blocks). Idempotent: a replayed erasure deletes nothing more."""
    for row in rows:
        for sql in erase_statements(row):
            execute(sql)
