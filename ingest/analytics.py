"""The analyst layer over HTTP: quotas (site secret) and the KPI dashboard (analyst credentials).

    PUT  /v1/sites/{site}/quotas/{owner}     {"periods": [{"period": "2026-Q3", "amount": 120000}, ...]}
                                             an owner's whole quota plan (a PUT replaces it); owner ``_team``:
                                             the team's total; site secret
    GET  /v1/sites/{site}/quotas             the current plans; site secret
    GET  /analytics?site=S                   the dashboard page (HTTP Basic: an analyst of the SQL port)
    GET  /v1/sites/{site}/analytics          the filters' choices (owners, months) and the chart list
    GET  /v1/sites/{site}/analytics/{chart}  one chart's data: ?from=YYYY-MM&to=YYYY-MM&owner=O[&format=csv]

Every chart is one documented query over the KPI views (sinks/kpi_sql.py, README "For analysts"), so the
dashboard, Grafana and an analyst's own SQL read the same numbers. The queries run on the read-only
session (``reader``), built from validated values only (months by pattern, the owner quoted). An analyst
sees the sites its credentials list (403 for any other); the page and its data need the same credentials.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import io
import os
import re

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from dealbeacon.core.analysts import Analyst, AnalystsFile, basic_credentials
from dealbeacon.core.contract import Rejected
from dealbeacon.core.sqltext import sql_string

from . import bodies
from .bodies import parse
from .body import read_capped

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "analytics_page.html")
CHART_JS = os.path.join(HERE, "static", "chart.umd.min.js")  # Chart.js 4.6.1 (MIT), vendored from npm
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ID = re.compile(bodies.ID_PATTERN)
MAX_ROWS = 10_000
TEAM = "_team"  # the quota owner that stands for the whole team (its quota measured against every owner's deals)


def _filters(site: str, params) -> dict[str, str]:
    """Validated filters as SQL literals; raises Rejected naming the parameter."""
    unknown = set(params) - {"from", "to", "owner", "format"}
    if unknown:
        raise Rejected("unknown_field", sorted(unknown)[0], "filters: from, to (YYYY-MM), owner; format=csv")
    out = {"site": sql_string(site), "from": "toDate('1970-01-01')", "to": "toDate('2149-06-01')", "owner": ""}
    for name in ("from", "to"):
        value = params.get(name, "")
        if value:
            if not _MONTH.fullmatch(value):
                raise Rejected("invalid_value", name, "a month, YYYY-MM")
            out[name] = f"toDate('{value}-01')"
    owner = params.get("owner", "")
    if len(owner) > 256:
        raise Rejected("too_long", "owner", "at most 256 characters")
    if owner:
        out["owner"] = f" AND owner = {sql_string(owner)}"
    return out


# chart -> (title, what the period filters, SQL over the KPI views). {site}, {from}, {to} are SQL literals;
# {owner} is '' or "AND owner = '...'".
CHARTS: dict[str, tuple[str, str, str]] = {
    "funnel": ("Stage funnel", "cohort month (deals created)", """
SELECT stage, any(position) AS position, sum(entered) AS entered, sum(converted) AS converted,
       if(countIf(conversion_pct IS NULL) > 0, NULL, round(100 * converted / entered, 1)) AS conversion_pct
FROM kpi_stage_funnel
WHERE site = {site} AND cohort_month BETWEEN {from} AND {to}{owner}
GROUP BY stage ORDER BY position, stage"""),
    "cycle": ("Sales cycle of won deals (days)", "close month", """
SELECT toUInt32(intDiv(toUInt32(floor(cycle_days)), 15) * 15) AS from_day, count() AS won_deals,
       round(avg(cycle_days), 1) AS mean_days
FROM kpi_deals
WHERE site = {site} AND won = 1 AND close_month BETWEEN {from} AND {to}{owner}
GROUP BY from_day ORDER BY from_day"""),
    "outcomes": ("Win rate by close month, by count and by amount", "close month", """
SELECT toString(close_month) AS month, sum(closed_deals) AS closed, sum(won_deals) AS won,
       round(sum(won_deals) / sum(closed_deals), 3) AS win_rate,
       round(if(sum(closed_amount) > 0, sum(won_amount) / sum(closed_amount), NULL), 3) AS win_rate_amount,
       round(if(sum(won_deals) > 0, sum(won_amount) / sum(won_deals), NULL), 2) AS avg_deal_size
FROM kpi_outcomes
WHERE site = {site} AND close_month BETWEEN {from} AND {to}{owner}
GROUP BY close_month ORDER BY close_month"""),
    "win_by_band": ("Win rate by engagement at day 14 (deal score: low < 50, medium, high >= 80)", "close month", """
SELECT engagement, count() AS deals, sum(won) AS won_deals, round(sum(won) / count(), 3) AS win_rate
FROM kpi_engagement_at_age
WHERE site = {site} AND age_days = 14{owner}
  AND room_id IN (SELECT room_id FROM kpi_deals WHERE site = {site} AND close_month BETWEEN {from} AND {to})
GROUP BY engagement ORDER BY indexOf(['low', 'medium', 'high'], engagement)"""),
    "slippage": ("Slippage by due month", "due month (expected close)", """
SELECT toString(due_month) AS month, sum(due_deals) AS due, sum(slipped_deals) AS slipped,
       round(sum(slipped_deals) / sum(due_deals), 3) AS slippage_rate,
       round(if(sum(slipped_deals) > 0, sumIf(avg_slip_days * slipped_deals, slipped_deals > 0) / sum(slipped_deals), NULL), 1)
           AS avg_slip_days
FROM kpi_slippage
WHERE site = {site} AND due_month BETWEEN {from} AND {to}{owner}
GROUP BY due_month ORDER BY due_month"""),
    "coverage": ("Quota, won and pipeline per owner", "quota periods overlapping the months", """
SELECT owner, period, quota, won_amount, open_pipeline, round(weighted_pipeline, 2) AS weighted_pipeline,
       round(attainment, 3) AS attainment, round(coverage, 3) AS coverage
FROM kpi_coverage
WHERE site = {site} AND period_end >= {from} AND period_start <= toLastDayOfMonth({to}){owner}
ORDER BY period_start, owner"""),
    "content": ("Buyer minutes per content kind, won vs lost (all owners, all time)", "not filtered", """
SELECT kind, sumIf(round(minutes_per_deal, 2), outcome = 'won') AS won_minutes_per_deal,
       sumIf(round(minutes_per_deal, 2), outcome = 'lost') AS lost_minutes_per_deal
FROM kpi_content_effectiveness
WHERE site = {site}
GROUP BY kind ORDER BY kind"""),
    "dropoff": ("Where readers stop: share of readers reaching each page, the 6 most read documents (all owners, "
                "all time)", "not filtered", """
SELECT content_id, page, readers, stopped_here, round(share_of_readers, 3) AS share_of_readers
FROM kpi_page_dropoff
WHERE site = {site} AND content_id IN (SELECT content_id FROM kpi_page_dropoff WHERE site = {site} AND page = 1
                                       ORDER BY readers DESC, content_id LIMIT 6)
ORDER BY content_id, page"""),
}


def chart_sql(chart: str, site: str, params) -> str:
    title, _, sql = CHARTS[chart]
    f = _filters(site, params)
    return sql.format(**f).strip() + f"\nLIMIT {MAX_ROWS}"


class AnalyticsAPI:
    """``reader(sql)`` runs a read-only query (blocking) -> rows; ``submit(records)`` hands quota records off
    (a 503 response or None); ``analysts_file``: the SQL port's users."""

    def __init__(self, sites, submit, reader, analysts_file: str, clock_ms):
        self.sites, self.submit, self.reader, self.clock_ms = sites, submit, reader, clock_ms
        self.analysts = AnalystsFile(analysts_file)
        self._queries = asyncio.Semaphore(2)  # dashboards share the engine with ingest: two chart queries at a time
        self._auth_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="analytics-auth")

    # -- quotas (site secret)
    def _site(self, request: Request):
        site = self.sites.get(request.path_params["site"])
        if site is None or not site.bearer_ok(request.headers.get("authorization", "")):
            return None
        return site

    async def put_quotas(self, request: Request) -> Response:
        site = self._site(request)
        if site is None:
            return JSONResponse({"error": "unauthorized", "detail": "Authorization: Bearer <site secret>"}, status_code=401)
        owner = request.path_params["owner"]
        raw = await read_capped(request, 262_144)
        if len(raw) > 262_144:
            return JSONResponse({"error": "body_too_large", "reason": "body_too_large"}, status_code=413)
        try:
            if not _ID.fullmatch(owner):
                raise Rejected("invalid_value", "owner", "1-128 characters [A-Za-z0-9._:@/-]")
            try:
                body = orjson.loads(raw or b"{}")
            except orjson.JSONDecodeError:
                raise Rejected("invalid_json", "") from None
            plan = parse(bodies.Quotas, body)
        except Rejected as e:
            return JSONResponse({"error": e.reason, **e.as_dict()}, status_code=400)
        known, last = await asyncio.to_thread(self._owner, site.key, owner)
        if not known and owner != TEAM:
            return JSONResponse({"error": "unknown_owner", "reason": "unknown_owner", "field": "owner",
                                 "detail": f"{owner!r} owns no room of this site and is no configured seller "
                                           "(PUT /v1/sites/{site}/sellers/{id} first)"}, status_code=422)
        now = max(self.clock_ms(), last + 1)  # a plan replaces the one before it, even within one millisecond
        recs = []
        for p in plan.periods:
            label, start, end = p.bounds()
            recs.append({"record": "quota", "site": site.key, "owner": owner, "period": label, "period_start": start,
                         "period_end": end, "amount": float(p.amount), "updated_at": now})
        failed = await self.submit(recs)
        return failed or JSONResponse({"accepted": True, "owner": owner, "periods": [
            {k: r[k] for k in ("period", "period_start", "period_end", "amount")} for r in recs]}, status_code=202)

    def _owner(self, site: str, owner: str) -> tuple[bool, int]:
        """Whether ``owner`` is a configured seller or owns a room of the site; when its current plan was set."""
        s, o = sql_string(site), sql_string(owner)
        row = self.reader(f"SELECT (SELECT count() FROM sellers WHERE site = {s} AND seller_id = {o}) + "
                          f"(SELECT count() FROM rooms WHERE site = {s} AND owner = {o}), "
                          f"(SELECT toUnixTimestamp64Milli(max(updated_at)) FROM quotas WHERE site = {s} AND owner = {o})")
        known, last = row[0] if row else (0, 0)
        return bool(known), int(last or 0)

    async def get_quotas(self, request: Request) -> Response:
        site = self._site(request)
        if site is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        rows = await asyncio.to_thread(self.reader, "SELECT owner, period, toString(period_start), toString(period_end), "
                                       f"quota FROM kpi_quotas WHERE site = {sql_string(site.key)} ORDER BY owner, period_start")
        return JSONResponse({"quotas": [dict(zip(("owner", "period", "period_start", "period_end", "amount"), r))
                                        for r in rows]})

    # -- the dashboard (analyst credentials)
    async def _analyst(self, request: Request, site: str) -> Response | Analyst:
        creds = basic_credentials(request.headers.get("authorization", ""))
        analyst = None
        if creds:  # scrypt on a thread of its own, as on the SQL port
            analyst = await asyncio.wrap_future(self._auth_pool.submit(self.analysts.current().authenticate, *creds))
        if analyst is None:
            return JSONResponse({"error": "unauthorized", "detail": "HTTP Basic: an analyst of the SQL port"},
                                status_code=401, headers={"WWW-Authenticate": 'Basic realm="dealbeacon analytics"'})
        if not (analyst.all_sites or site in analyst.sites) or self.sites.get(site) is None:
            return JSONResponse({"error": "forbidden", "detail": f"analyst {analyst.name} may not read site {site!r}"},
                                status_code=403)
        return analyst

    async def page(self, request: Request) -> Response:
        site = request.query_params.get("site", "")
        got = await self._analyst(request, site)
        if isinstance(got, Response):
            return got
        return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-store"})

    async def chart_js(self, request: Request) -> Response:
        return FileResponse(CHART_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    async def index(self, request: Request) -> Response:
        site = request.path_params["site"]
        got = await self._analyst(request, site)
        if isinstance(got, Response):
            return got
        s = sql_string(site)
        owners, months = await asyncio.gather(
            asyncio.to_thread(self.reader, f"SELECT DISTINCT owner FROM kpi_deals WHERE site = {s} ORDER BY owner LIMIT 1000"),
            asyncio.to_thread(self.reader, "SELECT toString(min(m)), toString(max(m)) FROM (SELECT cohort_month AS m FROM "
                              f"kpi_deals WHERE site = {s} UNION ALL SELECT close_month FROM kpi_deals WHERE site = {s} "
                              "AND close_month IS NOT NULL)"))
        first, last = (months[0] if months else (None, None))
        return JSONResponse({"site": site, "owners": [r[0] for r in owners],
                             "months": [first[:7] if first else None, last[:7] if last else None],
                             "charts": [{"id": k, "title": t, "period": p} for k, (t, p, _) in CHARTS.items()]})

    async def chart(self, request: Request) -> Response:
        site, chart = request.path_params["site"], request.path_params["chart"]
        got = await self._analyst(request, site)
        if isinstance(got, Response):
            return got
        if chart not in CHARTS:
            return JSONResponse({"error": "unknown_chart", "field": "chart", "detail": "one of " + ", ".join(CHARTS)},
                                status_code=404)
        params = request.query_params
        try:
            sql = chart_sql(chart, site, params)
            fmt = params.get("format", "json")
            if fmt not in ("json", "csv"):
                raise Rejected("invalid_value", "format", "json or csv")
        except Rejected as e:
            return JSONResponse({"error": e.reason, **e.as_dict()}, status_code=400)
        columns = _columns(CHARTS[chart][2])
        async with self._queries:
            rows = await asyncio.to_thread(self.reader, sql)
        if fmt == "csv":
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n")
            w.writerow(columns)
            w.writerows(rows)
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{site}-{chart}.csv"'})
        return JSONResponse({"chart": chart, "title": CHARTS[chart][0], "columns": columns, "rows": rows})


def _columns(sql: str) -> list[str]:
    """The output names of a chart's SELECT (every column ends in an alias or is a bare name)."""
    select = sql.split("SELECT", 1)[1].split("\nFROM", 1)[0]
    depth, part, parts = 0, "", []
    for ch in select:
        depth += ch in "(" and 1 or (-1 if ch == ")" else 0)
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    return [p.strip().rsplit(" AS ", 1)[-1].strip() for p in parts]
