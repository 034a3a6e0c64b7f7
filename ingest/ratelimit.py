"""Per-site token buckets. Pure: every call takes an explicit ``now`` (seconds, monotonic)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    rate: float  # events per second, refill
    burst: int  # bucket size
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def take(self, key: str, n: int, now: float, rate: float | None = None) -> float:
        """Take ``n`` tokens for ``key``. Returns 0.0 if allowed, else seconds until it would be."""
        rate = rate or self.rate
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + max(0.0, now - b.updated) * rate)
        b.updated = now
        if n <= b.tokens:
            b.tokens -= n
            return 0.0
        return (min(n, self.burst) - b.tokens) / rate
