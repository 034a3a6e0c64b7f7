"""Bot and crawler detection by user agent, with the maintained CrawlerDetect pattern list.

CrawlerDetect also lists generic HTTP clients (curl, python-httpx, Go-http-client...). A request from one
of those *without* an Origin header is a server-side sender (the seller's backend, a curl test) that
authenticated with the site key, not a crawler running the beacon, so it is not dropped. Everything
CrawlerDetect flags otherwise is dropped with reason ``bot``.
"""
from __future__ import annotations

import re
from functools import lru_cache

from crawlerdetect import CrawlerDetect

_detector = CrawlerDetect()
_HTTP_CLIENT = re.compile(r"^(curl|Wget|python-requests|python-httpx|python-urllib|aiohttp|Go-http-client|okhttp|"
                          r"node-fetch|undici|axios|Java|Apache-HttpClient|libwww-perl|HTTPie)/", re.I)


@lru_cache(maxsize=4096)
def _crawler(user_agent: str) -> bool:
    return bool(_detector.isCrawler(user_agent))


def is_bot(user_agent: str, has_origin: bool) -> bool:
    if not user_agent:
        return False  # browsers always send one; no UA is a server-side caller
    if not has_origin and _HTTP_CLIENT.match(user_agent):
        return False
    return _crawler(user_agent)
