"""The seam between ingest and whatever comes next.

Ingest answers 2xx only after ``Handoff.submit`` returned: in embedded mode that means the records are in
the local log, fsync'd (or, without the log, that the rows are in chdb); in distributed mode, that Kafka
acknowledged them (acks=all). Records are plain dicts (see
``dealbeacon.core.records``), so the same bytes go to Kafka or straight to the in-process processors.
"""
from __future__ import annotations

from typing import Protocol


class HandoffUnavailable(Exception):
    """The next stage cannot take records now; ingest answers 503 with Retry-After. ``kept``: events of the
    request that were stored all the same (0 unless a hand-off could not withdraw what it had started)."""

    def __init__(self, message: str = "", kept: int = 0):
        super().__init__(message)
        self.kept = kept


class Handoff(Protocol):
    async def submit(self, events: list[dict], dead_letters: list[dict]) -> dict[int, str] | None:
        """Durably hand off accepted events and dead letters, or raise HandoffUnavailable. ``events`` may also
        hold room updates (``record: "room"``) and ticks (``record: "tick"`` per room, ``"clock"`` per site).

        Returns the positions in ``events`` that the store refused as records (with the reason; they were
        dead-lettered instead), or nothing. Raising means nothing of this call was kept: a caller whose wait
        is cut short (cancelled) either withdraws the records before they are written or waits for the write
        that already started and gets its true outcome, so a 503 never hides stored records."""

    def ready(self) -> bool:
        """True when submit is expected to succeed."""

    def shedding(self, admitted: int = 0) -> bool:
        """True when submit would refuse a request now (embedded: the local log's backlog is full), counting
        ``admitted`` records that requests already let in may still hand off: ingest answers 503 at the door,
        before parsing and checking the body, so refusing costs little of what the backlog drains with and a
        request let in is not refused after its events were checked."""
