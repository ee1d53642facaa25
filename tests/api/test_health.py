"""Operations: /healthz, /readyz, /metrics, and how malformed requests are answered."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from starlette.routing import Mount, Route

from rolecall.api_keys.models import ApiKey
from rolecall.settings import Settings
from rolecall.teams.models import Team
from rolecall.web.app import create_app
from rolecall.web.deps import ORG_HEADER, TransactionalRoute
from tests import factories


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The current value of one sample of /metrics (0 when it was never observed)."""
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_database(client):
    assert client.get("/readyz").json() == {"status": "ok"}


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    missing = tmp_path / "no-such-directory" / "rolecall.db"
    app = create_app(Settings(database_url=f"sqlite:///{missing}"))

    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        alive = client.get("/healthz")

    assert ready.status_code == 503
    assert ready.json() == {"status": "database unreachable"}
    assert "Traceback" not in ready.text and str(missing) not in ready.text
    assert alive.status_code == 200  # the process itself is up


def test_apps_share_the_routes_built_at_import(settings, session_factory):
    """Each app's route list holds the routes as their modules built them, one set per process:
    a new app (one per test here) builds none again, not even on its first request, as an app
    that wraps included routers does."""
    first = create_app(settings, session_factory=session_factory)
    second = create_app(settings, session_factory=session_factory)

    def built(app: FastAPI) -> list[APIRoute]:
        return [route for route in app.routes if isinstance(route, APIRoute)]

    assert {type(route) for route in first.routes} <= {APIRoute, TransactionalRoute, Route, Mount}
    assert len(built(first)) > 50
    assert all(one is other for one, other in zip(built(first), built(second), strict=True))
    scim_mounts = [route for route in first.routes if isinstance(route, Mount)]
    assert {id(mount.app) for mount in scim_mounts} == {
        id(mount.app) for mount in second.routes if isinstance(mount, Mount)
    }


def test_openapi_document_is_served(client):
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["info"]["title"] == "rolecall"


def test_metrics_are_prometheus_text(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "rolecall_http_requests",
        "rolecall_http_request_duration_seconds",
        "rolecall_authentication_failures",
        "rolecall_authz_decisions",
    } <= names


def test_requests_and_latency_are_counted_by_route(client):
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    requests_before = metric(client, "rolecall_http_requests_total", **labels)
    latency = "rolecall_http_request_duration_seconds_count"
    latency_before = metric(client, latency, route="/healthz")

    client.get("/healthz")
    client.get("/healthz")

    assert metric(client, "rolecall_http_requests_total", **labels) == requests_before + 2
    assert metric(client, latency, route="/healthz") == latency_before + 2


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/docs"])
def test_fastapis_own_pages_are_counted_under_their_routes(client, path):
    labels = {"method": "GET", "route": path, "status": "200"}
    unlabelled = {**labels, "route": "unmatched"}
    before = metric(client, "rolecall_http_requests_total", **labels)
    unmatched = metric(client, "rolecall_http_requests_total", **unlabelled)

    assert client.get(path).status_code == 200

    assert metric(client, "rolecall_http_requests_total", **labels) == before + 1
    assert metric(client, "rolecall_http_requests_total", **unlabelled) == unmatched


def test_api_requests_are_labelled_by_route_template_not_path(client, org):
    template = {"method": "GET", "route": "/api/v1/projects/{entity}/{project}", "status": "404"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    template_before = metric(client, "rolecall_http_requests_total", **template)
    unmatched_before = metric(client, "rolecall_http_requests_total", **unmatched)

    client.get("/api/v1/projects/nobody/nothing", headers=org.admin_headers)
    client.get("/no/such/path")

    assert metric(client, "rolecall_http_requests_total", **template) == template_before + 1
    assert metric(client, "rolecall_http_requests_total", **unmatched) == unmatched_before + 1


def test_scim_requests_are_labelled_with_the_prefix_they_came_under(client, org):
    """SCIM's routes are mounted at /scim/v2 and /scim: each keeps its own label."""
    counts = {
        prefix: {"method": "GET", "route": f"{prefix}/Users/{{user_id}}", "status": "404"}
        for prefix in ("/scim/v2", "/scim")
    }
    before = {p: metric(client, "rolecall_http_requests_total", **c) for p, c in counts.items()}

    client.get("/scim/v2/Users/nobody", headers=org.admin_headers)
    client.get("/scim/v2/Users/nobody", headers=org.admin_headers)
    client.get("/scim/Users/nobody", headers=org.admin_headers)

    after = {p: metric(client, "rolecall_http_requests_total", **c) for p, c in counts.items()}
    assert after == {"/scim/v2": before["/scim/v2"] + 2, "/scim": before["/scim"] + 1}


def test_authentication_failures_are_counted_by_reason(client, db, org):
    expired = factories.api_key(db, org.admin, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    cases = {
        "invalid_api_key": factories.headers("rc_not-a-real-key"),
        "api_key_expired": factories.headers(expired),
        "malformed_credentials": {"Authorization": "Digest abc"},
        "credentials_required": {},
    }
    before = {
        reason: metric(client, "rolecall_authentication_failures_total", reason=reason)
        for reason in cases
    }

    for reason, headers in cases.items():
        response = client.get("/api/v1/viewer", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == reason

    for reason in cases:
        after = metric(client, "rolecall_authentication_failures_total", reason=reason)
        assert after == before[reason] + 1, reason


def test_decisions_are_counted_by_outcome(client, db, org):
    team = factories.team(db, org.org, name="vision")
    factories.project(db, team, name="p")
    outsider = factories.user(db, org.org)
    outsider_headers = factories.headers(factories.api_key(db, outsider))
    allow_before = metric(client, "rolecall_authz_decisions_total", outcome="allow")
    deny_before = metric(client, "rolecall_authz_decisions_total", outcome="deny")

    refused = client.post("/api/v1/teams", headers=outsider_headers, json={"name": "nope"})

    assert refused.status_code == 403
    assert metric(client, "rolecall_authz_decisions_total", outcome="deny") > deny_before
    allow_mid = metric(client, "rolecall_authz_decisions_total", outcome="allow")

    allowed = client.get("/api/v1/projects/vision/p", headers=org.admin_headers)

    assert allowed.status_code == 200
    assert metric(client, "rolecall_authz_decisions_total", outcome="allow") > allow_mid
    assert allow_mid >= allow_before


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{bad",
        b'{"description": }',
        b"\xff\xfe",
        b"[1, 2",
        # Not UTF-8 inside a string, and nesting past the parser's recursion: FastAPI refuses
        # these itself (they were code http_error, "There was an error parsing the body").
        b'{"description": "\xff"}',
        b"[" * 200_000 + b"]" * 200_000,
    ],
    ids=["bad", "no-value", "bom", "unclosed", "not-utf-8", "deep"],
)
def test_a_body_that_is_not_json_is_400_and_writes_nothing(client, db, org, raw):
    keys_before = db.scalar(select(func.count()).select_from(ApiKey))

    response = client.post(
        "/api/v1/api-keys",
        content=raw,
        headers={**org.admin_headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert db.scalar(select(func.count()).select_from(ApiKey)) == keys_before


@pytest.mark.parametrize(
    "body", [{"name": 5}, {"name": ["a"]}, {"name": None}, [], "vision", {"name": {"x": 1}}]
)
def test_wrong_types_are_422_and_write_nothing(client, db, org, body):
    teams_before = db.scalar(select(func.count()).select_from(Team))

    response = client.post("/api/v1/teams", json=body, headers=org.admin_headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert db.scalar(select(func.count()).select_from(Team)) == teams_before


@pytest.mark.parametrize("name", ["no-such-org", "x" * 5000, "%00"])
def test_an_unknown_org_header_is_404_in_multi_mode(make_client, org, name):
    client = make_client(mode="multi")

    by_header = client.get("/api/v1/viewer", headers={**org.admin_headers, ORG_HEADER: name})
    by_query = client.get("/api/v1/users", params={"org": name}, headers=org.admin_headers)

    for response in (by_header, by_query):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["field"] == ORG_HEADER
        assert len(response.text) < 500


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + "A" * 100_000,
        "Bearer " + "x" * 100_000,
        "Basic " + base64.b64encode(b"api:" + b"k" * 10_000).decode(),
        "Basic \u00e9\u00e9==",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"api:").decode(),
        "Basic",
        "Bearer",
        "Bearer ",
        "Token abc",
        "Basic " + base64.b64encode(b"api:\xff\xfe").decode(),
    ],
)
def test_odd_authorization_headers_are_401_json(client, org, authorization):
    response = client.get(
        "/api/v1/viewer", headers={"Authorization": authorization.encode("latin-1")}
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"malformed_credentials", "invalid_api_key"}
    assert "Traceback" not in response.text and len(response.text) < 500


def test_bootstrap_data_is_visible_to_the_app(db, org):
    assert org.admin.username
    assert factories.headers(org.admin_key)["Authorization"].startswith("Basic ")


def test_a_method_a_path_does_not_take_is_405_naming_those_it_does(client, org):
    refused = client.delete("/api/v1/viewer", headers=org.admin_headers)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.json() == {
        "error": {
            "code": "method_not_allowed",
            "message": "DELETE is not allowed on /api/v1/viewer; use GET, HEAD",
        }
    }
    assert client.get("/api/v1/no-such-thing").json()["error"]["code"] == "not_found"


def test_the_api_reference_page_needs_no_internet(client):
    # Its Swagger UI came from a CDN: blank on a network without internet access.
    page = client.get("/api/v1/docs")

    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    assets = re.findall(r'(?:src|href)="(/api/v1/docs/assets/[^"]+)"', page.text)
    assert sorted(a.rsplit("/", 1)[1] for a in assets) == [
        "favicon.png",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    ]
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "'/api/v1/openapi.json'" in page.text or '"/api/v1/openapi.json"' in page.text
