"""A local single-node Apache Kafka (KRaft, combined broker+controller) for development, tests and CI.

Jars come from Maven Central through tools/kafka/pom.xml into a cache (``~/.cache/dealbeacon/kafka/<version>/lib``,
or ``$DEALBEACON_KAFKA_CACHE``; resolved once); the broker runs as ``java -cp 'lib/*' kafka.Kafka server.properties`` after
``kafka.tools.StorageTool format``. Not for production: there, use real Kafka (see docker-compose.yml).

    dealbeacon kafka fetch                       resolve the jars (cached)
    dealbeacon kafka start --dir D --port 9092   format (first time) and start; waits for metadata
    dealbeacon kafka stop --dir D
"""
from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools", "kafka")
KAFKA_VERSION = "4.1.1"
_XDG = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
# outside the checkout, so fresh clones (CI) reuse it
CACHE = os.environ.get("DEALBEACON_KAFKA_CACHE") or os.path.join(_XDG, "dealbeacon", "kafka", KAFKA_VERSION)


def lib_dir() -> str:
    return os.path.join(CACHE, "lib")


def fetch(quiet: bool = True) -> str:
    """Resolve the broker jars with Maven (once; later calls return the cache)."""
    lib = lib_dir()
    marker = os.path.join(lib, ".complete")
    if os.path.exists(marker):
        return lib
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn not found: install Maven (apt-get install maven) to resolve Kafka from Maven Central")
    tmp = lib + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-B", "-f", os.path.join(TOOLS, "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={tmp}", f"-Dkafka.version={KAFKA_VERSION}"]
    if quiet:
        cmd.insert(1, "-q")
    subprocess.run(cmd, check=True)
    if not any(n.startswith("kafka_2.13-") for n in os.listdir(tmp)):
        raise RuntimeError(f"Maven resolved no kafka_2.13 jar into {tmp}")
    shutil.rmtree(lib, ignore_errors=True)
    os.replace(tmp, lib)
    open(marker, "w").close()
    return lib


def _java(lib: str, main: str, *args: str, log4j: bool = True) -> list[str]:
    cmd = ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]
    if log4j:
        cmd.append(f"-Dlog4j2.configurationFile={os.path.join(TOOLS, 'log4j2.properties')}")
    return cmd + ["-cp", os.path.join(lib, "*"), main, *args]


def _props(data_dir: str, port: int, controller_port: int) -> str:
    return "\n".join([
        "process.roles=broker,controller", "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER", "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={os.path.join(data_dir, 'logs')}",
        "num.partitions=6", "default.replication.factor=1", "min.insync.replicas=1",
        "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=6",
        "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1", "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0", "auto.create.topics.enable=false",
        "log.retention.hours=168", "log.segment.bytes=67108864",
    ]) + "\n"


def new_cluster_id() -> str:
    """A KRaft cluster id: base64url of a random UUID, redrawn when it starts with '-' (the storage tool would
    read it as an option; Kafka's own Uuid.randomUuid does the same)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, log_path: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Kafka exited with {proc.returncode}:\n{_tail(log_path)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"Kafka did not listen on {port} within {timeout}s:\n{_tail(log_path)}")


def _tail(path: str, n: int = 3000) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


async def wait_metadata(bootstrap: str, timeout: float = 60) -> None:
    """Wait until the broker answers metadata requests (the port opens before it can serve)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as e:  # not ready yet
            last = e
            await asyncio.sleep(0.3)
        finally:
            await admin.close()
    raise RuntimeError(f"Kafka at {bootstrap} did not serve metadata within {timeout}s: {last}")


@dataclass
class LocalKafka:
    data_dir: str
    port: int = 9092
    controller_port: int = 9093
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.data_dir, "kafka.log")

    def start(self, timeout: float = 90) -> LocalKafka:
        lib = fetch()
        os.makedirs(self.data_dir, exist_ok=True)
        props = os.path.join(self.data_dir, "server.properties")
        with open(props, "w") as fh:
            fh.write(_props(self.data_dir, self.port, self.controller_port))
        if not os.path.exists(os.path.join(self.data_dir, "logs", "meta.properties")):
            cluster_id = new_cluster_id()
            subprocess.run(_java(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", props,
                                 "--ignore-formatted"),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(_java(lib, "kafka.Kafka", props), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        with open(os.path.join(self.data_dir, "kafka.pid"), "w") as fh:
            fh.write(str(self.proc.pid))
        _wait_port(self.port, timeout, self.proc, self.log_path)
        import asyncio

        asyncio.run(wait_metadata(self.bootstrap, timeout))
        return self

    def stop(self, timeout: float = 30) -> None:
        pid = self.proc.pid if self.proc else _read_pid(self.data_dir)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    return
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()


def _read_pid(data_dir: str) -> int | None:
    try:
        with open(os.path.join(data_dir, "kafka.pid")) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None
