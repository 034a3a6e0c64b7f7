"""The analytics dashboard in real headless Chromium over the demo's simulated history (a real `dealbeacon up`):
every chart is drawn with the numbers the KPI views give (read independently on the SQL port), the owner and
month filters change them, each chart's CSV download matches what was drawn, and a screenshot is kept."""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import pathlib
import shutil
import subprocess
import time

import orjson

from tests.support.browser import sql_reader
from tests.support.servers import Server
from tests.support.waiting import wait_until

ROOT = pathlib.Path(__file__).parents[2]
ARTIFACTS = pathlib.Path(os.environ.get("DEALBEACON_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def _approx(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= 1e-3 * max(1.0, abs(float(b)))


def _series(chart: dict, label: str) -> list:
    return next(s["data"] for s in chart["datasets"] if s["label"] == label)


def test_dashboard_draws_the_views_numbers_filters_and_exports(tmp_path):
    assert shutil.which("node")
    data = tmp_path / "data"
    data.mkdir()
    srv = Server(data, env={"DEALBEACON_DEMO_DEALS": "16", "DEALBEACON_DEMO_MAX_EVENTS": "0"}).start()
    started = time.monotonic()  # ready: its ticker runs the first time rules within 10 s
    try:
        sql = sql_reader(srv)
        # the demo's history is in once its quotas are (the last thing it sends)
        wait_until(lambda: sql("SELECT count() FROM kpi_quotas WHERE site = 'demo'")[0][0] >= 9, timeout=240,
                   what="the demo history seeded")
        # and the first wall-clock tick (10 s after start) has moved the scores from the history's end to now:
        # the charts are drawn and their CSVs downloaded a few seconds apart, from a store that stays put
        time.sleep(max(0.0, started + 12 - time.monotonic()))
        srv.wait_applied()
        password = (data / "demo-analyst.txt").read_text().strip()
        today = dt.datetime.now(dt.UTC).date()
        month = lambda days: (today - dt.timedelta(days=days)).strftime("%Y-%m")  # noqa: E731
        cfg = {"url": f"{srv.url}/analytics?site=demo", "user": "demo", "password": password, "owner": "seller-1",
               "from": month(150), "to": month(45), "screenshot": str(tmp_path / "analytics.png")}
        run = subprocess.run(["node", "e2e/analytics.mjs", orjson.dumps(cfg).decode()], cwd=ROOT / "js-snippet",
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]
        out = orjson.loads(run.stdout.strip().splitlines()[-1])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "analytics.png", ARTIFACTS / "analytics-dashboard.png")
        assert out["status"] == 200 and out["errors"] == []
        assert out["owners"] == ["", "seller-1", "seller-2", "seller-3"]
        drawn = out["all"]["charts"]
        assert all(c["canvas"] and c["rows"] for c in drawn.values()), {k: len(c["rows"]) for k, c in drawn.items()}

        # the demo is meaningful: deals won and lost, a funnel that narrows, close dates that slipped, quota
        funnel = {s: (e, c) for s, e, c in sql("SELECT stage, sum(entered), sum(converted) FROM kpi_stage_funnel "
                                               "WHERE site = 'demo' GROUP BY stage")}
        f = drawn["funnel"]
        assert [funnel[s] for s in f["labels"]] == list(zip(_series(f, "entered"), _series(f, "converted to a later stage")))
        assert funnel["closed_won"][0] > 0 and funnel["closed_lost"][0] > 0 and funnel["negotiation"][1] < funnel["negotiation"][0]
        cycles = [r[0] for r in sql("SELECT cycle_days FROM kpi_deals WHERE site = 'demo' AND won = 1")]
        buckets: dict[int, int] = {}
        for c in cycles:
            buckets[int(c) // 15 * 15] = buckets.get(int(c) // 15 * 15, 0) + 1
        assert drawn["cycle"]["labels"] == [f"{b}-{b + 14} d" for b in sorted(buckets)]
        assert _series(drawn["cycle"], "won deals") == [buckets[b] for b in sorted(buckets)]
        outcomes = {m: (w, c, wa, ca) for m, w, c, wa, ca in sql(
            "SELECT toString(close_month), sum(won_deals), sum(closed_deals), sum(won_amount), sum(closed_amount) "
            "FROM kpi_outcomes WHERE site = 'demo' GROUP BY close_month")}
        o = drawn["outcomes"]
        assert o["labels"] == sorted(outcomes)
        assert all(_approx(x, round(outcomes[m][0] / outcomes[m][1], 3)) for m, x in zip(o["labels"], _series(o, "win rate (count)")))
        assert all(_approx(x, round(outcomes[m][2] / outcomes[m][3], 3)) for m, x in zip(o["labels"], _series(o, "win rate (amount)")))
        tiers = {t: r for t, r in sql("SELECT engagement, win_rate FROM kpi_win_by_engagement WHERE site = 'demo' AND age_days = 14")}
        w = drawn["win_by_band"]
        assert set(w["labels"]) == set(tiers) and all(_approx(x, round(tiers[t], 3)) for t, x in zip(w["labels"], _series(w, "win rate")))
        slip = {m: (s, d) for m, s, d in sql("SELECT toString(due_month), sum(slipped_deals), sum(due_deals) FROM kpi_slippage "
                                             "WHERE site = 'demo' GROUP BY due_month")}
        s = drawn["slippage"]
        assert s["labels"] == sorted(slip) and sum(v[0] for v in slip.values()) > 0
        assert all(_approx(x, round(slip[m][0] / slip[m][1], 3)) for m, x in zip(s["labels"], _series(s, "slippage rate")))
        cov = {f"{o} {p}": (q, won, pipe) for o, p, q, won, pipe in sql(
            "SELECT owner, period, quota, won_amount, open_pipeline FROM kpi_coverage WHERE site = 'demo'")}
        c = drawn["coverage"]
        assert sorted(c["labels"]) == sorted(cov)
        assert [cov[k] for k in c["labels"]] == list(zip(_series(c, "quota"), _series(c, "won"), _series(c, "open pipeline")))
        assert sum(v[1] for v in cov.values()) > 0 and sum(v[2] for v in cov.values()) > 0  # won deals and open pipeline
        content = {(k, o): m for k, o, m in sql("SELECT kind, outcome, minutes_per_deal FROM kpi_content_effectiveness "
                                                "WHERE site = 'demo'")}
        ce = drawn["content"]
        assert all(_approx(x, round(content.get((k, "won"), 0), 2)) for k, x in zip(ce["labels"], _series(ce, "won deals")))
        assert all(_approx(x, round(content.get((k, "lost"), 0), 2)) for k, x in zip(ce["labels"], _series(ce, "lost deals")))
        pages = sql("SELECT content_id, page, readers, share_of_readers FROM kpi_page_dropoff WHERE site = 'demo'")
        top = sorted({(-r, cid) for cid, p, r, _ in pages if p == 1})[:6]
        d = drawn["dropoff"]
        assert sorted(s["label"] for s in d["datasets"]) == sorted(cid for _, cid in top)
        for series in d["datasets"]:
            share = {p: x for cid, p, _, x in pages if cid == series["label"]}
            assert all(_approx(y, round(share[p], 3)) if p in share else y is None for p, y in zip(d["labels"], series["data"]))

        # filters: one owner, then a month range; the drawn numbers follow the views with the same filter
        mine = out["owner"]["charts"]
        want = {s: (e, c) for s, e, c in sql("SELECT stage, sum(entered), sum(converted) FROM kpi_stage_funnel WHERE site = 'demo' "
                                             "AND owner = 'seller-1' GROUP BY stage")}
        assert [want[s] for s in mine["funnel"]["labels"]] == list(zip(_series(mine["funnel"], "entered"),
                                                                       _series(mine["funnel"], "converted to a later stage")))
        assert mine["funnel"]["datasets"] != drawn["funnel"]["datasets"]
        assert {lb.split(" ")[0] for lb in mine["coverage"]["labels"]} == {"seller-1"}
        ranged = out["range"]["charts"]
        assert out["range"]["filters"] == {"from": cfg["from"], "to": cfg["to"], "owner": "seller-1"}
        lo, hi = cfg["from"] + "-01", cfg["to"] + "-01"
        want = {s: e for s, e in sql("SELECT stage, sum(entered) FROM kpi_stage_funnel WHERE site = 'demo' AND owner = 'seller-1' "
                                     f"AND cohort_month BETWEEN '{lo}' AND '{hi}' GROUP BY stage")}
        assert dict(zip(ranged["funnel"]["labels"], _series(ranged["funnel"], "entered"))) == want
        assert ranged["funnel"]["datasets"] != mine["funnel"]["datasets"]
        assert all(lo <= m <= hi for m in ranged["slippage"]["labels"]) and ranged["slippage"]["labels"]

        # CSV export of every chart: the file the browser downloads holds the rows the chart was drawn from
        for chart, got in out["csv"].items():
            assert got["name"] == f"demo-{chart}.csv"
            table = list(csv.reader(io.StringIO(got["text"])))
            rows = ranged[chart]["rows"]
            assert len(table) == len(rows) + 1, chart
            for line, row in zip(table[1:], rows):
                values = [row[col] for col in table[0]]
                assert all(_approx(v, x) if isinstance(v, (int, float)) and not isinstance(v, bool) else
                           (x == "" if v is None else x == str(v)) for v, x in zip(values, line)), (chart, line, row)
        print("analytics dashboard screenshot:", ARTIFACTS / "analytics-dashboard.png")

        # the Monday report on the command line, through the SQL port as the demo's analyst
        import sys
        year = str(today.year)
        report = subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "kpi", "--site", "demo", "--period", year,
                                 "--data-dir", str(data), "--sql-port", str(srv.sql_port)],
                                capture_output=True, text=True, timeout=60)
        assert report.returncode == 0, report.stderr
        print(report.stdout)
        lines = report.stdout.splitlines()
        assert lines[0] == f"dealbeacon KPIs · site demo · {year} ({year}-01-01 .. {year}-12-31)"
        team = lines[-1].split()
        won = sql(f"SELECT countIf(won = 1), countIf(closed = 1) FROM kpi_deals WHERE site = 'demo' AND toYear(closed_at) = {year}")[0]
        assert team[0] == "(team)" and [int(team[1]), int(team[2])] == [won[1], won[0]]
        bad = subprocess.run([sys.executable, "-m", "dealbeacon.app.cli", "kpi", "--site", "demo", "--period", "2026-Q9",
                              "--data-dir", str(data), "--sql-port", str(srv.sql_port)], capture_output=True, text=True)
        assert bad.returncode == 2 and "--period '2026-Q9'" in bad.stderr
    finally:
        srv.stop()
