"""The seam between ingest and whatever comes next.

Ingest answers 2xx only after ``Handoff.submit`` returned: in embedded mode that means the rows are in
chdb; in distributed mode, that Kafka acknowledged them (acks=all). Records are plain dicts (see
``dealbeacon.records``), so the same bytes go to Kafka or straight to the in-process processors.
"""
from __future__ import annotations

from typing import Protocol


class HandoffUnavailable(Exception):
    """The next stage cannot take records now; ingest answers 503 with Retry-After."""


class Handoff(Protocol):
    async def submit(self, events: list[dict], dead_letters: list[dict]) -> None:
        """Durably hand off accepted events and dead letters, or raise HandoffUnavailable. ``events`` may also
        hold room updates (``record: "room"``) and ticks (``record: "tick"`` per room, ``"clock"`` per site)."""

    def ready(self) -> bool:
        """True when submit is expected to succeed."""
