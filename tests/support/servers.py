"""Plugin: real ``dealbeacon up`` server processes (ports bound by the server itself, read from its ports
file), and local HTTP receivers for webhooks."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from .ports import read_ports
from .waiting import wait_until


class Server:
    """``dealbeacon up`` in its own process on ports it chose (``port``/``sql_port`` are known after start)."""

    def __init__(self, data_dir, *extra, env=None):
        self.data_dir, self.extra, self.env = str(data_dir), extra, env
        self.port = self.sql_port = 0
        self.ports_file = os.path.join(self.data_dir, "ports.json")
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        if os.path.exists(self.ports_file):
            os.remove(self.ports_file)
        env = {**os.environ, **(self.env or {}), "DEALBEACON_PORTS_FILE": self.ports_file}
        with open(os.path.join(self.data_dir, "server.log"), "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "dealbeacon.app.cli", "up", "--data-dir", self.data_dir,
                                          "--port", "0", "--sql-port", "0", *self.extra],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        ports = read_ports(self.ports_file, self.proc, timeout, self.log)
        self.port, self.sql_port = ports["http"], ports["sql"]

        def ready():
            assert self.proc.poll() is None, self.log()
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        wait_until(ready, timeout=timeout, errors=(httpx.HTTPError,), what="server ready")
        return self

    def wait_applied(self, timeout=60):
        """Until the local log's backlog is empty: a 202 is the log's, rows reach chdb within the writer's
        interval (read from the ``dealbeacon_local_log_backlog_records`` gauge)."""
        def applied():
            for line in httpx.get(self.url + "/metrics", timeout=5).text.splitlines():
                if line.startswith("dealbeacon_local_log_backlog_records "):
                    return float(line.split()[1]) == 0
            raise AssertionError("no local log gauge: is the server running with the log?")
        wait_until(applied, timeout=timeout, every=0.05, errors=(httpx.HTTPError,), what="the local log applied")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self):
        with open(os.path.join(self.data_dir, "server.log"), "rb") as fh:
            return fh.read().decode(errors="replace")[-4000:]


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(*extra, data_dir=None, env=None):
        s = Server(data_dir or tmp_path / "data", *extra, env=env)
        os.makedirs(s.data_dir, exist_ok=True)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


class Receiver:
    """A local HTTP endpoint on a port it bound itself: fails the first ``fail_first`` attempts of each
    delivery (by Idempotency-Key, else body), records the rest."""

    def __init__(self, fail_first=0):
        self.fail_first, self.attempts, self.received = fail_first, collections.Counter(), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers.get("Idempotency-Key") or body
                outer.attempts[key] += 1
                if outer.attempts[key] <= outer.fail_first:
                    self.send_response(503)
                else:
                    outer.received.append((dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
