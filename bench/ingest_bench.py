"""Benchmark: events/s through POST /v1/events in embedded mode vs a bare Starlette endpoint that only parses
the body. Same machine, same load generator, same run; prints the ratio.

    python bench/ingest_bench.py [--requests 10000] [--batch 20] [--concurrency 16] [--time-cap 60]
                                 [--direct] [--open-loop] [--latency-samples 40]
    python bench/ingest_bench.py --pipeline   # CPU of the ingest steps per request, no server

For embedded mode a 202 means "in the local log" (fsync'd); the rows reach chdb behind it. So the embedded rate
is counted until the last accepted event is queryable on the SQL port (the rate the whole process sustains,
not the rate its log absorbs), and the 202 rate is printed beside it. ``--direct`` adds the hand-off without
the log (the 202 waits for chdb). ``--latency-samples``: POST -> queryable for single events on an idle
server. ``--open-loop``: requests on a fixed schedule (not waiting for answers) at rising rates, each for
``--open-seconds``; the highest rate whose p99 stays under 250 ms with every answer 202 and every event
stored within the run's drain time is reported as the sustained open-loop rate. ``--pipeline``: the ingest
pipeline's own CPU per request (body to hand-off, the hand-off a no-op): the body parsed and checked in one pass
(``contract.check_body``), against parsed then checked column by column (``contract.check_events``), against
one event at a time; same run, alternating rounds, best of each.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.loadgen import UA, make_bodies, run, run_open  # noqa: E402
from tests.support.ports import read_ports, unbound_port  # noqa: E402

ANALYST = ("bench", "bench-password-1")


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


def _open(url, rate_rps, seconds, batch):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_open, (url, rate_rps, seconds, batch, "bench"))


def _count(sql_url: str) -> int:
    r = httpx.post(sql_url, auth=ANALYST, content="SELECT count() FROM events", timeout=60)
    r.raise_for_status()
    return int(r.text.strip())


def _stored_by(sql_url: str, n: int, timeout_s: float = 300) -> float:
    """perf_counter time at which the events table first held ``n`` rows."""
    deadline = time.perf_counter() + timeout_s
    while (have := _count(sql_url)) < n:
        assert time.perf_counter() < deadline, f"only {have} of {n} events stored after {timeout_s}s"
        time.sleep(0.05)
    return time.perf_counter()


def _latency(url: str, sql_url: str, samples: int) -> list[float]:
    out = []
    with httpx.Client(timeout=10) as c:
        for i in range(samples + 3):
            eid, now = str(uuid.uuid4()), int(time.time() * 1000)
            body = {"site": "bench", "sent_at": now, "events": [
                {"event_id": eid, "type": "room_view", "room_id": "lat", "visitor_id": "v", "session_id": "s", "ts": now}]}
            t0 = time.perf_counter()
            assert c.post(url, json=body, headers={"User-Agent": "Mozilla/5.0 Chrome/126"}).status_code == 202
            q = f"SELECT count() FROM events WHERE event_id = '{eid}'"
            while c.post(sql_url, auth=ANALYST, content=q).text.strip() != "1":
                assert time.perf_counter() - t0 < 60, "row never became visible"
                time.sleep(0.005)
            if i >= 3:
                out.append(time.perf_counter() - t0)
    return sorted(out)


def _pct(xs: list[float], q: float) -> float:
    return 1000 * xs[min(len(xs) - 1, int(len(xs) * q))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--time-cap", type=float, default=60)
    ap.add_argument("--direct", action="store_true", help="also embedded mode without the local log")
    ap.add_argument("--latency-samples", type=int, default=40)
    ap.add_argument("--open-loop", action="store_true")
    ap.add_argument("--open-seconds", type=float, default=15)
    ap.add_argument("--rss", default="", help="EVENTS:ROOMS: embedded RSS after that load, hot-room cache vs all decoded")
    ap.add_argument("--pipeline", action="store_true")
    a = ap.parse_args()
    if a.pipeline:
        return pipeline_run()
    if a.rss:
        return rss_run(*(int(x) for x in a.rss.split(":")), a)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        from dealbeacon.core.analysts import AnalystRegistry

        reg = AnalystRegistry()
        reg.add(ANALYST[0], ["*"], ANALYST[1])
        reg.save(os.path.join(tmp, "analysts.json"))
        bare_port = unbound_port()  # plain uvicorn cannot report a port 0
        servers = {"bare": ([sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port),
                             "--log-level", "warning", "--no-access-log"], {})}
        for name, log in (("embedded", "true"), *((("direct", "false"),) if a.direct else ())):
            data = os.path.join(tmp, name)
            subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "site", "add", "bench", "--data-dir", data],
                           check=True, capture_output=True)
            servers[name] = ([sys.executable, "-m", "dealbeacon.app.cli", "up", "--no-demo", "--data-dir", data,
                              "--port", "0", "--sql-port", "0"], {"DEALBEACON_EMBEDDED_LOG": log})
        for name, (cmd, extra) in servers.items():
            ports_file = os.path.join(tmp, f"{name}.ports.json")
            env = {**os.environ, "DEALBEACON_RATE_LIMIT_EVENTS_PER_S": "1e9", "DEALBEACON_RATE_LIMIT_BURST": "1000000000",
                   "DEALBEACON_PORTS_FILE": ports_file, "DEALBEACON_ANALYSTS_FILE": os.path.join(tmp, "analysts.json"),
                   **extra}
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ports = {"http": bare_port} if name == "bare" else read_ports(ports_file, proc)
            url = f"http://127.0.0.1:{ports['http']}/v1/events"
            sql_url = f"http://127.0.0.1:{ports['sql']}/" if "sql" in ports else None
            try:
                _wait(url, proc)
                _load(url, make_bodies(200, a.batch, "bench"), a.concurrency, 10)  # warm-up
                base = 0
                if sql_url:
                    _stored_by(sql_url, 200 * a.batch)  # the warm-up is in before the clock starts
                    base = _count(sql_url)
                bodies = make_bodies(a.requests, a.batch, "bench")
                r = _load(url, bodies, a.concurrency, a.time_cap)
                n = r["requests"] * a.batch
                r["answer_eps"] = n / r["elapsed_s"]
                r["events_per_s"] = r["answer_eps"]
                if sql_url:  # from the first request (not from building the bodies and starting the load process)
                    r["events_per_s"] = n / (_stored_by(sql_url, base + n) - r["started"])
                    if a.latency_samples:
                        r["latency"] = _latency(url, sql_url, a.latency_samples)
                    if a.open_loop:
                        r["open"] = open_loop_search(url, sql_url, a, r["events_per_s"])
                results[name] = r
            finally:
                proc.terminate()
                proc.wait(60)
    bare = results["bare"]["events_per_s"]
    for name, r in results.items():
        print(f"{name:9s} {r['events_per_s']:9.0f} events/s stored ({r['answer_eps']:.0f}/s answered)  "
              f"{r['requests']} requests in {r['elapsed_s']:.1f}s  p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  "
              f"statuses {r['statuses']}  ratio to bare {r['events_per_s'] / bare:.3f}")
        if "latency" in r:
            print(f"{'':9s} POST -> queryable: p50 {_pct(r['latency'], 0.5):.0f} ms, p95 {_pct(r['latency'], 0.95):.0f} ms "
                  f"({len(r['latency'])} single events on an idle server)")
        for rate, o in r.get("open", []):
            print(f"{'':9s} open loop {rate:7.0f} ev/s offered: {o['answered']} answered {o['statuses']}, p99 "
                  f"{o['p99_ms']:.0f} ms, stored within {o['drain_s']:.1f}s of the end -> {'ok' if o['ok'] else 'over'}")
        if r.get("open"):
            ok = [rate for rate, o in r["open"] if o["ok"]]
            print(f"{'':9s} sustained open-loop rate (p99 < 250 ms, all 202, all stored): {max(ok) if ok else 0:.0f} ev/s")
    for name in results:
        if name != "bare":
            assert set(results[name]["statuses"]) == {202}, f"{name} answered non-202: the run is not comparable"


def _vmrss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def rss_run(events: int, rooms: int, a) -> None:
    """RSS of `dealbeacon up` once ``events`` over ``rooms`` rooms are stored: the default hot-room cache, then
    every room decoded (the old layout), same load, same run."""
    out = {}
    for name, hot in (("hot cache", ""), ("all decoded", str(10**9))):
        with tempfile.TemporaryDirectory() as tmp:
            from dealbeacon.core.analysts import AnalystRegistry

            reg = AnalystRegistry()
            reg.add(ANALYST[0], ["*"], ANALYST[1])
            reg.save(os.path.join(tmp, "analysts.json"))
            subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "site", "add", "bench", "--data-dir", tmp],
                           check=True, capture_output=True)
            env = {**os.environ, "DEALBEACON_RATE_LIMIT_EVENTS_PER_S": "1e9", "DEALBEACON_RATE_LIMIT_BURST": "1000000000",
                   "DEALBEACON_PORTS_FILE": os.path.join(tmp, "ports.json"),
                   "DEALBEACON_ANALYSTS_FILE": os.path.join(tmp, "analysts.json"),
                   **({"DEALBEACON_EMBEDDED_HOT_ROOMS": hot} if hot else {})}
            proc = subprocess.Popen([sys.executable, "-m", "dealbeacon.app.cli", "up", "--no-demo", "--data-dir", tmp,
                                     "--port", "0", "--sql-port", "0"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                ports = read_ports(os.path.join(tmp, "ports.json"), proc)
                url, sql_url = f"http://127.0.0.1:{ports['http']}/v1/events", f"http://127.0.0.1:{ports['sql']}/"
                _wait(url, proc)
                idle = _vmrss_mb(proc.pid)
                n_req = events // a.batch
                r = _load(url, make_bodies(n_req, a.batch, "bench", rooms), a.concurrency, 600)
                _stored_by(sql_url, r["requests"] * a.batch, timeout_s=600)
                time.sleep(1)
                out[name] = (idle, _vmrss_mb(proc.pid), r["requests"] * a.batch)
            finally:
                proc.terminate()
                proc.wait(60)
    for name, (idle, rss, n) in out.items():
        print(f"{name:12s} idle {idle:.0f} MB, after {n} events over {rooms} rooms: {rss:.0f} MB")
    print(f"ratio hot cache / all decoded (growth over idle): "
          f"{(out['hot cache'][1] - out['hot cache'][0]) / (out['all decoded'][1] - out['all decoded'][0]):.2f}")


def pipeline_run(rounds: int = 5, requests: int = 2000) -> None:
    from dealbeacon.core import contract
    from dealbeacon.core.settings import Settings
    from dealbeacon.core.sites import Site, SiteRegistry
    from ingest.metrics import Metrics
    from ingest.pipeline import IngestPipeline, Request

    class NoHandoff:  # the steps before the hand-off are measured, not the log or the store
        async def submit(self, events, dead):
            return {}

    sites = SiteRegistry()
    sites.add(Site(key="bench", secret="s" * 32))
    pipeline = IngestPipeline(Settings(rate_limit_events_per_s=1e9, rate_limit_burst=10**9), sites, NoHandoff(), Metrics())
    one_pass, by_columns = contract.check_body, contract.check_events
    modes = {  # (check_body, check_events) as each way has them
        "one pass": (one_pass, by_columns),
        "columns": (lambda body: None, by_columns),
        "one by one": (lambda body: None, lambda events: None),
    }

    async def once(bodies: list[bytes]) -> float:
        t0 = time.perf_counter()
        for body in bodies:
            out = await pipeline.handle(Request(raw=body, content_encoding="", origin=None, user_agent=UA, ip="127.0.0.0",
                                                received_at_ms=int(time.time() * 1000), monotonic_s=time.monotonic()))
            assert out.status == 202 and not out.body["rejected"], out.body
        return (time.perf_counter() - t0) / len(bodies)

    for batch in (1, 5, 20, 100):
        bodies = make_bodies(max(200, requests // max(1, batch // 5)), batch, "bench")
        best = dict.fromkeys(modes, float("inf"))
        for _ in range(rounds):
            for mode, (body_check, events_check) in modes.items():
                contract.check_body, contract.check_events = body_check, events_check
                best[mode] = min(best[mode], asyncio.run(once(bodies)))
        contract.check_body, contract.check_events = one_pass, by_columns
        print(f"batch {batch:3d}: {1e6 * best['one pass']:7.1f} us/request in one pass, {1e6 * best['columns']:7.1f} "
              f"parsed then by columns, {1e6 * best['one by one']:7.1f} one by one  -> "
              f"{best['columns'] / best['one pass']:.2f}x, {best['one by one'] / best['one pass']:.2f}x")


def open_loop_search(url: str, sql_url: str, a, closed_rate: float) -> list[tuple[float, dict]]:
    """Rates from half the closed-loop rate up, in steps of 1.25x, until one fails (bounded: 8 steps)."""
    out = []
    rate = max(100.0, 0.5 * closed_rate)
    for _ in range(8):
        base = _count(sql_url)
        o = _open(url, rate / a.batch, a.open_seconds, a.batch)
        end = time.perf_counter()
        accepted = o["statuses"].get(202, 0) * a.batch
        try:
            drain = _stored_by(sql_url, base + accepted, timeout_s=30) - end
        except AssertionError:
            drain = float("inf")
        o["drain_s"] = drain
        o["ok"] = o["p99_ms"] < 250 and set(o["statuses"]) == {202} and drain < 2 and not o["skipped"]
        out.append((rate, o))
        if not o["ok"]:
            break
        rate *= 1.25
    return out


if __name__ == "__main__":
    main()
