"""SCIM /Roles = custom roles, in the seeds' exact shapes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.authz.roles import PREDEFINED, TeamRole
from rolecall.roles.models import CustomRole
from rolecall.teams.models import TeamMembership
from tests import factories
from tests.scim.conftest import ROLE_URN, assert_scim_error, patch

ROLES = "/scim/v2/Roles"


def sample(**extra) -> dict:
    body = {
        "schemas": [ROLE_URN],
        "name": "Sample custom role",
        "description": "A sample custom role for example",
        "permissions": [{"name": "project:update"}],
        "inheritedFrom": "member",
    }
    body.update(extra)
    return body


def create(scim, **extra) -> dict:
    response = scim.post(ROLES, json=sample(**extra))
    assert response.status_code == 201, response.text
    return response.json()


def test_create_role_in_the_seeds_shape(scim, org):
    response = scim.post(ROLES, json=sample())

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Sample custom role"
    assert body["description"] == "A sample custom role for example"
    assert body["inheritedFrom"] == "member"
    assert body["organizationID"] == org.org.id
    assert body["schemas"] == [ROLE_URN]
    assert body["meta"]["resourceType"] == "Role"
    assert response.headers["Location"] == body["meta"]["location"]
    inherited = {p["name"] for p in body["permissions"] if p["isInherited"]}
    custom = [p["name"] for p in body["permissions"] if not p["isInherited"]]
    assert inherited == {p.value for p in PREDEFINED[TeamRole.MEMBER]}
    assert custom == ["project:update"]
    assert {"name": "artifact:read", "isInherited": True} in body["permissions"]


def test_get_and_list_roles(scim):
    one = create(scim)
    two = create(
        scim,
        name="Sample custom role 2",
        inheritedFrom="viewer",
        permissions=[{"name": "run:stop"}],
    )

    assert scim.get(f"{ROLES}/{one['id']}").json() == one
    listing = scim.get(ROLES).json()
    assert listing["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert listing["totalResults"] == 2 and listing["startIndex"] == 1
    assert {r["id"] for r in listing["Resources"]} == {one["id"], two["id"]}
    by_name = scim.get(ROLES, params={"filter": 'name eq "Sample custom role 2"'}).json()
    assert [r["id"] for r in by_name["Resources"]] == [two["id"]]
    case_sensitive = scim.get(ROLES, params={"filter": 'name eq "sample custom role 2"'}).json()
    assert case_sensitive["totalResults"] == 0


def test_get_unknown_role_is_404(scim):
    assert_scim_error(scim.get(f"{ROLES}/nope"), 404)


@pytest.mark.parametrize(
    ("body", "status", "scim_type"),
    [
        (sample(inheritedFrom="admin"), 400, "invalidValue"),
        (sample(permissions=[{"name": "run:fly"}]), 400, "invalidValue"),
        (sample(name=""), 400, "invalidValue"),
        (sample(permissions=[5]), 400, "invalidValue"),
        ({"schemas": [ROLE_URN], "name": "x"}, 400, "invalidValue"),
    ],
)
def test_bad_role_bodies(scim, db, body, status, scim_type):
    assert_scim_error(scim.post(ROLES, json=body), status, scim_type)
    db.expire_all()
    assert db.scalar(select(CustomRole.id)) is None


def test_duplicate_role_name_is_409_and_names_are_case_sensitive(scim):
    create(scim)
    assert_scim_error(scim.post(ROLES, json=sample()), 409, "uniqueness")
    assert scim.post(ROLES, json=sample(name="sample custom role")).status_code == 201


def test_patch_adds_and_removes_permissions(scim, db):
    role = create(scim)
    url = f"{ROLES}/{role['id']}"

    added = scim.patch(
        url, json=patch({"op": "add", "path": "permissions", "value": [{"name": "project:delete"}]})
    )
    removed = scim.patch(
        url,
        json=patch({"op": "Remove", "path": "permissions", "value": [{"name": "project:update"}]}),
    )

    assert added.status_code == 200, added.text
    custom = [p["name"] for p in added.json()["permissions"] if not p["isInherited"]]
    assert custom == ["project:delete", "project:update"]
    custom = [p["name"] for p in removed.json()["permissions"] if not p["isInherited"]]
    assert custom == ["project:delete"]
    db.expire_all()
    actions = [
        e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_id == role["id"]))
    ]
    assert actions.count("role.update_permissions") == 2
    assert set(
        db.scalars(select(AuditEvent.surface).where(AuditEvent.object_id == role["id"]))
    ) == {"scim"}


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "add", "path": "permissions", "value": [{"name": "nope:nope"}]}, "invalidValue"),
        ({"op": "remove", "path": "permissions", "value": [{"name": "run:read"}]}, "invalidValue"),
        ({"op": "add", "path": "colour", "value": "red"}, "invalidPath"),
        ({"op": "remove"}, "noTarget"),
        ({"op": "jump", "path": "permissions"}, "invalidSyntax"),
        ({"op": "replace", "path": "description"}, "invalidSyntax"),
        ({"op": "replace", "path": "id", "value": "other"}, "mutability"),
        ({"op": "replace", "path": "organizationID", "value": "other"}, "mutability"),
        ({"op": "replace", "path": "meta.created", "value": "2000-01-01T00:00:00Z"}, "mutability"),
    ],
)
def test_bad_role_patches_change_nothing(scim, operation, scim_type):
    role = create(scim)
    url = f"{ROLES}/{role['id']}"

    response = scim.patch(
        url,
        json=patch(
            {"op": "add", "path": "permissions", "value": [{"name": "run:delete"}]}, operation
        ),
    )

    assert_scim_error(response, 400, scim_type)
    assert scim.get(url).json() == role


def test_many_unknown_permissions_are_refused_in_a_short_message(scim, db):
    """The refusal names five of them, each cut short, and counts the rest: before, its
    detail listed every name a client sent (269 KB for 40,000)."""
    role = create(scim)
    names = [{"name": f"nope:{n:05d}" + "x" * 100} for n in range(5_000)]

    response = scim.patch(
        f"{ROLES}/{role['id']}", json=patch({"op": "add", "path": "permissions", "value": names})
    )

    detail = assert_scim_error(response, 400, "invalidValue")["detail"]
    assert len(detail) < 500, detail
    assert "nope:00000" in detail and "and 4995 more" in detail
    db.expire_all()
    assert db.get(CustomRole, role["id"]).permissions == ["project:update"]


def test_put_changes_metadata_and_keeps_custom_permissions(scim):
    role = create(scim, permissions=[{"name": "project:update"}, {"name": "project:delete"}])

    response = scim.put(
        f"{ROLES}/{role['id']}",
        json={
            "schemas": [ROLE_URN],
            "name": "Sample custom role",
            "description": "A sample custom role for example but now based on viewer",
            "inheritedFrom": "viewer",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["inheritedFrom"] == "viewer"
    assert body["description"] == "A sample custom role for example but now based on viewer"
    inherited = {p["name"] for p in body["permissions"] if p["isInherited"]}
    custom = [p["name"] for p in body["permissions"] if not p["isInherited"]]
    assert inherited == {p.value for p in PREDEFINED[TeamRole.VIEWER]}
    assert custom == ["project:delete", "project:update"]
    assert "run:create" not in inherited


def test_delete_role_gives_holders_the_inherited_role(scim, db, org):
    role = create(scim)
    row = db.get(CustomRole, role["id"])
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    membership = factories.member(db, team, user, custom_role=row)

    response = scim.delete(f"{ROLES}/{role['id']}")

    assert response.status_code == 204
    db.expire_all()
    assert db.get(CustomRole, role["id"]) is None
    refreshed = db.get(TeamMembership, membership.id)
    assert (refreshed.role, refreshed.custom_role_id) == ("member", None)
    assert_scim_error(scim.get(f"{ROLES}/{role['id']}"), 404)
    assert_scim_error(scim.delete(f"{ROLES}/{role['id']}"), 404)


def test_external_id_is_kept_on_roles(scim):
    role = create(scim, externalId="idp-role-1")
    assert role["externalId"] == "idp-role-1"
    url = f"{ROLES}/{role['id']}"

    replaced = scim.patch(url, json=patch({"op": "replace", "path": "externalId", "value": "x2"}))
    removed = scim.patch(url, json=patch({"op": "remove", "path": "externalId"}))

    assert replaced.json()["externalId"] == "x2"
    assert "externalId" not in removed.json()
    by_external = scim.get(ROLES, params={"filter": 'externalId eq "x2"'}).json()
    assert by_external["totalResults"] == 0


def test_removed_description_is_unassigned(scim):
    role = create(scim)
    response = scim.patch(
        f"{ROLES}/{role['id']}", json=patch({"op": "remove", "path": "description"})
    )
    assert response.status_code == 200 and "description" not in response.json()


def _holder(scim, db, org, role: dict) -> tuple[str, dict]:
    """A user holding ``role`` in a team; its SCIM URL and resource before any change."""
    team = factories.team(db, org.org, name="holders")
    user = factories.user(db, org.org)
    factories.member(db, team, user, custom_role=db.get(CustomRole, role["id"]))
    db.commit()
    url = f"/scim/v2/Users/{user.id}"
    return url, scim.get(url).json()


def _changed_since(scim, before: dict) -> list[str]:
    """The users a delta sync from ``before``'s lastModified finds."""
    since = f'meta.lastModified gt "{before["meta"]["lastModified"]}"'
    found = scim.get("/scim/v2/Users", params={"filter": since}).json()
    return [resource["id"] for resource in found["Resources"]]


@pytest.mark.parametrize("change", ["rename", "delete"])
def test_a_role_s_rename_or_deletion_moves_its_holders_last_modified(scim, db, org, change):
    """A holder's SCIM ``teamRoles`` shows its custom role's name: renaming or deleting the
    role (holders fall back to the inherited role) changes the user's resource, so its
    lastModified and version move and a delta sync finds it."""
    role = create(scim)
    url, before = _holder(scim, db, org, role)
    assert before["teamRoles"] == [{"teamName": "holders", "roleName": "Sample custom role"}]

    if change == "rename":
        body = {"schemas": [ROLE_URN], "name": "Renamed role", "inheritedFrom": "member"}
        assert scim.put(f"{ROLES}/{role['id']}", json=body).status_code == 200
        shown_role = "Renamed role"
    else:
        assert scim.delete(f"{ROLES}/{role['id']}").status_code == 204
        shown_role = "member"

    after = scim.get(url).json()
    assert after["teamRoles"] == [{"teamName": "holders", "roleName": shown_role}]
    assert after["meta"]["lastModified"] > before["meta"]["lastModified"]
    assert after["meta"]["version"] != before["meta"]["version"]
    assert _changed_since(scim, before) == [after["id"]]


def test_a_role_s_put_that_keeps_its_name_leaves_its_holders_alone(scim, db, org):
    role = create(scim)
    url, before = _holder(scim, db, org, role)
    body = {"schemas": [ROLE_URN], "name": role["name"], "inheritedFrom": "viewer"}
    assert scim.put(f"{ROLES}/{role['id']}", json=body).status_code == 200
    assert scim.get(url).json()["meta"] == before["meta"]
