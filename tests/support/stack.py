"""Plugin (integration tier): the real Kafka broker (session fixture), real dealbeacon processes (ingest, Faust
worker, sink) and the real ClickHouse engine (chdb, queried through the sink's SQL port). Each test gets its
own topics and consumer groups, so tests share one broker without interfering. dealbeacon's processes bind
port 0 and report their ports (DEALBEACON_PORTS_FILE); a restarted process is asked again."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from dealbeacon.kafka.local import LocalKafka

from .data import SQL_AUTH
from .ports import read_ports, unbound_port
from .waiting import wait_until


def start_kafka(data_dir: str, attempts: int = 3) -> LocalKafka:
    """A local broker on ports chosen just before; Kafka must be told its ports, so a clash is retried."""
    for attempt in range(attempts):
        k = LocalKafka(os.path.join(data_dir, f"try{attempt}"), unbound_port(), unbound_port())
        try:
            return k.start()
        except RuntimeError:
            k.stop()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    k = start_kafka(str(tmp_path_factory.mktemp("kafka")))
    yield k
    k.stop()


class Proc:
    def __init__(self, name, args, env, log_dir):
        self.name, self.args, self.env = name, args, env
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.ports_file = os.path.join(log_dir, f"{name}.ports.json")
        self.p = None
        self.expected_exit = False

    def start(self):
        self.expected_exit = False
        if os.path.exists(self.ports_file):
            os.remove(self.ports_file)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.p = subprocess.Popen([sys.executable, "-m", "dealbeacon.app.cli", *self.args],
                                      env={**self.env, "DEALBEACON_PORTS_FILE": self.ports_file},
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def ports(self) -> dict:
        """The ports this run of the process bound (it writes them once bound)."""
        return read_ports(self.ports_file, self.p, log=self.log)

    def kill9(self):
        self.expected_exit = True
        os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait()

    def stop(self):
        self.expected_exit = True
        if self.p and self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self):
        with open(self.log_path, "rb") as fh:
            return fh.read()[-3000:].decode(errors="replace")


class Stack:
    """ingest + N Faust workers + sink (chdb dir + SQL port) on one broker, named per test."""

    def __init__(self, kafka, tmp_path, site_secret="secret"):
        self.tmp = str(tmp_path)
        os.makedirs(self.tmp, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.sites_file = os.path.join(self.tmp, "sites.json")
        with open(self.sites_file, "w") as fh:
            fh.write('[{"key": "acme", "secret": "%s", "origins": ["*"]}]' % site_secret)
        self.env = {**os.environ,
                    "DEALBEACON_KAFKA_BOOTSTRAP": kafka.bootstrap, "DEALBEACON_SITES_FILE": self.sites_file,
                    "DEALBEACON_TOPIC_EVENTS": f"t{tag}.events", "DEALBEACON_TOPIC_DEAD_LETTERS": f"t{tag}.dead",
                    "DEALBEACON_TOPIC_ROWS_PREFIX": f"t{tag}.rows.", "DEALBEACON_STREAMS_GROUP": f"streams-{tag}",
                    "DEALBEACON_SINK_GROUP": f"sink-{tag}", "DEALBEACON_FAUST_STORE": "memory://",
                    "DEALBEACON_PORT": "0", "DEALBEACON_SINK_SQL_PORT": "0",
                    "DEALBEACON_SINK_METRICS_PORT": "0", "DEALBEACON_SINK_BATCH_MS": "300",
                    "DEALBEACON_RATE_LIMIT_EVENTS_PER_S": "1000000", "DEALBEACON_RATE_LIMIT_BURST": "1000000",
                    "DEALBEACON_LOG_LEVEL": "INFO"}
        self.procs = {}

    @property
    def port(self) -> int:
        return self.procs["ingest"].ports()["http"]

    @property
    def sql_port(self) -> int:
        return self.procs["sink"].ports()["sql"]

    @property
    def metrics_port(self) -> int:
        return self.procs["sink"].ports()["metrics"]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def proc(self, name, *args, data_dir=None):
        env = {**self.env, "DEALBEACON_DATA_DIR": data_dir or os.path.join(self.tmp, name)}
        p = Proc(name, args, env, self.tmp)
        self.procs[name] = p
        return p.start()

    def start(self, workers=1):
        self.proc("ingest", "ingest")
        for i in range(workers):
            self.proc(f"worker{i}", "worker")
        self.proc("sink", "sink", data_dir=os.path.join(self.tmp, "sink"))
        self.wait_http(f"{self.url}/readyz", "ingest")
        self.wait_http(f"http://127.0.0.1:{self.sql_port}/ping", "sink")
        self.assert_alive()
        return self

    def wait_http(self, url, name, timeout=90):
        def ok():
            assert self.procs[name].p.poll() is None, self.procs[name].log()
            return httpx.get(url, timeout=1).status_code == 200
        wait_until(ok, timeout=timeout, errors=(httpx.HTTPError,), what=f"{name} ready at {url}")

    def sql(self, query):
        r = httpx.post(f"http://127.0.0.1:{self.sql_port}/", auth=SQL_AUTH, content=query + " FORMAT JSONCompact", timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def assert_alive(self):
        for name, p in self.procs.items():
            if p.p.poll() is not None and not p.expected_exit:
                raise AssertionError(f"{name} exited with {p.p.returncode}:\n{p.log()}")

    def wait_rows(self, query, expected, timeout=120):
        last = []

        def probe():
            self.assert_alive()
            try:
                last[:] = [self.sql(query)]
            except (httpx.HTTPError, AssertionError) as e:
                last[:] = [e]
            return last[0] == expected
        try:
            wait_until(probe, timeout=timeout, every=0.5, what=query)
        except AssertionError:
            logs = "\n".join(f"--- {n}\n{p.log()}" for n, p in self.procs.items())
            raise AssertionError(f"{query}: wanted {expected}, last {last}\n{logs}") from None
        return expected

    def stop(self):
        for p in self.procs.values():
            p.stop()


@pytest.fixture
def stack_factory(kafka, tmp_path):
    stacks = []

    def make(**kw):
        s = Stack(kafka, tmp_path / f"stack{len(stacks)}", **kw)
        stacks.append(s)
        return s

    yield make
    for s in stacks:
        s.stop()
