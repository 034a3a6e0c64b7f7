"""The Grafana dashboard of the KPI views, generated from the analytics dashboard's own chart queries.

``deploy/grafana/dashboards/dealbeacon-kpis.json`` is this module's output (`dealbeacon grafana-dashboard`);
a test keeps the committed file equal to it and runs every panel's query on chdb. The panels' SQL is
``ingest.analytics.CHARTS`` with Grafana's variables in place of the dashboard's filters: ``$site`` (a text
box), ``$owner`` (a query variable; empty means every owner) and the time picker (months it touches).
"""
from __future__ import annotations

import orjson

from ingest.analytics import CHARTS

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "dealbeacon-clickhouse"}
GRAFANA_FILTERS = {
    "site": "'${site}'",
    "from": "toStartOfMonth(toDate($__fromTime))",
    "to": "toStartOfMonth(toDate($__toTime))",
    "owner": " AND ('${owner}' = '' OR owner = '${owner}')",
}
# chart -> panel type and field mapping
PANELS = {"funnel": "barchart", "cycle": "barchart", "outcomes": "timeseries", "win_by_band": "barchart",
          "slippage": "barchart", "coverage": "table", "content": "barchart", "dropoff": "table"}


def panel_sql(chart: str, filters: dict[str, str] = GRAFANA_FILTERS) -> str:
    return CHARTS[chart][2].format(**filters).strip()


def dashboard() -> dict:
    panels = []
    for i, (chart, (title, period, _)) in enumerate(CHARTS.items()):
        kind = PANELS[chart]
        if kind == "timeseries":  # a time axis needs a time column: the table view of the same rows is clearer
            kind = "table"
        panels.append({
            "id": i + 1, "type": kind, "title": title, "description": f"period: {period}; source: README 'For analysts'",
            "datasource": DATASOURCE,
            "gridPos": {"h": 9, "w": 12, "x": 12 * (i % 2), "y": 9 * (i // 2)},
            "targets": [{"refId": "A", "datasource": DATASOURCE, "editorType": "sql", "format": 1, "queryType": "table",
                         "rawSql": panel_sql(chart)}],
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        })
    return {
        "uid": "dealbeacon-kpis", "title": "dealbeacon KPIs", "editable": True, "schemaVersion": 39, "version": 1,
        "tags": ["dealbeacon"], "time": {"from": "now-1y", "to": "now"},
        "templating": {"list": [
            {"name": "site", "type": "textbox", "label": "site", "query": "demo", "current": {"text": "demo", "value": "demo"}},
            {"name": "owner", "type": "query", "label": "owner", "datasource": DATASOURCE, "includeAll": False,
             "query": "SELECT '' UNION ALL SELECT DISTINCT owner FROM kpi_deals WHERE site = '${site}'",
             "definition": "owners of the site's deals ('' = every owner)", "refresh": 1},
        ]},
        "panels": panels,
    }


def dashboard_json() -> bytes:
    return orjson.dumps(dashboard(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
