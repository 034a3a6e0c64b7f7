"""Alert delivery: alerts in, notices out to webhooks, Slack and email, through the fatigue policy.

Runs beside the pipeline (in-process in embedded mode): ``offer`` only folds alerts into the policy state,
so ingest and scoring never wait for an endpoint. With a ``state_file`` (embedded mode) the policy state and
the notices being sent are kept on disk after every change: a notice waiting in its aggregation window or held
for quiet hours, or one cut off mid-delivery, goes out once after a restart (channels it already reached, by
``deliveries``, are skipped). Every channel delivery is its own task with retries
(exponential backoff, the same Idempotency-Key each time); the outcome of each is recorded in
``deliveries``. Channel and seller configuration arrive as rows (``channels``, ``sellers``) like any other.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import smtplib
import time
import uuid
from dataclasses import dataclass, replace

import httpx
import orjson
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from dealbeacon.core.tokens import webhook_secret

from . import channels as ch
from .notify import SEVERITY, Notice, NotifyConfig, NotifyState, SellerPrefs, due, offer, state_from_json, state_to_json

log = logging.getLogger("dealbeacon.delivery")
_BATCH_NS = uuid.UUID("5d0c7f7e-2a4b-4f0e-8d36-91c4b7a2e6f0")


@dataclass(frozen=True)
class Channel:
    site: str
    channel_id: str
    kind: str  # webhook | slack | email
    target: str  # URL or email address
    owner: str = ""  # "" = every seller of the site
    min_severity: str = "info"
    enabled: bool = True
    events: tuple[str, ...] = ()  # buyer actions (activity kinds) this webhook receives as they happen


class _Undelivered(Exception):
    """A channel answered, but not 2xx: retried like a network error."""


class Deliverer:
    def __init__(self, site_secrets: dict[str, str], record, *, room_url: str = "", smtp: tuple[str, int] = ("", 0),
                 smtp_from: str = "dealbeacon@localhost", cfg: NotifyConfig = NotifyConfig(), max_attempts: int = 6,
                 backoff_s: float = 1.0, clock=time.time, on_done=None, state_file: str = "", wall=time.time,
                 drain_s: float = 15.0, activity_every_s: float = 2.0):
        """``record(rows)``: async, stores delivery rows; ``on_done(alert_ids)``: called once every channel
        has had its try at a notice (distributed mode commits offsets with it). ``clock`` (seconds) is the
        policy's time (windows, cooldowns, quiet hours: the external clock when the deployment has one);
        ``wall`` stamps signatures and delivery rows."""
        self.site_secrets, self.record, self.on_done = site_secrets, record, on_done
        self.delivered: set[tuple[str, str]] = set()  # (alert_id, channel_id) already delivered (replays skip)
        self.room_url, self.smtp, self.smtp_from = room_url, smtp, smtp_from
        self.cfg, self.max_attempts, self.backoff_s, self.clock = cfg, max_attempts, backoff_s, clock
        self.state = NotifyState()
        self.wall, self.state_file, self.drain_s = wall, state_file, drain_s
        self._sending: dict[str, Notice] = {}  # due notices whose channels have not all had their try
        # buyer actions for subscribed webhooks: (site, channel, room) -> actions not yet recorded as delivered
        # (waiting, or in a batch under way: ``_acts_sending``); at most one batch per room and channel every
        # activity_every_s (rate limit), each action in exactly one batch
        self.activity_queue: dict[tuple[str, str, str], list[dict]] = {}
        self.activity_every_s = activity_every_s
        self._activity_last: dict[tuple[str, str, str], int] = {}
        self._acts_sending: set[str] = set()
        if state_file and os.path.exists(state_file):
            with open(state_file, "rb") as fh:
                saved = orjson.loads(fh.read())
            self.state, sending = state_from_json(saved)
            self._sending = {n.notice_id: n for n in sending}
            for key, acts in saved.get("activities", []):
                self.activity_queue[(key[0], key[1], key[2])] = acts
        self.channels: dict[tuple[str, str], Channel] = {}
        self.prefs: dict[tuple[str, str], SellerPrefs] = {}
        self._inflight: set[asyncio.Task] = set()
        self._sem = asyncio.Semaphore(8)
        self._client: httpx.AsyncClient | None = None

    # -- inputs (cheap, called from the pipeline)
    def apply(self, tables: dict[str, list[dict]]) -> list[str]:
        """Take configuration, delivery history and alerts; returns the ids of alerts that will never be
        notified (muted, below threshold, replays), so a caller tracking them can let them go."""
        for r in tables.get("channels", []):
            self.channels[(r["site"], r["channel_id"])] = Channel(r["site"], r["channel_id"], r["kind"], r["target"],
                                                                  r["owner"], r["min_severity"], bool(r["enabled"]),
                                                                  tuple(r.get("events") or ()))
        for r in tables.get("sellers", []):
            quiet = (r["quiet_start"], r["quiet_end"]) if r["quiet_start"] >= 0 else None
            self.prefs[(r["site"], r["seller_id"])] = SellerPrefs(r["tz"], quiet, tuple(r["muted_rooms"]),
                                                                  r["min_severity"], bool(r["digest"]))
        for r in tables.get("deliveries", []):
            if r["status"] == "delivered":
                self.delivered.update((a, r["channel_id"]) for a in r["alert_ids"])
        dropped = []
        start = self.state
        for a in tables.get("alerts", []):
            before = self.state
            self.state = offer(self.state, a, self.prefs.get((a["site"], a["owner"]), SellerPrefs()), self.cfg)
            if self.state is before:
                dropped.append(a["alert_id"])
        queued = False
        for a in tables.get("activities", []):
            subscribed = [c for c in self.channels.values() if c.enabled and c.kind == "webhook" and c.site == a["site"]
                          and a["kind"] in c.events and c.owner in ("", a["owner"])]
            todo = [c for c in subscribed if (a["activity_id"], c.channel_id) not in self.delivered and a["activity_id"]
                    not in {q["activity_id"] for q in self.activity_queue.get((c.site, c.channel_id, a["room_id"]), ())}]
            for c in todo:
                self.activity_queue.setdefault((c.site, c.channel_id, a["room_id"]), []).append(a)
            queued |= bool(todo)
            if not todo:
                dropped.append(a["activity_id"])
        if self.state is not start or queued:
            self._save()
        return dropped

    def _save(self) -> None:
        """Keep the policy state and the notices being sent (atomically), when a state file was given."""
        if not self.state_file:
            return
        tmp = f"{self.state_file}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps({**state_to_json(self.state, list(self._sending.values())),
                                   "activities": [[list(k), acts] for k, acts in self.activity_queue.items() if acts]}))
        os.replace(tmp, self.state_file)

    # -- the loop
    async def run(self, every_s: float = 1.0) -> None:
        self._client = httpx.AsyncClient(timeout=10)
        for notice in list(self._sending.values()):  # cut off by a restart: their channels get their try now
            self._start(notice)
        try:
            while True:
                now = self.clock()
                if now is not None:  # an external clock nobody has posted yet: no time has passed
                    self.tick(int(now * 1000))
                await asyncio.sleep(every_s)
        finally:
            # a stop lets the deliveries under way finish (bounded): one cut between its send and its record
            # would be sent again after a restart
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=self.drain_s)
            for t in list(self._inflight):
                t.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._client.aclose()

    def tick(self, now_ms: int) -> list:
        self.state, notices = due(self.state, self.prefs, now_ms, self.cfg)
        for n in notices:
            self._sending[n.notice_id] = n
        if notices:
            self._save()
        for n in notices:
            self._start(n)
        for key, acts in self.activity_queue.items():
            waiting = [a for a in acts if a["activity_id"] not in self._acts_sending]
            if waiting and now_ms - self._activity_last.get(key, -10**15) >= self.activity_every_s * 1000:
                self._activity_last[key] = now_ms
                batch = waiting[:100]  # they stay queued (and in the state file) until their delivery is recorded
                self._acts_sending.update(a["activity_id"] for a in batch)
                self._start_task(self._deliver_activities(key, batch))
        return notices

    def _start(self, notice) -> None:
        self._start_task(self._deliver_all(notice))

    def _start_task(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _deliver_activities(self, key: tuple[str, str, str], batch: list[dict]) -> None:
        site, channel_id, room_id = key
        c = self.channels.get((site, channel_id))
        ids = [a["activity_id"] for a in batch]
        # resumed after a crash between a send and its state write: what deliveries says was sent is not again
        batch = [a for a in batch if (a["activity_id"], channel_id) not in self.delivered]
        if not batch:
            c = None
        if c is not None:
            sent = [a["activity_id"] for a in batch]
            batch_id = str(uuid.uuid5(_BATCH_NS, f"{channel_id}/{sent[0]}/{sent[-1]}/{len(sent)}"))
            secret = webhook_secret(self.site_secrets.get(site, ""), channel_id)

            target = c.target

            async def send() -> int:
                assert self._client is not None, "run() opens the HTTP client"
                body, headers = ch.activity_request(batch_id, site, room_id, batch, secret, int(self.wall()))
                return (await self._client.post(target, content=body, headers=headers)).status_code
            ok, attempts, status, error = await self._attempts(send)
            await self._record({"notice_id": batch_id, "version": 1, "channel_id": channel_id, "site": site,
                                "room_id": room_id, "owner": "", "alert_ids": sent, "status": "delivered" if ok else "failed",
                                "attempts": attempts, "http_status": status, "error": error, "at": int(self.wall() * 1000)})
            if ok:
                self.delivered.update((i, channel_id) for i in sent)
        done = set(ids)
        self.activity_queue[key] = [a for a in self.activity_queue.get(key, []) if a["activity_id"] not in done]
        self._acts_sending -= done
        self._save()
        if self.on_done:
            self.on_done(ids)

    async def _deliver_all(self, notice) -> None:
        jobs = []
        for c in self._channels_for(notice):
            todo = tuple(a for a in notice.alerts if (a["alert_id"], c.channel_id) not in self.delivered)
            if todo:  # a replay after a crash: only what this channel has not had yet
                jobs.append(self._deliver(replace(notice, alerts=todo), c))
        await asyncio.gather(*jobs)
        if self._sending.pop(notice.notice_id, None) is not None:
            self._save()
        if self.on_done:
            self.on_done([a["alert_id"] for a in notice.alerts])

    def _channels_for(self, notice) -> list[Channel]:
        return [c for c in self.channels.values() if c.enabled and c.site == notice.site
                and c.owner in ("", notice.owner) and SEVERITY[notice.severity] >= SEVERITY[c.min_severity]]

    async def _attempts(self, send) -> tuple[bool, int, int, str]:
        """``send()`` (async, returns a status) with retries (exponential backoff, ``max_attempts``); returns
        (delivered, attempts, last status, last error)."""
        attempts, status, error = 0, 0, ""

        async def once() -> None:
            nonlocal attempts, status, error
            attempts += 1
            try:
                status = await send()
            except Exception as e:  # network, SMTP: retried like a 5xx
                status, error = 0, f"{type(e).__name__}: {e}"[:300]
                raise
            error = "" if 200 <= status < 300 else f"HTTP {status}"
            if error:
                raise _Undelivered(error)

        async with self._sem:
            with contextlib.suppress(Exception):  # what failed is returned (status, error, attempts)
                await AsyncRetrying(stop=stop_after_attempt(self.max_attempts), reraise=True,
                                    wait=wait_exponential(multiplier=self.backoff_s, max=3600))(once)
        return not error, attempts, status, error

    async def _record(self, row: dict) -> None:
        try:
            await self.record([row])
        except Exception:
            log.exception("could not record a delivery")

    async def _deliver(self, notice, c: Channel) -> None:
        ok, attempts, status, error = await self._attempts(lambda: self._send(notice, c))
        (log.info if ok else log.warning)("notice %s -> %s: %s after %d attempt(s)", notice.notice_id[:8],
                                          c.channel_id, "delivered" if ok else error, attempts)
        if ok:
            self.delivered.update((a["alert_id"], c.channel_id) for a in notice.alerts)
        await self._record({"notice_id": notice.notice_id, "version": 1, "channel_id": c.channel_id, "site": c.site,
                            "room_id": notice.room_id, "owner": notice.owner,
                            "alert_ids": [a["alert_id"] for a in notice.alerts], "status": "delivered" if ok else "failed",
                            "attempts": attempts, "http_status": status, "error": error, "at": int(self.wall() * 1000)})

    async def _send(self, notice, c: Channel) -> int:
        url = ch.notice_link(self.room_url, notice)
        assert self._client is not None, "run() opens the HTTP client"
        if c.kind == "webhook":
            secret = webhook_secret(self.site_secrets.get(c.site, ""), c.channel_id)
            body, headers = ch.webhook_request(notice, secret, url, int(self.wall()))
            return (await self._client.post(c.target, content=body, headers=headers)).status_code
        if c.kind == "slack":
            return (await self._client.post(c.target, json=ch.slack_message(notice, url))).status_code
        if c.kind == "email":
            msg = ch.email_message(notice, self.smtp_from, c.target, url)
            await asyncio.to_thread(self._smtp_send, msg)
            return 250
        raise ValueError(f"unknown channel kind {c.kind!r}")

    def _smtp_send(self, msg) -> None:
        host, port = self.smtp
        with smtplib.SMTP(host, port, timeout=10) as s:
            s.send_message(msg)
