"""One settings object for every stage, on pydantic-settings.

Every field can be set from the environment as ``DEALBEACON_<FIELD NAME IN CAPS>``; the CLI overrides a few
with flags. docker-compose.yml uses exactly these names (a test checks it). Fields are typed and validated
when the object is built: a value that cannot work stops the process at start with a message naming the
variable, never at the first tick.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dealbeacon.core.clock import check_zone
from dealbeacon.core.contract import CONTENT_KINDS, DEFAULT_STAGES

ENV_PREFIX = "DEALBEACON_"
CLOCKS = ("wall", "external")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Positive = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=0, le=65_535)]


class SettingsError(ValueError):
    """A setting that cannot work; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True)

    # -- where things live
    data_dir: str = "dealbeacon-data"
    sites_file: str = ""  # JSON list of sites; empty -> <data_dir>/sites.json
    analysts_file: str = ""  # the SQL port's users (hashed); empty -> <data_dir>/analysts.json
    # -- HTTP servers
    host: str = "127.0.0.1"
    port: Port = 8080  # 0 (any port): the OS chooses; see ports_file
    sql_port: Port = 8123
    ports_file: str = ""  # after binding, each process writes its ports here as JSON ({"http": 8080, ...})
    # -- the SQL port's limits, per analyst query: sql_<field> of sinks.sqlengine.Limits
    sql_max_execution_s: PositiveFloat = 30.0
    sql_max_memory_bytes: Positive = 1_000_000_000
    sql_max_rows_to_read: Positive = 2_000_000_000
    sql_max_result_rows: Positive = 1_000_000
    sql_max_result_bytes: Positive = 100_000_000
    sql_max_threads: Positive = 1
    sql_max_concurrent: Positive = 2  # per analyst
    sql_pool: Positive = 2  # analyst queries running at once, all analysts together
    sql_max_query_bytes: Positive = 256_000
    # -- ingest limits
    max_body_bytes: Positive = 1_000_000
    max_decompressed_bytes: Positive = 4_000_000
    max_events_per_batch: Positive = 100
    rate_limit_events_per_s: PositiveFloat = 500.0
    rate_limit_burst: Positive = 2_000
    trust_proxy_headers: bool = False
    clock_skew_tolerance_ms: Annotated[int, Field(ge=0)] = 5_000
    max_event_age_s: Positive = 7 * 86_400
    max_backfill_days: Positive = 3_660  # server-side senders (Bearer site secret): how far back their events may lie
    handoff_timeout_s: PositiveFloat = 5.0
    max_inflight_requests: Positive = 256  # /v1/events requests being handled at once; beyond: 503 at once, body unread
    retry_after_s: Positive = 5
    dead_letter_payload_bytes: Positive = 4_096
    # -- embedded pipeline. With the local log (default) a 202 means: appended to <data_dir>/locallog and fsync'd; one
    # writer applies the log to chdb every embedded_apply_ms. Without it, the 202 waits for the chdb insert.
    embedded_log: bool = True
    embedded_hot_rooms: Positive = 1_000  # room states kept decoded; the others are held compressed
    embedded_linger_ms: Annotated[int, Field(ge=0)] = 0  # group commit: a group also waits this long for others (see ARCHITECTURE)
    embedded_linger_behind_ms: Annotated[int, Field(ge=0)] = 5  # the same, the local log's backlog over half full
    embedded_max_batch: Positive = 5_000  # without the log: records per chdb group commit
    embedded_apply_ms: Positive = 250  # rows are queryable about this long after their 202
    embedded_apply_max_records: Positive = 20_000  # records per applied range (one insert per table)
    embedded_backlog_records: Positive = 100_000  # logged, not yet applied (~10 s of the writer's work): beyond, 503
    embedded_backlog_bytes: Positive = 512 << 20
    embedded_log_segment_bytes: Positive = 64 << 20
    embedded_log_min_free_bytes: Annotated[int, Field(ge=0)] = 100 << 20  # disk reserve: below it, appends answer 503
    embedded_gil_switch_ms: Annotated[float, Field(gt=0, le=100)] = 1.0  # `up`: sys.setswitchinterval (CPython: 5)
    embedded_gil_switch_behind_ms: Annotated[float, Field(gt=0, le=100)] = 5.0  # the same, backlog over half full
    # -- Kafka (distributed mode)
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_events: str = "dealbeacon.events"
    topic_dead_letters: str = "dealbeacon.dead_letters"
    topic_rows_prefix: str = "dealbeacon.rows."  # + table name: what the streams emit and the sink stores
    topic_partitions: Positive = 6
    kafka_linger_ms: Annotated[int, Field(ge=0)] = 5
    kafka_compression: Literal["lz4", "gzip", "snappy", "zstd", ""] = "lz4"  # "": none
    streams_group: str = "dealbeacon-streams"
    faust_store: str = "rocksdb://"  # memory:// in tests
    commit_interval_s: PositiveFloat = 1.0  # stream workers commit processed offsets this often
    # a stream worker folds up to this many messages (or what came within the window) per round trip: their
    # outputs are sent together and acked once, then the rooms' states are saved (bench/stream_bench.py: 2000 /
    # 100 ms made the worker 10-25 % faster than 500 / 50 ms, as each room's rows come once per batch)
    worker_batch_messages: Positive = 2000
    worker_batch_ms: Positive = 100
    # decoded room states a stream worker keeps in memory (least recently used go; the table keeps them all)
    worker_state_cache_rooms: Positive = 1_000
    # -- ClickHouse sink
    clickhouse_url: str = ""  # clickhouse://host:9000/db for a server; empty -> chdb in <data_dir>/clickhouse
    sink_batch_rows: Positive = 10_000
    sink_batch_ms: Positive = 1_000
    sink_group: str = "dealbeacon-sink"
    deliver_group: str = "dealbeacon-deliver"
    sink_metrics_port: Port = 9464
    sink_sql_port: Port | None = None  # set (0: any free port) with a local chdb directory: the sink serves the SQL port
    # -- deals: stages, time rules
    stages: str = ",".join(DEFAULT_STAGES)  # ordered; the rooms API accepts these
    closed_stages: str = "closed_won,closed_lost"  # no quiet alerts, no snapshots
    won_stages: str = ""  # the closed stages that count as won (the win model learns from them); "": the first closed stage
    model_refit_s: Annotated[float, Field(ge=0)] = 3600.0  # how often each site's win model is refitted (0: never)
    stage_cadence_days: str = ""  # "discovery=10,evaluation=4": expected contact cadence per stage (quiet alerts)
    default_cadence_days: PositiveFloat = 7.0  # a stage with no cadence given or known
    # the buyers' working calendar: silence is counted in working days (quiet alerts)
    timezone: str = "UTC"  # IANA name, e.g. Europe/Berlin
    weekend: str = "sat,sun"  # days that are not working days
    holidays: str = ""  # "2026-12-24,2026-12-25": local dates that are not working days
    content_kinds: str = ""  # a site's own content kinds, added to proposal, pricing, contract, ... ("roi_model,faq")
    clock: Literal["wall", "external"] = "wall"  # wall: rules tick on the wall clock; external: only POST /v1/sites/{site}/clock
    tick_interval_s: PositiveFloat = 60.0  # how often the time rules run (wall clock)
    # -- alert delivery (embedded mode runs it in-process)
    public_url: str = ""  # how sellers reach this server (links in notices); empty -> http://host:port
    smtp_host: str = ""
    smtp_port: Port = 25
    smtp_from: str = "dealbeacon@localhost"
    notify_aggregate_s: Annotated[int, Field(ge=0)] = 180  # a room's notice goes out once its alerts paused this long
    notify_max_wait_s: Annotated[int, Field(ge=0)] = 1800  # or this long after the first one
    notify_cooldown_s: Annotated[int, Field(ge=0)] = 3600  # at most one notice per room per this
    # -- demo
    demo: bool = True
    demo_max_events: Annotated[int, Field(ge=0)] = 200_000  # live demo visits (0: none)
    demo_deals: Annotated[int, Field(ge=0, le=1000)] = 40  # simulated history: deals opened over 120 days, 90 days each

    @field_validator("clock", mode="before")
    @classmethod
    def _clock(cls, v: Any) -> Any:
        if v not in CLOCKS:
            raise ValueError(f"must be one of: {', '.join(CLOCKS)} "
                             "(wall: time rules follow the wall clock; external: POST /v1/sites/{site}/clock)")
        return v

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: str) -> str:
        if len(_split(v)) < 2:
            raise ValueError("give at least two comma-separated stages")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        return check_zone(v)

    @field_validator("weekend")
    @classmethod
    def _weekend(cls, v: str) -> str:
        days = [x.lower()[:3] for x in _split(v)]
        if any(d not in DAY_NAMES for d in days) or len(set(days)) > 6:
            raise ValueError("write day names (e.g. sat,sun or fri,sat), not all seven")
        return v

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, v: str) -> str:
        for part in _split(v):
            try:
                date.fromisoformat(part)
            except ValueError:
                raise ValueError("write dates as YYYY-MM-DD, comma-separated") from None
        return v

    @field_validator("content_kinds")
    @classmethod
    def _content_kinds(cls, v: str) -> str:
        if any(not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", k) for k in _split(v)):
            raise ValueError("kinds are lower-case words ([a-z0-9_])")
        return v

    @model_validator(mode="after")
    def _won(self) -> Settings:
        if not set(self.won_stage_list) <= set(self.closed_stage_list):
            raise ValueError(f"{ENV_PREFIX}WON_STAGES={self.won_stages!r}: must be among {ENV_PREFIX}CLOSED_STAGES "
                             f"({self.closed_stages})")
        return self

    @model_validator(mode="after")
    def _cadences(self) -> Settings:
        for part in _split(self.stage_cadence_days):
            stage, _, days = part.partition("=")
            try:
                ok = float(days) > 0 and stage.strip() in self.stage_list
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{ENV_PREFIX}STAGE_CADENCE_DAYS={self.stage_cadence_days!r}: write stage=days "
                                 f"pairs for stages of {ENV_PREFIX}STAGES, days > 0 (e.g. discovery=10,evaluation=4)")
        return self

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise SettingsError(_explain(e)) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default: the process environment), with ``overrides`` (None = not given) on top."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if env is None:
            return cls(**given)
        names = set(cls.model_fields)
        values = {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        values = {k: v for k, v in values.items() if k in names}
        try:
            return cls.model_validate({**values, **given})
        except ValidationError as e:
            raise SettingsError(_explain(e)) from None

    def replace(self, **changes: Any) -> Settings:
        return type(self).model_validate({**self.model_dump(), **changes})

    @property
    def resolved_sites_file(self) -> str:
        return self.sites_file or os.path.join(self.data_dir, "sites.json")

    @property
    def resolved_analysts_file(self) -> str:
        return self.analysts_file or os.path.join(self.data_dir, "analysts.json")

    @property
    def stage_list(self) -> tuple[str, ...]:
        return _split(self.stages)

    @property
    def closed_stage_list(self) -> tuple[str, ...]:
        return _split(self.closed_stages)

    @property
    def won_stage_list(self) -> tuple[str, ...]:
        return _split(self.won_stages) or self.closed_stage_list[:1]

    @property
    def content_kind_list(self) -> tuple[str, ...]:
        return CONTENT_KINDS + tuple(k for k in _split(self.content_kinds) if k not in CONTENT_KINDS)

    @property
    def weekend_days(self) -> tuple[int, ...]:
        return tuple(sorted({DAY_NAMES.index(x.lower()[:3]) for x in _split(self.weekend)}))

    @property
    def holiday_dates(self) -> tuple[str, ...]:
        return tuple(sorted(date.fromisoformat(p).isoformat() for p in _split(self.holidays)))

    @property
    def cadences(self) -> dict[str, float]:
        pairs = (p.partition("=") for p in _split(self.stage_cadence_days))
        return {stage.strip(): float(days) for stage, _, days in pairs}

    @property
    def chdb_path(self) -> str:
        return os.path.join(self.data_dir, "clickhouse")


def env_names() -> set[str]:
    """Every environment variable name the settings accept."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _explain(e: ValidationError) -> str:
    """One line per wrong setting, named as the environment variable a user sets."""
    lines = []
    for err in e.errors(include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        if field:
            lines.append(f"{ENV_PREFIX}{field.upper()}={err['input']!r}: {msg[0].lower() + msg[1:]}")
        else:
            lines.append(msg)
    return "; ".join(lines)
