"""Quotas (site secret) and the analytics dashboard's data (analyst credentials) through the real app and chdb."""
from __future__ import annotations

import csv
import io

import pytest

from dealbeacon.core.analysts import AnalystRegistry
from dealbeacon.core.settings import Settings
from sinks import kpi_sql
from tests.functional import test_kpi_views as fixture
from tests.support.app import SECRET, make_client
from tests.support.data import SQL_AUTH

AUTH = {"Authorization": f"Bearer {SECRET}"}
ACME = {"Authorization": f"Bearer {SECRET}-acme"}


@pytest.fixture
def api(store, tmp_path):
    """The app with the analyst layer (reader), sites test + acme + other, and a second analyst who may read
    site ``other`` only."""
    path = str(tmp_path / "analysts.json")
    reg = AnalystRegistry()
    reg.add(SQL_AUTH[0], ["*"], SQL_AUTH[1])
    reg.add("other-only", ["other"], "other-password-1")
    reg.save(path)
    settings = Settings(rate_limit_events_per_s=1_000, rate_limit_burst=1_000, analysts_file=path)
    with make_client(store, settings, reader=store.query_readonly, extra_sites=("acme", "other")) as c:
        yield c


def test_quotas_replace_an_owners_plan_and_refuse_bad_input_naming_the_field(api, store):
    assert api.put("/v1/sites/test/sellers/ana", headers=AUTH, json={"name": "Ana"}).status_code == 202
    r = api.put("/v1/sites/test/quotas/ana", headers=AUTH, json={"periods": [
        {"period": "2026-Q3", "amount": 120_000}, {"start": "2026-10-01", "end": "2026-10-31", "amount": 40_000}]})
    assert r.status_code == 202, r.text
    assert api.get("/v1/sites/test/quotas", headers=AUTH).json()["quotas"] == [
        {"owner": "ana", "period": "2026-Q3", "period_start": "2026-07-01", "period_end": "2026-09-30", "amount": 120_000},
        {"owner": "ana", "period": "2026-10-01..2026-10-31", "period_start": "2026-10-01", "period_end": "2026-10-31",
         "amount": 40_000}]
    bad = [({"periods": [{"period": "2026-Q4", "amount": -5}]}, "ana", 400, "periods[0].amount"),
           ({"periods": [{"period": "2026-Q4", "amount": 1}, {"period": "2026-11", "amount": 2}]}, "ana", 400, "periods[1]"),
           ({"periods": [{"period": "2026", "amount": 1}, {"start": "2026-12-31", "end": "2027-01-31", "amount": 2}]}, "ana",
            400, "periods[1]"),
           ({"periods": [{"period": "2026-Q5", "amount": 1}]}, "ana", 400, "periods[0].period"),
           ({"periods": [{"period": "2026-Q4", "amount": "1e9"}]}, "ana", 400, "periods[0].amount"),
           ({"periods": [{"period": "2026-Q4", "amount": 1e300}]}, "ana", 400, "periods[0].amount"),
           ({"periods": [{"period": "2026-Q4", "amount": 1, "owner": "x"}]}, "ana", 400, "periods[0].owner"),
           ({"periods": [{"period": "2026-Q4", "amount": 1}]}, "nobody", 422, "owner"),
           ({"periods": [{"period": "2026-Q4", "amount": 1}]}, "x'); DROP TABLE quotas; --", 400, "owner")]
    for body, owner, status, field in bad:
        r = api.put(f"/v1/sites/test/quotas/{owner}", headers=AUTH, json=body)
        assert (r.status_code, r.json().get("field")) == (status, field), (body, owner, r.text)
    assert api.put("/v1/sites/test/quotas/ana", json={"periods": []}).status_code == 401
    assert api.put("/v1/sites/test/quotas/ana", headers=ACME, json={"periods": []}).status_code == 401  # another site's secret
    # the owner of a room is known too; a new plan replaces the old one entirely
    assert api.put("/v1/sites/test/rooms/r1", headers=AUTH, json={"owner": "ben", "stage": "proposal"}).status_code == 202
    assert api.put("/v1/sites/test/quotas/ben", headers=AUTH, json={"periods": [{"period": "2026", "amount": 500_000}]}).status_code == 202
    assert api.put("/v1/sites/test/quotas/ana", headers=AUTH, json={"periods": [{"period": "2027-01", "amount": 9}]}).status_code == 202
    # the team's own total: '_team' needs no seller of that name
    assert api.put("/v1/sites/test/quotas/_team", headers=AUTH, json={"periods": [{"period": "2026", "amount": 2e6}]}).status_code == 202
    assert [(q["owner"], q["period"]) for q in api.get("/v1/sites/test/quotas", headers=AUTH).json()["quotas"]] == [
        ("_team", "2026"), ("ana", "2027-01"), ("ben", "2026")]
    assert store.query("SELECT count() FROM quotas WHERE site = 'test'") == [(5,)]  # the history is kept
    r = api.put("/v1/sites/test/quotas/ana", headers=AUTH, json={"periods": [{"start": "20270201", "end": "20270228", "amount": 1}]})
    assert r.json()["periods"][0]["period_start"] == "2027-02-01"  # a basic-format date is stored as a date


@pytest.fixture
def loaded(api, store):
    store.execute("TRUNCATE TABLE deal_stages")
    kpi_sql.sync_stages(store, fixture.STAGES, ("closed_won", "closed_lost"), ("closed_won",), 1)
    fixture.run_pipeline(store)
    return api


def _get(api, path, auth=SQL_AUTH, **params):
    return api.get(path, auth=auth, params=params)


def test_dashboard_needs_an_analyst_of_that_site(loaded):
    for path in ("/analytics?site=acme", "/v1/sites/acme/analytics", "/v1/sites/acme/analytics/funnel"):
        assert loaded.get(path).status_code == 401
        assert loaded.get(path, auth=("tester", "wrong")).status_code == 401
        assert loaded.get(path, headers=AUTH).status_code == 401  # a site secret is no analyst
        r = loaded.get(path, auth=("other-only", "other-password-1"))
        assert r.status_code == 403, (path, r.text)
        assert loaded.get(path, auth=SQL_AUTH).status_code == 200
    assert loaded.get("/v1/sites/other/analytics/outcomes", auth=("other-only", "other-password-1")).json()["rows"] == [
        ["2025-02-01", 1, 1, 1, 1, 99000]]
    assert loaded.get("/v1/sites/nosuch/analytics", auth=SQL_AUTH).status_code == 403


def test_chart_data_is_the_views_numbers_and_filters_and_csv_follow(loaded, store):
    idx = _get(loaded, "/v1/sites/acme/analytics").json()
    assert idx["owners"] == ["ana", "ben"] and idx["months"] == ["2025-01", "2025-04"]
    assert [c["id"] for c in idx["charts"]] == ["funnel", "cycle", "outcomes", "win_by_band", "slippage", "coverage",
                                                "content", "dropoff"]
    funnel = _get(loaded, "/v1/sites/acme/analytics/funnel").json()
    want = store.query("SELECT stage, sum(entered), sum(converted) FROM kpi_stage_funnel WHERE site = 'acme' "
                       "GROUP BY stage ORDER BY stage")
    assert sorted((r[0], r[2], r[3]) for r in funnel["rows"]) == [tuple(w) for w in want]
    ana = _get(loaded, "/v1/sites/acme/analytics/funnel", owner="ana").json()["rows"]
    assert ana != funnel["rows"] and sum(r[2] for r in ana) == store.query(
        "SELECT sum(entered) FROM kpi_stage_funnel WHERE site = 'acme' AND owner = 'ana'")[0][0]
    feb = _get(loaded, "/v1/sites/acme/analytics/funnel", **{"from": "2025-02", "to": "2025-02"}).json()["rows"]
    assert {r[0]: r[2] for r in feb} == {"prospecting": 1, "qualification": 2, "proposal": 2, "negotiation": 1, "closed_won": 1}
    cov = _get(loaded, "/v1/sites/acme/analytics/coverage", **{"from": "2025-04", "to": "2025-06"}).json()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in cov["rows"]] == [("_team", "2025-Q2", 100000, 30000, 8000), ("ana", "2025-Q2", 30000, 0, 8000),
                                                           ("ben", "2025-Q2", 50000, 30000, 0)]
    for chart in idx["charts"]:
        body = _get(loaded, f"/v1/sites/acme/analytics/{chart['id']}", owner="ben").json()
        text = _get(loaded, f"/v1/sites/acme/analytics/{chart['id']}", owner="ben", format="csv").text
        parsed = list(csv.reader(io.StringIO(text)))
        assert parsed[0] == body["columns"]
        assert parsed[1:] == [["" if v is None else str(v) for v in row] for row in body["rows"]], chart
    for params, field in (({"from": "2025-13"}, "from"), ({"to": "2025-1"}, "to"), ({"owner": "x" * 300}, "owner"),
                          ({"format": "xlsx"}, "format"), ({"site": "other"}, "site"), ({"from": "2025-01' OR 1=1 --"}, "from")):
        r = _get(loaded, "/v1/sites/acme/analytics/funnel", **params)
        assert (r.status_code, r.json()["field"]) == (400, field), r.text
    assert _get(loaded, "/v1/sites/acme/analytics/nosuch").status_code == 404
    quote = _get(loaded, "/v1/sites/acme/analytics/funnel", owner="ana' OR owner != 'x").json()["rows"]
    assert quote == []  # a quoted owner is a value, never SQL
