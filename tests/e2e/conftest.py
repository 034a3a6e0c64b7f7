"""End-to-end tier: real `dealbeacon up` server processes on free ports."""
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.helpers import free_port


class Server:
    def __init__(self, data_dir, *extra, env=None):
        self.data_dir, self.extra, self.env = str(data_dir), extra, env
        self.port, self.sql_port = free_port(), free_port()
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "dealbeacon.app.cli", "up", "--data-dir", self.data_dir,
                                      "--port", str(self.port), "--sql-port", str(self.sql_port), *self.extra],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env} if self.env else None)
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become ready:\n" + self.log())

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

    def make(*extra, data_dir=None):
        s = Server(data_dir or tmp_path / "data", *extra)
        os.makedirs(s.data_dir, exist_ok=True)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()
