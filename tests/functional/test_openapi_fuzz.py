"""schemathesis over the app's whole OpenAPI document, against the real app and the real chdb engine: every
documented route gets generated requests (a bounded, seeded number), and none answers 5xx. A second check
keeps the document and the app's routes in step."""

import hypothesis
import pytest
import schemathesis
from starlette.routing import Route
from starlette.testclient import TestClient

from dealbeacon.core.settings import Settings
from ingest.openapi import openapi_document
from ingest.sellers import AlertHub
from tests.support.app import SECRET, make_app


@pytest.fixture(scope="module")
def api(chdb_store):
    return make_app(chdb_store, Settings(rate_limit_events_per_s=1e6, rate_limit_burst=10 ** 6, clock="external"),
                    origins=("*",), snippet_file=__file__, demo_page=__file__, reader=chdb_store.query_readonly,
                    hub=AlertHub())


@pytest.fixture(scope="module")
def client(api):
    with TestClient(api, raise_server_exceptions=False) as c:  # one event loop: the hand-off's and the requests'
        yield c


schema = schemathesis.openapi.from_dict(openapi_document(Settings(clock="external")))


def _send(client, case, headers):
    kw = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    body = {k: kw[k] for k in ("json", "content") if k in kw}
    if "data" in kw:
        body["content"] = kw["data"]
    assert not kw.get("cookies"), "no route documents a cookie"
    return client.request(kw["method"], kw["url"], params=kw.get("params"), headers=kw.get("headers"), **body)


@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_no_documented_route_answers_5xx(case, client):
    # a third of the cases carry the site secret, so the authenticated paths are reached too
    headers = {"Authorization": f"Bearer {SECRET}"} if len(repr(case.body)) % 3 == 0 else None
    if case.path.endswith("/stream"):
        headers = None  # a valid token would open an endless event stream; the refusals are what is fuzzed
    response = _send(client, case, headers)
    assert response.status_code < 500, (case.method, case.path, case.path_parameters, case.body,
                                        response.status_code, response.text[:300])


def test_every_route_is_documented(api):
    doc = openapi_document(Settings())
    for route in api.routes:
        if isinstance(route, Route):
            assert route.path in doc["paths"], route.path
            for method in route.methods - {"HEAD"}:
                assert method.lower() in doc["paths"][route.path], (route.path, method)
