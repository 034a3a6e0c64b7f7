"""Embedded mode's hand-off: ingest -> processors -> chdb in one process, with group commit.

Concurrent requests that arrive while an insert runs are folded into the next one, so a 202 still means
"the rows are in the engine" without one insert per request. chdb calls run in a worker thread.

``EmbeddedProcessor`` runs the same pure processors as the Faust agents: event and dead-letter rows, and
each room's state machine (scores, alerts). Room states live in memory and are snapshotted into the
``room_state`` table with the batch that changed them (loaded again at start); a batch whose insert fails
leaves the states untouched, so the client's retry is not counted twice.
"""
from __future__ import annotations

import asyncio
import logging
import time

from dealbeacon.core import records
from dealbeacon.core.handoff import HandoffUnavailable
from sinks.erase import apply_erasures
from streams import deals, processors
from streams.alerts import ALERTS, AlertConfig

log = logging.getLogger("dealbeacon.app.embedded")


class EmbeddedProcessor:
    def __init__(self, store, listeners=(), acfg: AlertConfig = ALERTS):
        self.store, self.acfg = store, acfg
        self.states: dict[bytes, deals.RoomState] = {}
        self._version = 0
        self.listeners = list(listeners)  # called with each batch's rows once they are stored

    def load(self) -> int:
        """Room states from the last snapshots (blocking: call in a thread)."""
        for site, room_id, state in self.store.query("SELECT site, room_id, state FROM room_state FINAL"):
            self.states[f"{site}/{room_id}".encode()] = deals.loads(state.encode())
        return len(self.states)

    def local_rooms(self, site: str) -> list[bytes]:
        prefix = f"{site}/".encode()
        return [k for k in self.states if k.startswith(prefix)]

    def __call__(self, recs: list[dict], dead_letters: list[dict]):
        """Rows for one batch, and a commit callback that makes the new room states current."""
        changed, tables = processors.process_batch(recs, dead_letters, self.states.get, self.local_rooms,
                                                   acfg=self.acfg)
        if changed:
            self._version = max(self._version + 1, time.time_ns())  # snapshot order, not domain time
            tables["room_state"] = [{"site": st.site, "room_id": st.room.room_id, "version": self._version,
                                     "state": deals.dumps(st).decode()} for st in changed.values()]
        def commit():
            self.states.update(changed)
            for listener in self.listeners:
                try:
                    listener(tables)
                except Exception:  # a listener (seller pages, delivery) never fails the pipeline
                    log.exception("listener failed")

        return tables, commit


class EmbeddedHandoff:
    def __init__(self, store, process, *, linger_ms: int = 2, max_batch: int = 5000):
        self.store, self.process = store, process
        self.linger = linger_ms / 1000
        self.max_batch = max_batch
        self._pending: list[tuple[list, list, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._healthy = True
        self.batches = 0

    async def start(self) -> None:
        self._wakeup.clear()
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

    async def submit(self, events: list[dict], dead_letters: list[dict]) -> dict[int, str]:
        if not events and not dead_letters:
            return {}
        if self._task is None or self._task.done():
            raise HandoffUnavailable("embedded pipeline is not running")
        fut = asyncio.get_running_loop().create_future()
        item = (events, dead_letters, fut)
        self._pending.append(item)
        self._wakeup.set()
        try:
            return await asyncio.shield(fut)  # a timed-out caller must not cancel a batch others wait on
        except asyncio.CancelledError:
            if item in self._pending:  # not taken yet: withdrawn, so the caller's 503 is true
                self._pending.remove(item)
                raise
            # already being written: its outcome is the truth, whatever the caller's deadline said
            return await asyncio.shield(fut)

    def _take(self) -> list[tuple[list, list, asyncio.Future]]:
        taken: list[tuple[list, list, asyncio.Future]] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0][0]) <= self.max_batch):
            item = self._pending.pop(0)
            taken.append(item)
            size += len(item[0]) + len(item[1])
        return taken

    def _write(self, tables: dict[str, list[dict]]) -> None:
        for table, rows in tables.items():
            self.store.insert(table, rows)
        if tables.get("erasures"):  # after the batch's rows, so nothing of the person is written after it
            apply_erasures(self.store.execute, tables["erasures"])

    def _process_and_write(self, events: list[dict], dead: list[dict]):
        tables = self.process(events, dead)
        commit = None
        if isinstance(tables, tuple):
            tables, commit = tables
        self._write(tables)
        return commit

    async def _commit(self, events: list[dict], dead: list[dict]) -> None:
        # processing (the rooms' state machines) runs in the worker thread too: the event loop keeps answering
        # while a large batch is folded in; batches stay strictly sequential, so states are never read mid-update
        commit = await asyncio.to_thread(self._process_and_write, events, dead)
        if commit:
            commit()

    async def _isolate(self, events: list[dict], dead: list[dict]) -> dict[int, str]:
        """One request on its own; if the store refuses it, record by record: what the store refuses becomes a
        dead letter with the engine's reason. Nothing stored at all means the store is down: raise."""
        try:
            await self._commit(events, dead)
            return {}
        except Exception as e:
            if not events:
                raise
            first_error = e
        refused: dict[int, str] = {}
        for i, rec in enumerate(events):
            try:
                await self._commit([rec], [])
            except Exception as e:
                refused[i] = str(e).splitlines()[0][:300]
        if len(refused) == len(events):
            raise first_error
        kept = [records.dead_letter(received_at=int(time.time() * 1000), site=str(events[i].get("site", "")),
                                    stage="store", reason="store_rejected", detail=why,
                                    event_id=str(events[i].get("event_id", "")), payload=records.payload_of(events[i]))
                for i, why in refused.items()]
        try:
            await self._commit([], dead + kept)
        except Exception:
            log.exception("dead letters of a partly refused request could not be stored")
        return refused

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self.linger:
                await asyncio.sleep(self.linger)
            self._wakeup.clear()
            while self._pending:
                batch = self._take()
                outcomes: list[tuple[dict[int, str] | None, Exception | None]]
                try:
                    await self._commit([e for b in batch for e in b[0]], [d for b in batch for d in b[1]])
                    outcomes = [({}, None) for _ in batch]
                except Exception as e:  # one bad record must not fail the others' requests: one by one
                    log.warning("group commit of %d requests failed (%s); retrying them one by one", len(batch), e)
                    outcomes = []
                    for events, dead, _ in batch:
                        try:
                            outcomes.append((await self._isolate(events, dead), None))
                        except Exception as e2:  # the engine refused: callers answer 503, clients retry
                            log.error("embedded insert failed: %s", e2)
                            outcomes.append((None, HandoffUnavailable(f"store insert failed: {e2}")))
                self._healthy = all(err is None for _, err in outcomes)
                self.batches += 1
                for (*_, fut), (refused, err) in zip(batch, outcomes):
                    if not fut.done():
                        fut.set_exception(err) if err else fut.set_result(refused)
