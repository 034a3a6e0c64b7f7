"""A bounded HTTP load generator (aiohttp): N pre-built JSON batches, C concurrent connections, a time cap.
Run as a separate process so it does not share the server's event loop."""
from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import orjson

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def make_bodies(n_requests: int, per_batch: int, site: str, rooms: int = 50) -> list[bytes]:
    now = int(time.time() * 1000)
    out = []
    for r in range(n_requests):
        events = [{"event_id": str(uuid.uuid4()), "type": "engagement", "room_id": f"room-{r % rooms}",
                   "visitor_id": f"v-{r % 500}", "session_id": f"s-{r % 1000}", "ts": now - 1000,
                   "content_id": "proposal", "engaged_ms": 15000, "scroll_pct": 40.0,
                   "url": "https://rooms.example.com/r/room"} for _ in range(per_batch)]
        out.append(orjson.dumps({"site": site, "sent_at": now, "events": events}))
    return out


async def _run(url: str, bodies: list[bytes], concurrency: int, time_cap_s: float) -> dict:
    latencies, statuses, it = [], {}, iter(bodies)
    deadline = time.perf_counter() + time_cap_s
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"User-Agent": UA, "Content-Type": "text/plain"}) as s:
        async def worker():
            for body in it:
                if time.perf_counter() > deadline:
                    return
                t = time.perf_counter()
                async with s.post(url, data=body) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed = time.perf_counter() - start
    latencies.sort()
    # ``started``: perf_counter as the first request went out (CLOCK_MONOTONIC: the same clock in every process of
    # this machine), so the caller can time what follows the load from when it began, not from before this
    # process was spawned and handed its bodies
    return {"requests": len(latencies), "elapsed_s": elapsed, "started": start, "statuses": statuses,
            "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
            "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else None}


def run(url: str, bodies: list[bytes], concurrency: int, time_cap_s: float) -> dict:
    return asyncio.run(_run(url, bodies, concurrency, time_cap_s))


async def _run_open(url: str, rate_rps: float, seconds: float, per_batch: int, site: str,
                    max_in_flight: int = 1000) -> dict:
    """Requests on a fixed schedule, whatever the answers (open loop). Latency counts from each request's
    scheduled time, so a server that falls behind shows it (no coordinated omission). Bounded: at most
    ``rate_rps * seconds`` requests, ``max_in_flight`` at once (the rest are counted as skipped)."""
    bodies = make_bodies(max(1, int(rate_rps * seconds)), per_batch, site)
    latencies, statuses, tasks = [], {}, set()
    skipped = 0
    conn = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=conn, headers={"User-Agent": UA, "Content-Type": "text/plain"}) as s:
        async def one(body: bytes, due: float) -> None:
            try:
                async with s.post(url, data=body) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
            except aiohttp.ClientError as e:
                statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
            latencies.append(time.perf_counter() - due)

        t0 = time.perf_counter()
        for i, body in enumerate(bodies):
            due = t0 + i / rate_rps
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            if len(tasks) >= max_in_flight:
                skipped += 1
                continue
            t = asyncio.create_task(one(body, due))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    latencies.sort()
    return {"answered": len(latencies), "skipped": skipped, "statuses": statuses,
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("inf")}


def run_open(url: str, rate_rps: float, seconds: float, per_batch: int, site: str) -> dict:
    return asyncio.run(_run_open(url, rate_rps, seconds, per_batch, site))
