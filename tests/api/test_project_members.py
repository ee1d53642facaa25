"""Project membership and project roles through the HTTP surface (ACCESS.md, "Project-level roles").

One named test per rule; denials assert the deciding rule, domain-rule refusals the rule's code.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.projects.models import ProjectMembership
from rolecall.teams.models import TeamMembership
from tests import factories

BASE = "/api/v1/projects/vision"
CHECK = "/api/v1/authz/check"


@pytest.fixture
def team(db, org):
    return factories.team(db, org.org, name="vision")


@pytest.fixture
def admin_headers(db, org, team):
    """A team admin of ``vision``."""
    user = factories.user(db, org.org, username="tess")
    factories.member(db, team, user, role="admin")
    return factories.headers(factories.api_key(db, user))


def _member(db, org, team, role="member", username=None):
    user = factories.user(db, org.org, username=username)
    if team is not None:
        factories.member(db, team, user, role=role)
    return user, factories.headers(factories.api_key(db, user))


def _rows(db, project):
    db.expire_all()
    return db.scalars(
        select(ProjectMembership).where(ProjectMembership.project_id == project.id)
    ).all()


def _audit_count(db, action):
    db.expire_all()
    return db.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    )


def _can(client, org, principal, permission, project):
    body = {"principal": principal, "permission": permission, "project": project}
    return client.post(CHECK, json=body, headers=org.admin_headers).json()["allowed"]


# --- listing --------------------------------------------------------------------------------------


def test_team_project_lists_every_team_member_with_roles_in_join_order(client, db, org, team):
    factories.project(db, team, name="p")
    _member(db, org, team, role="admin", username="ann")
    _member(db, org, team, role="viewer", username="vic")
    account = factories.service_account(db, org.org, team, name="robot")
    factories.api_key(db, account)
    _, headers = _member(db, org, team, username="mo")
    items = client.get(f"{BASE}/p/members", headers=headers).json()["items"]
    assert [(m["name"], m["kind"], m["team_role"], m["project_role"]) for m in items] == [
        ("ann", "user", "admin", "admin"),
        ("vic", "user", "viewer", "viewer"),
        ("robot", "service_account", "service", "service"),
        ("mo", "user", "member", "member"),
    ]
    assert not any(m["is_override"] or m["invited"] for m in items)


@pytest.mark.parametrize("visibility", ["open", "public"])
def test_visitors_of_an_open_or_public_project_do_not_see_its_teams_roster(
    client, db, org, team, visibility
):
    factories.project(db, team, name="p", visibility=visibility)
    _member(db, org, team, role="admin", username="ann")
    _, outsider = _member(db, org, None, username="dave")

    anonymous = client.get(f"{BASE}/p/members")
    stranger = client.get(f"{BASE}/p/members", headers=outsider)

    assert client.get(f"{BASE}/p", headers=outsider).status_code == 200  # the project: yes
    assert anonymous.status_code == 403, anonymous.text
    assert stranger.status_code == 403
    assert stranger.json()["error"]["rule"] == "base.none"


def test_a_team_admin_that_has_not_joined_a_restricted_project_sees_not_who_is_in_it(
    client, db, org, team, admin_headers
):
    project = factories.project(db, team, name="r", visibility="restricted")
    ivy, ivys = _member(db, org, team, username="ivy")
    factories.project_member(db, project, ivy)

    outside = client.get(f"{BASE}/r/members", headers=admin_headers)
    inside = client.get(f"{BASE}/r/members", headers=ivys)
    joined = client.post(f"{BASE}/r/join", headers=admin_headers)
    after_joining = client.get(f"{BASE}/r/members", headers=admin_headers)

    assert outside.status_code == 403
    assert outside.json()["error"]["rule"] == "base.restricted_membership"
    assert [m["name"] for m in inside.json()["items"]] == ["ivy"]
    assert joined.status_code == 200, joined.text
    assert sorted(m["name"] for m in after_joining.json()["items"]) == ["ivy", "tess"]
    # The org admin manages access: it sees the members without joining.
    assert client.get(f"{BASE}/r/members", headers=org.admin_headers).status_code == 200


def test_restricted_project_lists_invited_members_only(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="r", visibility="restricted")
    invited, headers = _member(db, org, team, username="ivy")
    factories.project_member(db, project, invited)
    _member(db, org, team, username="uma")
    items = client.get(f"{BASE}/r/members", headers=headers).json()["items"]
    assert [(m["name"], m["invited"], m["project_role"]) for m in items] == [
        ("ivy", True, "member")
    ]


def test_outsider_cannot_list_members_of_team_project(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, None)
    response = client.get(f"{BASE}/p/members", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.none"


# --- adding ---------------------------------------------------------------------------------------


def test_team_admin_invites_member_to_restricted_project(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="r", visibility="restricted")
    _, headers = _member(db, org, team, username="ivy")
    denied = client.get(f"{BASE}/r/runs", headers=headers)
    assert denied.json()["error"]["rule"] == "base.restricted_membership"
    # The team admin joins first: until then it only sees that the project exists.
    assert client.post(f"{BASE}/r/join", headers=admin_headers).status_code == 200
    response = client.post(f"{BASE}/r/members", json={"principal": "ivy"}, headers=admin_headers)
    assert response.status_code == 201
    assert response.json() == {
        "kind": "user",
        "id": response.json()["id"],
        "name": "ivy",
        "invited": True,
        "team_role": "member",
        "project_role": "member",
        "is_override": False,
    }
    assert client.get(f"{BASE}/r/runs", headers=headers).status_code == 200
    assert len(_rows(db, project)) == 2
    assert _audit_count(db, "project.member.add") == 1


def test_add_member_with_a_project_role(client, db, org, team, admin_headers):
    factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    body = {"principal": "user:ivy@example.com", "role": "Admin"}
    response = client.post(f"{BASE}/p/members", json=body, headers=admin_headers)
    assert response.status_code == 201
    assert (response.json()["project_role"], response.json()["is_override"]) == ("admin", True)
    assert _can(client, org, "user:ivy", "run:delete", "vision/p") is True


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"principal": "outsider"}, 422),  # not in the team
        ({"principal": "nobody"}, 404),
        ({"principal": "service_account:ghost"}, 404),
        ({"principal": "service_account:elsewhere"}, 422),  # another team's account
        ({"principal": "group:vision"}, 422),
        ({"principal": "ivy", "role": "owner"}, 422),
        ({"principal": "ivy", "role": "service"}, 422),
        ({"principal": "ivy", "extra": 1}, 422),
        ({"principal": ""}, 422),
        ({"principal": 5}, 422),
        ({}, 422),
    ],
)
def test_bad_additions_write_nothing(client, db, org, team, admin_headers, body, status):
    project = factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    _member(db, org, None, username="outsider")
    factories.service_account(db, org.org, factories.team(db, org.org), name="elsewhere")
    response = client.post(f"{BASE}/p/members", json=body, headers=admin_headers)
    assert response.status_code == status
    assert _rows(db, project) == []
    assert _audit_count(db, "project.member.add") == 0


def test_adding_an_existing_member_is_a_conflict(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="p")
    ivy, _ = _member(db, org, team, username="ivy")
    factories.project_member(db, project, ivy)
    response = client.post(f"{BASE}/p/members", json={"principal": "ivy"}, headers=admin_headers)
    assert response.status_code == 409


def test_member_cannot_add_members(client, db, org, team):
    factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    _, headers = _member(db, org, team)
    response = client.post(f"{BASE}/p/members", json={"principal": "ivy"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.team_role"


def test_service_accounts_reach_restricted_project_only_when_added(
    client, db, org, team, admin_headers
):
    project = factories.project(db, team, name="r", visibility="restricted")
    factories.service_account(db, org.org, team, name="team-robot")
    factories.service_account(db, org.org, team, scope="org", name="org-robot")
    for name in ("team-robot", "org-robot"):
        assert _can(client, org, f"service_account:{name}", "run:create", "vision/r") is False
    client.post(f"{BASE}/r/join", headers=admin_headers)
    for name in ("team-robot", "org-robot"):
        body = {"principal": f"service_account:{name}"}
        assert client.post(f"{BASE}/r/members", json=body, headers=admin_headers).status_code == 201
        assert _can(client, org, f"service_account:{name}", "run:create", "vision/r") is True
    assert len(_rows(db, project)) == 3


# --- project roles --------------------------------------------------------------------------------


def test_project_role_override_survives_team_role_change(client, db, org, team, admin_headers):
    factories.project(db, team, name="p")
    ivy, _ = _member(db, org, team, username="ivy")
    response = client.patch(f"{BASE}/p/members/ivy", json={"role": "viewer"}, headers=admin_headers)
    assert response.status_code == 200
    assert (response.json()["project_role"], response.json()["is_override"]) == ("viewer", True)
    assert _can(client, org, "user:ivy", "run:create", "vision/p") is False
    # The team role changes (the teams service's job; arranged directly here): the override stays.
    membership = db.scalar(select(TeamMembership).where(TeamMembership.user_id == ivy.id))
    membership.role = "admin"
    db.flush()
    items = client.get(f"{BASE}/p/members", headers=admin_headers).json()["items"]
    ivy_row = next(m for m in items if m["name"] == "ivy")
    assert (ivy_row["team_role"], ivy_row["project_role"], ivy_row["is_override"]) == (
        "admin",
        "viewer",
        True,
    )
    assert _can(client, org, "user:ivy", "run:create", "vision/p") is False


def test_project_role_equal_to_team_role_returns_to_tracking(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    client.patch(f"{BASE}/p/members/ivy", json={"role": "admin"}, headers=admin_headers)
    assert len(_rows(db, project)) == 1
    response = client.patch(f"{BASE}/p/members/ivy", json={"role": "MEMBER"}, headers=admin_headers)
    assert response.status_code == 200
    assert (response.json()["project_role"], response.json()["is_override"]) == ("member", False)
    assert _rows(db, project) == []  # nothing left to remember


def test_null_role_returns_to_tracking(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="r", visibility="restricted")
    ivy, _ = _member(db, org, team, username="ivy")
    factories.project_member(db, project, ivy, role="admin")
    client.post(f"{BASE}/r/join", headers=admin_headers)
    response = client.patch(f"{BASE}/r/members/ivy", json={"role": None}, headers=admin_headers)
    assert response.status_code == 200
    assert (response.json()["project_role"], response.json()["invited"]) == ("member", True)
    row = next(r for r in _rows(db, project) if r.user_id == ivy.id)
    assert (row.invited, row.role) == (True, None)


def test_team_role_changes_through_the_api_keep_overrides_and_meet_them(
    client, db, org, team, admin_headers
):
    """An override stays when the team role changes; a team-role change that makes them equal
    returns the member to tracking, and a later change is tracked again."""
    project = factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    client.patch(f"{BASE}/p/members/ivy", json={"role": "admin"}, headers=admin_headers)
    team_member = "/api/v1/teams/vision/members/ivy"

    def ivy():
        items = client.get(f"{BASE}/p/members", headers=admin_headers).json()["items"]
        row = next(m for m in items if m["name"] == "ivy")
        return row["team_role"], row["project_role"], row["is_override"]

    def set_team_role(role):
        response = client.patch(team_member, json={"role": role}, headers=admin_headers)
        assert response.status_code == 200, response.text

    # member -> viewer: the admin override would be a project role for a view-only member, so
    # it goes (ACCESS.md: a view-only member cannot have a project role).
    set_team_role("viewer")
    assert ivy() == ("viewer", "viewer", False)
    assert _can(client, org, "user:ivy", "run:delete", "vision/p") is False
    # viewer -> member, override admin again; member -> admin meets the override: tracking.
    set_team_role("member")
    client.patch(f"{BASE}/p/members/ivy", json={"role": "admin"}, headers=admin_headers)
    assert ivy() == ("member", "admin", True)
    set_team_role("admin")
    assert ivy() == ("admin", "admin", False)
    assert [row.role for row in _rows(db, project)] in ([], [None])  # nothing overridden
    # Tracking again: the next team-role change carries the project role with it.
    set_team_role("member")
    assert ivy() == ("member", "member", False)
    assert _can(client, org, "user:ivy", "run:delete", "vision/p") is False


def test_custom_project_role_by_exact_name(client, db, org, team, admin_headers):
    factories.custom_role(db, org.org, name="Reviewer", inherited_from="viewer")
    factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    wrong_case = client.patch(
        f"{BASE}/p/members/ivy", json={"role": "reviewer"}, headers=admin_headers
    )
    assert wrong_case.status_code == 422
    response = client.patch(
        f"{BASE}/p/members/ivy", json={"role": "Reviewer"}, headers=admin_headers
    )
    assert response.status_code == 200
    assert (response.json()["project_role"], response.json()["is_override"]) == ("Reviewer", True)
    assert _can(client, org, "user:ivy", "run:create", "vision/p") is False
    assert _can(client, org, "user:ivy", "run:read", "vision/p") is True


def test_view_only_team_member_cannot_get_a_project_role(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="p")
    _member(db, org, team, role="viewer", username="vic")
    response = client.patch(f"{BASE}/p/members/vic", json={"role": "admin"}, headers=admin_headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "project_role.viewer_fixed"
    message = response.json()["error"]["message"]
    assert "view-only team role cannot be given a project role" in message
    assert _rows(db, project) == []
    body = {"principal": "vic", "role": "member"}
    added = client.post(f"{BASE}/p/members", json=body, headers=admin_headers)
    assert added.status_code == 409
    assert added.json()["error"]["code"] == "project_role.viewer_fixed"
    assert _rows(db, project) == []


def test_project_roles_only_in_team_and_restricted_projects(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="o", visibility="open")
    _member(db, org, team, username="ivy")
    response = client.patch(f"{BASE}/o/members/ivy", json={"role": "admin"}, headers=admin_headers)
    assert response.status_code == 422
    body = {"principal": "ivy", "role": "admin"}
    assert client.post(f"{BASE}/o/members", json=body, headers=admin_headers).status_code == 422
    assert _rows(db, project) == []


@pytest.mark.parametrize(
    ("ref", "body", "status"),
    [
        ("ivy", {"role": "superuser"}, 422),
        ("ivy", {}, 422),
        ("ivy", {"role": 3}, 422),
        ("ivy", {"role": "admin", "x": 1}, 422),
        ("nobody", {"role": "admin"}, 404),
        ("outsider", {"role": "admin"}, 422),
    ],
)
def test_bad_role_changes_write_nothing(client, db, org, team, admin_headers, ref, body, status):
    project = factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    _member(db, org, None, username="outsider")
    response = client.patch(f"{BASE}/p/members/{ref}", json=body, headers=admin_headers)
    assert response.status_code == status
    assert _rows(db, project) == []
    assert _audit_count(db, "project.member.role") == 0


def test_uninvited_member_of_restricted_project_has_no_role_to_set(
    client, db, org, team, admin_headers
):
    factories.project(db, team, name="r", visibility="restricted")
    _member(db, org, team, username="ivy")
    client.post(f"{BASE}/r/join", headers=admin_headers)
    response = client.patch(f"{BASE}/r/members/ivy", json={"role": "admin"}, headers=admin_headers)
    assert response.status_code == 404


# --- removing -------------------------------------------------------------------------------------


def test_removing_from_restricted_forgets_the_override(client, db, org, team, admin_headers):
    project = factories.project(db, team, name="r", visibility="restricted")
    ivy, headers = _member(db, org, team, username="ivy")
    factories.project_member(db, project, ivy, role="admin")
    client.post(f"{BASE}/r/join", headers=admin_headers)
    assert client.delete(f"{BASE}/r/members/ivy", headers=admin_headers).status_code == 204
    assert client.get(f"{BASE}/r/runs", headers=headers).status_code == 403
    readded = client.post(f"{BASE}/r/members", json={"principal": "ivy"}, headers=admin_headers)
    assert (readded.json()["project_role"], readded.json()["is_override"]) == ("member", False)
    assert _audit_count(db, "project.member.remove") == 1


def test_an_override_hidden_by_restricting_the_project_does_not_come_back_on_invite(
    client, db, org, team, admin_headers
):
    # bob's admin override was set while the project was team-scoped; restricting it shut him
    # out without an invitation. Invited now, he starts from his team role, as a re-added
    # member does.
    factories.project(db, team, name="pst")
    _member(db, org, team, username="bob")
    set_admin = client.patch(
        f"{BASE}/pst/members/bob", json={"role": "admin"}, headers=admin_headers
    )
    assert set_admin.status_code == 200 and set_admin.json()["is_override"] is True
    restricted = {"visibility": "restricted"}
    assert client.patch(f"{BASE}/pst", json=restricted, headers=admin_headers).status_code == 200

    # The team admin is shut out too until it joins; the org admin manages access anyway.
    invited = client.post(
        f"{BASE}/pst/members", json={"principal": "bob"}, headers=org.admin_headers
    )

    assert invited.status_code == 201, invited.text
    assert (invited.json()["project_role"], invited.json()["is_override"]) == ("member", False)
    assert _can(client, org, "user:bob", "run:delete", "vision/pst") is False
    assert _can(client, org, "user:bob", "run:create", "vision/pst") is True


def test_removing_a_non_member_is_404(client, db, org, team, admin_headers):
    factories.project(db, team, name="p")
    _member(db, org, team, username="ivy")
    assert client.delete(f"{BASE}/p/members/ivy", headers=admin_headers).status_code == 404
    assert client.delete(f"{BASE}/p/members/nobody", headers=admin_headers).status_code == 404


def test_member_cannot_remove_members(client, db, org, team):
    project = factories.project(db, team, name="r", visibility="restricted")
    ivy, _ = _member(db, org, team, username="ivy")
    factories.project_member(db, project, ivy)
    other, headers = _member(db, org, team)
    factories.project_member(db, project, other)
    response = client.delete(f"{BASE}/r/members/ivy", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.restricted_membership"
    assert len(_rows(db, project)) == 2


# --- joining --------------------------------------------------------------------------------------


def test_team_admin_sees_restricted_project_but_nothing_inside_until_joining(
    client, db, org, team, admin_headers
):
    factories.project(db, team, name="r", visibility="restricted")
    assert client.get(f"{BASE}/r", headers=admin_headers).status_code == 200
    runs = client.get(f"{BASE}/r/runs", headers=admin_headers)
    assert runs.status_code == 403
    grant = next(
        s for s in runs.json()["error"]["trace"] if s["rule"] == "visibility.restricted_team_admin"
    )
    assert grant["outcome"] == "grant"
    check = {"permission": "run:read", "project": "vision/r"}
    decision = client.post(CHECK, json=check, headers=admin_headers).json()
    assert decision["allowed"] is False
    joined = client.post(f"{BASE}/r/join", headers=admin_headers)
    assert joined.status_code == 200
    assert (joined.json()["name"], joined.json()["invited"]) == ("tess", True)
    assert client.get(f"{BASE}/r/runs", headers=admin_headers).status_code == 200
    assert _audit_count(db, "project.member.join") == 1


def test_team_member_cannot_join_restricted_project(client, db, org, team):
    project = factories.project(db, team, name="r", visibility="restricted")
    _, headers = _member(db, org, team)
    response = client.post(f"{BASE}/r/join", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.restricted_membership"
    assert _rows(db, project) == []


def test_joining_twice_or_a_team_project_is_refused(client, db, org, team, admin_headers):
    factories.project(db, team, name="r", visibility="restricted")
    factories.project(db, team, name="p")
    assert client.post(f"{BASE}/r/join", headers=admin_headers).status_code == 200
    assert client.post(f"{BASE}/r/join", headers=admin_headers).status_code == 409
    assert client.post(f"{BASE}/p/join", headers=admin_headers).status_code == 422
