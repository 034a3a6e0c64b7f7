"""Bot and crawler detection by user agent, with the maintained CrawlerDetect pattern list."""
from __future__ import annotations

from functools import lru_cache

from crawlerdetect import CrawlerDetect

_detector = CrawlerDetect()


@lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    if not user_agent:
        return False  # sendBeacon and fetch always send one; a missing UA is a server-side caller
    return bool(_detector.isCrawler(user_agent))
