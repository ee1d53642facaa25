"""The access cache, end to end: a server app owning its engine (as ``rolecall serve`` runs),
on a database of its own where every request really commits.

A cached answer must never outlive the change that makes it wrong: each test first makes the
answer come from the cache (checked: the request ran no SQL), then changes access and asks again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text, update
from sqlalchemy.orm import Session

from rolecall.api_keys.models import ApiKey
from rolecall.db import changes
from rolecall.db.engine import make_engine
from rolecall.db.migrate import upgrade
from rolecall.identity import authenticate
from rolecall.settings import Settings
from rolecall.web import deps
from rolecall.web.app import create_app
from rolecall.web.fast_path import CHECK as CHECK_ROUTE
from rolecall.web.fast_path import MAX_CHECK_BODY
from rolecall.web.fast_path import PROJECT_TEMPLATE as PROJECT_ROUTE
from tests import factories

#: How long a write of another process may take to reach a PostgreSQL server's cache (its
#: notification's trip); SQLite sees it at once.
NOTIFY_WAIT = 3.0


@pytest.fixture(scope="module")
def own_database_url(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> str:
    """A database of this module's own: the app commits for real here."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('cache') / 'cache.db'}"
    else:
        import psycopg

        name = f"rolecall_cache_{worker_id}"
        plain = make_engine(database_url).url.set(drivername="postgresql")
        with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = plain.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def other_engine(own_database_url: str) -> Iterator[Engine]:
    """Another process's view of the database (as the operator's CLI has)."""
    engine = make_engine(own_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def arrange(other_engine: Engine) -> Callable[[Callable[[Session], Any]], Any]:
    """Run ``work(session)`` and commit it, through the other engine."""

    def run(work: Callable[[Session], Any]) -> Any:
        with Session(other_engine, expire_on_commit=False) as session:
            result = work(session)
            session.commit()
            return result

    return run


@pytest.fixture
def server(own_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=own_database_url, host="testserver", port=80))
    with TestClient(app, raise_server_exceptions=False) as client:
        feed = app.state.change_feed
        deadline = time.monotonic() + 10
        while isinstance(feed, changes.PostgresChanges) and not feed.listening:
            assert time.monotonic() < deadline, "the change listener did not start"
            time.sleep(0.01)
        yield client


@pytest.fixture
def statements(server: TestClient) -> Callable[[], int]:
    """How many SQL statements the server's engine has run so far."""
    engine = server.app.state.session_factory.kw["bind"]  # type: ignore[attr-defined]
    count = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        count[0] += 1

    yield lambda: count[0]
    event.remove(engine, "before_cursor_execute", _count)


@pytest.fixture
def world(arrange: Callable[..., Any]) -> dict[str, Any]:
    """An org (the module's only one: single mode), a team with a member, a project."""

    def build(db: Session) -> dict[str, Any]:
        from rolecall.orgs.models import Organization

        org = db.query(Organization).first() or factories.bootstrap(db).org
        admin = factories.user(db, org, role="admin")
        team = factories.team(db, org)
        alice = factories.user(db, org)
        factories.member(db, team, alice, role="member")
        project = factories.project(db, team, visibility="team")
        key = factories.api_key(db, alice)
        admin_key = factories.api_key(db, admin)
        return {
            "org": org,
            "team": team.name,
            "alice": alice,
            "alice_headers": factories.headers(key),
            "admin_headers": factories.headers(admin_key),
            "path": f"{team.name}/{project.name}",
        }

    return arrange(build)


def warm(server: TestClient, statements: Callable[[], int], method: str, url: str, **kw: Any):
    """Ask until an answer comes from the cache (no SQL at all). On PostgreSQL the notification
    of a write committed before the first request may arrive after it and drop what it filled,
    so a few more asks are allowed; a cache that never answers fails."""
    first = server.request(method, url, **kw)
    for _ in range(5):
        before = statements()
        second = server.request(method, url, **kw)
        if statements() == before:
            return first, second
        time.sleep(0.05)
    raise AssertionError("the request was never answered from the cache")


def check_body(path: str, permission: str = "run:create") -> dict[str, Any]:
    return {"principal": None, "permission": permission, "project": path}


def eventually(ask: Callable[[], Any], expected: Callable[[Any], bool], backend: str) -> Any:
    """SQLite: the very next answer; PostgreSQL: an answer within the notification's trip."""
    deadline = time.monotonic() + (NOTIFY_WAIT if backend == "postgres" else 0)
    while True:
        answer = ask()
        if expected(answer) or time.monotonic() >= deadline:
            return answer
        time.sleep(0.02)


# --- the fast path answers exactly as the normal path -----------------------------------------


def test_a_cached_project_read_is_byte_identical(server, statements, world):
    url = f"/api/v1/projects/{world['path']}"

    first, second = warm(server, statements, "GET", url, headers=world["alice_headers"])

    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.json()["path"] == world["path"]
    same = {k: v for k, v in first.headers.items() if k != "date"}
    assert same == {k: v for k, v in second.headers.items() if k != "date"}


@pytest.mark.parametrize("permission", ["run:create", "project:delete"])
def test_a_cached_check_is_byte_identical(server, statements, world, permission):
    body = check_body(world["path"], permission)

    first, second = warm(
        server, statements, "POST", "/api/v1/authz/check", json=body, headers=world["alice_headers"]
    )

    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.json()["allowed"] is (permission == "run:create")


def fast_answers(route: str) -> float:
    from rolecall.web.metrics import REGISTRY

    sample = REGISTRY.get_sample_value("rolecall_access_cache_fast_answers_total", {"route": route})
    return sample or 0.0


def test_the_fast_lane_answers_repeated_reads_and_checks_in_front_of_the_router(
    server, statements, world
):
    url = f"/api/v1/projects/{world['path']}"
    body = check_body(world["path"])
    headers = world["alice_headers"]
    warm(server, statements, "GET", url, headers=headers)
    warm(server, statements, "POST", "/api/v1/authz/check", json=body, headers=headers)
    reads, checks = fast_answers(PROJECT_ROUTE), fast_answers("/api/v1/authz/check")

    read = server.get(url, headers=headers)
    check = server.post("/api/v1/authz/check", json=body, headers=headers)

    assert (read.status_code, check.status_code) == (200, 200)
    assert fast_answers(PROJECT_ROUTE) == reads + 1
    assert fast_answers("/api/v1/authz/check") == checks + 1
    assert read.headers["content-type"] == check.headers["content-type"] == "application/json"
    # What the lane does not fully understand goes to the router, which answers as always.
    odd = {**body, "extra": 1}
    refused = server.post("/api/v1/authz/check", json=odd, headers=headers)
    assert refused.status_code == 422
    text_body = server.post(
        "/api/v1/authz/check",
        content=b'{"permission": "run:create"',
        headers={**headers, "content-type": "application/json"},
    )
    assert text_body.status_code in (400, 422)
    assert fast_answers("/api/v1/authz/check") == checks + 1


def requests_counted(route: str) -> float:
    from rolecall.web.metrics import REGISTRY

    labels = {"method": "POST", "route": route, "status": "200"}
    return REGISTRY.get_sample_value("rolecall_http_requests_total", labels) or 0.0


def test_a_fast_answer_is_counted_under_its_route_as_the_router_would_count_it(
    server, statements, world
):
    body = check_body(world["path"])
    headers = world["alice_headers"]
    warm(server, statements, "POST", CHECK_ROUTE, json=body, headers=headers)
    taken, counted = fast_answers(CHECK_ROUTE), requests_counted(CHECK_ROUTE)
    unmatched = requests_counted("unmatched")

    assert server.post(CHECK_ROUTE, json=body, headers=headers).status_code == 200

    assert fast_answers(CHECK_ROUTE) == taken + 1
    assert requests_counted(CHECK_ROUTE) == counted + 1
    assert requests_counted("unmatched") == unmatched


@pytest.fixture
def uncached(own_database_url: str) -> Iterator[TestClient]:
    """The same database served without an access cache: the router answers everything."""
    settings = Settings(
        database_url=own_database_url, host="testserver", port=80, access_cache_size=0
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


#: Questions to ``POST /authz/check`` the lane leaves to the router, as (body, content type):
#: another principal, a permission or project outside AuthzCheck's limits, an unknown
#: permission, a path that is no project, a body that is no object, no JSON content type, more
#: than the lane reads.
ROUTER_CHECKS = {
    "principal": (b'{"principal": "user:nobody", "permission": "run:create", "project": "P"}', 1),
    "long_permission": (b'{"permission": "%s", "project": "P"}' % (b"r" * 65), 1),
    "short_project": (b'{"permission": "run:create", "project": "ab"}', 1),
    "unknown_permission": (b'{"permission": "run:fly", "project": "P"}', 1),
    "not_a_project": (b'{"permission": "run:create", "project": "a/b/c"}', 1),
    "not_an_object": (b'["run:create"]', 1),
    "not_json_typed": (b'{"permission": "run:create", "project": "P"}', "text/plain"),
    "untyped": (b'{"permission": "run:create", "project": "P"}', None),
    "over_the_limit": (b'{"permission": "run:create", %s"project": "P"}' % (b" " * 1100), 1),
    "nested_past_the_stack": (b"[" * 1000, 1),
}


@pytest.mark.parametrize("case", sorted(ROUTER_CHECKS))
def test_a_check_the_lane_does_not_take_is_answered_as_without_a_cache(
    server, uncached, statements, world, case
):
    headers = world["alice_headers"]
    warm(server, statements, "POST", CHECK_ROUTE, json=check_body(world["path"]), headers=headers)
    body, how = ROUTER_CHECKS[case]
    body = body.replace(b'"P"', f'"{world["path"]}"'.encode())
    kind = how if isinstance(how, str) or how is None else "application/json"
    sent = {**headers, **({"content-type": kind} if kind else {})}
    taken = fast_answers(CHECK_ROUTE)

    answer = server.post(CHECK_ROUTE, content=body, headers=sent)
    expected = uncached.post(CHECK_ROUTE, content=body, headers=sent)

    assert fast_answers(CHECK_ROUTE) == taken
    assert (answer.status_code, answer.json()) == (expected.status_code, expected.json())
    if case == "over_the_limit":
        assert answer.status_code == 200  # every byte read by the lane reached the route


@pytest.mark.parametrize("rest", ["", "team", "team/", "/project", "team/project/runs"])
def test_a_project_path_the_lane_does_not_take_is_answered_as_without_a_cache(
    server, uncached, statements, world, rest
):
    headers = world["alice_headers"]
    warm(server, statements, "GET", f"/api/v1/projects/{world['path']}", headers=headers)
    project = world["path"].split("/")[1]
    url = f"/api/v1/projects/{rest.replace('team', world['team']).replace('project', project)}"
    taken = fast_answers(PROJECT_ROUTE)

    answer, expected = server.get(url, headers=headers), uncached.get(url, headers=headers)

    assert fast_answers(PROJECT_ROUTE) == taken
    assert answer.status_code == expected.status_code
    assert answer.content == expected.content


def post_in_messages(client: TestClient, headers: dict[str, str], messages: list[Any]):
    """POST ``/authz/check`` straight to the app, its body in the ASGI messages given (the test
    client would join them into one): (status, body), or (None, b"") when nothing was sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CHECK_ROUTE,
        "raw_path": CHECK_ROUTE.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    pending = list(messages)
    answer: dict[str, Any] = {"status": None, "body": b""}

    async def receive() -> Any:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    async def call() -> None:
        await client.app(scope, receive, send)  # type: ignore[misc]

    client.portal.call(call)  # type: ignore[union-attr]
    return answer["status"], answer["body"]


def pieces(body: bytes, size: int) -> list[Any]:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        {"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
        for n, part in enumerate(parts)
    ]


def test_a_question_in_several_messages_is_still_answered_by_the_lane(
    server, uncached, statements, world
):
    headers = {**world["alice_headers"], "content-type": "application/json"}
    body = json.dumps(check_body(world["path"])).encode()
    warm(server, statements, "POST", CHECK_ROUTE, content=body, headers=headers)
    taken = fast_answers(CHECK_ROUTE)

    status, answer = post_in_messages(server, headers, pieces(body, 7))

    assert fast_answers(CHECK_ROUTE) == taken + 1
    expected = uncached.post(CHECK_ROUTE, content=body, headers=headers)
    assert (status, answer) == (200, expected.content)


def test_a_long_question_in_several_messages_reaches_the_route_whole(
    server, uncached, statements, world
):
    """Past ``MAX_CHECK_BODY`` the lane stops reading: the route gets the messages it read,
    then the ones it did not."""
    headers = {**world["alice_headers"], "content-type": "application/json"}
    question = check_body(world["path"])
    warm(server, statements, "POST", CHECK_ROUTE, json=question, headers=headers)
    body = json.dumps(question, indent=600).encode()
    assert len(body) > MAX_CHECK_BODY + 300  # more messages follow the one that passes it
    taken = fast_answers(CHECK_ROUTE)

    status, answer = post_in_messages(server, headers, pieces(body, 300))

    assert fast_answers(CHECK_ROUTE) == taken
    expected = uncached.post(CHECK_ROUTE, content=body, headers=headers)
    assert (status, answer) == (200, expected.content)


def test_a_client_gone_before_its_question_ends_is_left_to_the_route(server, statements, world):
    headers = {**world["alice_headers"], "content-type": "application/json"}
    question = check_body(world["path"])
    warm(server, statements, "POST", CHECK_ROUTE, json=question, headers=headers)
    first = pieces(json.dumps(question).encode(), 10)[0]
    taken = fast_answers(CHECK_ROUTE)

    status, _ = post_in_messages(server, headers, [first, {"type": "http.disconnect"}])

    assert fast_answers(CHECK_ROUTE) == taken
    assert status != 200  # half a question is never answered as a whole one


def test_a_cached_refusal_is_byte_identical(server, statements, world, arrange):
    outsider = arrange(lambda db: factories.api_key(db, factories.user(db, world["org"])))
    url = f"/api/v1/projects/{world['path']}"

    first, second = warm(server, statements, "GET", url, headers=factories.headers(outsider))

    assert first.status_code == second.status_code == 403
    assert first.content == second.content
    assert first.json()["error"]["rule"] == "base.none"


def test_a_service_account_naming_a_human_gets_its_attribution_header_every_time(
    server, world, arrange
):
    def build(db: Session) -> str:
        from rolecall.teams.models import Team

        team = db.query(Team).filter_by(name=world["team"]).one()
        return factories.api_key(db, factories.service_account(db, world["org"], team))

    headers = {**factories.headers(arrange(build)), "X-Wandb-Username": world["alice"].username}
    url = f"/api/v1/projects/{world['path']}"

    answers = [server.get(url, headers=headers) for _ in range(3)]

    assert {a.status_code for a in answers} == {200}
    said = {a.headers.get("X-Rolecall-Attribution") for a in answers}
    assert len(said) == 1 and said.pop().startswith("allow")
    assert len({a.content for a in answers}) == 1


def test_a_cached_decision_is_still_counted(server, statements, world):
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])

    def allows() -> float:
        page = server.get("/metrics").text
        found = re.search(r'rolecall_authz_decisions_total\{outcome="allow"\} ([\d.e+]+)', page)
        return float(found.group(1)) if found else 0.0

    before = allows()
    before_sql = statements()
    assert server.get(url, headers=world["alice_headers"]).status_code == 200
    assert statements() == before_sql
    assert allows() == before + 1


# --- changes through the API take effect on the very next request ------------------------------


def test_revoking_a_key_refuses_it_at_once(server, statements, world):
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])
    keys = server.get("/api/v1/api-keys", headers=world["alice_headers"]).json()["items"]

    for key in keys:
        revoked = server.delete(f"/api/v1/api-keys/{key['id']}", headers=world["alice_headers"])
        assert revoked.status_code == 204

    refused = server.get(url, headers=world["alice_headers"])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


def test_deactivating_a_user_refuses_its_key_at_once(server, statements, world):
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])

    alice = world["alice"].username
    done = server.post(f"/api/v1/users/{alice}/deactivate", headers=world["admin_headers"])
    assert done.status_code == 200

    refused = server.get(url, headers=world["alice_headers"])
    assert refused.status_code == 401
    refused_check = server.post(
        "/api/v1/authz/check", json=check_body(world["path"]), headers=world["alice_headers"]
    )
    assert refused_check.status_code == 401


def test_a_team_role_change_decides_the_next_check(server, statements, world):
    body = check_body(world["path"], "run:delete")
    _, cached = warm(
        server, statements, "POST", "/api/v1/authz/check", json=body, headers=world["alice_headers"]
    )
    assert cached.json()["allowed"] is False

    alice = world["alice"].username
    changed = server.patch(
        f"/api/v1/teams/{world['team']}/members/{alice}",
        json={"role": "admin"},
        headers=world["admin_headers"],
    )
    assert changed.status_code == 200

    now = server.post("/api/v1/authz/check", json=body, headers=world["alice_headers"])
    assert now.json()["allowed"] is True


def test_making_a_project_restricted_hides_it_at_once(server, statements, world):
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])

    changed = server.patch(url, json={"visibility": "restricted"}, headers=world["admin_headers"])
    assert changed.status_code == 200

    refused = server.get(url, headers=world["alice_headers"])
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "base.restricted_membership"
    check = server.post(
        "/api/v1/authz/check",
        json=check_body(world["path"], "project:read"),
        headers=world["alice_headers"],
    )
    assert check.json()["allowed"] is False


def test_a_deleted_project_is_gone_at_once(server, statements, world):
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])
    admin = world["admin_headers"]
    # The org admin may delete only as a team admin: join the team first.
    admin_name = server.get("/api/v1/viewer", headers=admin).json()["username"]
    joined = server.post(
        f"/api/v1/teams/{world['team']}/members",
        json={"user": admin_name, "role": "admin"},
        headers=admin,
    )
    assert joined.status_code in (200, 201), joined.text

    assert server.delete(url, headers=admin).status_code == 204

    assert server.get(url, headers=world["alice_headers"]).status_code == 404
    gone = server.post(
        "/api/v1/authz/check", json=check_body(world["path"]), headers=world["alice_headers"]
    )
    assert gone.status_code == 404


# --- writes of another process ----------------------------------------------------------------


def test_a_key_revoked_by_another_process_is_refused(server, statements, world, arrange, backend):
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])

    arrange(
        lambda db: db.execute(
            update(ApiKey)
            .where(ApiKey.user_id == world["alice"].id)
            .values(revoked_at=datetime.now(UTC))
        )
    )

    answer = eventually(
        lambda: server.get(url, headers=world["alice_headers"]),
        lambda response: response.status_code == 401,
        backend,
    )
    assert answer.status_code == 401


def test_a_role_changed_by_plain_sql_elsewhere_is_seen(server, statements, world, arrange, backend):
    body = check_body(world["path"], "run:create")
    warm(
        server, statements, "POST", "/api/v1/authz/check", json=body, headers=world["alice_headers"]
    )

    arrange(
        lambda db: db.execute(
            text("UPDATE team_memberships SET role = 'viewer' WHERE user_id = :user"),
            {"user": world["alice"].id},
        )
    )

    answer = eventually(
        lambda: server.post("/api/v1/authz/check", json=body, headers=world["alice_headers"]),
        lambda response: response.json()["allowed"] is False,
        backend,
    )
    assert answer.json()["allowed"] is False


# --- keys: expiry on the clock, last use still recorded ----------------------------------------


def test_an_expired_key_is_refused_although_cached(server, statements, world, arrange, monkeypatch):
    # Expiring well within the minute after its first use (recorded by ``warm``), so only the
    # expiry, not a key use due to be recorded, keeps the cache from answering.
    expires = datetime.now(UTC) + timedelta(seconds=20)
    secret = arrange(lambda db: factories.api_key(db, world["alice"], expires_at=expires))
    headers = factories.headers(secret)
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=headers)

    class Later(datetime):
        """The clock, a second after the key's expiry."""

        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def]
            return expires + timedelta(seconds=1)

    monkeypatch.setattr(deps, "datetime", Later)
    monkeypatch.setattr(authenticate, "datetime", Later)

    refused = server.get(url, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "api_key_expired"


def test_a_key_use_is_recorded_when_due_even_with_a_warm_cache(
    server, statements, world, arrange, backend
):
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    # Another process sets the last use an hour back (its write also drops the cache).
    arrange(
        lambda db: db.execute(
            update(ApiKey).where(ApiKey.user_id == world["alice"].id).values(last_used_at=long_ago)
        )
    )

    def last_use() -> datetime:
        assert server.get(url, headers=world["alice_headers"]).status_code == 200
        return arrange(
            lambda db: db.query(ApiKey).filter_by(user_id=world["alice"].id).one().last_used_at
        )

    recorded = eventually(last_use, lambda when: when > long_ago + timedelta(minutes=59), backend)
    assert recorded > long_ago + timedelta(minutes=59)


# --- PostgreSQL: a lost listener means no cache, never a stale answer --------------------------


@pytest.mark.postgres_only
def test_without_its_listener_the_cache_is_bypassed(
    server, statements, world, arrange, backend, monkeypatch
):
    feed = server.app.state.change_feed
    monkeypatch.setattr(changes, "RECONNECT_DELAY", 2.0)
    url = f"/api/v1/projects/{world['path']}"
    warm(server, statements, "GET", url, headers=world["alice_headers"])

    arrange(
        lambda db: db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": feed.backend_pid})
    )
    deadline = time.monotonic() + 5
    while feed.listening:
        assert time.monotonic() < deadline, "the listener did not notice its connection end"
        time.sleep(0.01)
    # Written while nobody listens: its notification is lost.
    arrange(
        lambda db: db.execute(
            update(ApiKey)
            .where(ApiKey.user_id == world["alice"].id)
            .values(revoked_at=datetime.now(UTC))
        )
    )

    before = statements()
    refused = server.get(url, headers=world["alice_headers"])
    assert refused.status_code == 401
    assert statements() > before  # asked the database

    deadline = time.monotonic() + 10
    while not feed.listening:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        time.sleep(0.05)
    assert server.get(url, headers=world["alice_headers"]).status_code == 401
