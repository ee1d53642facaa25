"""Team membership through the REST API: join order, roles, overrides, removal, self-join."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.projects.models import Project, ProjectMembership
from rolecall.runs.models import Run
from rolecall.teams.models import TeamMembership
from tests import factories


def _members_url(team) -> str:
    return f"/api/v1/teams/{team.name}/members"


def _user_with_key(db, org, **kwargs):
    user = factories.user(db, org.org, **kwargs)
    return user, factories.headers(factories.api_key(db, user))


def _membership_count(db, team) -> int:
    db.expire_all()
    return db.scalar(select(func.count(TeamMembership.id)).where(TeamMembership.team_id == team.id))


def _membership(db, team, user) -> TeamMembership | None:
    db.expire_all()
    return db.scalar(
        select(TeamMembership).where(
            TeamMembership.team_id == team.id, TeamMembership.user_id == user.id
        )
    )


def _events(db, action: str, team) -> list[AuditEvent]:
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.object_id == team.id)
    return list(db.scalars(query.order_by(AuditEvent.seq)))


# --- listing ----------------------------------------------------------------------------------


def test_members_are_listed_in_join_order_with_service_accounts(client, db, org):
    team = factories.team(db, org.org)
    first = factories.user(db, org.org)
    second = factories.user(db, org.org)
    third = factories.user(db, org.org)
    url = _members_url(team)
    for user, role in ((second, "viewer"), (first, "member")):
        response = client.post(
            url, json={"user": user.username, "role": role}, headers=org.admin_headers
        )
        assert response.status_code == 201
    created = client.post(
        "/api/v1/service-accounts",
        json={"name": "bot", "scope": "team", "team": team.name},
        headers=org.admin_headers,
    )
    assert created.status_code == 201
    client.post(url, json={"user": third.email}, headers=org.admin_headers)

    items = client.get(url, headers=org.admin_headers).json()["items"]
    assert [(m["kind"], m["name"], m["role"]) for m in items] == [
        ("user", second.username, "viewer"),
        ("user", first.username, "member"),
        ("service_account", "bot", "service"),
        ("user", third.username, "member"),
    ]
    assert items[0]["email"] == second.email
    assert items[2]["email"] is None
    joined = [m["joined_at"] for m in items]
    assert joined == sorted(joined)


def test_deleted_service_accounts_leave_the_member_list(client, db, org):
    team = factories.team(db, org.org)
    factories.service_account(db, org.org, team, name="gone")
    response = client.delete("/api/v1/service-accounts/gone", headers=org.admin_headers)
    assert response.status_code == 204
    assert client.get(_members_url(team), headers=org.admin_headers).json()["items"] == []


def test_listing_members_needs_team_read(client, db, org):
    _, headers = _user_with_key(db, org)
    team = factories.team(db, org.org)
    response = client.get(_members_url(team), headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.none"


# --- adding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ref_kind", ["username", "email", "id", "upper-username"])
def test_add_member_by_any_user_reference(client, db, org, ref_kind):
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    ref = {
        "username": user.username,
        "email": user.email,
        "id": user.id,
        "upper-username": user.username.upper(),
    }[ref_kind]
    response = client.post(_members_url(team), json={"user": ref}, headers=org.admin_headers)
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["id"], body["role"], body["custom_role_id"]) == (
        "user",
        user.id,
        "member",
        None,
    )
    assert _membership(db, team, user).role == "member"
    (event,) = _events(db, "team.member.add", team)
    assert event.after == {"user": user.username, "role": "member"}


@pytest.mark.parametrize(("given", "stored"), [("ADMIN", "admin"), ("Viewer", "viewer")])
def test_predefined_roles_are_case_insensitive(client, db, org, given, stored):
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    response = client.post(
        _members_url(team), json={"user": user.username, "role": given}, headers=org.admin_headers
    )
    assert response.status_code == 201
    assert response.json()["role"] == stored


def test_custom_roles_are_matched_exactly_by_name_or_id(client, db, org):
    team = factories.team(db, org.org)
    role = factories.custom_role(db, org.org, name="Labeler")
    users = [factories.user(db, org.org) for _ in range(3)]
    url = _members_url(team)
    by_name = client.post(
        url, json={"user": users[0].username, "role": "Labeler"}, headers=org.admin_headers
    )
    assert by_name.status_code == 201
    assert (by_name.json()["role"], by_name.json()["custom_role_id"]) == ("Labeler", role.id)
    by_id = client.post(
        url, json={"user": users[1].username, "role": role.id}, headers=org.admin_headers
    )
    assert by_id.status_code == 201
    wrong_case = client.post(
        url, json={"user": users[2].username, "role": "labeler"}, headers=org.admin_headers
    )
    assert wrong_case.status_code == 422
    assert "unknown role" in wrong_case.json()["error"]["message"]
    stored = _membership(db, team, users[0])
    assert (stored.role, stored.custom_role_id) == ("custom", role.id)
    items = client.get(url, headers=org.admin_headers).json()["items"]
    assert [m["role"] for m in items] == ["Labeler", "Labeler"]


def test_bad_member_input_is_refused_and_writes_nothing(client, db, org):
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    deactivated = factories.user(db, org.org, active=False)
    outsider = factories.user(db, factories.bootstrap(db).org)
    url = _members_url(team)
    cases = [
        ({"user": user.username, "role": "service"}, 422, "only for service accounts"),
        ({"user": user.username, "role": "owner"}, 422, "unknown role"),
        ({"user": "nobody"}, 404, "no user"),
        ({"user": deactivated.username}, 422, "not an active member"),
        # Another organization's user: answered as an unknown one, so nothing is learnt of it.
        ({"user": outsider.username}, 404, f"no user {outsider.username!r} in this organization"),
        ({"user": outsider.email}, 404, f"no user {outsider.email!r} in this organization"),
        ({"user": user.username, "admin": True}, 422, "admin"),
        ({"user": 7}, 422, "user"),
        ({"role": "member"}, 422, "user"),
        ({"user": user.username, "role": ""}, 422, "role"),
    ]
    for body, status, message in cases:
        response = client.post(url, json=body, headers=org.admin_headers)
        assert response.status_code == status, (body, response.text)
        assert message in response.json()["error"]["message"], (body, response.text)
    assert _membership_count(db, team) == 0


def test_adding_an_existing_member_again_is_a_conflict(client, db, org):
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    factories.member(db, team, user, role="viewer")
    response = client.post(
        _members_url(team), json={"user": user.email, "role": "admin"}, headers=org.admin_headers
    )
    assert response.status_code == 409
    assert _membership(db, team, user).role == "viewer"
    assert _events(db, "team.member.add", team) == []


def test_unknown_team_is_404(client, db, org):
    user = factories.user(db, org.org)
    response = client.post(
        "/api/v1/teams/nope/members", json={"user": user.username}, headers=org.admin_headers
    )
    assert response.status_code == 404


def test_team_admin_manages_members_but_team_member_cannot(client, db, org):
    team = factories.team(db, org.org)
    admin, admin_headers = _user_with_key(db, org)
    member, member_headers = _user_with_key(db, org)
    factories.member(db, team, admin, role="admin")
    factories.member(db, team, member, role="member")
    newcomer = factories.user(db, org.org)
    url = _members_url(team)

    refused = client.post(url, json={"user": newcomer.username}, headers=member_headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "base.team_role"
    assert _membership(db, team, newcomer) is None

    added = client.post(url, json={"user": newcomer.username}, headers=admin_headers)
    assert added.status_code == 201
    changed = client.patch(
        f"{url}/{newcomer.username}", json={"role": "viewer"}, headers=admin_headers
    )
    assert changed.status_code == 200
    assert client.delete(f"{url}/{newcomer.username}", headers=admin_headers).status_code == 204
    assert _membership(db, team, newcomer) is None


def test_org_admin_adds_itself_unless_admin_team_access_is_disabled(make_client, db, org):
    team = factories.team(db, org.org)
    other = factories.user(db, org.org)
    url = _members_url(team)
    restricted = make_client(disable_admin_team_access=True)

    refused = restricted.post(url, json={"user": org.admin.username}, headers=org.admin_headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "org_admin.self_join_disabled"
    assert _membership(db, team, org.admin) is None

    others = restricted.post(url, json={"user": other.username}, headers=org.admin_headers)
    assert others.status_code == 201
    # Managing other members stays allowed (org admin extra team:manage_members).
    changed = restricted.patch(
        f"{url}/{other.username}", json={"role": "admin"}, headers=org.admin_headers
    )
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    listed = restricted.get(url, headers=org.admin_headers)
    assert [m["name"] for m in listed.json()["items"]] == [other.username]
    removed = restricted.delete(f"{url}/{other.username}", headers=org.admin_headers)
    assert removed.status_code == 204
    assert _membership(db, team, other) is None
    (added,) = _events(db, "team.member.add", team)
    assert added.after == {"user": other.username, "role": "member"}

    allowed = make_client().post(url, json={"user": org.admin.email}, headers=org.admin_headers)
    assert allowed.status_code == 201
    assert _membership(db, team, org.admin).role == "member"


# --- changing roles ---------------------------------------------------------------------------


def _team_with_overrides(db, org):
    """A member with project-role overrides admin and viewer in two projects of its team."""
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    factories.member(db, team, user, role="member")
    as_admin = factories.project(db, team)
    as_viewer = factories.project(db, team, visibility="restricted")
    factories.project_member(db, as_admin, user, invited=False, role="admin")
    factories.project_member(db, as_viewer, user, invited=True, role="viewer")
    return team, user, as_admin, as_viewer


def _override(db, project, user) -> tuple[str | None, str | None]:
    db.expire_all()
    row = db.scalar(
        select(ProjectMembership).where(
            ProjectMembership.project_id == project.id, ProjectMembership.user_id == user.id
        )
    )
    # No row at all: nothing overrides the team role.
    return (row.role, row.custom_role_id) if row is not None else (None, None)


def _project_row_count(db, project, user) -> int:
    return len(
        db.scalars(
            select(ProjectMembership).where(
                ProjectMembership.project_id == project.id, ProjectMembership.user_id == user.id
            )
        ).all()
    )


def test_role_change_returns_equal_overrides_to_tracking_and_keeps_others(client, db, org):
    team, user, as_admin, as_viewer = _team_with_overrides(db, org)
    response = client.patch(
        f"{_members_url(team)}/{user.username}", json={"role": "Admin"}, headers=org.admin_headers
    )
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert _membership(db, team, user).role == "admin"
    assert _override(db, as_admin, user) == (None, None)
    # The uninvited row held only the override, so it is gone; the invitation stays.
    assert _project_row_count(db, as_admin, user) == 0
    assert _override(db, as_viewer, user) == ("viewer", None)
    (event,) = _events(db, "team.member.update", team)
    assert (event.before["role"], event.after["role"]) == ("member", "admin")
    assert "1 project-role overrides" in event.detail


def test_custom_role_overrides_track_when_the_team_role_becomes_that_role(client, db, org):
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    role = factories.custom_role(db, org.org, name="Reviewer")
    factories.member(db, team, user, role="member")
    project = factories.project(db, team)
    factories.project_member(db, project, user, invited=False, custom_role=role)
    response = client.patch(
        f"{_members_url(team)}/{user.id}", json={"role": "Reviewer"}, headers=org.admin_headers
    )
    assert response.status_code == 200
    assert (response.json()["role"], response.json()["custom_role_id"]) == ("Reviewer", role.id)
    assert _override(db, project, user) == (None, None)


def test_becoming_a_viewer_clears_every_project_role_override(client, db, org):
    team, user, as_admin, as_viewer = _team_with_overrides(db, org)
    response = client.patch(
        f"{_members_url(team)}/{user.email}", json={"role": "viewer"}, headers=org.admin_headers
    )
    assert response.status_code == 200
    assert _override(db, as_admin, user) == (None, None)
    assert _override(db, as_viewer, user) == (None, None)
    assert _project_row_count(db, as_viewer, user) == 1  # still invited to the restricted one


def test_bad_role_changes_are_refused_and_change_nothing(client, db, org):
    team, user, as_admin, _ = _team_with_overrides(db, org)
    factories.service_account(db, org.org, team, name="robot")
    url = _members_url(team)
    cases = [
        (f"{url}/{user.username}", {"role": "service"}, 422),
        (f"{url}/{user.username}", {"role": "nope"}, 422),
        (f"{url}/{user.username}", {"role": "admin", "extra": 1}, 422),
        (f"{url}/{user.username}", {}, 422),
        (f"{url}/robot", {"role": "admin"}, 422),
        (f"{url}/nobody", {"role": "admin"}, 404),
    ]
    for path, body, status in cases:
        response = client.patch(path, json=body, headers=org.admin_headers)
        assert response.status_code == status, (path, body, response.text)
    assert _membership(db, team, user).role == "member"
    assert _override(db, as_admin, user) == ("admin", None)
    assert _events(db, "team.member.update", team) == []


def test_setting_the_same_role_records_nothing(client, db, org):
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    factories.member(db, team, user, role="member")
    response = client.patch(
        f"{_members_url(team)}/{user.username}", json={"role": "MEMBER"}, headers=org.admin_headers
    )
    assert response.status_code == 200
    assert _events(db, "team.member.update", team) == []


# --- removing ---------------------------------------------------------------------------------


def test_removal_drops_team_project_memberships_keeps_runs_and_flags_owned_restricted(
    client, db, org
):
    team = factories.team(db, org.org)
    other_team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    factories.member(db, team, user, role="admin")
    factories.member(db, other_team, user)
    owned_restricted = factories.project(db, team, visibility="restricted", owner=user)
    owned_open = factories.project(db, team, visibility="open", owner=user)
    elsewhere = factories.project(db, other_team)
    factories.project_member(db, owned_restricted, user, role="admin")
    factories.project_member(db, elsewhere, user, role="viewer")
    db.add(Run(project_id=owned_restricted.id, name="kept", created_by_user_id=user.id))
    db.flush()

    response = client.delete(f"{_members_url(team)}/{user.username}", headers=org.admin_headers)
    assert response.status_code == 204
    assert _membership(db, team, user) is None
    assert _membership(db, other_team, user) is not None
    remaining = db.scalars(
        select(ProjectMembership.project_id).where(ProjectMembership.user_id == user.id)
    ).all()
    assert remaining == [elsewhere.id]
    assert db.scalar(select(func.count(Run.id)).where(Run.created_by_user_id == user.id)) == 1
    assert db.get(Project, owned_restricted.id).owner_needed is True
    assert db.get(Project, owned_open.id).owner_needed is False
    (event,) = _events(db, "team.member.remove", team)
    assert event.before == {"user": user.username, "role": "admin"}


def test_removing_needs_manage_members_and_changes_nothing_when_refused(client, db, org):
    team = factories.team(db, org.org)
    member, headers = _user_with_key(db, org)
    other = factories.user(db, org.org)
    factories.member(db, team, member, role="member")
    factories.member(db, team, other, role="member")
    response = client.delete(f"{_members_url(team)}/{other.username}", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.team_role"
    assert _membership(db, team, other) is not None


def test_service_account_and_unknown_members_cannot_be_removed(client, db, org):
    team = factories.team(db, org.org)
    factories.service_account(db, org.org, team, name="robot")
    outsider = factories.user(db, org.org)
    url = _members_url(team)
    refused = client.delete(f"{url}/robot", headers=org.admin_headers)
    assert refused.status_code == 409
    assert "delete the service account" in refused.json()["error"]["message"]
    assert client.delete(f"{url}/{outsider.username}", headers=org.admin_headers).status_code == 404
    assert client.delete(f"{url}/nobody", headers=org.admin_headers).status_code == 404
    assert _membership_count(db, team) == 1
