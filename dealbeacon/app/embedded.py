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
import collections
import itertools
import logging
import time
import zlib
from collections.abc import Callable

import orjson

from dealbeacon.core import records
from dealbeacon.core.handoff import HandoffUnavailable
from dealbeacon.core.sqltext import sql_string
from sinks.erase import apply_erasures
from sinks.store import store_unavailable
from streams import deals, processors
from streams.alerts import ALERTS, AlertConfig

log = logging.getLogger("dealbeacon.app.embedded")



async def _cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel and wait; a task that survived a cancellation (one swallowed by a library) is cancelled again."""
    for t in tasks:
        t.cancel()
    while not all(t.done() for t in tasks):
        await asyncio.wait(tasks, timeout=1.0)
        for t in tasks:
            if not t.done():
                t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

class RoomStates:
    """Every room's latest state in memory: the ``hot`` most recently stored decoded, the others as their JSON
    compressed (zlib level 1: about 2.7 KB for a simulated 90-day room against about 31 KB decoded), decoded
    again when a record reaches them. The same states as a plain dict, so every output is unchanged.

    The writer reads with ``peek`` (a cold room is decoded for the batch, not made hot: a site-wide tick visits
    every room in key order, and making each hot pushed another out, encoding it, for every room past the
    first ``hot``) and stores the batch's changed states with ``put``, with the JSON it wrote to ``room_state``
    when it has it: a hot state keeps that encoding, so pushing it out costs its compression only.

    With ``fetch`` (keys -> their JSON as ``room_state`` holds it), a closed deal pushed out of the hot rooms
    leaves memory altogether: a tick does not reach it (``open_keys_of``), and the store has its latest state
    (every state put here was written to ``room_state`` first, or loaded from it). A record that reaches it
    later reads it back: one query per batch for the rooms the batch reaches (``process_rooms`` tells ``prefetch``
    them before it reads any), one per room otherwise."""

    def __init__(self, hot: int = 1000, closed_stages: tuple[str, ...] = (),
                 fetch: Callable[[list[bytes]], dict[bytes, bytes]] | None = None):
        self.hot = hot
        self.closed_stages = frozenset(closed_stages)
        self._hot: collections.OrderedDict[bytes, deals.RoomState] = collections.OrderedDict()
        self._encoded: dict[bytes, bytes] = {}  # a hot state's JSON, when known (always that very state's)
        self._cold: dict[bytes, bytes] = {}
        self._by_site: dict[str, dict[bytes, None]] = {}  # insertion-ordered key sets
        self._closed: set[bytes] = set()  # rooms whose deal is closed (a tick leaves them as they are)
        self.fetch = fetch
        self._out: set[bytes] = set()  # closed deals held in the store only
        self._fetched: dict[bytes, bytes] = {}  # this batch's prefetched JSON of rooms held in the store only

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold) + len(self._out)

    def _read_out(self, key: bytes) -> deals.RoomState:
        blob = self._fetched.get(key)
        if blob is None:
            assert self.fetch is not None  # a room leaves memory only with a store to read it from
            blob = self.fetch([key]).get(key)
            if blob is None:  # the store lost what it acknowledged: fail the range (it is retried), guess nothing
                raise RuntimeError(f"room state {key!r} is not in room_state")
        return deals.loads(blob)

    def prefetch(self, keys: list[bytes]) -> None:
        """Read at once the rooms of ``keys`` held in the store only, for the batch about to run."""
        out = [k for k in keys if k in self._out and k not in self._fetched]
        if out and self.fetch is not None:
            self._fetched.update(self.fetch(out))

    def end_batch(self) -> None:
        self._fetched.clear()

    def get(self, key: bytes) -> deals.RoomState | None:
        """The room's state, made the most recently used (a cold one is decoded and made hot)."""
        state = self._hot.get(key)
        if state is not None:
            self._hot.move_to_end(key)
            return state
        blob = self._cold.pop(key, None)
        if blob is not None:
            state = deals.loads(zlib.decompress(blob))
        elif key in self._out:
            state = self._read_out(key)
            self._out.discard(key)
        else:
            return None
        self._hot[key] = state
        self._cool()
        return state

    def peek(self, key: bytes) -> deals.RoomState | None:
        """The room's state, what is hot and cold left as it is."""
        state = self._hot.get(key)
        if state is not None:
            return state
        blob = self._cold.get(key)
        if blob is not None:
            return deals.loads(zlib.decompress(blob))
        return self._read_out(key) if key in self._out else None

    def put(self, key: bytes, state: deals.RoomState, encoded: bytes | None = None) -> None:
        """Store ``state`` as the room's; ``encoded``: ``deals.dumps(state)``, if the caller has it."""
        self._cold.pop(key, None)
        self._out.discard(key)
        self._hot[key] = state
        self._hot.move_to_end(key)
        if encoded is not None:
            self._encoded[key] = encoded
        else:
            self._encoded.pop(key, None)
        self._by_site.setdefault(state.site, {})[key] = None
        if deals.tick_leaves(state, self.closed_stages):
            self._closed.add(key)
        else:
            self._closed.discard(key)
        self._cool()

    def _cool(self) -> None:
        while len(self._hot) > self.hot:
            key, state = self._hot.popitem(last=False)
            encoded = self._encoded.pop(key, None)
            if self.fetch is not None and key in self._closed:
                self._out.add(key)
            else:
                self._cold[key] = zlib.compress(encoded if encoded is not None else deals.dumps(state), 1)

    def keys_of(self, site: str) -> list[bytes]:
        return list(self._by_site.get(site, ()))

    def open_keys_of(self, site: str) -> list[bytes]:
        """The site's rooms a tick can change: all but the closed deals (never decoded for a tick)."""
        closed = self._closed
        return [k for k in self._by_site.get(site, ()) if k not in closed]

    def items(self) -> list[tuple[bytes, deals.RoomState]]:
        """Every room, decoded (diagnostics and tests; does not change what is hot)."""
        self.prefetch(sorted(self._out))
        try:
            out = []
            for keys in self._by_site.values():
                for k in keys:
                    state = self.peek(k)
                    assert state is not None  # every listed room is held somewhere
                    out.append((k, state))
            return out
        finally:
            self.end_batch()


class EmbeddedProcessor:
    def __init__(self, store, listeners=(), acfg: AlertConfig = ALERTS, hot_rooms: int = 1000):
        self.store, self.acfg = store, acfg
        # chdb reads the accepted-event records into the events table's rows itself (sinks/store.py): building
        # each row in Python (event_row) and encoding it took the writer 4.4 us of GIL time per event, encoding
        # the record 0.9 us (2026-12-06, compiled core)
        self.event_rows = not getattr(store, "reads_event_records", False)
        self.states = RoomStates(hot_rooms, acfg.closed_stages, fetch=self._fetch)
        self._version = 0
        self.listeners = list(listeners)  # called with each batch's rows once they are stored

    def load(self, page: int = 2000) -> int:
        """Room states from the last snapshots, a page at a time (blocking: call in a thread)."""
        after = "'', ''"
        while True:
            rows = self.store.query("SELECT site, room_id, state FROM room_state FINAL"
                                    f" WHERE (site, room_id) > ({after}) ORDER BY site, room_id LIMIT {page}")
            for site, room_id, state in rows:
                encoded = state.encode()
                self.states.put(f"{site}/{room_id}".encode(), deals.loads(encoded), encoded)
            if len(rows) < page:
                return len(self.states)
            after = f"{sql_string(rows[-1][0])}, {sql_string(rows[-1][1])}"

    def _fetch(self, keys: list[bytes]) -> dict[bytes, bytes]:
        """Rooms' latest states as ``room_state`` holds them (JSON), a few hundred keys a query."""
        out: dict[bytes, bytes] = {}
        for i in range(0, len(keys), 500):
            pairs = ", ".join(f"({sql_string(site)}, {sql_string(room)})"
                              for site, room in (k.decode().split("/", 1) for k in keys[i:i + 500]))
            for site, room_id, state in self.store.query(
                    f"SELECT site, room_id, state FROM room_state FINAL WHERE (site, room_id) IN ({pairs})"):
                out[f"{site}/{room_id}".encode()] = state.encode()
        return out

    def local_rooms(self, site: str) -> list[bytes]:
        return self.states.keys_of(site)

    def __call__(self, recs: list[dict], dead_letters: list[dict], partition: int = -1, offsets: list[int] | None = None):
        """Rows for one batch, and a commit callback that makes the new room states current. With the local
        log: ``partition`` is the log's id and ``offsets`` each record's log position, so a range written again
        after a crash skips, room by room, what a saved state already holds."""
        try:
            changed, tables = processors.process_batch(
                recs, dead_letters, self.states.peek, self.local_rooms, partition,
                offsets if offsets is not None else -1, acfg=self.acfg, ticked_rooms=self.states.open_keys_of,
                prefetch=self.states.prefetch, event_rows=self.event_rows)
        finally:
            self.states.end_batch()
        encoded = {key: deals.dumps(st) for key, st in changed.items()}
        if changed:
            self._version = max(self._version + 1, time.time_ns())  # snapshot order, not domain time
            tables["room_state"] = [{"site": st.site, "room_id": st.room.room_id, "version": self._version,
                                     "state": encoded[key].decode()} for key, st in changed.items()]

        def commit():
            for key, state in changed.items():
                self.states.put(key, state, encoded[key])
            for listener in self.listeners:
                try:
                    listener(tables)
                except Exception:  # a listener (seller pages, delivery) never fails the pipeline
                    log.exception("listener failed")

        return tables, commit


def write_tables(store, tables: dict[str, list[dict]], token: str | None = None) -> None:
    """One insert per table (``room_state`` last: the processor adds it last), then erasures."""
    for table, rows in tables.items():
        store.insert(table, rows, dedup_token=token)
    if tables.get("erasures"):  # after the batch's rows, so nothing of the person is written after it
        apply_erasures(store.execute, tables["erasures"])


def refusal(e: BaseException) -> str:
    """The engine's reason for refusing a record: its message's first line, or the error's type when the
    message is empty (an empty message once made the writer fail the whole range, as if the store were down)."""
    return ((str(e).splitlines() or [""])[0] or type(e).__name__)[:300]


def refused_dead_letters(events: list[dict], refused: dict[int, str]) -> list[dict]:
    """``store_rejected`` dead letters for the records the store refused (position -> the engine's reason)."""
    return [records.dead_letter(received_at=int(time.time() * 1000), site=str(events[i].get("site", "")),
                                stage="store", reason="store_rejected", detail=why,
                                event_id=str(events[i].get("event_id", "")), payload=records.payload_of(events[i]))
            for i, why in refused.items()]


class GroupQueue:
    """Requests waiting for the next group write (one chdb commit, or one log append), seen from the callers.

    A caller waits on its own future. Cancelled before its request was taken, it withdraws it, so its 503 is
    true; once taken, it waits for that write's outcome whatever its deadline said (``asyncio.shield``: a
    timed-out caller must not cancel a write others wait on). ``records``: taken or waiting, until settled."""

    def __init__(self, linger_s: float):
        self.items: list[tuple[list, list, asyncio.Future]] = []
        self.records = 0
        self.linger = linger_s
        self._wakeup = asyncio.Event()

    async def wait(self, events: list[dict], dead_letters: list[dict]):
        fut = asyncio.get_running_loop().create_future()
        item = (events, dead_letters, fut)
        self.items.append(item)
        self.records += len(events) + len(dead_letters)
        self._wakeup.set()
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if item in self.items:  # not taken yet: withdrawn
                self.items.remove(item)
                self.records -= len(events) + len(dead_letters)
                raise
            return await asyncio.shield(fut)  # already being written: its outcome is the truth

    async def next_group(self) -> None:
        """Until a request waits, then ``linger`` more for others to join it."""
        await self._wakeup.wait()
        if self.linger:
            await asyncio.sleep(self.linger)
        self._wakeup.clear()

    def take(self, max_events: int | None = None) -> list[tuple[list, list, asyncio.Future]]:
        """Waiting requests in order; with ``max_events``, as many as fit (always at least one)."""
        if max_events is None:
            taken, self.items = self.items, []
            return taken
        taken = []
        size = 0
        while self.items and (not taken or max_events is None or size + len(self.items[0][0]) <= max_events):
            item = self.items.pop(0)
            taken.append(item)
            size += len(item[0]) + len(item[1])
        return taken

    def settle(self, taken: list[tuple[list, list, asyncio.Future]]) -> None:
        """Taken requests whose write is over (stored, logged or refused)."""
        self.records -= sum(len(e) + len(d) for e, d, _ in taken)


class EmbeddedHandoff:
    """The direct hand-off (``DEALBEACON_EMBEDDED_LOG=false``): the 202 waits until the rows are in chdb."""

    def __init__(self, store, process, *, linger_ms: int = 2, max_batch: int = 5000):
        self.store, self.process = store, process
        self.max_batch = max_batch
        self.queue = GroupQueue(linger_ms / 1000)
        self._task: asyncio.Task | None = None
        self._healthy = True
        self.batches = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="embedded-handoff")

    async def stop(self) -> None:
        if self._task:
            while self.queue.items and not self._task.done():  # drain what was already promised
                await asyncio.sleep(0.01)
            await _cancel_all([self._task])
            self._task = None

    def ready(self) -> bool:
        return self._task is not None and not self._task.done() and self._healthy

    def shedding(self, admitted: int = 0) -> bool:
        return False

    async def submit(self, events: list[dict], dead_letters: list[dict]) -> dict[int, str]:
        if not events and not dead_letters:
            return {}
        if self._task is None or self._task.done():
            raise HandoffUnavailable("embedded pipeline is not running")
        return await self.queue.wait(events, dead_letters)

    def _write(self, tables: dict[str, list[dict]]) -> None:
        write_tables(self.store, tables)

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
        dead letter with the engine's reason. Nothing stored at all, or a refusal that says the store cannot take
        anything now (``store_unavailable``: disk, memory, network), means the store is down: raise."""
        try:
            await self._commit(events, dead)
            return {}
        except Exception as e:
            if not events or store_unavailable(e):  # the store cannot take anything now: not the records' fault
                raise
            first_error = e
        refused: dict[int, str] = {}
        for i, rec in enumerate(events):
            try:
                await self._commit([rec], [])
            except Exception as e:
                # (a store that goes away mid-way is blamed on the records left: the ones before are stored and
                # this hand-off keeps no offsets, so a 503 and the client's retry would fold them twice)
                refused[i] = refusal(e)
        if len(refused) == len(events):
            raise first_error
        kept = refused_dead_letters(events, refused)
        try:
            await self._commit([], dead + kept)
        except Exception:
            log.exception("dead letters of a partly refused request could not be stored")
        return refused

    async def _run(self) -> None:
        while True:
            await self.queue.next_group()
            while self.queue.items:
                batch = self.queue.take(self.max_batch)
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
                self.queue.settle(batch)
                for (*_, fut), (refused, err) in zip(batch, outcomes):
                    if not fut.done():
                        fut.set_exception(err) if err else fut.set_result(refused)


def record_offset(position: int, index: int) -> int:
    """A record's place in the local log, as the offset rooms keep: its entry's position and its index there
    (a room skips, on a replay, exactly the records its saved state holds, also when an entry was written
    record by record)."""
    return (position << 20) | index


def _release(entries: list[_Entry], tables: dict[str, list[dict]]) -> None:
    """Drop an applied range's records and rows a slice at a time (run in a thread: between slices the
    interpreter can hand the GIL to the event loop; one ``del`` of them all is one C call that holds it). The
    lists are the range's own: the hand-off's callers have been answered and listeners (``commit``) do not keep
    them."""
    for e in entries:
        e.events = e.dead = []
    for rows in tables.values():
        while rows:
            del rows[-256:]


class _Entry:
    __slots__ = ("pos", "events", "dead", "size")

    def __init__(self, pos: int, events: list[dict], dead: list[dict], size: int):
        self.pos, self.events, self.dead, self.size = pos, events, dead, size


class LoggedHandoff:
    """The default embedded hand-off: a 202 means the request's records are appended to the local log
    (dealbeacon/app/locallog.py) and fsync'd. Requests that arrive together share one write and one fdatasync.

    One writer applies the log to chdb in rounds, at most one per ``apply_ms`` (sooner when ``apply_max_records``
    wait): a range's records go through the processors at once, one insert per table, every insert tokened by
    the log range, the room states last; then the log's cursor moves past the range. Rows become queryable within about
    ``apply_ms`` of the 202. After a crash, start() replays the log from the cursor, the interrupted range as
    the same range (its tokens repeat, so the store drops what it already took), and rooms skip records their
    saved state already holds (the state carries the log position).

    A range the store refuses is written entry by entry, then record by record: what the store refuses
    becomes a ``store_rejected`` dead letter. If the store takes nothing (not even those dead letters), or
    refuses with an error that says it cannot take anything now (``sinks.store.store_unavailable``: disk,
    memory, too many parts, network), it is down, no record is blamed: the writer retries the same range
    later, and requests keep being logged until the backlog (records or bytes not yet applied) reaches its
    bound; then submit answers 503, before memory or disk run out.
    """

    def __init__(self, store, process, locallog, *, linger_ms: int = 2, apply_ms: int = 250,
                 apply_max_records: int = 20_000, backlog_records: int = 100_000, backlog_bytes: int = 512 << 20,
                 on_behind: Callable[[bool], None] | None = None, linger_behind_ms: int | None = None):
        self.store, self.process, self.log = store, process, locallog
        self.on_behind, self.behind = on_behind, False
        self.apply_s = apply_ms / 1000
        self.queue = GroupQueue(linger_ms / 1000)
        self.linger_s = linger_ms / 1000
        self._shed_at = -1e9  # when the door last refused a request (monotonic)
        self.linger_behind_s = self.linger_s if linger_behind_ms is None else linger_behind_ms / 1000
        self.apply_max_records = apply_max_records
        self.max_backlog_records, self.max_backlog_bytes = backlog_records, backlog_bytes
        self._unapplied: collections.deque[_Entry] = collections.deque()
        self.backlog_records = self.backlog_bytes = 0
        self._apply_wakeup = asyncio.Event()  # apply now: a whole range waits, or stop() drains
        self._arrived = asyncio.Event()  # the log has records not yet applied
        self._tasks: list[asyncio.Task] = []
        self._forced: tuple[int, int] | None = None  # a range to write again exactly as it was begun
        self._log_ok = self.store_ok = True
        self.appends = self.applied_ranges = 0

    async def start(self) -> None:
        for pos, payload in await asyncio.to_thread(self.log.open):
            d = orjson.loads(payload)
            self._push(_Entry(pos, d["e"], d["d"], len(payload)))
        self._forced = self.log.applying
        if self._unapplied:
            log.info("local log: %d records not yet applied, replaying from position %d", self.backlog_records,
                     self._unapplied[0].pos)
        self._apply_wakeup.set()  # replay at once
        self._tasks = [asyncio.create_task(self._append_loop(), name="local-log-append"),
                       asyncio.create_task(self._apply_loop(), name="local-log-apply")]

    async def stop(self, drain_s: float = 30.0) -> None:
        """Log what was promised, apply what the store takes within ``drain_s`` (the rest stays in the log)."""
        if not self._tasks:
            return
        deadline = time.monotonic() + drain_s
        while (self.queue.items or self._unapplied) and all(not t.done() for t in self._tasks) \
                and time.monotonic() < deadline:
            self._apply_wakeup.set()
            await asyncio.sleep(0.01)
        await _cancel_all(self._tasks)
        self._tasks = []
        await asyncio.to_thread(self.log.close)

    def ready(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks) and self._log_ok and not self._full(1)

    def shedding(self, admitted: int = 0) -> bool:
        if not self._full(max(1, admitted)):
            return False
        self._shed_at = time.monotonic()  # the door refuses: overloaded, whatever the backlog itself holds
        self._pressure()
        return True

    def _full(self, adding: int) -> bool:
        return (self.backlog_records + self.queue.records + adding > self.max_backlog_records
                or self.backlog_bytes >= self.max_backlog_bytes)

    def _push(self, entry: _Entry) -> None:
        self._unapplied.append(entry)
        self._arrived.set()
        self.backlog_records += len(entry.events) + len(entry.dead)
        self.backlog_bytes += entry.size
        self._pressure()

    def _pressure(self) -> None:
        """Tell ``on_behind`` when the writer falls behind or catches up: the backlog over half its bound, or the
        door refused a request within the last second (it counts the requests let in, so under overload it
        refuses while the backlog itself may hold less than half: 2x overload then flipped between the two
        states and stored 0.73 of the sustained rate, against 0.93 with the linger at 5 ms throughout). Behind,
        the process favours the writer that drains the backlog over the answers (dealbeacon up: a longer GIL
        switch interval; here, a longer linger: fewer appends)."""
        behind = (2 * self.backlog_records > self.max_backlog_records or 2 * self.backlog_bytes > self.max_backlog_bytes
                  or time.monotonic() - self._shed_at < 1.0)
        if behind != self.behind:
            self.behind = behind
            self.queue.linger = self.linger_behind_s if behind else self.linger_s
            if self.on_behind is not None:
                self.on_behind(behind)

    async def submit(self, events: list[dict], dead_letters: list[dict]) -> dict[int, str]:
        if not events and not dead_letters:
            return {}
        if not self._tasks or any(t.done() for t in self._tasks):
            raise HandoffUnavailable("embedded pipeline is not running")
        if self._full(len(events) + len(dead_letters)):
            raise HandoffUnavailable(f"local log backlog full ({self.backlog_records} records, {self.backlog_bytes} "
                                     "bytes not yet in the store)")
        return await self.queue.wait(events, dead_letters)

    def _encode_and_append(self, batch: list[tuple[list, list, asyncio.Future]]) -> tuple[int, list[int]]:
        payloads = [orjson.dumps({"e": events, "d": dead}) for events, dead, _ in batch]
        return self.log.append(payloads), [len(p) for p in payloads]

    async def _append_loop(self) -> None:
        while True:
            await self.queue.next_group()
            while self.queue.items:
                batch = self.queue.take()
                try:
                    first, sizes = await asyncio.to_thread(self._encode_and_append, batch)
                except Exception as e:  # nothing of this append stayed in the log: every caller answers 503
                    self._log_ok = False
                    self.queue.settle(batch)
                    log.error("local log append failed: %s", e)
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(HandoffUnavailable(f"local log append failed: {e}"))
                    continue
                self._log_ok = True
                self.queue.settle(batch)  # and, below, counted in the backlog (no await between the two)
                self.appends += 1
                for i, ((events, dead, fut), size) in enumerate(zip(batch, sizes)):
                    self._push(_Entry(first + i, events, dead, size))
                    if not fut.done():
                        fut.set_result({})
                if self.backlog_records >= self.apply_max_records:
                    self._apply_wakeup.set()

    @staticmethod
    async def _wait_event(event: asyncio.Event, timeout: float | None) -> None:
        # asyncio.wait, not wait_for: 3.11's wait_for can swallow a cancellation that lands as the event fires,
        # and stop() then waited for this loop for ever (seen once in CI)
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()

    async def _apply_loop(self) -> None:
        """At most one round per ``apply_ms``, a round applying what the log holds as it begins: a record that
        finds no round begun within ``apply_ms`` is applied at once, records that arrive while a round runs wait
        for the next round, which begins ``apply_ms`` after this one began (at once when a whole range,
        ``apply_max_records``, waits). Under load, a round per interval keeps ranges
        large: applying whatever had come in during the last range, at once, made a stream of small ranges whose
        fixed cost (a chdb part per table, then its merges) took most of the writer's time and the CPU that the
        answers need."""
        started = time.monotonic()
        while True:
            if not self._unapplied:
                self._apply_wakeup.clear()  # nothing to hurry
                await self._wait_event(self._arrived, None)
                self._arrived.clear()
                continue
            delay = started + self.apply_s - time.monotonic()
            if delay > 0 and not self._apply_wakeup.is_set():
                await self._wait_event(self._apply_wakeup, delay)
            self._apply_wakeup.clear()
            self._arrived.clear()
            started = time.monotonic()
            last = self._unapplied[-1].pos  # the round: what is in the log as it begins
            while self._unapplied and self._unapplied[0].pos <= last:
                try:
                    applied = await self._apply_next()
                except Exception:  # the log's cursor could not be written (disk): the same range, later
                    log.exception("applying the local log failed")
                    self._forced, self.store_ok, applied = self.log.applying, False, False
                if not applied:
                    await asyncio.sleep(min(5.0, max(self.apply_s, 1.0)))  # the store is down: the same range later
                    break
            if self.backlog_records >= self.apply_max_records:
                self._apply_wakeup.set()

    def _next_range(self) -> list[_Entry]:
        if self._forced:
            last = self._forced[1]
            return list(itertools.takewhile(lambda e: e.pos <= last, self._unapplied))
        out: list[_Entry] = []
        n = 0
        for e in self._unapplied:
            size = len(e.events) + len(e.dead)
            if out and n + size > self.apply_max_records:
                break
            out.append(e)
            n += size
        return out

    async def _apply_next(self) -> bool:
        entries = self._next_range()
        first, last = entries[0].pos, entries[-1].pos
        if self.log.applying != (first, last):
            await asyncio.to_thread(self.log.begin, first, last)
        try:
            tables = await self._commit(entries, f"log{self.log.log_id}:{first}-{last}")
        except Exception as e:  # one bad record must not hold the others: entry by entry, record by record
            if store_unavailable(e):  # disk, memory, network: no record's fault, the same range later
                log.warning("applying log range %d-%d failed, the store is unavailable (%s)", first, last, e)
                self._forced, self.store_ok = (first, last), False  # the same range, same dedup token, later
                return False
            log.warning("applying log range %d-%d failed (%s); entry by entry", first, last, e)
            for entry in entries:
                if entry.pos > last or entry is not self._unapplied[0]:
                    break
                if not await self._apply_alone(entry):
                    self.store_ok = False
                    return False
            self.store_ok, self._forced = True, None
            return True
        await asyncio.to_thread(self.log.applied_through, last)
        self._pop_through(last)
        self.store_ok, self._forced = True, None
        self.applied_ranges += 1
        # the range's records and rows (thousands of dicts) are freed in the worker thread, a slice at a time, not
        # on the event loop when this frame ends: that held the loop 10-20 ms a range, every request waiting
        await asyncio.to_thread(_release, entries, tables)
        return True

    def _pop_through(self, last: int) -> None:
        while self._unapplied and self._unapplied[0].pos <= last:
            e = self._unapplied.popleft()
            self.backlog_records -= len(e.events) + len(e.dead)
            self.backlog_bytes -= e.size
        self._pressure()

    async def _commit(self, entries: list[_Entry], token: str) -> dict[str, list[dict]]:
        """Apply a range (gathered, folded and written in the worker thread); returns its rows."""
        tables, commit = await asyncio.to_thread(self._apply_range, entries, token)
        commit()
        return tables

    def _apply_range(self, entries: list[_Entry], token: str):
        events = [r for e in entries for r in e.events]
        offsets = [record_offset(e.pos, i) for e in entries for i in range(len(e.events))]
        dead = [d for e in entries for d in e.dead]
        return self._process_and_write(events, dead, offsets, token)

    async def _commit_records(self, events: list[dict], dead: list[dict], offsets: list[int], token: str) -> None:
        _, commit = await asyncio.to_thread(self._process_and_write, events, dead, offsets, token)
        commit()

    def _process_and_write(self, events, dead, offsets, token):
        tables, commit = self.process(events, dead, partition=self.log.log_id, offsets=offsets)
        write_tables(self.store, tables, token)
        return tables, commit

    async def _apply_alone(self, entry: _Entry) -> bool:
        """One entry as its own range; if the store refuses it, record by record (refusals dead-lettered). False:
        the store took nothing, it is down (the entry stays first in line, to be written again as this range)."""
        pos, base = entry.pos, f"log{self.log.log_id}:{entry.pos}"
        self._forced = (pos, pos)
        await asyncio.to_thread(self.log.begin, pos, pos)
        try:
            await self._commit([entry], f"{base}-{pos}")
        except Exception as e:
            if store_unavailable(e):
                return False
            refused: dict[int, str] = {}
            for i, rec in enumerate(entry.events):
                try:
                    await self._commit_records([rec], [], [record_offset(pos, i)], f"{base}.{i}")
                except Exception as e:
                    if store_unavailable(e):  # the store went away meanwhile: the entry is written again later
                        log.warning("log position %d: the store is unavailable (%s)", pos, e)
                        return False  # (records written alone so far are skipped by their rooms on the replay)
                    refused[i] = refusal(e)
            kept = refused_dead_letters(entry.events, refused)
            try:  # the request's own dead letters, and the refused records as dead letters
                await self._commit_records([], entry.dead + kept, [], f"{base}.dead")
            except Exception as e:
                log.error("the store takes nothing (log position %d): %s", pos, e)
                return False
            if refused:
                log.warning("log position %d: the store refused %d of %d records (dead-lettered)", pos, len(refused),
                            len(entry.events))
        await asyncio.to_thread(self.log.applied_through, pos)
        self._pop_through(pos)
        self._forced = None
        return True
