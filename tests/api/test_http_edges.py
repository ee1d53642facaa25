"""HTTP at the edges of every surface: made-up methods in the metrics, request bodies over the
REST API's limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from rolecall.scim.messages import MAX_BODY as SCIM_MAX_BODY
from rolecall.web.body_limit import MAX_BODY
from rolecall.web.graphql.endpoint import MAX_BODY as GRAPHQL_MAX_BODY

REQUESTS = "rolecall_http_requests_total"


def request_samples(client: TestClient) -> list[dict[str, str]]:
    """The labels of every sample of the request counter on /metrics."""
    text = client.get("/metrics").text
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == REQUESTS
    ]


def count(client: TestClient, **labels: str) -> float:
    text = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == REQUESTS and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_made_up_methods_are_counted_as_other_and_add_no_series(client):
    """A method token is anything a client sends (``curl -X M$RANDOM``): labelled as it came,
    each added a series to /metrics, unauthenticated and without bound."""
    labels = {"method": "other", "route": "/healthz", "status": "405"}
    before = count(client, **labels)
    series_before = len(request_samples(client))

    for n in range(30):
        assert client.request(f"M{n}X", "/healthz").status_code == 405

    methods = {sample["method"] for sample in request_samples(client)}
    assert not {f"M{n}X" for n in range(30)} & methods
    assert count(client, **labels) == before + 30
    # Only the "other" series and /metrics' own GETs are new, whatever the methods were.
    assert len(request_samples(client)) - series_before <= 2


def test_standard_methods_keep_their_own_label(client):
    labels = {"method": "DELETE", "route": "/healthz", "status": "405"}
    before = count(client, **labels)

    client.delete("/healthz")

    assert count(client, **labels) == before + 1


# --- request bodies -------------------------------------------------------------------------

LOGIN = "/api/v1/auth/login"
JSON = {"Content-Type": "application/json"}


def run_asgi(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, bytes, int]:
    """One request straight through the ASGI app: (status, body, chunks the app read)."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read == len(chunks):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    anyio.run(app, scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read


def test_a_rest_body_declared_over_the_limit_is_413_unread(client):
    """Before, a 210 MB body to the unauthenticated login was read and parsed (1 GB of memory)
    and then answered 422."""
    chunks = [b"x" * 65536] * 20
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % (MAX_BODY + 1))]

    status, body, read = run_asgi(client.app, "POST", LOGIN, headers, chunks)

    assert status == 413
    assert json.loads(body)["error"] == {
        "code": "payload_too_large",
        "message": f"request bodies are at most {MAX_BODY} bytes",
    }
    assert read == 0


def test_a_chunked_rest_body_is_refused_once_it_passes_the_limit(client):
    chunk = b" " * 65536
    chunks = [chunk] * (2 * MAX_BODY // len(chunk))

    status, body, read = run_asgi(
        client.app, "POST", LOGIN, [(b"content-type", b"application/json")], chunks
    )

    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert read == MAX_BODY // len(chunk) + 1  # read up to the chunk that passed the limit


def test_the_limit_comes_before_authentication_and_parsing(client):
    """A streamed body (no Content-Length) over the limit, with a credential that is wrong:
    413, not 401 or 422."""

    def stream() -> Iterator[bytes]:
        yield b'{"email": "'
        for _ in range(40):
            yield b"a" * 32768
        yield b'", "password": "x"}'

    bad_key = {**JSON, "Authorization": "Bearer not-a-key"}
    for path in (LOGIN, "/api/v1/users", "/api/v1/authz/check"):
        response = client.post(path, content=stream(), headers=bad_key)
        assert response.status_code == 413, path
        assert response.json()["error"]["code"] == "payload_too_large"


def test_a_large_body_under_the_limit_reaches_validation(client):
    """The limit is well above any body a schema admits: such a body is refused by its
    schema (422 naming the field), not by its size."""
    body = {"email": "a" * (MAX_BODY - 100), "password": "x"}

    response = client.post(LOGIN, json=body)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "email"


def test_scim_and_graphql_keep_their_own_limits_and_formats(client):
    scim = client.post(
        "/scim/v2/Users",
        content=b" " * (SCIM_MAX_BODY + 1),
        headers={"Content-Type": "application/scim+json"},
    )
    graphql = client.post("/graphql", content=b" " * (GRAPHQL_MAX_BODY + 1), headers=JSON)

    assert scim.status_code == 413
    assert scim.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert graphql.status_code == 413
    assert graphql.json()["errors"][0]["extensions"]["code"] == "too_large"
