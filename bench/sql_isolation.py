"""Benchmark: does analyst SQL hold up ingest? Ingest latency (POST /v1/events, 5 events per request) alone,
then while 8 heavy analyst queries run on the SQL port, against one real `dealbeacon up`, measured in the
same run; prints p50/p99 and the ratio. Target: p99 under load <= 4x p99 alone (exit 1 past it).

    python bench/sql_isolation.py [--alone 5] [--loaded 20]

tests/e2e/test_security.py runs the same measurement and asserts what must hold whatever the machine's speed
(every request accepted, the heavy queries admitted and killed when their clients leave, ingest not starved).
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support.data import event  # noqa: E402

HEAVY = "SELECT count() FROM numbers(2000000000) WHERE sipHash64(number) % 7 = 1"
TARGET_RATIO = 4.0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ingest(url: str, seconds: float, site: str = "acme", room: str = "acme-deal") -> tuple[list[float], list[int]]:
    """Requests one after another (50 ms apart), bounded in count and time: latencies and statuses."""
    latencies, statuses = [], []
    with httpx.Client(timeout=10) as c:
        t_end = time.time() + seconds
        while time.time() < t_end and len(latencies) < 2000:
            now = int(time.time() * 1000)
            body = {"site": site, "sent_at": now, "events": [event("engagement", ts=now - 100, room=room) for _ in range(5)]}
            t0 = time.perf_counter()
            r = c.post(url + "/v1/events", json=body)
            latencies.append(time.perf_counter() - t0)
            statuses.append(r.status_code)
            time.sleep(0.05)
    return latencies, statuses


def measure(url: str, sql_port: int, heavy_auth: list[tuple[str, str]], alone_s: float = 5, loaded_s: float = 20) -> dict:
    """Ingest alone, then with 8 heavy queries (from the given analysts, round robin) held for up to 6 s each."""
    stop = [0.0]
    started, answers = [], []

    def heavy(auth):
        while time.time() < stop[0] - 20:
            started.append(auth[0])
            try:  # clients that give up early: their queries are killed, not left running
                r = httpx.post(f"http://127.0.0.1:{sql_port}/", content=HEAVY, auth=auth, timeout=6)
                answers.append(r.status_code)
                time.sleep(0.5)  # refused (429: this analyst's two queries still run): try again shortly
            except httpx.HTTPError:
                answers.append("client left")

    baseline, _ = ingest(url, alone_s)
    stop[0] = time.time() + loaded_s + 40
    threads = [threading.Thread(target=heavy, args=(heavy_auth[i % len(heavy_auth)],), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(2)
    latencies, statuses = ingest(url, loaded_s)
    stop[0] = 0
    for t in threads:
        t.join(10)
    res = {"alone_p50": pct(baseline, 0.5), "alone_p99": pct(baseline, 0.99), "requests": len(latencies),
           "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "max": max(latencies), "statuses": statuses,
           "heavy_started": len(started), "answers": sorted(collections.Counter(map(str, answers)).items())}
    res["ratio"] = res["p99"] / res["alone_p99"]
    return res


def report(r: dict) -> str:
    return (f"ingest alone: p50 {r['alone_p50'] * 1000:.1f} ms, p99 {r['alone_p99'] * 1000:.1f} ms; under 8 heavy analyst "
            f"queries: {r['requests']} requests, p50 {r['p50'] * 1000:.1f} ms, p99 {r['p99'] * 1000:.1f} ms, max "
            f"{r['max'] * 1000:.1f} ms; p99 ratio {r['ratio']:.2f} (target <= {TARGET_RATIO:g}); heavy queries started "
            f"{r['heavy_started']}, answers {r['answers']}")


def _cli(data: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", *args, "--data-dir", data], check=True,
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "DEALBEACON_ANALYSTS_FILE": ""}).stdout
    return orjson.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alone", type=float, default=5)
    ap.add_argument("--loaded", type=float, default=20)
    args = ap.parse_args()
    from tests.support.servers import Server
    with tempfile.TemporaryDirectory() as data:
        _cli(data, "site", "add", "acme")
        auth = [(f"heavy{i}", _cli(data, "analyst", "add", f"heavy{i}", "--site", "acme")["password"]) for i in range(4)]
        srv = Server(data, "--no-demo", env={"DEALBEACON_ANALYSTS_FILE": "", "DEALBEACON_SQL_MAX_MEMORY_BYTES": "500000000"})
        srv.start()
        try:
            r = measure(srv.url, srv.sql_port, auth, args.alone, args.loaded)
        finally:
            srv.stop()
    print(report(r))
    return 0 if r["ratio"] <= TARGET_RATIO and set(r["statuses"]) == {202} else 1


if __name__ == "__main__":
    sys.exit(main())
