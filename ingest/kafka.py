"""Distributed mode's hand-off: publish records to Kafka with aiokafka.

acks=all with the idempotent producer; one message per room per request (a JSON array of records) keyed
by site/room, so a deal's events, room updates and ticks stay ordered on one partition (a site-wide clock
tick goes to every partition); batched (linger) and compressed. ``submit`` returns only after the broker acknowledged every
record; the pipeline bounds the wait (503 + Retry-After), so a dead broker never hangs a request.
"""
from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from dealbeacon.core import records
from dealbeacon.core.handoff import HandoffUnavailable
from dealbeacon.core.settings import Settings

log = logging.getLogger("dealbeacon.ingest.kafka")


class KafkaHandoff:
    def __init__(self, settings: Settings):
        self.s = settings
        self.producer: AIOKafkaProducer | None = None
        self._healthy = False

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.s.kafka_bootstrap, acks="all", enable_idempotence=True,
            linger_ms=self.s.kafka_linger_ms, compression_type=self.s.kafka_compression or None,
            request_timeout_ms=int(self.s.handoff_timeout_s * 1000), max_batch_size=256 * 1024,
            client_id="dealbeacon-ingest")
        await self.producer.start()
        self._healthy = True

    async def stop(self) -> None:
        if self.producer:
            await self.producer.stop()
            self.producer = None

    def ready(self) -> bool:
        return self.producer is not None and self._healthy

    def shedding(self, admitted: int = 0) -> bool:
        return False  # the producer's own buffer bounds what waits; a send it cannot take answers 503

    async def submit(self, events: list[dict], dead_letters: list[dict]) -> None:
        if self.producer is None:
            raise HandoffUnavailable("Kafka producer is not running")
        sent: list[tuple[asyncio.Future, int]] = []  # (delivery future, events it carries)
        try:
            # one message per room per request: keyed by room, so a deal's events stay in order
            # site-wide records (a clock tick, a win model, an erase without a room) reach every partition
            site_wide = [e for e in events if e.get("record") in ("clock", "model") or (e.get("record") == "erase"
                                                                                       and not e.get("room_id"))]
            clocks = site_wide
            keyed = [e for e in events if not any(e is x for x in site_wide)]
            for key, group in records.group_by_room(keyed).items():
                sent.append((await self.producer.send(self.s.topic_events, records.encode_many(group), key=key),
                             len(group)))
            if clocks:  # a site-wide tick reaches every partition, after this request's own records
                await asyncio.gather(*(f for f, _ in sent))
                parts = await self.producer.partitions_for(self.s.topic_events)
                for p in sorted(parts):
                    sent.append((await self.producer.send(self.s.topic_events, records.encode_many(clocks),
                                                          partition=p), 0))
            if dead_letters:
                sent.append((await self.producer.send(self.s.topic_dead_letters, records.encode_many(dead_letters),
                                                      key=dead_letters[0]["site"].encode()), 0))
            await asyncio.gather(*(f for f, _ in sent))
        except asyncio.CancelledError:
            self._healthy = False  # timed out by the pipeline: the broker is slow or gone
            if not sent:
                raise  # nothing was handed to the producer: the 503 is true
            # messages already with the producer may still be delivered: wait for their outcome (bounded by the
            # producer's own request timeout) so the answer says what was kept, never a 503 over stored events
            results = await asyncio.shield(asyncio.gather(*(f for f, _ in sent), return_exceptions=True))
            kept = sum(n for (_, n), r in zip(sent, results) if not isinstance(r, BaseException))
            if kept == sum(n for _, n in sent) and not any(isinstance(r, BaseException) for r in results):
                return None
            raise HandoffUnavailable(f"Kafka: timed out; kept {kept} of {len(events)} events "
                                     "(a retry is deduplicated by event_id)", kept=kept) from None
        except Exception as e:  # KafkaError and friends: the broker did not take it
            self._healthy = False
            raise HandoffUnavailable(f"Kafka: {type(e).__name__}: {e}") from e
        self._healthy = True
