"""Sites: the key a snippet sends, the secret that signs stakeholder tokens, and the allowed origins.

Kept in a JSON file (``Settings.resolved_sites_file``): ``[{"key": ..., "secret": ..., "origins": [...],
"internal_domains": [...]}]``. ``internal_domains`` are the seller company's email domains: stakeholders
with such an email are the seller's own team (stored, never scored, alerted on or counted as buyers).
``origins`` lists exact origins (``https://rooms.example.com``) or ``"*"``; requests without an Origin
header (server to server, curl) are not subject to it.
"""
from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import asdict, dataclass, field, replace

import orjson

DEMO_SITE_KEY = "demo"
# the demo's history (about 21k events, replayed at start) within seconds: at the default 500/s it took 38 s
DEMO_RATE_LIMIT_EVENTS_PER_S = 5_000.0


@dataclass(frozen=True)
class Site:
    key: str
    secret: str
    origins: tuple[str, ...] = ("*",)
    rate_limit_events_per_s: float | None = None  # None -> Settings default
    internal_domains: tuple[str, ...] = ()  # the seller's own email domains ("seller.example")

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is None or "*" in self.origins or origin in self.origins

    def bearer_ok(self, authorization: str) -> bool:
        """``Authorization: Bearer <site secret>``: a server-side caller of this site (constant time)."""
        return bool(authorization) and hmac.compare_digest(authorization.encode(), f"Bearer {self.secret}".encode())


@dataclass
class SiteRegistry:
    sites: dict[str, Site] = field(default_factory=dict)

    def get(self, key: str) -> Site | None:
        return self.sites.get(key)

    def add(self, site: Site) -> Site:
        self.sites[site.key] = site
        return site

    @classmethod
    def load(cls, path: str) -> SiteRegistry:
        if not os.path.exists(path):
            return cls()
        with open(path, "rb") as fh:
            raw = orjson.loads(fh.read())
        if not isinstance(raw, list):
            raise ValueError(f"{path}: expected a JSON list of sites")
        reg = cls()
        for item in raw:
            reg.add(Site(key=item["key"], secret=item["secret"], origins=tuple(item.get("origins", ["*"])),
                         rate_limit_events_per_s=item.get("rate_limit_events_per_s"),
                         internal_domains=tuple(d.lower().lstrip("@") for d in item.get("internal_domains", []))))
        return reg

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps([asdict(s) for s in self.sites.values()], option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    def ensure_demo(self, path: str) -> Site:
        """Create the documented demo site (key ``demo``, any origin) once, with a random secret and a rate limit
        its history's replay fits in."""
        site = self.get(DEMO_SITE_KEY)
        if site is None:
            site = self.add(Site(DEMO_SITE_KEY, secrets.token_urlsafe(24), ("*",),
                                 rate_limit_events_per_s=DEMO_RATE_LIMIT_EVENTS_PER_S))
            self.save(path)
        elif site.rate_limit_events_per_s is None:  # made by an older version: the default limit
            site = self.add(replace(site, rate_limit_events_per_s=DEMO_RATE_LIMIT_EVENTS_PER_S))
            self.save(path)
        return site
