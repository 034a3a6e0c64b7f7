"""HTTP serving for the composition roots: sockets bound once, by the process that serves them.

A port of 0 lets the OS choose; the process then knows its real port, uses it (banner, links, the demo's
own traffic) and, when ``DEALBEACON_PORTS_FILE`` is set, writes ``{"http": 8080, "sql": 8123, ...}`` there
once every socket is bound. Tests and scripts start servers on port 0 and read that file: no port is ever
probed free and then bound by someone else.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Literal

import orjson
import uvicorn


class Server(uvicorn.Server):
    """uvicorn server whose signals are handled by the composition root, so several servers stop together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port), ready to hand to ``Server.serve``.

    Made with ``IPPROTO_TCP`` as its protocol, and ``TCP_NODELAY`` set (accepted sockets inherit it): asyncio
    disables Nagle only on sockets whose ``proto`` says TCP, and ``socket.create_server`` leaves it 0. Without
    this, a response written in two parts (head, body) waited for the client's delayed ACK: 44 ms for every
    request on a kept-alive connection (bench/ingest_bench.py; tests/unit/test_serving.py checks the option)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def announce(ports_file: str, ports: dict[str, int]) -> None:
    """Write the bound ports as JSON (atomically), if a ports file was asked for."""
    if not ports_file:
        return
    tmp = f"{ports_file}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(ports))
    os.replace(tmp, ports_file)


def server(app, *, lifespan: Literal["auto", "on", "off"] = "auto") -> Server:
    return Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan))
