"""Benchmark: events/s through POST /v1/events (batches of 20) in embedded mode vs a bare Starlette endpoint
that only parses the body. Same machine, same load generator, same run; prints the ratio.

    python bench/ingest_bench.py [--requests 10000] [--concurrency 16] [--time-cap 60]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.loadgen import make_bodies, run  # noqa: E402
from tests.support.ports import read_ports, unbound_port  # noqa: E402


def _wait(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def _load(url, bodies, concurrency, cap):
    with mp.get_context("spawn").Pool(1) as pool:  # the load runs in its own process
        return pool.apply(run, (url, bodies, concurrency, cap))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--time-cap", type=float, default=60)
    a = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "site", "add", "bench", "--data-dir", tmp],
                       check=True, capture_output=True)
        bare_port, ports_file = unbound_port(), os.path.join(tmp, "ports.json")  # plain uvicorn cannot report a port 0
        servers = {
            "bare": [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port), "--log-level", "warning",
                     "--no-access-log"],
            "embedded": [sys.executable, "-m", "dealbeacon.app.cli", "up", "--no-demo", "--data-dir", tmp, "--port", "0",
                         "--sql-port", "0"],
        }
        for name, cmd in servers.items():
            env = {**os.environ, "DEALBEACON_RATE_LIMIT_EVENTS_PER_S": "1e9", "DEALBEACON_RATE_LIMIT_BURST": "1000000000",
                   "DEALBEACON_PORTS_FILE": ports_file}
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            port = bare_port if name == "bare" else read_ports(ports_file, proc)["http"]
            try:
                _wait(f"http://127.0.0.1:{port}/v1/events", proc)
                url = f"http://127.0.0.1:{port}/v1/events"
                _load(url, make_bodies(200, a.batch, "bench"), a.concurrency, 10)  # warm-up
                r = _load(url, make_bodies(a.requests, a.batch, "bench"), a.concurrency, a.time_cap)
                r["events_per_s"] = r["requests"] * a.batch / r["elapsed_s"]
                results[name] = r
            finally:
                proc.terminate()
                proc.wait(30)
    for name, r in results.items():
        print(f"{name:9s} {r['events_per_s']:9.0f} events/s  {r['requests']} requests in {r['elapsed_s']:.1f}s  "
              f"p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  statuses {r['statuses']}")
    assert set(results["embedded"]["statuses"]) == {202}, "embedded answered non-202: the run is not comparable"
    print(f"ratio embedded/bare = {results['embedded']['events_per_s'] / results['bare']['events_per_s']:.2f}")


if __name__ == "__main__":
    main()
