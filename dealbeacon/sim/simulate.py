"""``dealbeacon simulate``: replay simulated buying committees (dealbeacon/sim/simulator.py) against a running
dealbeacon over HTTP, as a seller's CRM (rooms API) and the buyers (events) would, with time compression.

Simulated time maps to real time as ``real = t0 + (sim - sim_start) / speed``; ``speed=0`` sends as fast
as the server takes it. Server-side senders authenticate with the site secret, so the server keeps the
simulated timestamps. Clock ticks (``--tick-hours``) drive the time rules on a server started with
``DEALBEACON_CLOCK=external``; on a wall-clock server, leave them out and the server ticks by itself.
Bounded: every request retries 429/503 until ``deadline_s``.
"""
from __future__ import annotations

import asyncio
import logging
import time

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_before_delay, wait_exponential

from dealbeacon.sim.simulator import DAY_MS, Op, plan, simulate

log = logging.getLogger("dealbeacon.sim.simulate")


async def replay(url: str, site: str, secret: str, ops: list[Op], *, speed: float = 0.0,
                 deadline_s: float = 600.0, lanes: int = 1) -> dict[str, int]:
    """Send ``ops`` in order; returns counts per kind and of accepted events. With ``lanes`` > 1 (as fast as the
    server takes it, no clock ticks) rooms are replayed side by side, each room's ops still in order (the
    server folds concurrent requests into one commit)."""
    headers = {"Authorization": f"Bearer {secret}", "User-Agent": "dealbeacon-simulate/1"}
    counts = {"room": 0, "events": 0, "clock": 0, "accepted": 0, "rejected": 0}
    end = time.monotonic() + deadline_s
    t0, s0 = time.monotonic(), ops[0].at_ms if ops else 0
    if lanes > 1 and (speed > 0 or any(op.kind == "clock" for op in ops)):
        raise ValueError("lanes > 1 replays rooms side by side: only as fast as possible and without clock ticks")

    async def run(client: httpx.AsyncClient, lane: list[Op]) -> None:
        for op in lane:
            if speed > 0:
                wait = t0 + (op.at_ms - s0) / 1000 / speed - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            if op.kind == "room":
                r = await send(client, "PUT", f"/v1/sites/{site}/rooms/{op.room_id}", op.body, end)
            elif op.kind == "clock":
                r = await send(client, "POST", f"/v1/sites/{site}/clock", op.body, end)
            else:
                r = await send(client, "POST", "/v1/events", op.body, end)
                counts["accepted"] += r.json()["accepted"]
                counts["rejected"] += len(r.json()["rejected"])
            counts[op.kind] += 1

    rooms = sorted({op.room_id for op in ops})
    split: list[list[Op]] = [[] for _ in range(max(1, min(lanes, len(rooms) or 1)))]
    lane_of = {room: i % len(split) for i, room in enumerate(rooms)}
    for op in ops:
        split[lane_of.get(op.room_id, 0) if len(split) > 1 else 0].append(op)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        await asyncio.gather(*(run(client, lane) for lane in split))
    return counts


class _Busy(Exception):
    """The server answered 429 or 503: try again."""


async def send(client: httpx.AsyncClient, method: str, path: str, body: dict, end: float) -> httpx.Response:
    """One request, retried with backoff (0.1 s doubling to 2 s) on network errors, 429 and 503 until ``end``."""
    async def once() -> httpx.Response:
        r = await client.request(method, path, json=body)
        if r.status_code in (429, 503):
            raise _Busy(f"{r.status_code}")
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r

    try:
        return await AsyncRetrying(retry=retry_if_exception_type((httpx.TransportError, _Busy)), reraise=True,
                                   wait=wait_exponential(multiplier=0.1, max=2.0),
                                   stop=stop_before_delay(max(0.0, end - time.monotonic())))(once)
    except (httpx.TransportError, _Busy) as e:
        raise TimeoutError(f"{method} {path}: the server did not take it before the deadline ({e})") from e


def build(site: str, secret: str, *, deals: int, seed: int, days: int, start_ms: int | None, tick_hours: float,
          now_ms: int, spread_days: int = 0) -> list[Op]:
    """The ops of a simulation. Without ``start_ms`` the simulated period ends now (a backfill of history
    that a wall-clock server then keeps evaluating). With ``spread_days`` the rooms open one after another
    over that many days before their ``days`` of simulated life (a site's history: some closed, some open)."""
    start = start_ms if start_ms is not None else now_ms - (days + spread_days) * DAY_MS
    sim = simulate(seed, deals, start, days, spread_days=spread_days)
    ops = plan(sim, site, secret, now_ms // 1000 + 90 * 86_400, tick_ms=int(tick_hours * 3_600_000),
               until_ms=start + (days + spread_days) * DAY_MS if tick_hours else None)
    return [op for op in ops if op.at_ms <= now_ms]  # a deal opened lately is still running: nothing from the future
