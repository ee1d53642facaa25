"""GET /api/v1/audit (filters, cursor paging) and /api/v1/audit/export (JSON lines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from rolecall.audit.models import AuditEvent
from tests import factories

AUDIT = "/api/v1/audit"
EXPORT = "/api/v1/audit/export"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _event(db, org, n, *, action="test.event", at=None, actor_name="robot", object_id=None):
    row = AuditEvent(
        org_id=org.org.id,
        at=at or T0 + timedelta(minutes=n),
        actor_type="user",
        actor_id=f"actor-{actor_name}",
        actor_name=actor_name,
        credential="api_key",
        surface="api",
        action=action,
        object_type="thing",
        object_id=object_id or f"thing-{n}",
        object_name=f"thing {n}",
        after={"n": n},
    )
    db.add(row)
    return row


@pytest.fixture
def events(db, org):
    """Seven events an hour apart from T0: three ``a.one`` by alice, four ``a.two`` by bob."""
    rows = [
        _event(
            db,
            org,
            n,
            action="a.one" if n < 3 else "a.two",
            at=T0 + timedelta(hours=n),
            actor_name="alice" if n < 3 else "bob",
        )
        for n in range(7)
    ]
    db.flush()
    return rows


def _items(client, org, **params):
    response = client.get(AUDIT, params=params, headers=org.admin_headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_admin_reads_events_in_order_with_their_shape(client, db, org, events):
    team = factories.team(db, org.org, name="vision")
    user = factories.user(db, org.org, username="alice")
    factories.member(db, team, user)
    headers = factories.headers(factories.api_key(db, user))
    client.post("/api/v1/projects", json={"entity": "vision", "name": "p"}, headers=headers)
    items = _items(client, org, limit=1000)
    assert [item["seq"] for item in items] == sorted(item["seq"] for item in items)
    created = next(item for item in items if item["action"] == "project.create")
    assert set(created) == {
        "id",
        "seq",
        "at",
        "org_id",
        "actor",
        "surface",
        "action",
        "object",
        "before",
        "after",
        "detail",
    }
    assert created["actor"]["name"] == "alice"
    assert created["actor"]["credential"].startswith("api_key:")
    assert created["object"] == {
        "type": "project",
        "id": created["object"]["id"],
        "name": "vision/p",
    }
    assert created["after"]["visibility"] == "team"


def test_filters_by_action_object_and_actor(client, org, events):
    assert len(_items(client, org, action="a.one")) == 3
    assert [i["object"]["id"] for i in _items(client, org, object_id="thing-4")] == ["thing-4"]
    assert len(_items(client, org, object_type="thing")) == 7
    assert len(_items(client, org, actor="bob")) == 4
    assert len(_items(client, org, actor="actor-alice")) == 3
    assert _items(client, org, action="a.one", actor="bob") == []


def test_filters_by_time_window(client, org, events):
    since = (T0 + timedelta(hours=2)).isoformat()
    until = (T0 + timedelta(hours=5)).isoformat()
    window = _items(client, org, since=since, until=until)
    assert [i["after"]["n"] for i in window] == [2, 3, 4]
    # A time without an offset is UTC.
    naive = _items(client, org, since="2030-01-01T05:00:00", object_type="thing")
    assert [i["after"]["n"] for i in naive] == [5, 6]
    shifted = _items(client, org, since="2030-01-01T06:00:00+01:00", object_type="thing")
    assert [i["after"]["n"] for i in shifted] == [5, 6]


def test_cursor_paging_sees_every_event_once(client, org, events):
    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 3, "object_type": "thing"}
        if cursor is not None:
            params["cursor"] = cursor
        body = client.get(AUDIT, params=params, headers=org.admin_headers).json()
        seen += [item["after"]["n"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(7))


def test_other_organizations_events_are_not_shown(client, db, org, events):
    elsewhere = factories.bootstrap(db)
    assert all(item["org_id"] == org.org.id for item in _items(client, org, limit=1000))
    assert _items(client, org, object_id=elsewhere.org.id) == []


def test_export_streams_json_lines_with_the_same_filters(client, org, events):
    response = client.get(EXPORT, params={"action": "a.two"}, headers=org.admin_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["after"]["n"] for line in lines] == [3, 4, 5, 6]
    assert all(line["action"] == "a.two" for line in lines)


def test_export_crosses_page_boundaries(client, db, org):
    for n in range(520):
        _event(db, org, n, action="bulk.event")
    db.flush()
    response = client.get(EXPORT, params={"action": "bulk.event"}, headers=org.admin_headers)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["after"]["n"] for line in lines] == list(range(520))


def test_export_of_nothing_is_empty(client, org):
    response = client.get(EXPORT, params={"action": "no.such"}, headers=org.admin_headers)
    assert response.status_code == 200
    assert response.text == ""


def test_members_may_not_read_the_audit_log(client, db, org, events):
    user = factories.user(db, org.org)
    headers = factories.headers(factories.api_key(db, user))
    for path in (AUDIT, EXPORT):
        response = client.get(path, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == "org.member"
    assert client.get(AUDIT).status_code == 401
    assert client.get(EXPORT).status_code == 401


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (AUDIT, {"limit": 0}),
        (AUDIT, {"limit": 1001}),
        (AUDIT, {"cursor": -1}),
        (AUDIT, {"cursor": "next"}),
        (AUDIT, {"since": "yesterday"}),
        # In UTC, as stored, beyond the calendar's ends (was a 500: OverflowError).
        (AUDIT, {"since": "0001-01-01T00:00:00+00:01"}),
        (EXPORT, {"until": "9999-12-31T23:59:59-01:00"}),
        (AUDIT, {"colour": "red"}),
        (AUDIT, {"action": ""}),
        (EXPORT, {"until": "soon"}),
        (EXPORT, {"cursor": 3}),
        (EXPORT, {"limit": 3}),
    ],
)
def test_bad_parameters_are_422(client, org, path, params):
    response = client.get(path, params=params, headers=org.admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_export_filters_by_time_actor_and_object(client, org, events):
    params = {
        "since": (T0 + timedelta(hours=1)).isoformat(),
        "until": (T0 + timedelta(hours=6)).isoformat(),
        "actor": "bob",
        "object_type": "thing",
    }
    response = client.get(EXPORT, params=params, headers=org.admin_headers)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["after"]["n"] for line in lines] == [3, 4, 5]
    assert all(line["actor"]["name"] == "bob" for line in lines)
    only = client.get(EXPORT, params={"object_id": "thing-2"}, headers=org.admin_headers)
    assert [json.loads(line)["object"]["id"] for line in only.text.splitlines()] == ["thing-2"]


def test_real_operations_are_found_by_actor_and_object(client, db, org):
    team = factories.team(db, org.org, name="vision")
    user = factories.user(db, org.org, username="alice")
    factories.member(db, team, user)
    headers = factories.headers(factories.api_key(db, user))
    project = client.post(
        "/api/v1/projects", json={"entity": "vision", "name": "p"}, headers=headers
    ).json()
    run = client.post("/api/v1/projects/vision/p/runs", json={}, headers=headers).json()
    by_alice = _items(client, org, actor="alice")
    assert [i["action"] for i in by_alice] == ["project.create", "run.create"]
    assert [i["action"] for i in _items(client, org, actor=user.id)] == [
        "project.create",
        "run.create",
    ]
    (created,) = _items(client, org, object_type="project", object_id=project["id"])
    assert created["action"] == "project.create"
    (submitted,) = _items(client, org, object_type="run", object_id=run["id"])
    assert submitted["object"]["name"] == f"vision/p/{run['name']}"
    assert _items(client, org, object_type="run", object_id=project["id"]) == []


def test_an_org_viewer_or_team_admin_may_not_read_the_audit_log(client, db, org):
    team = factories.team(db, org.org)
    viewer = factories.user(db, org.org, role="viewer")
    team_admin = factories.user(db, org.org)
    factories.member(db, team, team_admin, role="admin")
    for user in (viewer, team_admin):
        headers = factories.headers(factories.api_key(db, user))
        for path in (AUDIT, EXPORT):
            response = client.get(path, headers=headers)
            assert response.status_code == 403
            assert response.json()["error"]["rule"] == "org.member"


def test_a_nul_character_in_a_filter_is_bad_input_never_a_500(client, org, events, backend):
    # PostgreSQL cannot hold or compare text with a NUL character; SQLite can (and finds none).
    response = client.get(
        "/api/v1/audit", params={"action": "\x00"}, headers=factories.headers(org.admin_key)
    )

    if backend == "postgres":
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_input"
        assert "NUL" in response.json()["error"]["message"]
    else:
        assert response.status_code == 200
        assert response.json()["items"] == []
    assert "SELECT" not in response.text
