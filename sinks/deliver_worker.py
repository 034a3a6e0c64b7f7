"""``dealbeacon deliver``: alert delivery as its own Kafka consumer (distributed mode).

- At start it reads the ``channels``, ``sellers`` and ``deliveries`` row topics from the beginning, so it
  knows the configuration and what was already delivered (a replay after a crash skips those, per channel).
- It consumes the ``alerts`` and ``activities`` row topics (and later configuration) in its own group and
  hands them to the same ``Deliverer`` embedded mode runs. Deliveries are recorded to the ``deliveries`` row topic (the sink
  stores them).
- An alert's offset is committed only once its notice went to every channel (or it will never be notified:
  muted, below threshold); alerts the policy holds (aggregation, quiet hours, digests) keep their offsets
  uncommitted, so a restart offers them again.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from dealbeacon.core import records
from dealbeacon.core.settings import Settings
from dealbeacon.kafka.topics import row_topic

from .delivery import Deliverer
from .notify import NotifyConfig

log = logging.getLogger("dealbeacon.deliver")
CONFIG_TABLES = ("channels", "sellers", "deliveries")


async def _behind(c: AIOKafkaConsumer, parts, ends) -> bool:
    for tp in parts:
        if await c.position(tp) < ends[tp]:
            return True
    return False


class DeliverWorker:
    def __init__(self, s: Settings, site_secrets: dict[str, str]):
        self.s, self.site_secrets = s, site_secrets
        self.pending: dict[TopicPartition, dict[int, set[str]]] = {}  # offset -> alert ids not done
        self.where: dict[str, tuple[TopicPartition, int]] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _bootstrap(self, deliverer: Deliverer) -> None:
        c = AIOKafkaConsumer(bootstrap_servers=self.s.kafka_bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            await c._client.force_metadata_update()
            # every table's partitions first: assigning one topic narrows the client's metadata to it
            layout = {table: [TopicPartition(row_topic(self.s, table), p)
                              for p in sorted(c.partitions_for_topic(row_topic(self.s, table)) or ())]
                      for table in CONFIG_TABLES}
            for table, parts in layout.items():
                if not parts:
                    continue
                c.assign(parts)
                await c.seek_to_beginning(*parts)
                ends = await c.end_offsets(parts)
                rows = []
                while await _behind(c, parts, ends):
                    for msgs in (await c.getmany(timeout_ms=500)).values():
                        for m in msgs:
                            rows += records.decode_many(m.value)
                deliverer.apply({table: rows})
                log.info("%s: %d rows read at start", table, len(rows))
        finally:
            await c.stop()

    def _done(self, alert_ids: list[str]) -> None:
        for a in alert_ids:
            tp_off = self.where.pop(a, None)
            if tp_off:
                tp, off = tp_off
                waiting = self.pending.get(tp, {}).get(off)
                if waiting is not None:
                    waiting.discard(a)

    def _committable(self) -> dict[TopicPartition, OffsetAndMetadata]:
        out = {}
        for tp, offs in self.pending.items():
            done = None
            for off in sorted(offs):
                if offs[off]:
                    break
                done = off
                del offs[off]
            if done is not None:
                out[tp] = OffsetAndMetadata(done + 1, "")
        return out

    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.s.kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()

        async def record(rows: list[dict]) -> None:
            await producer.send_and_wait(row_topic(self.s, "deliveries"), records.encode_many(rows),
                                         key=rows[0]["notice_id"].encode())

        s = self.s
        deliverer = Deliverer(self.site_secrets, record, on_done=self._done,
                              room_url=s.public_url or f"http://{s.host}:{s.port}",
                              smtp=(s.smtp_host, s.smtp_port), smtp_from=s.smtp_from,
                              cfg=NotifyConfig(s.notify_aggregate_s, s.notify_max_wait_s, s.notify_cooldown_s))
        await self._bootstrap(deliverer)
        topics = {row_topic(s, t): t for t in ("alerts", "activities", "channels", "sellers")}
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=s.kafka_bootstrap, group_id=s.deliver_group,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        loop_task = asyncio.create_task(deliverer.run())
        last_commit = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                for tp, msgs in batch.items():
                    table = topics[tp.topic]
                    for m in msgs:
                        rows = records.decode_many(m.value)
                        if table in ("alerts", "activities"):  # committed once delivered (or never to be)
                            key = "alert_id" if table == "alerts" else "activity_id"
                            waiting = self.pending.setdefault(tp, {}).setdefault(m.offset, set())
                            for a in rows:
                                waiting.add(a[key])
                                self.where[a[key]] = (tp, m.offset)
                            self._done(deliverer.apply({table: rows}))
                        else:
                            deliverer.apply({table: rows})
                            self.pending.setdefault(tp, {})[m.offset] = set()
                if time.monotonic() - last_commit >= 1.0:
                    offsets = self._committable()
                    if offsets:
                        await consumer.commit(offsets)
                    last_commit = time.monotonic()
        finally:
            loop_task.cancel()  # lets the deliveries under way finish first (Deliverer.run, bounded)
            await asyncio.gather(loop_task, return_exceptions=True)
            offsets = self._committable()  # what is done now is not offered again after a restart
            if offsets:
                try:
                    await consumer.commit(offsets)
                except Exception:  # the group may be gone; the deliveries topic still prevents a second send
                    log.warning("could not commit on stop", exc_info=True)
            await consumer.stop()
            await producer.stop()
