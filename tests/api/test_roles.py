"""Custom roles through the REST API: names, PUT and PATCH semantics, deletion fallback."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import MEMBER, VIEWER
from rolecall.projects.models import ProjectMembership
from rolecall.roles.models import CustomRole
from rolecall.teams.models import TeamMembership
from tests import factories

ROLES = "/api/v1/roles"


def _role_count(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count(CustomRole.id)))


def _events(db, action: str, role_id: str) -> list[AuditEvent]:
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.object_id == role_id)
    return list(db.scalars(query.order_by(AuditEvent.seq)))


def _create(client, org, **body):
    body.setdefault("inherited_from", "member")
    return client.post(ROLES, json=body, headers=org.admin_headers)


# --- create and read --------------------------------------------------------------------------


def test_create_stores_only_extras_and_reads_the_effective_set(client, db, org):
    response = _create(
        client,
        org,
        name="Sample custom role",
        description="A sample",
        inherited_from="Member",
        permissions=["run:delete", "run:read", "Project:Update"],
    )
    assert response.status_code == 201, response.text
    role = response.json()
    assert role["inherited_from"] == "member"
    # run:read is inherited from member: not a custom permission.
    assert role["custom_permissions"] == ["project:update", "run:delete"]
    expected = sorted({p.value for p in MEMBER} | {"project:update", "run:delete"})
    assert [p["name"] for p in role["permissions"]] == expected
    flags = {p["name"]: p["is_inherited"] for p in role["permissions"]}
    assert flags["run:read"] is True
    assert flags["run:delete"] is False
    (event,) = _events(db, "role.create", role["id"])
    assert event.after["permissions"] == ["project:update", "run:delete"]


def test_names_are_case_sensitive(client, db, org):
    upper = _create(client, org, name="Sample")
    lower = _create(client, org, name="sample")
    assert (upper.status_code, lower.status_code) == (201, 201)
    assert upper.json()["id"] != lower.json()["id"]
    duplicate = _create(client, org, name="Sample", inherited_from="viewer")
    assert duplicate.status_code == 409
    assert (
        client.get(f"{ROLES}/Sample", headers=org.admin_headers).json()["id"] == upper.json()["id"]
    )
    assert (
        client.get(f"{ROLES}/sample", headers=org.admin_headers).json()["id"] == lower.json()["id"]
    )
    assert client.get(f"{ROLES}/SAMPLE", headers=org.admin_headers).status_code == 404
    assert _role_count(db) == 2


def test_get_by_id_and_by_a_name_with_spaces_or_slashes(client, db, org):
    role = factories.custom_role(db, org.org, name="ops/on call")
    by_name = client.get(f"{ROLES}/{quote(role.name)}", headers=org.admin_headers)
    assert by_name.status_code == 200
    assert by_name.json()["name"] == "ops/on call"
    assert client.get(f"{ROLES}/{role.id}", headers=org.admin_headers).json()["name"] == role.name


def test_every_org_member_reads_roles_but_only_org_admins_create_them(client, db, org):
    factories.custom_role(db, org.org, name="Existing")
    user = factories.user(db, org.org)
    headers = factories.headers(factories.api_key(db, user))
    listed = client.get(ROLES, headers=headers)
    assert listed.status_code == 200
    assert [r["name"] for r in listed.json()["items"]] == ["Existing"]
    refused = client.post(ROLES, json={"name": "Mine", "inherited_from": "member"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "org.member"
    assert _role_count(db) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "R", "inherited_from": "admin"}, "member or viewer"),
        ({"name": "R", "inherited_from": "service"}, "member or viewer"),
        ({"name": "R", "inherited_from": "member", "permissions": ["run:fly"]}, "run:fly"),
        ({"name": "R", "inherited_from": "member", "permissions": ["org:update"]}, "org:update"),
        ({"name": "Admin", "inherited_from": "member"}, "predefined"),
        ({"name": " padded", "inherited_from": "member"}, "spaces"),
        ({"name": "", "inherited_from": "member"}, "name"),
        ({"name": "x" * 129, "inherited_from": "member"}, "name"),
        ({"name": "bad\u0000", "inherited_from": "member"}, "name"),
        ({"name": "R", "inherited_from": "member", "colour": "red"}, "colour"),
        ({"name": "R", "inherited_from": "member", "permissions": "run:read"}, "permissions"),
        ({"name": "R"}, "inherited_from"),
    ],
)
def test_bad_role_input_is_422_and_writes_nothing(client, db, org, body, message):
    response = client.post(ROLES, json=body, headers=org.admin_headers)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert _role_count(db) == 0


def test_unknown_role_is_404(client, org):
    assert client.get(f"{ROLES}/nope", headers=org.admin_headers).status_code == 404
    assert client.delete(f"{ROLES}/nope", headers=org.admin_headers).status_code == 404


# --- PUT and PATCH ----------------------------------------------------------------------------


def test_put_changes_the_inherited_role_and_keeps_custom_permissions(client, db, org):
    created = _create(
        client, org, name="Auditor", inherited_from="viewer", permissions=["run:create", "run:move"]
    ).json()
    assert created["custom_permissions"] == ["run:create", "run:move"]
    response = client.put(
        f"{ROLES}/Auditor",
        json={"name": "Senior Auditor", "description": "now a member", "inherited_from": "member"},
        headers=org.admin_headers,
    )
    assert response.status_code == 200, response.text
    role = response.json()
    assert (role["name"], role["description"], role["inherited_from"]) == (
        "Senior Auditor",
        "now a member",
        "member",
    )
    assert role["custom_permissions"] == ["run:create", "run:move"]
    flags = {p["name"]: p["is_inherited"] for p in role["permissions"]}
    assert flags["run:create"] is True  # member grants it now
    assert flags["run:move"] is False
    # Back to viewer: the custom permissions are still there.
    back = client.put(
        f"{ROLES}/{role['id']}",
        json={"name": "Senior Auditor", "inherited_from": "viewer"},
        headers=org.admin_headers,
    ).json()
    assert back["custom_permissions"] == ["run:create", "run:move"]
    assert {p["name"] for p in back["permissions"]} == {p.value for p in VIEWER} | {
        "run:create",
        "run:move",
    }
    events = _events(db, "role.update", role["id"])
    assert [e.after["inherited_from"] for e in events] == ["member", "viewer"]


def test_put_refuses_a_taken_name_and_bad_bodies(client, db, org):
    factories.custom_role(db, org.org, name="Taken")
    role = factories.custom_role(db, org.org, name="Mine", permissions=(Permission.RUN_MOVE,))
    url = f"{ROLES}/Mine"
    cases = [
        ({"name": "Taken", "inherited_from": "member"}, 409),
        ({"name": "Mine", "inherited_from": "admin"}, 422),
        ({"name": "Mine", "inherited_from": "member", "permissions": []}, 422),
        ({"inherited_from": "member"}, 422),
    ]
    for body, status in cases:
        assert client.put(url, json=body, headers=org.admin_headers).status_code == status, body
    db.expire_all()
    row = db.get(CustomRole, role.id)
    assert (row.name, row.inherited_from, row.permissions) == ("Mine", "member", ["run:move"])


def test_patch_adds_and_removes_custom_permissions(client, db, org):
    factories.custom_role(db, org.org, name="Ops", permissions=(Permission.RUN_MOVE,))
    response = client.patch(
        f"{ROLES}/Ops",
        json={"add": ["run:delete", "run:read"], "remove": ["run:move"]},
        headers=org.admin_headers,
    )
    assert response.status_code == 200
    assert response.json()["custom_permissions"] == ["run:delete"]
    (event,) = _events(db, "role.update_permissions", response.json()["id"])
    assert (event.before["permissions"], event.after["permissions"]) == (
        ["run:move"],
        ["run:delete"],
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"remove": ["run:read"]}, "inherited"),
        ({"add": ["run:fly"]}, "run:fly"),
        ({"add": ["org:manage_users"]}, "org"),
        ({"add": ["run:delete"], "remove": ["run:delete"]}, "both"),
        ({"grant": ["run:delete"]}, "grant"),
    ],
)
def test_bad_patch_is_422_and_changes_nothing(client, db, org, body, message):
    role = factories.custom_role(db, org.org, name="Ops", permissions=(Permission.RUN_MOVE,))
    response = client.patch(f"{ROLES}/Ops", json=body, headers=org.admin_headers)
    assert response.status_code == 422
    assert message in response.json()["error"]["message"]
    db.expire_all()
    assert db.get(CustomRole, role.id).permissions == ["run:move"]


def test_org_member_cannot_change_or_delete_roles(client, db, org):
    role = factories.custom_role(db, org.org, name="Ops")
    user = factories.user(db, org.org)
    headers = factories.headers(factories.api_key(db, user))
    for response in (
        client.patch(f"{ROLES}/Ops", json={"add": ["run:delete"]}, headers=headers),
        client.put(f"{ROLES}/Ops", json={"name": "X", "inherited_from": "viewer"}, headers=headers),
        client.delete(f"{ROLES}/Ops", headers=headers),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == "org.member"
    db.expire_all()
    assert db.get(CustomRole, role.id).name == "Ops"


# --- delete -----------------------------------------------------------------------------------


def test_delete_gives_holders_the_inherited_role(client, db, org):
    role = factories.custom_role(
        db, org.org, name="Runner", inherited_from="member", permissions=(Permission.RUN_DELETE,)
    )
    team = factories.team(db, org.org)
    holder, admin, viewer = (factories.user(db, org.org) for _ in range(3))
    factories.member(db, team, holder, custom_role=role)
    factories.member(db, team, admin, role="admin")
    factories.member(db, team, viewer, role="viewer")
    project = factories.project(db, team, visibility="restricted")
    tracked = factories.project_member(db, project, holder, custom_role=role)
    override = factories.project_member(db, project, admin, custom_role=role)
    stale = factories.project_member(db, project, viewer, custom_role=role)
    role_id = role.id

    response = client.delete(f"{ROLES}/Runner", headers=org.admin_headers)
    assert response.status_code == 204
    db.expire_all()
    assert db.get(CustomRole, role_id) is None
    team_row = db.scalar(select(TeamMembership).where(TeamMembership.user_id == holder.id))
    assert (team_row.role, team_row.custom_role_id) == ("member", None)
    # Holder: team role member now equals the fallback, so the project role tracks it.
    row = db.get(ProjectMembership, tracked.id)
    assert (row.role, row.custom_role_id) == (None, None)
    # Admin: the fallback differs from its team role, so it stays an override.
    row = db.get(ProjectMembership, override.id)
    assert (row.role, row.custom_role_id) == ("member", None)
    # Viewer: a view-only member cannot have a project role.
    assert db.get(ProjectMembership, stale.id).role is None
    (event,) = _events(db, "role.delete", role_id)
    assert event.after == {"team_memberships": 1, "project_memberships": 3}
    assert "fell back to member" in event.detail
    members = client.get(f"/api/v1/teams/{team.name}/members", headers=org.admin_headers).json()
    assert {m["name"]: m["role"] for m in members["items"]}[holder.username] == "member"


def test_deleting_a_viewer_based_role_falls_back_to_viewer(client, db, org):
    role = factories.custom_role(db, org.org, name="Watcher", inherited_from="viewer")
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    factories.member(db, team, user, custom_role=role)
    response = client.delete(f"{ROLES}/{role.id}", headers=org.admin_headers)
    assert response.status_code == 204
    db.expire_all()
    row = db.scalar(select(TeamMembership).where(TeamMembership.user_id == user.id))
    assert (row.role, row.custom_role_id) == ("viewer", None)


# --- end to end through HTTP ------------------------------------------------------------------


def _can(client, org, username: str, permission: str, project: str) -> bool:
    response = client.post(
        "/api/v1/authz/check",
        json={"principal": f"user:{username}", "permission": permission, "project": project},
        headers=org.admin_headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["allowed"]


def test_custom_roles_assigned_in_teams_and_projects_grant_and_fall_back_on_delete(client, db, org):
    ops = _create(client, org, name="Ops", inherited_from="viewer", permissions=["run:delete"])
    low = _create(client, org, name="ops", inherited_from="member", permissions=["run:move"])
    assert (ops.status_code, low.status_code) == (201, 201)
    team = factories.team(db, org.org, name="infra")
    project = factories.project(db, team, name="cluster")
    tom, una = factories.user(db, org.org), factories.user(db, org.org)
    members = f"/api/v1/teams/{team.name}/members"
    added = client.post(
        members, json={"user": tom.username, "role": "Ops"}, headers=org.admin_headers
    )
    assert (added.status_code, added.json()["role"]) == (201, "Ops")
    client.post(members, json={"user": una.username, "role": "member"}, headers=org.admin_headers)
    override = client.patch(
        f"/api/v1/projects/{team.name}/{project.name}/members/{una.username}",
        json={"role": "ops"},
        headers=org.admin_headers,
    )
    assert override.status_code == 200 and override.json()["project_role"] == "ops"
    where = f"{team.name}/{project.name}"
    assert _can(client, org, tom.username, "run:delete", where) is True
    assert _can(client, org, tom.username, "run:create", where) is False  # viewer-based
    assert _can(client, org, una.username, "run:move", where) is True

    assert client.delete(f"{ROLES}/Ops", headers=org.admin_headers).status_code == 204
    assert client.delete(f"{ROLES}/ops", headers=org.admin_headers).status_code == 204

    assert _can(client, org, tom.username, "run:delete", where) is False
    assert _can(client, org, tom.username, "run:read", where) is True  # viewer now
    assert _can(client, org, una.username, "run:move", where) is False
    assert _can(client, org, una.username, "run:create", where) is True  # member, tracking
    roles = {
        m["name"]: m["role"] for m in client.get(members, headers=org.admin_headers).json()["items"]
    }
    assert roles == {tom.username: "viewer", una.username: "member"}
    listed = client.get(ROLES, headers=org.admin_headers).json()
    assert listed == {"items": [], "total": 0, "offset": 0, "limit": 100}


def test_roles_are_listed_by_name_and_read_by_name_or_id(client, db, org):
    for name in ("beta", "Alpha", "alpha"):
        assert _create(client, org, name=name).status_code == 201
    listed = client.get(ROLES, headers=org.admin_headers).json()["items"]
    assert [r["name"] for r in listed] == sorted(["beta", "Alpha", "alpha"])
    for role in listed:
        by_id = client.get(f"{ROLES}/{role['id']}", headers=org.admin_headers).json()
        assert by_id["name"] == role["name"]
