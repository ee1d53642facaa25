from tests import factories


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_database(client):
    assert client.get("/readyz").json() == {"status": "ok"}


def test_openapi_document_is_served(client):
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["info"]["title"] == "rolecall"


def test_metrics_in_prometheus_format(client):
    client.get("/healthz")
    body = client.get("/metrics").text
    assert "rolecall_http_requests_total" in body


def test_bootstrap_data_is_visible_to_the_app(db, org):
    assert org.admin.username
    assert factories.headers(org.admin_key)["Authorization"].startswith("Basic ")
