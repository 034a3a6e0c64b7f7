"""The win model's training data, read from ClickHouse: the deal-score snapshots of a site's closed deals.

One query, the same text for chdb (embedded) and a ClickHouse server (distributed): each closed deal's
``deal_scores`` rows from before it closed (their ``features``), labelled won or lost by the stage it closed
in (``room_stage_history``), for the ``limit`` most recently closed deals. ``training_rows`` turns the
result into what ``streams.winmodel.fit`` takes. The refit loop that calls it lives with the composition
roots (dealbeacon/app/modelfit.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson

from dealbeacon.core.sqltext import sql_string


def training_sql(site: str, won_stages: Iterable[str], closed_stages: Iterable[str], limit: int) -> str:
    won = ", ".join(sql_string(s) for s in won_stages)
    closed = ", ".join(sql_string(s) for s in closed_stages)
    return f"""
SELECT d.room_id, toUnixTimestamp64Milli(d.at), d.features, c.won
FROM (SELECT room_id, at, features FROM deal_scores FINAL WHERE site = {sql_string(site)} AND features != '') AS d
INNER JOIN (
    SELECT room_id, argMax(to_stage, changed_at) IN ({won}) AS won, max(changed_at) AS closed_at
    FROM room_stage_history FINAL
    WHERE site = {sql_string(site)}
    GROUP BY room_id
    HAVING argMax(to_stage, changed_at) IN ({closed})
    ORDER BY closed_at DESC
    LIMIT {int(limit)}
) AS c ON d.room_id = c.room_id
WHERE d.at < c.closed_at
ORDER BY d.room_id, d.at"""


def training_rows(result: Iterable) -> list[tuple[str, int, dict[str, float], bool]]:
    """(room id, at ms, features, won) per snapshot; a row whose features do not parse is left out."""
    out = []
    for room_id, at, features, won in result:
        try:
            feats = orjson.loads(features)
        except orjson.JSONDecodeError:
            continue
        if isinstance(feats, dict):
            out.append((str(room_id), int(at), {k: float(v) for k, v in feats.items()}, bool(won)))
    return out


def read_training(reader: Callable[[str], list], site: str, won_stages: Iterable[str], closed_stages: Iterable[str],
                  limit: int) -> list[tuple[str, int, dict[str, float], bool]]:
    return training_rows(reader(training_sql(site, won_stages, closed_stages, limit)))
