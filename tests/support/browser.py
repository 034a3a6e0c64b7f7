"""Plugin (browser tier): the built beacon, a sales-room site on its own origin, an embedded dealbeacon,
and scenarios in real headless Chromium."""
from __future__ import annotations

import contextlib
import functools
import http.server
import io
import pathlib
import shutil
import subprocess
import threading
import wave

import httpx
import orjson
import pytest

from .data import SQL_AUTH
from .servers import Server
from .waiting import wait_until

ROOT = pathlib.Path(__file__).parents[2]
SNIPPET = ROOT / "js-snippet"


def silence_wav(seconds=8, rate=8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(b"\x80" * rate * seconds)
    return buf.getvalue()


@pytest.fixture(scope="session")
def built_snippet():
    assert shutil.which("node"), "node is part of the test setup"
    r = subprocess.run(["node", "build.mjs"], cwd=SNIPPET, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return SNIPPET / "dist" / "dealbeacon.js"


def site_server(root: pathlib.Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"




@contextlib.contextmanager
def room_stack(tmp_path: pathlib.Path, room: str, page: str, secret: str):
    """A sales-room site on its own origin serving ``e2e/<page>`` at /r/<room>/ (with an 8 s audio file at
    /files/demo.wav), and an embedded dealbeacon that accepts the site key "acme" from that origin.
    Yields (site url, server)."""
    site_root = tmp_path / "site"
    (site_root / "r" / room).mkdir(parents=True)
    (site_root / "files").mkdir()
    (site_root / "files" / "demo.wav").write_bytes(silence_wav())
    site, site_url = site_server(site_root)
    data = tmp_path / "data"
    data.mkdir()
    (data / "sites.json").write_text(orjson.dumps([{"key": "acme", "secret": secret, "origins": [site_url]}]).decode())
    srv = Server(data, "--no-demo").start()
    try:
        html = (SNIPPET / "e2e" / page).read_text().replace("__INGEST__", srv.url).replace("__ROOM__", room)
        (site_root / "r" / room / "index.html").write_text(html)
        yield site_url, srv
    finally:
        srv.stop()
        site.shutdown()
        site.server_close()


def run_scenario(script: str, url: str, timeout: float, env: dict | None = None) -> dict:
    """Run a Chromium scenario (``node e2e/<script> <url>``) and return the JSON it printed last."""
    run = subprocess.run(["node", f"e2e/{script}", url], cwd=SNIPPET, capture_output=True, text=True, timeout=timeout,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return orjson.loads(run.stdout.strip().splitlines()[-1])


def sql_reader(srv):
    """Rows of a query on the server's SQL port, as the test analyst (JSONCompact ``data``)."""
    def sql(q):
        r = httpx.post(f"http://127.0.0.1:{srv.sql_port}/", auth=SQL_AUTH, content=q + " FORMAT JSONCompact")
        assert r.status_code == 200, r.text
        return r.json()["data"]
    return sql


def wait_stored(sql, out: dict, timeout: float = 30.0) -> int:
    """Wait until every event of the scenario's captured payloads is stored and the count stopped moving (the
    beacons sent as the page closed are not captured); returns the count."""
    ids = {e["event_id"] for p in out["payloads"] for e in p["body"]["events"]}
    seen: list[int] = []

    def settled():
        stored = {r[0] for r in sql("SELECT toString(event_id) FROM events")}
        seen.append(len(stored))
        return ids <= stored and len(seen) >= 2 and seen[-1] == seen[-2]
    wait_until(settled, timeout=timeout, every=0.5, what="the scenario's events stored")
    return seen[-1]
