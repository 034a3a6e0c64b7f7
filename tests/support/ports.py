"""Ports. dealbeacon's own servers bind port 0 themselves and report what they got (DEALBEACON_PORTS_FILE),
and in-process test servers bind port 0 too: nothing probes a port free and binds it later.

``unbound_port`` remains only for third-party servers that must be told a port up front (Kafka's KRaft
listeners and quorum, aiosmtpd); their fixtures retry with new ports when a start fails."""
from __future__ import annotations

import os
import socket
import subprocess

import orjson

from .waiting import wait_until


def unbound_port() -> int:
    """A port that was free a moment ago. Only for servers that cannot bind port 0 themselves."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_ports(path: str, proc: subprocess.Popen | None = None, timeout: float = 60.0, log=lambda: "") -> dict:
    """The ports a dealbeacon process bound, once it has written its ports file."""
    def probe():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before binding:\n{log()}")
        if os.path.exists(path):
            with open(path, "rb") as fh:
                return orjson.loads(fh.read())
        return None
    return wait_until(probe, timeout=timeout, what=f"ports file {path}")
