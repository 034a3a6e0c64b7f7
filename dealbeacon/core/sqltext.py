"""The one way a value becomes a ClickHouse string literal in SQL text (for the few queries that cannot bind
parameters: chdb's session settings, lightweight deletes, the seller page's reads)."""
from __future__ import annotations


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
