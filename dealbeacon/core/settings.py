"""One settings object for every stage.

Every field can be set from the environment as ``DEALBEACON_<FIELD NAME IN CAPS>``; the CLI overrides a few
with flags. docker-compose.yml uses exactly these names (a test checks it).
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dealbeacon.core.contract import CONTENT_KINDS, DEFAULT_STAGES

ENV_PREFIX = "DEALBEACON_"
CLOCKS = ("wall", "external")


@dataclass(frozen=True)
class Settings:
    # -- where things live
    data_dir: str = "dealbeacon-data"
    sites_file: str = ""  # JSON list of sites; empty -> <data_dir>/sites.json
    analysts_file: str = ""  # the SQL port's users (hashed); empty -> <data_dir>/analysts.json
    # -- HTTP servers
    host: str = "127.0.0.1"
    port: int = 8080
    sql_port: int = 8123
    # -- the SQL port's limits, per analyst query: sql_<field> of sinks.sqlengine.Limits
    sql_max_execution_s: float = 30.0
    sql_max_memory_bytes: int = 1_000_000_000
    sql_max_rows_to_read: int = 2_000_000_000
    sql_max_result_rows: int = 1_000_000
    sql_max_result_bytes: int = 100_000_000
    sql_max_threads: int = 1
    sql_max_concurrent: int = 2  # per analyst
    sql_pool: int = 2  # analyst queries running at once, all analysts together
    sql_max_query_bytes: int = 256_000
    # -- ingest limits
    max_body_bytes: int = 1_000_000
    max_decompressed_bytes: int = 4_000_000
    max_events_per_batch: int = 100
    rate_limit_events_per_s: float = 500.0
    rate_limit_burst: int = 2_000
    trust_proxy_headers: bool = False
    clock_skew_tolerance_ms: int = 5_000
    max_event_age_s: int = 7 * 86_400
    max_backfill_days: int = 3_660  # server-side senders (Bearer site secret): how far back their events may lie
    handoff_timeout_s: float = 5.0
    max_inflight_requests: int = 256  # /v1/events requests being handled at once; beyond: 503 at once, body unread
    retry_after_s: int = 5
    dead_letter_payload_bytes: int = 4_096
    # -- embedded pipeline (group commit into chdb)
    embedded_linger_ms: int = 5
    embedded_max_batch: int = 5_000
    # -- Kafka (distributed mode)
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_events: str = "dealbeacon.events"
    topic_dead_letters: str = "dealbeacon.dead_letters"
    topic_rows_prefix: str = "dealbeacon.rows."  # + table name: what the streams emit and the sink stores
    topic_partitions: int = 6
    kafka_linger_ms: int = 5
    kafka_compression: str = "lz4"
    streams_group: str = "dealbeacon-streams"
    faust_store: str = "rocksdb://"  # memory:// in tests
    commit_interval_s: float = 1.0  # stream workers commit processed offsets this often
    # -- ClickHouse sink
    clickhouse_url: str = ""  # clickhouse://host:9000/db for a server; empty -> chdb in <data_dir>/clickhouse
    sink_batch_rows: int = 10_000
    sink_batch_ms: int = 1_000
    sink_group: str = "dealbeacon-sink"
    deliver_group: str = "dealbeacon-deliver"
    sink_metrics_port: int = 9464
    sink_sql_port: int = 0  # >0 with a local chdb directory: serve the read-only SQL port from the sink
    # -- deals: stages, time rules
    stages: str = ",".join(DEFAULT_STAGES)  # ordered; the rooms API accepts these
    closed_stages: str = "closed_won,closed_lost"  # no quiet alerts, no snapshots
    stage_cadence_days: str = ""  # "discovery=10,evaluation=4": expected contact cadence per stage (quiet alerts)
    default_cadence_days: float = 7.0  # a stage with no cadence given or known
    # the buyers' working calendar: silence is counted in working days (quiet alerts)
    timezone: str = "UTC"  # IANA name, e.g. Europe/Berlin
    weekend: str = "sat,sun"  # days that are not working days
    holidays: str = ""  # "2026-12-24,2026-12-25": local dates that are not working days
    content_kinds: str = ""  # a site's own content kinds, added to proposal, pricing, contract, ... ("roi_model,faq")
    clock: str = "wall"  # wall: time rules tick on the wall clock; external: only POST /v1/sites/{site}/clock
    tick_interval_s: float = 60.0  # how often the time rules run (wall clock)
    # -- alert delivery (embedded mode runs it in-process)
    public_url: str = ""  # how sellers reach this server (links in notices); empty -> http://host:port
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "dealbeacon@localhost"
    notify_aggregate_s: int = 180  # a room's notice goes out once its alerts paused this long
    notify_max_wait_s: int = 1800  # or this long after the first one
    notify_cooldown_s: int = 3600  # at most one notice per room per this
    # -- demo
    demo: bool = True
    demo_max_events: int = 200_000

    def __post_init__(self):
        if self.clock not in CLOCKS:
            raise ValueError(f"{ENV_PREFIX}CLOCK={self.clock!r} is not one of: {', '.join(CLOCKS)} "
                             "(wall: time rules follow the wall clock; external: POST /v1/sites/{site}/clock)")
        if len(self.stage_list) < 2:
            raise ValueError(f"{ENV_PREFIX}STAGES={self.stages!r}: give at least two comma-separated stages")
        self.cadences  # noqa: B018  (raises on a malformed DEALBEACON_STAGE_CADENCE_DAYS)
        self.weekend_days, self.holiday_dates, self.content_kind_list  # noqa: B018 (validated when read: fail at start, not at a tick)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{ENV_PREFIX}TIMEZONE={self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        if self.default_cadence_days <= 0:
            raise ValueError(f"{ENV_PREFIX}DEFAULT_CADENCE_DAYS={self.default_cadence_days!r} must be > 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        source: Mapping[str, str] = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = source.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def resolved_sites_file(self) -> str:
        return self.sites_file or os.path.join(self.data_dir, "sites.json")

    @property
    def resolved_analysts_file(self) -> str:
        return self.analysts_file or os.path.join(self.data_dir, "analysts.json")

    @property
    def stage_list(self) -> tuple[str, ...]:
        return tuple(x.strip() for x in self.stages.split(",") if x.strip())

    @property
    def closed_stage_list(self) -> tuple[str, ...]:
        return tuple(x.strip() for x in self.closed_stages.split(",") if x.strip())

    @property
    def content_kind_list(self) -> tuple[str, ...]:
        extra = tuple(x.strip() for x in self.content_kinds.split(",") if x.strip())
        bad = [k for k in extra if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", k)]
        if bad:
            raise ValueError(f"{ENV_PREFIX}CONTENT_KINDS={self.content_kinds!r}: kinds are lower-case words ([a-z0-9_])")
        return CONTENT_KINDS + tuple(k for k in extra if k not in CONTENT_KINDS)

    @property
    def weekend_days(self) -> tuple[int, ...]:
        names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        days = [x.strip().lower()[:3] for x in self.weekend.split(",") if x.strip()]
        if any(d not in names for d in days) or len(days) > 6:
            raise ValueError(f"{ENV_PREFIX}WEEKEND={self.weekend!r}: write day names (e.g. sat,sun or fri,sat), not all seven")
        return tuple(sorted({names.index(d) for d in days}))

    @property
    def holiday_dates(self) -> tuple[str, ...]:
        out = []
        for part in filter(None, (p.strip() for p in self.holidays.split(","))):
            try:
                out.append(date.fromisoformat(part).isoformat())
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}HOLIDAYS={self.holidays!r}: write dates as YYYY-MM-DD, comma-separated") from None
        return tuple(sorted(out))

    @property
    def cadences(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in self.stage_cadence_days.split(","))):
            stage, _, days = part.partition("=")
            try:
                value = float(days)
            except ValueError:
                value = -1.0
            out[stage.strip()] = value
            if value <= 0 or stage.strip() not in self.stage_list:
                raise ValueError(f"{ENV_PREFIX}STAGE_CADENCE_DAYS={self.stage_cadence_days!r}: write stage=days "
                                 f"pairs for stages of {ENV_PREFIX}STAGES, days > 0 (e.g. discovery=10,evaluation=4)")
        return out

    @property
    def chdb_path(self) -> str:
        return os.path.join(self.data_dir, "clickhouse")


def env_names() -> set[str]:
    """Every environment variable name the settings accept."""
    return {ENV_PREFIX + f.name.upper() for f in fields(Settings)}


def _coerce(f: dataclasses.Field, raw: str):
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "bool": bool, "str": str}[f.type]
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a boolean")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
