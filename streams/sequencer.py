"""Per-partition offset discipline for the Faust agents: every message processed once, in order, from the
committed position, and offsets committed only up to what was processed.

Why: faust-streaming 0.15.3 loses messages across a worker restart. Its fetcher can deliver messages from
before the seek to the committed offsets (recovery resumes partitions, then seeks), and its consumer treats
any jump in offsets as a "gap" that it acks and commits: measured here, 3 messages per partition lost on
kill -9 + restart, and one partition left unread (faust-streaming #216/#221 describe the same race).
So the agents' topics run with Faust acks off, and this sequencer decides for each message:

- ``process``: it is the next offset of its partition;
- ``skip``: already processed (a re-delivery after a seek or rebalance);
- ``seek``: a gap; the caller seeks the partition back to ``expected`` and the missing messages come again.

A worker that folds several messages per round trip ``accept``s each (the next one is then expected) and
marks the batch ``done`` once its outputs are acked: only done offsets are committed.

``Sequencer`` is pure (no Faust, explicit ``now``); streams/faust_app.py does the seeking and committing.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sequencer:
    reseek_after_s: float = 2.0  # a seek not answered by the expected message within this is repeated
    stall_after_s: float = 5.0  # a partition behind its highwater without progress for this long is re-sought
    generation: int | None = None
    expected: dict = field(default_factory=dict)  # tp -> next offset to process
    processed: dict = field(default_factory=dict)  # tp -> next offset after what is done (outputs acked)
    committed: dict = field(default_factory=dict)  # tp -> offset committed (next to read)
    sought: dict = field(default_factory=dict)  # tp -> time of the last seek we asked for
    progress: dict = field(default_factory=dict)  # tp -> time of the last processed message

    def on_generation(self, generation: int | None) -> None:
        """A rebalance: another worker may have moved our partitions on; forget positions."""
        if generation != self.generation:
            self.generation = generation
            self.expected.clear()
            self.processed.clear()
            self.committed.clear()
            self.sought.clear()
            self.progress.clear()

    def decide(self, tp, offset: int, committed: int | None, now: float) -> str:
        """``committed``: the group's committed offset for ``tp`` as the consumer last read it (None: none)."""
        exp = self.expected.get(tp)
        if exp is None:
            exp = committed if committed is not None else offset  # a new group starts where it is told
            self.expected[tp] = exp
            self.progress.setdefault(tp, now)
        if offset < exp:
            return "skip"
        if offset == exp:
            self.sought.pop(tp, None)
            return "process"
        if now - self.sought.get(tp, -1e18) >= self.reseek_after_s:
            self.sought[tp] = now
            return "seek"
        return "skip"  # a seek is on its way; buffered later messages are dropped and will come again

    def accept(self, tp, offset: int) -> None:
        """``offset`` was taken into a batch in flight: the next one is expected, nothing is committable yet."""
        self.expected[tp] = offset + 1

    def done(self, tp, offset: int, now: float) -> None:
        """Everything up to ``offset`` is processed and its outputs acked."""
        self.expected[tp] = max(self.expected.get(tp, 0), offset + 1)
        self.processed[tp] = offset + 1
        self.progress[tp] = now

    def to_commit(self) -> dict:
        """Offsets (next to read) that moved since the last commit: only what is done."""
        return {tp: o for tp, o in self.processed.items() if self.committed.get(tp) != o}

    def committed_ok(self, offsets: dict) -> None:
        self.committed.update(offsets)

    def stalled(self, highwaters: dict, committed: dict, now: float) -> dict:
        """Partitions that have messages waiting (highwater beyond the next offset to process, or beyond the
        committed offset if nothing came since the rebalance) but made no progress for ``stall_after_s``:
        tp -> offset to seek to."""
        out = {}
        for tp, high in highwaters.items():
            exp = self.expected.get(tp, committed.get(tp))
            if exp is None or high is None or high <= exp:
                continue
            since = self.progress.setdefault(tp, now)
            if now - since >= self.stall_after_s and now - self.sought.get(tp, -1e18) >= self.stall_after_s:
                self.sought[tp] = now
                self.expected.setdefault(tp, exp)
                out[tp] = exp
        return out
