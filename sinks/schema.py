"""ClickHouse schema: ordered, idempotent migrations, plus the column map the sinks convert rows with.

The same DDL runs on chdb (engine 26.x) and on clickhouse-server 24+. Never edit a shipped migration;
append a new one and update COLUMNS (a test compares COLUMNS with DESCRIBE TABLE after migrating).

Dedup: every table is a ReplacingMergeTree whose key ends in a record id. ``events`` is ordered by
(site, room_id, event_id), so a client retry of the same event collapses and ``FINAL`` (or
``uniqExact(event_id)``) never double counts; ``dead_letters`` carries ``dl_id``. Sink replays of the same
offset range are dropped at insert time by ``insert_deduplication_token`` (non_replicated window), and
replays cut at other boundaries collapse on the id.
"""
from __future__ import annotations

from . import kpi_sql

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "events", """
CREATE TABLE IF NOT EXISTS events (
    event_id UUID,
    site LowCardinality(String),
    type LowCardinality(String),
    room_id String,
    visitor_id String,
    session_id String,
    stakeholder_id String,
    token_status LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    client_ts DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    content_id String,
    page Nullable(UInt32),
    progress_pct Nullable(Float32),
    scroll_pct Nullable(Float32),
    media_position_s Nullable(Float32),
    engaged_ms UInt32,
    href String,
    share_channel LowCardinality(String),
    share_to String,
    cta String,
    url String,
    referrer String,
    props String,
    ip String,
    user_agent String,
    INDEX idx_ts ts TYPE minmax GRANULARITY 4,
    INDEX idx_type type TYPE set(16) GRANULARITY 4
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site, room_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000
"""),
    (2, "dead_letters", """
CREATE TABLE IF NOT EXISTS dead_letters (
    dl_id UUID,
    received_at DateTime64(3, 'UTC'),
    site String,
    stage LowCardinality(String),
    reason LowCardinality(String),
    field String,
    detail String,
    event_index Int32,
    event_id String,
    payload String,
    ip String,
    user_agent String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (site, reason, received_at, dl_id)
TTL toDateTime(received_at) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000
"""),
    (3, "deals", """
CREATE TABLE IF NOT EXISTS rooms (
    site LowCardinality(String),
    room_id String,
    name String,
    owner String,
    stage LowCardinality(String),
    amount Float64,
    expected_close Nullable(Date),
    stakeholders String,
    proposal_shared_at DateTime64(3, 'UTC'),
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (site, room_id);
CREATE TABLE IF NOT EXISTS room_stage_history (
    site LowCardinality(String),
    room_id String,
    from_stage LowCardinality(String),
    to_stage LowCardinality(String),
    changed_at DateTime64(3, 'UTC'),
    owner String
) ENGINE = ReplacingMergeTree
ORDER BY (site, room_id, changed_at, to_stage);
CREATE TABLE IF NOT EXISTS stakeholder_scores (
    site LowCardinality(String),
    room_id String,
    stakeholder_id String,
    role LowCardinality(String),
    at DateTime64(3, 'UTC'),
    score Float64,
    band LowCardinality(String),
    velocity Float64,
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),
    reasons String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (site, room_id, stakeholder_id, at)
SETTINGS non_replicated_deduplication_window = 10000;
CREATE TABLE IF NOT EXISTS deal_scores (
    site LowCardinality(String),
    room_id String,
    owner String,
    stage LowCardinality(String),
    at DateTime64(3, 'UTC'),
    score Float64,
    breadth Float64,
    depth Float64,
    recency Float64,
    velocity Float64,
    band LowCardinality(String),
    engaged UInt16,
    invited UInt16,
    reasons String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (site, room_id, at)
SETTINGS non_replicated_deduplication_window = 10000;
CREATE TABLE IF NOT EXISTS alerts (
    alert_id UUID,
    site LowCardinality(String),
    room_id String,
    owner String,
    stage LowCardinality(String),
    kind LowCardinality(String),
    severity LowCardinality(String),
    stakeholders Array(String),
    evidence String,
    suggestion String,
    at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (site, room_id, at, alert_id)
SETTINGS non_replicated_deduplication_window = 10000;
CREATE VIEW IF NOT EXISTS deal_scores_latest AS
SELECT * FROM deal_scores FINAL ORDER BY at DESC LIMIT 1 BY site, room_id;
CREATE VIEW IF NOT EXISTS stakeholder_scores_latest AS
SELECT * FROM stakeholder_scores FINAL ORDER BY at DESC LIMIT 1 BY site, room_id, stakeholder_id;
CREATE TABLE IF NOT EXISTS room_state (
    site LowCardinality(String),
    room_id String,
    version UInt64,
    state String
) ENGINE = ReplacingMergeTree(version)
ORDER BY (site, room_id)
"""),
    (4, "delivery", """
CREATE TABLE IF NOT EXISTS channels (
    site LowCardinality(String),
    channel_id String,
    kind LowCardinality(String),
    target String,
    owner String,
    min_severity LowCardinality(String),
    enabled UInt8,
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (site, channel_id);
CREATE TABLE IF NOT EXISTS sellers (
    site LowCardinality(String),
    seller_id String,
    name String,
    tz String,
    quiet_start Int8,
    quiet_end Int8,
    muted_rooms Array(String),
    min_severity LowCardinality(String),
    digest UInt8,
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (site, seller_id);
CREATE TABLE IF NOT EXISTS deliveries (
    notice_id UUID,
    version UInt32,
    channel_id String,
    site LowCardinality(String),
    room_id String,
    owner String,
    alert_ids Array(String),
    status LowCardinality(String),
    attempts UInt16,
    http_status UInt16,
    error String,
    at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (site, notice_id, version, channel_id, status);
CREATE TABLE IF NOT EXISTS alert_actions (
    site LowCardinality(String),
    alert_id String,
    seller_id String,
    action LowCardinality(String),
    until DateTime64(3, 'UTC'),
    at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (site, alert_id, at)
"""),
    (5, "erasures", """
CREATE TABLE IF NOT EXISTS erasures (
    erasure_id UUID,
    site LowCardinality(String),
    stakeholder String,
    room_id String,
    requested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (site, erasure_id)
"""),
    (6, "no_sentinels", """
ALTER TABLE stakeholder_scores MODIFY COLUMN velocity Nullable(Float64);
ALTER TABLE deal_scores MODIFY COLUMN velocity Nullable(Float64);
ALTER TABLE rooms MODIFY COLUMN proposal_shared_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE stakeholder_scores UPDATE velocity = NULL WHERE velocity < 0 OR velocity >= 1e9 SETTINGS mutations_sync = 2;
ALTER TABLE deal_scores UPDATE velocity = NULL WHERE velocity < 0 OR velocity >= 1e9 SETTINGS mutations_sync = 2;
ALTER TABLE rooms UPDATE proposal_shared_at = NULL WHERE proposal_shared_at = 0 SETTINGS mutations_sync = 2
"""),
    (7, "content_catalogue", """
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS content String DEFAULT '[]'
"""),
    (8, "buyer_activity", """
CREATE TABLE IF NOT EXISTS activities (
    activity_id UUID,
    site LowCardinality(String),
    room_id String,
    owner String,
    kind LowCardinality(String),
    who String,
    content_id String,
    page Nullable(UInt32),
    detail String,
    event_id String,
    at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (site, room_id, activity_id);
ALTER TABLE channels ADD COLUMN IF NOT EXISTS events Array(String) DEFAULT []
"""),
    (9, "win_model", """
ALTER TABLE deal_scores ADD COLUMN IF NOT EXISTS win_probability Nullable(Float64);
ALTER TABLE deal_scores ADD COLUMN IF NOT EXISTS model_version LowCardinality(String) DEFAULT '';
ALTER TABLE deal_scores ADD COLUMN IF NOT EXISTS features String DEFAULT '';
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS timezone String DEFAULT '';
DROP VIEW IF EXISTS deal_scores_latest;
CREATE VIEW deal_scores_latest AS
SELECT * FROM deal_scores FINAL ORDER BY at DESC LIMIT 1 BY site, room_id
"""),
    (10, "analyst_layer", kpi_sql.TABLES + ";\n" + kpi_sql.VIEWS),
]

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32, name String, applied_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree ORDER BY version
"""

# current columns of each table, in order: name -> ClickHouse type (drives row conversion in the sinks)
COLUMNS: dict[str, dict[str, str]] = {
    "events": {
        "event_id": "UUID", "site": "LowCardinality(String)", "type": "LowCardinality(String)",
        "room_id": "String", "visitor_id": "String", "session_id": "String", "stakeholder_id": "String",
        "token_status": "LowCardinality(String)", "ts": "DateTime64(3, 'UTC')",
        "client_ts": "DateTime64(3, 'UTC')", "received_at": "DateTime64(3, 'UTC')", "content_id": "String",
        "page": "Nullable(UInt32)", "progress_pct": "Nullable(Float32)", "scroll_pct": "Nullable(Float32)",
        "media_position_s": "Nullable(Float32)", "engaged_ms": "UInt32", "href": "String",
        "share_channel": "LowCardinality(String)", "share_to": "String", "cta": "String", "url": "String",
        "referrer": "String", "props": "String", "ip": "String", "user_agent": "String",
    },
    "dead_letters": {
        "dl_id": "UUID", "received_at": "DateTime64(3, 'UTC')", "site": "String", "stage": "LowCardinality(String)",
        "reason": "LowCardinality(String)", "field": "String", "detail": "String", "event_index": "Int32",
        "event_id": "String", "payload": "String", "ip": "String", "user_agent": "String",
    },
    "rooms": {
        "site": "LowCardinality(String)", "room_id": "String", "name": "String", "owner": "String",
        "stage": "LowCardinality(String)", "amount": "Float64", "expected_close": "Nullable(Date)",
        "stakeholders": "String", "proposal_shared_at": "Nullable(DateTime64(3, 'UTC'))", "created_at": "DateTime64(3, 'UTC')",
        "updated_at": "DateTime64(3, 'UTC')", "content": "String", "timezone": "String",
    },
    "room_stage_history": {
        "site": "LowCardinality(String)", "room_id": "String", "from_stage": "LowCardinality(String)",
        "to_stage": "LowCardinality(String)", "changed_at": "DateTime64(3, 'UTC')", "owner": "String",
    },
    "stakeholder_scores": {
        "site": "LowCardinality(String)", "room_id": "String", "stakeholder_id": "String",
        "role": "LowCardinality(String)", "at": "DateTime64(3, 'UTC')", "score": "Float64",
        "band": "LowCardinality(String)", "velocity": "Nullable(Float64)", "first_seen": "DateTime64(3, 'UTC')",
        "last_seen": "DateTime64(3, 'UTC')", "reasons": "String",
    },
    "deal_scores": {
        "site": "LowCardinality(String)", "room_id": "String", "owner": "String", "stage": "LowCardinality(String)",
        "at": "DateTime64(3, 'UTC')", "score": "Float64", "breadth": "Float64", "depth": "Float64",
        "recency": "Float64", "velocity": "Nullable(Float64)", "band": "LowCardinality(String)", "engaged": "UInt16",
        "invited": "UInt16", "reasons": "String", "win_probability": "Nullable(Float64)",
        "model_version": "LowCardinality(String)", "features": "String",
    },
    "alerts": {
        "alert_id": "UUID", "site": "LowCardinality(String)", "room_id": "String", "owner": "String",
        "stage": "LowCardinality(String)", "kind": "LowCardinality(String)", "severity": "LowCardinality(String)",
        "stakeholders": "Array(String)", "evidence": "String", "suggestion": "String", "at": "DateTime64(3, 'UTC')",
    },
    "room_state": {"site": "LowCardinality(String)", "room_id": "String", "version": "UInt64", "state": "String"},
    "channels": {"site": "LowCardinality(String)", "channel_id": "String", "kind": "LowCardinality(String)",
                 "target": "String", "owner": "String", "min_severity": "LowCardinality(String)", "enabled": "UInt8",
                 "updated_at": "DateTime64(3, 'UTC')", "events": "Array(String)"},
    "activities": {"activity_id": "UUID", "site": "LowCardinality(String)", "room_id": "String", "owner": "String",
                   "kind": "LowCardinality(String)", "who": "String", "content_id": "String", "page": "Nullable(UInt32)",
                   "detail": "String", "event_id": "String", "at": "DateTime64(3, 'UTC')"},
    "sellers": {"site": "LowCardinality(String)", "seller_id": "String", "name": "String", "tz": "String",
                "quiet_start": "Int8", "quiet_end": "Int8", "muted_rooms": "Array(String)",
                "min_severity": "LowCardinality(String)", "digest": "UInt8", "updated_at": "DateTime64(3, 'UTC')"},
    "deliveries": {"notice_id": "UUID", "version": "UInt32", "channel_id": "String", "site": "LowCardinality(String)",
                   "room_id": "String", "owner": "String", "alert_ids": "Array(String)", "status": "LowCardinality(String)",
                   "attempts": "UInt16", "http_status": "UInt16", "error": "String", "at": "DateTime64(3, 'UTC')"},
    "alert_actions": {"site": "LowCardinality(String)", "alert_id": "String", "seller_id": "String",
                      "action": "LowCardinality(String)", "until": "DateTime64(3, 'UTC')", "at": "DateTime64(3, 'UTC')"},
    "deal_field_history": {"site": "LowCardinality(String)", "room_id": "String", "field": "LowCardinality(String)",
                           "old_value": "String", "new_value": "String", "changed_at": "DateTime64(3, 'UTC')",
                           "owner": "String"},
    "quotas": {"site": "LowCardinality(String)", "owner": "String", "period": "String", "period_start": "Date",
               "period_end": "Date", "amount": "Float64", "updated_at": "DateTime64(3, 'UTC')"},
    "deal_stages": {"stage": "String", "position": "UInt16", "closed": "UInt8", "won": "UInt8", "version": "UInt64"},
    "erasures": {"erasure_id": "UUID", "site": "LowCardinality(String)", "stakeholder": "String", "room_id": "String",
                 "requested_at": "DateTime64(3, 'UTC')"},
}


def migrate(execute, query_scalar_list) -> list[int]:
    """Apply pending migrations in order. ``execute(sql)`` runs DDL; ``query_scalar_list(sql)`` returns the
    first column of a SELECT. Returns the versions applied now."""
    execute(MIGRATIONS_TABLE)
    done = {int(v) for v in query_scalar_list("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, ddl in MIGRATIONS:
        if version in done:
            continue
        for statement in filter(None, (x.strip() for x in ddl.split(";\n"))):
            execute(statement)
        execute(f"INSERT INTO schema_migrations (version, name) VALUES ({int(version)}, '{name}')")
        applied.append(version)
    return applied
