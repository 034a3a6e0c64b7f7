"""Embedded mode's hand-off: ingest -> processors -> chdb in one process, with group commit.

Concurrent requests that arrive while an insert runs are folded into the next one, so a 202 still means
"the rows are in the engine" without one insert per request. chdb calls run in a worker thread.
"""
from __future__ import annotations

import asyncio
import logging

from dealbeacon.handoff import HandoffUnavailable

log = logging.getLogger("dealbeacon.embedded")


class EmbeddedHandoff:
    def __init__(self, store, process, *, linger_ms: int = 2, max_batch: int = 5000):
        self.store, self.process = store, process
        self.linger = linger_ms / 1000
        self.max_batch = max_batch
        self._pending: list[tuple[list, list, asyncio.Future]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._healthy = True
        self.batches = 0

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="embedded-handoff")

    async def stop(self) -> None:
        if self._task:
            while self._pending and not self._task.done():  # drain what was already promised
                await asyncio.sleep(0.01)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def ready(self) -> bool:
        return self._task is not None and not self._task.done() and self._healthy

    async def submit(self, events: list[dict], dead_letters: list[dict]) -> None:
        if not events and not dead_letters:
            return
        if self._task is None or self._task.done():
            raise HandoffUnavailable("embedded pipeline is not running")
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((events, dead_letters, fut))
        self._wakeup.set()
        await asyncio.shield(fut)  # a timed-out caller must not cancel a batch others wait on

    def _take(self) -> list[tuple[list, list, asyncio.Future]]:
        taken, size = [], 0
        while self._pending and (not taken or size + len(self._pending[0][0]) <= self.max_batch):
            item = self._pending.pop(0)
            taken.append(item)
            size += len(item[0]) + len(item[1])
        return taken

    def _write(self, tables: dict[str, list[dict]]) -> None:
        for table, rows in tables.items():
            self.store.insert(table, rows)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self.linger:
                await asyncio.sleep(self.linger)
            self._wakeup.clear()
            while self._pending:
                batch = self._take()
                events = [e for b in batch for e in b[0]]
                dead = [d for b in batch for d in b[1]]
                try:
                    tables = self.process(events, dead)
                    await asyncio.to_thread(self._write, tables)
                    self._healthy = True
                    self.batches += 1
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_result(None)
                except Exception as e:  # the engine refused: callers answer 503, clients retry
                    log.exception("embedded insert failed")
                    self._healthy = False
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(HandoffUnavailable(f"store insert failed: {e}"))
