"""The beacon as ingest serves it: brotli or gzip as the client accepts, an ETag that revalidates, a new ETag
when the build changes the file, and cache headers a CDN can keep."""
import gzip
import os

import brotli

from ingest.snippet import pick
from tests.support.app import make_client

PATH = "/snippet/v1/dealbeacon.js"


def test_codings_etag_and_rebuild(store, tmp_path):
    js = tmp_path / "dealbeacon.js"
    source = ("(()=>{" + "var a=document.currentScript;" * 200 + "})();").encode()
    js.write_bytes(source)
    with make_client(store, snippet_file=str(js)) as c:
        gz = c.get(PATH, headers={"Accept-Encoding": "gzip"})
        assert gz.status_code == 200 and gz.headers["content-encoding"] == "gzip"
        assert gz.content == source  # httpx decodes; the length on the wire:
        assert int(gz.headers["content-length"]) == len(gzip.compress(source, 9, mtime=0)) < len(source)
        assert gz.headers["vary"] == "Accept-Encoding" and gz.headers["cache-control"].startswith("public, max-age=86400")
        assert gz.headers["access-control-allow-origin"] == "*" and gz.headers["content-type"].startswith("text/javascript")
        br = c.get(PATH, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert br.headers["content-encoding"] == "br" and br.content == source
        assert int(br.headers["content-length"]) == len(brotli.compress(source, quality=11))
        plain = c.get(PATH, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == source
        # the same ETag for every coding; If-None-Match answers 304 with no body
        etag = gz.headers["etag"]
        assert etag == br.headers["etag"] == plain.headers["etag"] and etag.startswith('"')
        again = c.get(PATH, headers={"If-None-Match": f'W/{etag}, "other"', "Accept-Encoding": "gzip"})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        # a new build: a new ETag, the old one no longer matches
        js.write_bytes(source + b"//v2")
        os.utime(js, (1, 1))
        fresh = c.get(PATH, headers={"If-None-Match": etag})
        assert fresh.status_code == 200 and fresh.headers["etag"] != etag and fresh.content.endswith(b"//v2")


def test_missing_build_is_a_clear_404(store, tmp_path):
    with make_client(store, snippet_file=str(tmp_path / "absent.js")) as c:
        r = c.get(PATH)
        assert r.status_code == 404 and "npm run build" in r.text


def test_accept_encoding_negotiation():
    assert pick("") == "identity"
    assert pick("gzip") == "gzip"
    assert pick("br;q=0, gzip;q=0.5") == "gzip"
    assert pick("GZIP;q=0.1, BR") == "br"
    assert pick("gzip;q=0, br;q=0") == "identity"
    assert pick("*") == "br"
    assert pick("*;q=0, identity") == "identity"
    assert pick("gzip;q=zero, deflate") == "identity"  # a malformed weight counts as refused
    assert pick("compress, deflate") == "identity"
