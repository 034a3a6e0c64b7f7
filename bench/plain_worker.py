"""The stream worker's same-work baseline for bench/stream_bench.py: a plain aiokafka loop, no Faust.

It does what the Faust worker does per batch, with the same processors: fetch up to ``--batch`` messages,
decode, fold each partition's records through ``process_batch`` (rooms' states in memory), produce the rows
(500 per message, as the worker chunks them) and each changed room's state (as the worker's table
changelog does), await every ack once, then commit. Settings come from the environment like the worker's;
rows go to ``DEALBEACON_TOPIC_ROWS_PREFIX``.

    python bench/plain_worker.py [--batch N]   (default: the worker's DEALBEACON_WORKER_BATCH_MESSAGES)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from dealbeacon.core import records  # noqa: E402
from dealbeacon.core.settings import Settings  # noqa: E402
from dealbeacon.kafka.topics import row_topic  # noqa: E402
from streams import deals, processors  # noqa: E402

ROWS_PER_MESSAGE = 500


async def run(s: Settings, batch: int) -> None:
    consumer = AIOKafkaConsumer(s.topic_events, bootstrap_servers=s.kafka_bootstrap, group_id=s.streams_group,
                                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=batch)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=0,
                                compression_type=s.kafka_compression or None)
    await consumer.start()
    await producer.start()
    states: dict[bytes, deals.RoomState] = {}
    by_site: dict[str, set[bytes]] = {}
    state_topic = s.topic_rows_prefix + "room_state"
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=s.worker_batch_ms, max_records=batch)
            if not fetched:
                continue
            futures = []
            changed_all: dict[bytes, deals.RoomState] = {}
            for tp, msgs in fetched.items():
                recs, offsets = [], []
                for m in msgs:
                    r = records.decode_many(m.value)
                    recs += r
                    offsets += [m.offset] * len(r)
                changed, tables = processors.process_batch(
                    recs, [], states.get, lambda site: by_site.get(site, ()), tp.partition, offsets)
                changed_all.update(changed)
                for table, rows in tables.items():
                    for i in range(0, len(rows), ROWS_PER_MESSAGE):
                        chunk = rows[i:i + ROWS_PER_MESSAGE]
                        futures.append(await producer.send(row_topic(s, table), records.encode_many(chunk),
                                                           key=chunk[0].get("site", "").encode(),
                                                           headers=records.rows_header(len(chunk))))
                for key, state in changed.items():
                    futures.append(await producer.send(state_topic, deals.dumps(state), key=key, partition=tp.partition))
            await asyncio.gather(*futures)
            states.update(changed_all)
            for key in changed_all:
                by_site.setdefault(records.room_site(key), set()).add(key)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=0)
    a = ap.parse_args()
    s = Settings.from_env()
    asyncio.run(run(s, a.batch or s.worker_batch_messages))


if __name__ == "__main__":
    main()
