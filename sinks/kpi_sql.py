"""The analyst layer's DDL: deal field history, quotas, the configured stages and the KPI views.

Shipped as migration 10 (sinks/schema.py): never edit a statement here once released; change a view with a
new migration (DROP VIEW + CREATE VIEW). The same text runs on chdb and a ClickHouse server.

Every view reads its base tables with ``FINAL`` (or counts distinct ids), so replayed rows never count
twice; every view carries ``site`` (the SQL port restricts analysts to their sites by that column).
Formulas, grains and example queries: README "For analysts". Buyer engagement leaves out the seller's
own team (seller tokens, and people a room lists as internal).
"""
from __future__ import annotations

TABLES = """
CREATE TABLE IF NOT EXISTS deal_field_history (
    site LowCardinality(String),
    room_id String,
    field LowCardinality(String),
    old_value String,
    new_value String,
    changed_at DateTime64(3, 'UTC'),
    owner String
) ENGINE = ReplacingMergeTree
ORDER BY (site, room_id, field, changed_at, new_value);
CREATE TABLE IF NOT EXISTS quotas (
    site LowCardinality(String),
    owner String,
    period String,
    period_start Date,
    period_end Date,
    amount Float64,
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (site, owner, updated_at, period_start);
CREATE TABLE IF NOT EXISTS deal_stages (
    stage String,
    position UInt16,
    closed UInt8,
    won UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree
ORDER BY (version, stage)
"""

VIEWS = """
CREATE VIEW IF NOT EXISTS kpi_stages AS
SELECT stage, position, closed, won, closed = 1 AND won = 0 AS lost
FROM deal_stages FINAL
WHERE version = (SELECT max(version) FROM deal_stages);
CREATE VIEW IF NOT EXISTS kpi_team AS
SELECT site, room_id, tupleElement(p, 'id') AS stakeholder_id
FROM (SELECT site, room_id, arrayJoin(JSONExtract(stakeholders, 'Array(Tuple(id String, internal Bool))')) AS p
      FROM rooms FINAL)
WHERE tupleElement(p, 'internal');
CREATE VIEW IF NOT EXISTS kpi_content_catalogue AS
SELECT site, room_id, tupleElement(c, 'id') AS content_id, tupleElement(c, 'kind') AS kind,
       tupleElement(c, 'title') AS title, tupleElement(c, 'pages') AS pages
FROM (SELECT site, room_id, arrayJoin(JSONExtract(content, 'Array(Tuple(id String, kind String, title String, pages UInt32))')) AS c
      FROM rooms FINAL);
CREATE VIEW IF NOT EXISTS kpi_buyer_events AS
SELECT e.site AS site, e.room_id AS room_id, e.event_id AS event_id, e.type AS type, e.ts AS ts,
       if(e.stakeholder_id != '', e.stakeholder_id, concat('visitor:', e.visitor_id)) AS who,
       e.content_id AS content_id, e.page AS page, e.engaged_ms AS engaged_ms, e.session_id AS session_id
FROM events AS e FINAL
WHERE NOT startsWith(e.stakeholder_id, 'seller:')
  AND (e.stakeholder_id = '' OR (e.site, e.room_id, e.stakeholder_id) NOT IN (SELECT site, room_id, stakeholder_id FROM kpi_team));
CREATE VIEW IF NOT EXISTS kpi_deals AS
SELECT r.site AS site, r.room_id AS room_id, r.name AS name, r.owner AS owner, r.stage AS stage,
       s.position AS stage_position, r.amount AS amount, r.expected_close AS expected_close,
       r.created_at AS created_at, toStartOfMonth(r.created_at) AS cohort_month,
       s.closed AS closed, s.won AS won, s.lost AS lost,
       if(s.closed = 1, h.last_change, NULL) AS closed_at,
       if(s.closed = 1, toStartOfMonth(h.last_change), NULL) AS close_month,
       if(s.closed = 1, dateDiff('second', r.created_at, h.last_change) / 86400, NULL) AS cycle_days,
       f.first_engaged_at AS first_engaged_at,
       if(f.first_engaged_at IS NULL, NULL,
          greatest(dateDiff('second', r.created_at, f.first_engaged_at), 0) / 3600) AS hours_to_first_engagement
FROM (SELECT site, room_id, name, owner, stage, amount, expected_close, created_at FROM rooms FINAL) AS r
LEFT JOIN kpi_stages AS s ON s.stage = r.stage
LEFT JOIN (SELECT site, room_id, max(changed_at) AS last_change FROM room_stage_history FINAL GROUP BY site, room_id) AS h
       ON h.site = r.site AND h.room_id = r.room_id
LEFT JOIN (SELECT site, room_id, toNullable(min(ts)) AS first_engaged_at FROM kpi_buyer_events GROUP BY site, room_id) AS f
       ON f.site = r.site AND f.room_id = r.room_id;
CREATE VIEW IF NOT EXISTS kpi_stage_stays AS
SELECT site, room_id, owner, cohort_month, stage, position, entered_at, left_at, next_stage,
       if(left_at IS NULL, NULL, dateDiff('second', entered_at, left_at) / 86400) AS days_in_stage,
       toUInt8(closed = 0 AND later_position > position) AS advanced
FROM (
    SELECT h.site AS site, h.room_id AS room_id, d.owner AS owner, d.cohort_month AS cohort_month,
           h.to_stage AS stage, s.position AS position, s.closed AS closed, h.changed_at AS entered_at,
           leadInFrame(toNullable(h.changed_at)) OVER w1 AS left_at,
           leadInFrame(toNullable(h.to_stage)) OVER w1 AS next_stage,
           max(if(s.lost, 0, s.position)) OVER (PARTITION BY h.site, h.room_id ORDER BY h.changed_at, h.to_stage
                                                  ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS later_position
    FROM (SELECT site, room_id, to_stage, changed_at FROM room_stage_history FINAL) AS h
    INNER JOIN kpi_deals AS d ON d.site = h.site AND d.room_id = h.room_id
    LEFT JOIN kpi_stages AS s ON s.stage = h.to_stage
    WINDOW w1 AS (PARTITION BY h.site, h.room_id ORDER BY h.changed_at, h.to_stage ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
);
CREATE VIEW IF NOT EXISTS kpi_stage_funnel AS
SELECT site, owner, cohort_month, stage, any(position) AS position,
       uniqExact(room_id) AS entered, uniqExactIf(room_id, advanced = 1) AS converted,
       if(max(s.closed) = 1, NULL, round(100 * converted / entered, 1)) AS conversion_pct,
       quantileExactInclusive(0.5)(days_in_stage) AS median_days,
       quantileExactInclusive(0.9)(days_in_stage) AS p90_days
FROM kpi_stage_stays AS t LEFT JOIN kpi_stages AS s ON s.stage = t.stage
GROUP BY site, owner, cohort_month, stage;
CREATE VIEW IF NOT EXISTS kpi_outcomes AS
SELECT site, owner, close_month,
       count() AS closed_deals, countIf(won = 1) AS won_deals, countIf(won = 0) AS lost_deals,
       sum(amount) AS closed_amount, sumIf(amount, won = 1) AS won_amount,
       won_deals / closed_deals AS win_rate,
       if(closed_amount > 0, won_amount / closed_amount, NULL) AS win_rate_amount,
       if(won_deals > 0, won_amount / won_deals, NULL) AS avg_deal_size,
       if(won_deals > 0, avgIf(cycle_days, won = 1), NULL) AS cycle_mean_days,
       if(won_deals > 0, quantileExactInclusiveIf(0.5)(cycle_days, won = 1), NULL) AS cycle_median_days,
       if(won_deals > 0, quantileExactInclusiveIf(0.9)(cycle_days, won = 1), NULL) AS cycle_p90_days,
       if(cycle_mean_days > 0, won_amount / cycle_mean_days, NULL) AS sales_velocity_per_day
FROM kpi_deals
WHERE closed = 1
GROUP BY site, owner, close_month;
CREATE VIEW IF NOT EXISTS kpi_lead_to_close AS
SELECT site, owner, cohort_month, count() AS created, countIf(closed = 1) AS closed_deals, countIf(won = 1) AS won_deals,
       won_deals / created AS lead_to_close
FROM kpi_deals
GROUP BY site, owner, cohort_month;
CREATE VIEW IF NOT EXISTS kpi_close_date_changes AS
SELECT site, room_id, owner, changed_at, toDateOrNull(old_value) AS old_close, toDateOrNull(new_value) AS new_close,
       if(old_close IS NULL OR new_close IS NULL, NULL, dateDiff('day', old_close, new_close)) AS pushed_days
FROM deal_field_history FINAL
WHERE field = 'expected_close';
CREATE VIEW IF NOT EXISTS kpi_slippage_deals AS
SELECT h.site AS site, h.room_id AS room_id, d.owner AS owner, h.due_month AS due_month, h.last_due_date AS last_due_date,
       toLastDayOfMonth(h.due_month) AS month_end,
       toUInt8(d.closed = 1 AND toDate(d.closed_at) <= month_end) AS closed_in_time,
       toUInt8(closed_in_time = 0 AND (ifNull(d.expected_close > month_end, 0) OR today() > month_end)) AS slipped,
       if(slipped = 1, dateDiff('day', h.last_due_date,
          if(d.closed = 1, toDate(d.closed_at), greatest(ifNull(d.expected_close, today()), today()))), NULL) AS slip_days
FROM (SELECT site, room_id, toStartOfMonth(toDate(new_value)) AS due_month, max(toDate(new_value)) AS last_due_date
      FROM deal_field_history FINAL
      WHERE field = 'expected_close' AND new_value != ''
      GROUP BY site, room_id, due_month) AS h
INNER JOIN kpi_deals AS d ON d.site = h.site AND d.room_id = h.room_id;
CREATE VIEW IF NOT EXISTS kpi_slippage AS
SELECT site, owner, due_month, count() AS due_deals, sum(slipped) AS slipped_deals,
       slipped_deals / due_deals AS slippage_rate, avgIf(slip_days, slipped = 1) AS avg_slip_days,
       maxIf(slip_days, slipped = 1) AS max_slip_days
FROM kpi_slippage_deals
GROUP BY site, owner, due_month;
CREATE VIEW IF NOT EXISTS kpi_quotas AS
SELECT site, owner, period, period_start, period_end, amount AS quota
FROM quotas FINAL
WHERE (site, owner, updated_at) IN (SELECT site, owner, max(updated_at) FROM quotas GROUP BY site, owner);
CREATE VIEW IF NOT EXISTS kpi_coverage AS
SELECT q.site AS site, q.owner AS owner, q.period AS period, q.period_start AS period_start, q.period_end AS period_end,
       any(q.quota) AS quota,
       sumIf(d.amount, d.won = 1 AND toDate(d.closed_at) BETWEEN q.period_start AND q.period_end) AS won_amount,
       sumIf(d.amount, d.closed = 0 AND d.expected_close BETWEEN q.period_start AND q.period_end) AS open_pipeline,
       sumIf(d.amount * ifNull(w.win_probability, 0), d.closed = 0 AND d.expected_close BETWEEN q.period_start AND q.period_end)
           AS weighted_pipeline,
       if(quota > 0, won_amount / quota, NULL) AS attainment,
       if(quota > won_amount, open_pipeline / (quota - won_amount), NULL) AS coverage,
       if(quota > won_amount, weighted_pipeline / (quota - won_amount), NULL) AS weighted_coverage
FROM kpi_quotas AS q
LEFT JOIN (SELECT site, owner, room_id, amount, won, closed, closed_at, expected_close FROM kpi_deals
           UNION ALL  -- the team's quota (owner '_team') is measured against every owner's deals
           SELECT site, '_team' AS owner, room_id, amount, won, closed, closed_at, expected_close FROM kpi_deals) AS d
       ON d.site = q.site AND d.owner = q.owner
LEFT JOIN (SELECT site, room_id, argMax(win_probability, at) AS win_probability FROM deal_scores FINAL GROUP BY site, room_id) AS w
       ON w.site = d.site AND w.room_id = d.room_id
GROUP BY q.site, q.owner, q.period, q.period_start, q.period_end;
CREATE VIEW IF NOT EXISTS kpi_engagement_at_age AS
SELECT d.site AS site, d.room_id AS room_id, any(d.owner) AS owner, any(d.won) AS won, d.age_days AS age_days,
       argMax(s.score, s.at) AS score, argMax(s.band, s.at) AS band,
       multiIf(score >= 80, 'high', score >= 50, 'medium', 'low') AS engagement,
       argMax(s.win_probability, s.at) AS win_probability, argMax(s.engaged, s.at) AS engaged
FROM (SELECT site, room_id, owner, won, created_at, closed_at, arrayJoin([14, 30]) AS age_days
      FROM kpi_deals WHERE closed = 1) AS d
INNER JOIN (SELECT site, room_id, at, score, band, win_probability, engaged FROM deal_scores FINAL) AS s
        ON s.site = d.site AND s.room_id = d.room_id
WHERE s.at <= d.created_at + toIntervalDay(d.age_days) AND d.closed_at > d.created_at + toIntervalDay(d.age_days)
GROUP BY d.site, d.room_id, d.age_days;
CREATE VIEW IF NOT EXISTS kpi_win_by_band AS
SELECT site, age_days, band, count() AS deals, sum(won) AS won_deals, won_deals / deals AS win_rate,
       avg(win_probability) AS mean_win_probability
FROM kpi_engagement_at_age
GROUP BY site, age_days, band;
CREATE VIEW IF NOT EXISTS kpi_win_by_engagement AS
SELECT site, age_days, engagement, count() AS deals, sum(won) AS won_deals, won_deals / deals AS win_rate,
       avg(win_probability) AS mean_win_probability
FROM kpi_engagement_at_age
GROUP BY site, age_days, engagement;
CREATE VIEW IF NOT EXISTS kpi_win_by_decile AS
SELECT site, age_days, decile, count() AS deals, sum(won) AS won_deals, won_deals / deals AS win_rate,
       avg(win_probability) AS mean_win_probability, min(score) AS min_score, max(score) AS max_score
FROM (SELECT site, age_days, won, score, win_probability,
             ntile(10) OVER (PARTITION BY site, age_days ORDER BY score, room_id) AS decile
      FROM kpi_engagement_at_age)
GROUP BY site, age_days, decile;
CREATE VIEW IF NOT EXISTS kpi_threading AS
SELECT site, if(engaged >= 2, 'multi', 'single') AS threading, count() AS deals, sum(won) AS won_deals,
       won_deals / deals AS win_rate
FROM (SELECT d.site AS site, d.room_id AS room_id, any(d.won) AS won, argMax(s.engaged, s.at) AS engaged
      FROM (SELECT site, room_id, won, closed_at FROM kpi_deals WHERE closed = 1) AS d
      LEFT JOIN (SELECT site, room_id, at, engaged FROM deal_scores FINAL) AS s
             ON s.site = d.site AND s.room_id = d.room_id AND s.at < d.closed_at
      GROUP BY d.site, d.room_id)
GROUP BY site, threading;
CREATE VIEW IF NOT EXISTS kpi_content_effectiveness AS
SELECT o.site AS site, k.kind AS kind, o.outcome AS outcome, any(o.deals) AS deals,
       uniqExactIf(e.room_id, e.engaged_ms > 0) AS deals_engaged, sum(e.engaged_ms) / 60000 AS engaged_minutes,
       engaged_minutes / deals AS minutes_per_deal
FROM (SELECT site, if(won = 1, 'won', 'lost') AS outcome, count() AS deals FROM kpi_deals WHERE closed = 1
      GROUP BY site, outcome) AS o
INNER JOIN (SELECT site, room_id, if(won = 1, 'won', 'lost') AS outcome, closed_at FROM kpi_deals WHERE closed = 1) AS d
        ON d.site = o.site AND d.outcome = o.outcome
INNER JOIN (SELECT site, room_id, content_id, engaged_ms, ts FROM kpi_buyer_events WHERE type = 'engagement' AND content_id != '') AS e
        ON e.site = d.site AND e.room_id = d.room_id
INNER JOIN kpi_content_catalogue AS k ON k.site = e.site AND k.room_id = e.room_id AND k.content_id = e.content_id
WHERE e.ts < d.closed_at
GROUP BY o.site, k.kind, o.outcome;
CREATE VIEW IF NOT EXISTS kpi_content_before_advance AS
SELECT t.site AS site, t.stage AS stage, k.kind AS kind, any(a.advances) AS advances,
       uniqExact(t.room_id, t.entered_at) AS advances_with_kind, advances_with_kind / advances AS share
FROM (SELECT site, stage, count() AS advances FROM kpi_stage_stays WHERE advanced = 1 AND left_at IS NOT NULL
      GROUP BY site, stage) AS a
INNER JOIN (SELECT site, room_id, stage, entered_at, left_at FROM kpi_stage_stays WHERE advanced = 1 AND left_at IS NOT NULL) AS t
        ON t.site = a.site AND t.stage = a.stage
INNER JOIN (SELECT site, room_id, content_id, ts FROM kpi_buyer_events
            WHERE type IN ('content_view', 'engagement', 'content_progress') AND content_id != '') AS e
        ON e.site = t.site AND e.room_id = t.room_id
INNER JOIN kpi_content_catalogue AS k ON k.site = e.site AND k.room_id = e.room_id AND k.content_id = e.content_id
WHERE e.ts >= t.entered_at AND e.ts < t.left_at
GROUP BY t.site, t.stage, k.kind;
CREATE VIEW IF NOT EXISTS kpi_page_dropoff AS
SELECT site, content_id, page, count() AS readers, countIf(last_page = page) AS stopped_here,
       readers / max(readers) OVER (PARTITION BY site, content_id) AS share_of_readers
FROM (SELECT site, content_id, room_id, who, last_page, arrayJoin(range(1, toUInt32(last_page) + 1)) AS page
      FROM (SELECT site, content_id, room_id, who, max(page) AS last_page FROM kpi_buyer_events
            WHERE page IS NOT NULL AND page > 0 AND content_id != '' GROUP BY site, content_id, room_id, who))
GROUP BY site, content_id, page;
CREATE VIEW IF NOT EXISTS kpi_first_engagement AS
SELECT site, owner, cohort_month, count() AS deals, countIf(first_engaged_at IS NOT NULL) AS engaged_deals,
       quantileExactInclusive(0.5)(hours_to_first_engagement) AS median_hours,
       quantileExactInclusive(0.9)(hours_to_first_engagement) AS p90_hours
FROM kpi_deals
GROUP BY site, owner, cohort_month
"""

# the views an analyst may read on the SQL port (each has a ``site`` column)
ANALYST_VIEWS = ("kpi_deals", "kpi_stage_stays", "kpi_stage_funnel", "kpi_outcomes", "kpi_lead_to_close",
                 "kpi_close_date_changes", "kpi_slippage_deals", "kpi_slippage", "kpi_quotas", "kpi_coverage",
                 "kpi_engagement_at_age", "kpi_win_by_band", "kpi_win_by_engagement", "kpi_win_by_decile", "kpi_threading",
                 "kpi_content_effectiveness", "kpi_content_before_advance", "kpi_page_dropoff",
                 "kpi_first_engagement", "kpi_buyer_events", "kpi_content_catalogue", "kpi_team")


def stage_rows(stages, closed, won, version: int) -> list[dict]:
    """The configured pipeline as ``deal_stages`` rows (position = order in DEALBEACON_STAGES)."""
    return [{"stage": s, "position": i + 1, "closed": int(s in closed), "won": int(s in won), "version": int(version)}
            for i, s in enumerate(stages)]


def sync_stages(store, stages, closed, won, version: int) -> bool:
    """Write the configured stages if they differ from the latest stored ones (both modes call this after
    migrating). Returns whether it wrote."""
    want = sorted((r["stage"], r["position"], r["closed"], r["won"]) for r in stage_rows(stages, closed, won, 0))
    have = sorted(tuple(r) for r in store.query("SELECT stage, position, closed, won FROM kpi_stages"))
    if [tuple(x) for x in want] == [(str(a), int(b), int(c), int(d)) for a, b, c, d in have]:
        return False
    store.insert("deal_stages", stage_rows(stages, closed, won, version))
    return True


def report_sql(site_literal: str, start: str, end: str, by_owner: bool) -> str:
    """The headline KPIs of one period (``start``..``end``, ISO days) per owner, or for the whole team: the
    `dealbeacon kpi` report. Deals closed in the period for outcomes; open deals expected to close in it for
    pipeline; quotas pro rata to their overlap with the period (the team's own quota, owner ``_team``, when set,
    else the sum of the owners'); deals due in it for slippage; deals created
    in it for lead-to-close. ``site_literal`` is an SQL string literal."""
    a, b = f"toDate('{start}')", f"toDate('{end}')"
    group = "owner" if by_owner else "'(team)'"
    # an owner's quota pro rata to its overlap with the period; the team's is its own ('_team') where one is
    # set for the period, else the sum of its owners'
    quota = "sum(share)" if by_owner else "if(sumIf(share, owner = '_team') > 0, sumIf(share, owner = '_team'), sumIf(share, owner != '_team'))"
    where_quota = " WHERE owner != '_team'" if by_owner else ""
    closed_in = f"toDate(closed_at) BETWEEN {a} AND {b}"
    return f"""
SELECT d.owner AS owner, d.closed_deals, d.won_deals, d.won_amount, d.win_rate, d.win_rate_amount, d.avg_deal_size,
       d.median_cycle_days, d.open_pipeline, q.quota AS quota,
       if(q.quota > 0, d.won_amount / q.quota, NULL) AS attainment,
       if(q.quota > d.won_amount, d.open_pipeline / (q.quota - d.won_amount), NULL) AS coverage,
       s.slippage_rate AS slippage_rate, d.lead_to_close
FROM (SELECT {group} AS owner,
             countIf(closed = 1 AND {closed_in}) AS closed_deals, countIf(won = 1 AND {closed_in}) AS won_deals,
             sumIf(amount, won = 1 AND {closed_in}) AS won_amount,
             if(closed_deals > 0, won_deals / closed_deals, NULL) AS win_rate,
             if(sumIf(amount, closed = 1 AND {closed_in}) > 0, won_amount / sumIf(amount, closed = 1 AND {closed_in}), NULL)
                 AS win_rate_amount,
             if(won_deals > 0, won_amount / won_deals, NULL) AS avg_deal_size,
             quantileExactInclusiveIf(0.5)(cycle_days, won = 1 AND {closed_in}) AS median_cycle_days,
             sumIf(amount, closed = 0 AND expected_close BETWEEN {a} AND {b}) AS open_pipeline,
             if(countIf(toDate(created_at) BETWEEN {a} AND {b}) > 0,
                countIf(won = 1 AND toDate(created_at) BETWEEN {a} AND {b}) / countIf(toDate(created_at) BETWEEN {a} AND {b}),
                NULL) AS lead_to_close
      FROM kpi_deals WHERE site = {site_literal} GROUP BY {group}) AS d
LEFT JOIN (SELECT {group} AS quota_owner, {quota} AS quota
           FROM (SELECT owner, quota * greatest(0, dateDiff('day', greatest(period_start, {a}), least(period_end, {b})) + 1)
                               / (dateDiff('day', period_start, period_end) + 1) AS share
                 FROM kpi_quotas WHERE site = {site_literal}){where_quota}
           GROUP BY {group}) AS q ON q.quota_owner = d.owner
LEFT JOIN (SELECT {group} AS owner, if(count() > 0, sum(slipped) / count(), NULL) AS slippage_rate
           FROM kpi_slippage_deals WHERE site = {site_literal} AND due_month BETWEEN toStartOfMonth({a}) AND {b}
           GROUP BY {group}) AS s ON s.owner = d.owner
ORDER BY owner"""


REPORT_COLUMNS = ("owner", "closed", "won", "won amount", "win rate", "win rate (amount)", "avg deal", "median cycle (d)",
                  "open pipeline", "quota", "attainment", "coverage", "slippage", "lead to close")


def report_table(rows: list, columns=REPORT_COLUMNS) -> str:
    """Rows of ``report_sql`` (owners, then the team) as an aligned text table: ratios as percentages, money
    and days rounded, '-' where a figure does not exist (no closed deal, no quota)."""
    pct = {"win rate", "win rate (amount)", "attainment", "slippage", "lead to close"}
    money = {"won amount", "avg deal", "open pipeline", "quota"}

    def cell(col: str, v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        if col in pct:
            return f"{100 * float(v):.0f}%"
        if col == "coverage":
            return f"{float(v):.2f}x"
        if col == "median cycle (d)":
            return f"{float(v):.1f}"
        if col in money:
            return f"{float(v):,.0f}"
        return str(v)

    cells = [list(columns)] + [[cell(c, v) for c, v in zip(columns, r)] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
