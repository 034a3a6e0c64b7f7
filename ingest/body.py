"""Request-body steps: size caps, gzip (by header or magic bytes) with a decompressed-size cap, JSON."""
from __future__ import annotations

import zlib

import orjson

from dealbeacon.core.contract import Rejected

GZIP_MAGIC = b"\x1f\x8b"


class BodyError(Rejected):
    def __init__(self, status: int, reason: str, detail: str = ""):
        super().__init__(reason, "", detail)
        self.status = status


def decompress(raw: bytes, content_encoding: str, max_bytes: int) -> bytes:
    enc = content_encoding.strip().lower()
    if enc not in ("", "identity", "gzip"):
        raise BodyError(415, "unsupported_encoding", f"Content-Encoding {enc!r}; use gzip or none")
    if enc != "gzip" and not raw.startswith(GZIP_MAGIC):
        return raw
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, max_bytes + 1)
    except zlib.error as e:
        raise BodyError(400, "bad_gzip", str(e)) from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise BodyError(413, "decompressed_too_large", f"more than {max_bytes} bytes after gunzip")
    return out


def parse_json(data: bytes):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BodyError(400, "malformed_json", str(e)[:200]) from None


async def read_capped(request, cap: int) -> bytes:
    """Read at most cap+1 bytes of a Starlette request: enough to know the body is too large without buffering
    the rest of it."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            break
    return b"".join(chunks)
