"""Serving the beacon: compressed once per build (brotli and gzip at their highest levels), an ETag from the
content, revalidation with If-None-Match, and cache headers that let browsers and CDNs keep it."""
import gzip
import hashlib
import os
from dataclasses import dataclass

import brotli
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=604800"


@dataclass(frozen=True)
class Encoded:
    stamp: tuple[float, int]
    etag: str
    bodies: dict[str, bytes]  # content-coding ("identity", "gzip", "br") -> body


def encode(raw: bytes, stamp: tuple[float, int] = (0.0, 0)) -> Encoded:
    etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    return Encoded(stamp, etag, {"identity": raw, "gzip": gzip.compress(raw, 9, mtime=0),
                                 "br": brotli.compress(raw, quality=11)})


def pick(accept_encoding: str) -> str:
    """The best coding the client accepts (RFC 9110 q-values; br before gzip before identity)."""
    q: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        weight = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    weight = float(v)
                except ValueError:
                    weight = 0.0
        if name:
            q[name.strip()] = weight
    for coding in ("br", "gzip"):
        if q.get(coding, q.get("*", 0.0)) > 0:
            return coding
    return "identity"


class Snippet:
    """The built beacon file, re-encoded when the build changes it (mtime and size are checked per request)."""

    def __init__(self, path: str | None):
        self.path = path
        self.cached: Encoded | None = None

    def current(self) -> Encoded | None:
        if not self.path:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        stamp = (st.st_mtime, st.st_size)
        if self.cached is None or self.cached.stamp != stamp:
            with open(self.path, "rb") as fh:
                self.cached = encode(fh.read(), stamp)
        return self.cached

    def response(self, request: Request) -> Response:
        enc = self.current()
        if enc is None:
            return PlainTextResponse("beacon not built (npm run build in js-snippet/)\n", status_code=404)
        headers = {"Cache-Control": CACHE_CONTROL, "ETag": enc.etag, "Vary": "Accept-Encoding",
                   "Access-Control-Allow-Origin": "*"}
        tags = {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")}
        if enc.etag in tags or "*" in tags:
            return Response(status_code=304, headers=headers)
        coding = pick(request.headers.get("accept-encoding", ""))
        if coding != "identity":
            headers["Content-Encoding"] = coding
        return Response(enc.bodies[coding], media_type="text/javascript", headers=headers)
