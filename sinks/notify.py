"""Alert fatigue policy: which alerts become a notice to a seller, and when. Pure, explicit ``now`` (ms).

Alerts (rows of the ``alerts`` table) are offered as they come; ``due`` returns the notices ready to send:

- mute per room, and a minimum severity per seller: such alerts never become notices;
- aggregation: a room's alerts fold into one notice, sent once they pause for ``aggregate_s`` (a visit is
  reported a few minutes after it calms down, with everything that happened) or ``max_wait_s`` after the
  first of them; every alert is in exactly one notice;
- per-room cooldown: a room's next notice is not sent sooner than ``cooldown_s`` after the last one (what
  comes meanwhile folds into it);
- quiet hours in the seller's time zone: a notice due then is held and goes out when they end;
- ``digest`` sellers get one notice per day (at ``digest_hour`` local time) with everything pending.

One alert per episode is the core's job (streams/deals.py); this decides delivery (sinks/delivery.py).
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from dealbeacon.core.contract import SEVERITY_RANK

SEVERITY = SEVERITY_RANK
_NS = uuid.UUID("0b6f0d5c-1f7e-4a53-9d1e-2f3c7b9a8e41")


@dataclass(frozen=True)
class NotifyConfig:
    aggregate_s: int = 180  # a room's notice goes out once its alerts have paused this long...
    max_wait_s: int = 1800  # ...or this long after the first of them, whichever comes first
    cooldown_s: int = 3600  # a room's next notice is not sent sooner than this after the last one


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
    notice_id: str
    site: str
    room_id: str
    owner: str
    alerts: tuple[dict, ...]  # oldest first; every alert is in exactly one notice
    first_at: int
    send_at: int

    @property
    def severity(self) -> str:
        return max((a["severity"] for a in self.alerts), key=SEVERITY.__getitem__)


@dataclass(frozen=True)
class NotifyState:
    pending: tuple[tuple[tuple[str, str], tuple[dict, ...]], ...] = ()  # (site, room) -> alerts not yet notified
    last_notice: tuple[tuple[tuple[str, str], int], ...] = field(default=())  # (site, room) -> last notice time
    seen: tuple[str, ...] = ()  # recent alert ids (replays are ignored)


def offer(state: NotifyState, alert: dict, prefs: SellerPrefs, cfg: NotifyConfig = NotifyConfig()) -> NotifyState:
    """Fold an alert into its room's pending notice, unless the seller muted the room, it is below their
    threshold, or it was offered before."""
    if alert["room_id"] in prefs.muted_rooms or SEVERITY[alert["severity"]] < SEVERITY[prefs.min_severity]:
        return state
    if alert["alert_id"] in state.seen:
        return state
    key = (alert["site"], alert["room_id"])
    pending = dict(state.pending)
    pending[key] = tuple(sorted((*pending.get(key, ()), alert), key=lambda a: (a["at"], a["alert_id"])))
    return replace(state, pending=tuple(sorted(pending.items())), seen=(*state.seen, alert["alert_id"])[-5000:])


def due(state: NotifyState, prefs_for: dict[tuple[str, str], SellerPrefs], now: int,
        cfg: NotifyConfig = NotifyConfig()) -> tuple[NotifyState, list[Notice]]:
    """Notices ready at ``now``; ``prefs_for``: (site, owner) -> prefs (missing: defaults)."""
    pending, last_notice = dict(state.pending), dict(state.last_notice)
    notices = []
    for key, alerts in sorted(pending.items()):
        owner = alerts[0].get("owner", "")
        prefs = prefs_for.get((key[0], owner), SellerPrefs())
        first, last = alerts[0]["at"], alerts[-1]["at"]
        at = min(last + cfg.aggregate_s * 1000, first + cfg.max_wait_s * 1000)
        at = max(at, last_notice.get(key, -10**15) + cfg.cooldown_s * 1000)
        at = _next_digest(at, prefs) if prefs.digest else _after_quiet_hours(at, prefs)
        if now < at:
            continue
        notices.append(Notice(str(uuid.uuid5(_NS, f"{key[0]}/{key[1]}/{alerts[0]['alert_id']}")), key[0], key[1],
                              owner, alerts, first, now))
        del pending[key]
        last_notice[key] = now
    return replace(state, pending=tuple(sorted(pending.items())), last_notice=tuple(sorted(last_notice.items()))), notices


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


# -- the policy's state as JSON (embedded mode keeps it in a file, so a restart loses no held notice)

def state_to_json(state: NotifyState, sending: list[Notice]) -> dict:
    return {"v": 1, "pending": [[list(k), list(alerts)] for k, alerts in state.pending],
            "last_notice": [[list(k), at] for k, at in state.last_notice], "seen": list(state.seen),
            "sending": [{"notice_id": n.notice_id, "site": n.site, "room_id": n.room_id, "owner": n.owner,
                         "alerts": list(n.alerts), "first_at": n.first_at, "send_at": n.send_at} for n in sending]}


def state_from_json(d: dict) -> tuple[NotifyState, list[Notice]]:
    state = NotifyState(pending=tuple((tuple(k), tuple(alerts)) for k, alerts in d.get("pending", [])),
                        last_notice=tuple((tuple(k), int(at)) for k, at in d.get("last_notice", [])),
                        seen=tuple(d.get("seen", [])))
    sending = [Notice(n["notice_id"], n["site"], n["room_id"], n["owner"], tuple(n["alerts"]), int(n["first_at"]),
                      int(n["send_at"])) for n in d.get("sending", [])]
    return state, sending
