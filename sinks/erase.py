"""Erasing a person (privacy): what the store runs once an erasure's audit row is written.

An erasure travels as a record like any other (``record: "erase"``, from ``POST /v1/sites/{site}/erase`` or
``dealbeacon erase``): the rooms' state machines forget the person (scores, bands, facts, invitation) and
write the audit row to ``erasures``; whoever writes that row (embedded hand-off, distributed sink) then runs
these deletes, so both modes erase the same rows:
- ``events`` of the stakeholder (or of the anonymous visitor, for ``visitor:<id>``);
- ``stakeholder_scores`` rows of that id;
- ``alerts`` naming them;
- ``activities`` of them;
- ``dead_letters`` whose payload mentions them.
A rooms row without them is written by the state machine itself (it replaces the older one).
"""
from __future__ import annotations

from dealbeacon.core.sqltext import sql_string


def erase_statements(row: dict) -> list[str]:
    site, who, room = str(row["site"]), str(row["stakeholder"]), str(row.get("room_id") or "")
    where = f"site = {sql_string(site)}" + (f" AND room_id = {sql_string(room)}" if room else "")
    visitor = who[len("visitor:"):] if who.startswith("visitor:") else ""
    person = f"visitor_id = {sql_string(visitor)}" if visitor else f"stakeholder_id = {sql_string(who)}"
    raw = visitor or who
    return [f"DELETE FROM events WHERE {where} AND {person}",
            f"DELETE FROM stakeholder_scores WHERE {where} AND stakeholder_id = {sql_string(who)}",
            f"DELETE FROM alerts WHERE {where} AND has(stakeholders, {sql_string(who)})",
            f"DELETE FROM activities WHERE {where} AND who = {sql_string(who)}",
            f"DELETE FROM dead_letters WHERE site = {sql_string(site)} AND position(payload, {sql_string(raw)}) > 0"]


def apply_erasures(execute, rows: list[dict]) -> None:
    """Run each erasure's deletes (``execute(sql)`` blocks). Idempotent: a replayed erasure deletes nothing more."""
    for row in rows:
        for sql in erase_statements(row):
            execute(sql)
