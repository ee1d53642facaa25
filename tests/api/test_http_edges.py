"""HTTP at the edges of every surface: made-up methods in the metrics, request bodies over the
REST API's limit, a database that cannot be used, HEAD."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from rolecall.db import engine as db_engine
from rolecall.db.migrate import upgrade
from rolecall.scim.messages import MAX_BODY as SCIM_MAX_BODY
from rolecall.settings import Settings
from rolecall.web.app import create_app
from rolecall.web.body_limit import MAX_BODY
from rolecall.web.errors import database_unavailable
from rolecall.web.fast_path import PROJECT_TEMPLATE
from rolecall.web.graphql.endpoint import MAX_BODY as GRAPHQL_MAX_BODY
from rolecall.web.metrics import REGISTRY
from tests import factories

REQUESTS = "rolecall_http_requests_total"
FAST = "rolecall_access_cache_fast_answers_total"


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


def test_a_scim_body_past_its_limit_is_refused_before_it_is_all_read(client, org):
    # It was read whole (a 210 MB body held in memory) before its size was looked at.
    chunk = b" " * 65536
    chunks = [chunk] * (SCIM_MAX_BODY // len(chunk) + 10)
    headers = [
        (b"content-type", b"application/scim+json"),
        (b"authorization", org.admin_headers["Authorization"].encode()),
    ]

    status, body, read = run_asgi(client.app, "POST", "/scim/v2/Users", headers, chunks)

    assert status == 413
    assert json.loads(body)["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert read == SCIM_MAX_BODY // len(chunk) + 1  # up to the chunk that passed the limit


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


# --- an unavailable database ----------------------------------------------------------------

UNAVAILABLE = {
    "code": "database_unavailable",
    "message": "the database is unavailable; try again later",
}
KEY = {"Authorization": "Bearer rck_not_checked_without_a_database"}


def closed_port() -> int:
    """A local TCP port nothing listens on (it was just free, and is closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def migrated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database of its own (the tests' shared one must not be locked)."""
    path = tmp_path_factory.mktemp("locked") / "rolecall.db"
    upgrade(f"sqlite:///{path}")
    return path


def assert_one_warning(caplog: pytest.LogCaptureFixture, requests: int) -> None:
    """Each request logged one warning line, without a traceback, and no error."""
    records = [r for r in caplog.records if r.name.startswith("rolecall.web")]
    warnings = [r for r in records if "database unavailable" in r.getMessage()]
    assert len(warnings) == requests
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in warnings)
    assert not [r for r in records if r.levelno >= logging.ERROR]


def test_a_stopped_postgresql_is_503_in_each_surfaces_format(caplog):
    """Before: 500 "internal" with a logged traceback on every route (/readyz said 503)."""
    url = f"postgresql://rolecall@127.0.0.1:{closed_port()}/rolecall"
    app = create_app(Settings(database_url=url, access_cache_size=0))
    caplog.set_level(logging.INFO)

    with TestClient(app, raise_server_exceptions=False) as client:
        rest = client.get("/api/v1/users", headers=KEY)
        login = client.post(LOGIN, json={"email": "a@example.com", "password": "x"})
        scim = client.get("/scim/v2/Users", headers=KEY)
        graphql = client.post("/graphql", json={"query": "{ viewer { id } }"}, headers=KEY)

    for response in (rest, login):
        assert response.status_code == 503
        assert response.json() == {"error": UNAVAILABLE}
        assert response.headers["Retry-After"] == "5"
    assert scim.status_code == 503
    assert scim.headers["Content-Type"] == "application/scim+json"
    assert scim.json()["detail"] == UNAVAILABLE["message"]
    assert scim.json()["status"] == "503"
    assert graphql.status_code == 503
    assert graphql.json() == {
        "errors": [{"message": UNAVAILABLE["message"], "extensions": {"code": UNAVAILABLE["code"]}}]
    }
    assert "127.0.0.1" not in rest.text + scim.text + graphql.text
    assert_one_warning(caplog, requests=4)


def test_sqlite_locked_by_another_process_is_503_until_it_lets_go(
    migrated_file, monkeypatch, caplog
):
    """Another process holds the write lock past the busy timeout ("database is locked")."""
    monkeypatch.setattr(db_engine, "BUSY_TIMEOUT_MS", 50)
    app = create_app(Settings(database_url=f"sqlite:///{migrated_file}", access_cache_size=0))
    holder = sqlite3.connect(migrated_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.INFO)
    sign_in = {"email": "nobody@example.com", "password": "x"}

    with TestClient(app, raise_server_exceptions=False) as client:
        locked = client.post(LOGIN, json=sign_in)
        scim = client.post("/scim/v2/Users", json={"userName": "a"}, headers=KEY)
        holder.rollback()
        holder.close()
        free = client.post(LOGIN, json=sign_in)

    assert locked.status_code == 503
    assert locked.json() == {"error": UNAVAILABLE}
    assert scim.status_code == 503
    assert scim.json()["detail"] == UNAVAILABLE["message"]
    assert free.status_code == 404  # answered as usual once the lock is let go
    assert free.json()["error"]["code"] == "not_found"
    assert_one_warning(caplog, requests=2)


def sqlite_error(statement: str) -> sqlite3.Error:
    """The error SQLite itself raises for ``statement`` on an empty in-memory database."""
    with sqlite3.connect(":memory:") as conn:
        try:
            conn.execute(statement)
        except sqlite3.Error as error:
            return error
    raise AssertionError(f"{statement!r} did not fail")


def sqlite_open_error() -> sqlite3.Error:
    try:
        sqlite3.connect("/no-such-directory/rolecall.db").close()
    except sqlite3.Error as error:
        return error
    raise AssertionError("a database in a missing directory was opened")


def wrapped(orig: Exception, cls: type[DBAPIError] = OperationalError) -> DBAPIError:
    return cls("SELECT 1", None, orig)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (wrapped(psycopg.OperationalError("connection failed: Connection refused")), True),
        (wrapped(psycopg.errors.AdminShutdown("terminating connection")), True),
        (wrapped(psycopg.errors.CannotConnectNow("the database system is starting up")), True),
        (wrapped(psycopg.errors.TooManyConnections("too many clients")), True),
        (wrapped(psycopg.errors.ConnectionFailure("connection failure")), True),
        (PoolTimeout("QueuePool limit of size 10 overflow 20 reached"), True),
        (DBAPIError("SELECT 1", None, Exception("closed"), connection_invalidated=True), True),
        (wrapped(sqlite_open_error()), True),  # unable to open database file
        # Statements that are wrong: bugs, never an outage.
        (wrapped(psycopg.errors.QueryCanceled("canceling statement")), False),
        (wrapped(psycopg.errors.UndefinedTable("no table"), ProgrammingError), False),
        (wrapped(psycopg.errors.UniqueViolation("duplicate"), IntegrityError), False),
        (wrapped(sqlite_error("SELECT * FROM nowhere")), False),
        (wrapped(sqlite_error("SELEKT 1")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_which_database_errors_are_an_outage(error, unavailable):
    assert database_unavailable(error) is unavailable


def test_a_database_error_from_a_bug_stays_a_500(tmp_path, caplog):
    """An error in the statement (here: no such table, the database was never migrated) is
    no outage: 500 with a request id, logged as an error."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/empty.db", access_cache_size=0))
    caplog.set_level(logging.INFO)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(LOGIN, json={"email": "a@example.com", "password": "x"})

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert any(
        r.levelno == logging.ERROR and "no such table" in r.getMessage() for r in caplog.records
    )


# --- HEAD -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "signed_in"),
    [
        ("/healthz", False),
        ("/readyz", False),
        ("/api/v1/viewer", True),
        ("/api/v1/viewer", False),  # 401, with its WWW-Authenticate
        ("/api/v1/users", True),
        ("/api/v1/users/no-such-user", True),  # 404
        ("/api/v1/openapi.json", False),
        ("/scim/v2/Users", True),
        ("/scim/Users", False),  # 401 in SCIM's format
        ("/login", False),
    ],
)
def test_head_answers_what_get_does_without_the_body(client, org, path, signed_in):
    """RFC 9110 §9.3.2. Before, every GET route but FastAPI's own pages answered HEAD 405."""
    headers = org.admin_headers if signed_in else {}

    get = client.get(path, headers=headers)
    head = client.head(path, headers=headers)

    assert head.status_code == get.status_code
    assert head.content == b""
    for name in ("content-type", "www-authenticate", "allow"):
        assert head.headers.get(name) == get.headers.get(name), name
    if "set-cookie" not in get.headers:  # a page with a fresh CSRF token differs in length
        assert head.headers["content-length"] == get.headers["content-length"]
        assert int(head.headers["content-length"]) == len(get.content)


def test_head_of_metrics_and_its_count(client):
    labels = {"method": "HEAD", "route": "/healthz", "status": "200"}
    before = count(client, **labels)

    head = client.head("/healthz")
    metrics = client.head("/metrics")

    assert count(client, **labels) == before + 1
    assert metrics.status_code == 200 and metrics.content == b""
    assert metrics.headers["content-type"].startswith("text/plain")
    assert head.status_code == 200


def test_head_of_a_project_read_from_the_access_cache(tmp_path):
    """The access cache's fast lane answers an API key's GET of a project ahead of the router
    (only an app owning its engine has the cache): HEAD is answered there too, bodiless."""
    url = f"sqlite:///{tmp_path}/cached.db"
    upgrade(url)
    engine = db_engine.make_engine(url)
    with Session(engine, expire_on_commit=False) as db:
        world = factories.bootstrap(db)
        team = factories.team(db, world.org)
        path = f"/api/v1/projects/{team.name}/{factories.project(db, team).name}"
        db.commit()
    engine.dispose()
    app = create_app(Settings(database_url=url, host="testserver", port=80))

    with TestClient(app, raise_server_exceptions=False) as client:
        get = client.get(path, headers=world.admin_headers)  # fills the cache
        fast_before = REGISTRY.get_sample_value(FAST, {"route": PROJECT_TEMPLATE}) or 0
        head = client.head(path, headers=world.admin_headers)
        fast_after = REGISTRY.get_sample_value(FAST, {"route": PROJECT_TEMPLATE})

    assert get.status_code == head.status_code == 200
    assert fast_after == fast_before + 1
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


def test_head_where_get_is_not_served_is_405_and_allow_names_head(client):
    response = client.head(LOGIN)
    refused = client.post("/healthz")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b""
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.json()["error"]["message"] == "POST is not allowed on /healthz; use GET, HEAD"


# --- trailing slashes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "scim"),
    [
        ("/api/v1/users/", False),
        ("/api/v1/viewer/", False),
        ("/healthz/", False),
        ("/login/", False),
        ("/scim/v2/Users/", True),
        ("/scim/Users/", True),
        ("/scim", True),
    ],
)
def test_a_slash_too_many_or_too_few_is_404_and_no_redirect(client, org, path, scim):
    """Before: 307 to http://<the request's Host header><the path without the slash>, so
    ``Host: evil.example`` sent the client to evil.example, whatever ROLECALL_PUBLIC_URL said.
    No route is written with a trailing slash; a client asks for the path as documented."""
    headers = {**org.admin_headers, "Host": "evil.example"}

    for method in ("GET", "POST", "DELETE"):
        response = client.request(method, path, headers=headers, follow_redirects=False)

        assert response.status_code == 404, method
        assert "location" not in response.headers
        if scim:
            assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        else:
            assert response.json()["error"]["code"] == "not_found"


def test_a_database_lost_during_a_graphql_query_is_named_not_internal(caplog):
    # Lost after the caller was found (so not the start's 503): it answered "internal error".
    from graphql import GraphQLError

    from rolecall.web.graphql.endpoint import _format

    lost = wrapped(psycopg.OperationalError("server closed the connection unexpectedly"))
    error = GraphQLError("lost", path=["viewer"], original_error=lost)

    with caplog.at_level(logging.WARNING, logger="rolecall.web"):
        formatted = _format(error)

    assert formatted["extensions"] == {"code": "database_unavailable"}
    assert "try again" in formatted["message"]
    assert "Traceback" not in caplog.text and "server closed" not in caplog.text
    bug = GraphQLError("bug", path=["viewer"], original_error=wrapped(sqlite_error("SELEKT 1")))
    assert _format(bug)["extensions"] == {"code": "internal"}
