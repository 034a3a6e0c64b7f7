"""Kafka plumbing shared by the distributed stages: topic names, topic creation, consumer lag.
No business logic here."""
from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from dealbeacon.core.settings import Settings

log = logging.getLogger("dealbeacon.kafka")
TABLES = ("events", "dead_letters", "rooms", "room_stage_history", "stakeholder_scores", "deal_scores", "alerts",
          "activities", "channels", "sellers", "alert_actions", "erasures", "deal_field_history", "quotas")
# ^ tables the streams emit rows for (the sink stores each from its own topic)
SINK_TABLES = (*TABLES, "deliveries")  # + what the delivery consumer records


def row_topic(s: Settings, table: str) -> str:
    return s.topic_rows_prefix + table


STATE_TABLES = ("room_state",)  # the stream workers' Faust tables (changelogs: compacted, co-partitioned)


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition a keyed message lands in: Kafka's default partitioner (murmur2 of the key), which the
    ingest producer, Faust's producer and the changelog all use."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def changelog_topic(s: Settings, table: str) -> str:
    return f"{s.streams_group}-{table}-changelog"  # Faust's naming


def all_topics(s: Settings) -> list[str]:
    return [s.topic_events, s.topic_dead_letters, *(row_topic(s, t) for t in SINK_TABLES)]


async def ensure_topics(s: Settings) -> None:
    """Create every topic the pipeline uses, with the configured partition count, if missing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=s.topic_partitions, replication_factor=1)
                   for t in all_topics(s) if t not in existing]
        # created here, not left to Faust: it skipped a changelog once when the broker was busy at start
        missing += [NewTopic(t, num_partitions=s.topic_partitions, replication_factor=1,
                             topic_configs={"cleanup.policy": "compact"})
                    for t in (changelog_topic(s, name) for name in STATE_TABLES) if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


class LagProbe:
    """Consumer lag per topic for a group (end offset - committed offset), on clients kept open."""

    def __init__(self, s: Settings):
        from aiokafka import AIOKafkaConsumer

        self.admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=5_000)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, enable_auto_commit=False)

    async def start(self) -> LagProbe:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self, group: str, topics: list[str]) -> dict[str, int]:
        committed = await self.admin.list_consumer_group_offsets(group)
        parts = [TopicPartition(t, p) for t in topics for p in (self.consumer.partitions_for_topic(t) or ())]
        if len(parts) < len(topics):  # topics not in the metadata cache yet
            await self.consumer._client.force_metadata_update()
            parts = [TopicPartition(t, p) for t in topics for p in (self.consumer.partitions_for_topic(t) or ())]
        ends = await self.consumer.end_offsets(parts) if parts else {}
        lag: dict[str, int] = {t: 0 for t in topics}
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag[tp.topic] += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag

