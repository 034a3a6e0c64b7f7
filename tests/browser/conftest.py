"""Browser tier: the built beacon, a sales-room site on its own origin, real headless Chromium."""
import functools
import http.server
import io
import pathlib
import shutil
import subprocess
import threading
import wave

import pytest

from tests.helpers import free_port

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
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{port}"


