"""Alert fatigue policy: which alerts become a notice to a seller, and when. Pure, explicit ``now`` (ms).

Alerts (rows of the ``alerts`` table) are offered as they come; ``due`` returns the notices ready to send:

- mute per room, and a minimum severity per seller: such alerts never become notices;
- episodes: a room's alerts less than ``episode_gap_s`` apart are one episode and one notice, first sent
  ``aggregate_s`` after its first alert (DocSend-style: a visit is reported a few minutes in), later alerts
  folded in as updates of the same notice (same id, higher version; Slack edits the message) at most every
  ``update_every_s``;
- per-room cooldown: a room's next episode is not notified sooner than ``cooldown_s`` after the last one;
- quiet hours in the seller's time zone: a notice due then is held and goes out when they end;
- ``digest`` sellers get one notice per day (at ``digest_hour`` local time) with everything pending.

One alert per episode is the core's job (streams/deals.py); this decides delivery. Not wired yet (issue 6).
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

SEVERITY = {"info": 0, "low": 1, "medium": 2, "high": 3}
_NS = uuid.UUID("0b6f0d5c-1f7e-4a53-9d1e-2f3c7b9a8e41")


@dataclass(frozen=True)
class NotifyConfig:
    aggregate_s: int = 180  # a room's first notice goes out this long after its first alert
    episode_gap_s: int = 1800  # alerts of a room closer than this belong to one episode (one notice)
    update_every_s: int = 300  # a sent notice is updated (Slack: edited) with later alerts at most this often
    cooldown_s: int = 3600  # a room's next episode is not notified sooner than this after the last notice


@dataclass(frozen=True)
class SellerPrefs:
    tz: str = "UTC"
    quiet_hours: tuple[int, int] | None = None  # (start hour, end hour) local, e.g. (22, 7)
    muted_rooms: tuple[str, ...] = ()
    min_severity: str = "info"
    digest: bool = False
    digest_hour: int = 8


@dataclass(frozen=True)
class Notice:
    notice_id: str  # one per episode; updates carry the same id and a higher version
    version: int
    site: str
    room_id: str
    owner: str
    alerts: tuple[dict, ...]  # everything in the episode so far, oldest first
    first_at: int
    send_at: int

    @property
    def severity(self) -> str:
        return max((a["severity"] for a in self.alerts), key=SEVERITY.__getitem__)


@dataclass(frozen=True)
class Episode:
    notice_id: str
    alerts: tuple[dict, ...]
    delivered: int = 0  # how many of ``alerts`` the last version carried
    version: int = 0
    last_sent_at: int = 0


@dataclass(frozen=True)
class NotifyState:
    episodes: tuple[tuple[tuple[str, str], Episode], ...] = ()  # (site, room) -> its current episode
    last_notice: tuple[tuple[tuple[str, str], int], ...] = field(default=())  # (site, room) -> last first-notice


def offer(state: NotifyState, alert: dict, prefs: SellerPrefs, cfg: NotifyConfig = NotifyConfig()) -> NotifyState:
    """Fold an alert into its room's episode, unless the seller muted the room or it is below their threshold."""
    if alert["room_id"] in prefs.muted_rooms or SEVERITY[alert["severity"]] < SEVERITY[prefs.min_severity]:
        return state
    key = (alert["site"], alert["room_id"])
    episodes = dict(state.episodes)
    ep = episodes.get(key)
    if ep and any(a["alert_id"] == alert["alert_id"] for a in ep.alerts):
        return state  # a replayed alert
    fresh = ep is None or (ep.delivered == len(ep.alerts) and alert["at"] - ep.alerts[-1]["at"] > cfg.episode_gap_s * 1000)
    if fresh:
        ep = Episode(str(uuid.uuid5(_NS, f"{key[0]}/{key[1]}/{alert['alert_id']}")), (alert,))
    else:
        ep = replace(ep, alerts=tuple(sorted((*ep.alerts, alert), key=lambda a: (a["at"], a["alert_id"]))))
    episodes[key] = ep
    return replace(state, episodes=tuple(sorted(episodes.items())))


def due(state: NotifyState, prefs_for: dict[str, SellerPrefs], now: int,
        cfg: NotifyConfig = NotifyConfig()) -> tuple[NotifyState, list[Notice]]:
    """Notices (first versions and updates) ready at ``now``; ``prefs_for``: owner -> prefs (missing: defaults)."""
    episodes, last_notice = dict(state.episodes), dict(state.last_notice)
    notices = []
    for key, ep in sorted(episodes.items()):
        if ep.delivered == len(ep.alerts):
            continue
        owner = ep.alerts[0].get("owner", "")
        prefs = prefs_for.get(owner, SellerPrefs())
        first = ep.alerts[0]["at"]
        if ep.version == 0:
            at = max(first + cfg.aggregate_s * 1000, last_notice.get(key, -10**15) + cfg.cooldown_s * 1000)
        else:
            at = ep.last_sent_at + cfg.update_every_s * 1000
        at = _next_digest(at, prefs) if prefs.digest else _after_quiet_hours(at, prefs)
        if now < at:
            continue
        ep = replace(ep, delivered=len(ep.alerts), version=ep.version + 1, last_sent_at=now)
        episodes[key] = ep
        if ep.version == 1:
            last_notice[key] = now
        notices.append(Notice(ep.notice_id, ep.version, key[0], key[1], owner, ep.alerts, first, now))
    return NotifyState(tuple(sorted(episodes.items())), tuple(sorted(last_notice.items()))), notices


def _local(ms: int, tz: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))


def _after_quiet_hours(ms: int, prefs: SellerPrefs) -> int:
    """``ms`` if outside the seller's quiet hours, else when they end."""
    if not prefs.quiet_hours:
        return ms
    start, end = prefs.quiet_hours
    local = _local(ms, prefs.tz)
    h = local.hour
    inside = (start <= h or h < end) if start > end else (start <= h < end)
    if not inside:
        return ms
    end_day = local.date() if h < end else local.date() + dt.timedelta(days=1)
    end_local = dt.datetime.combine(end_day, dt.time(end), ZoneInfo(prefs.tz))
    return int(end_local.timestamp() * 1000)


def _next_digest(ms: int, prefs: SellerPrefs) -> int:
    local = _local(ms, prefs.tz)
    at = dt.datetime.combine(local.date(), dt.time(prefs.digest_hour), ZoneInfo(prefs.tz))
    if at <= local:
        at += dt.timedelta(days=1)
    return int(at.timestamp() * 1000)
