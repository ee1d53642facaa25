"""Teams through the REST API: create, read, settings, rename, delete."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.orgs.models import Organization
from rolecall.projects.models import Project, ProjectMembership
from rolecall.runs.models import Run
from rolecall.teams.models import Team, TeamMembership
from tests import factories

TEAMS = "/api/v1/teams"


def _user_with_key(db, org, **kwargs):
    user = factories.user(db, org.org, **kwargs)
    return user, factories.headers(factories.api_key(db, user))


def _team_count(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count(Team.id)).where(Team.kind == "team"))


def _events(db, action: str, object_id: str | None = None) -> list[AuditEvent]:
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action)
    if object_id is not None:
        query = query.where(AuditEvent.object_id == object_id)
    return list(db.scalars(query.order_by(AuditEvent.seq)))


# --- create -----------------------------------------------------------------------------------


def test_org_admin_creates_a_team_with_settings_and_it_is_audited(client, db, org):
    body = {"name": "Vision", "private_only": True, "domain_matching": True, "storage_type": "s3"}
    response = client.post(TEAMS, json=body, headers=org.admin_headers)
    assert response.status_code == 201, response.text
    team = response.json()
    assert team["name"] == "Vision"
    assert team["kind"] == "team"
    assert (team["private_only"], team["domain_matching"], team["storage_type"]) == (
        True,
        True,
        "s3",
    )
    assert team["is_default"] is False
    events = _events(db, "team.create", team["id"])
    assert len(events) == 1
    assert events[0].after["private_only"] is True
    assert events[0].actor_id == org.admin.id


def test_create_with_an_admin_makes_that_user_team_admin(client, db, org):
    user, _ = _user_with_key(db, org)
    response = client.post(
        TEAMS, json={"name": "nlp", "admin": user.email}, headers=org.admin_headers
    )
    assert response.status_code == 201
    members = client.get(f"{TEAMS}/nlp/members", headers=org.admin_headers).json()["items"]
    assert [(m["name"], m["role"]) for m in members] == [(user.username, "admin")]
    assert _events(db, "team.member.add", response.json()["id"])


@pytest.mark.parametrize("name", ["Vision", "VISION", "vision"])
def test_duplicate_team_name_is_a_conflict_case_insensitively(client, db, org, name):
    factories.team(db, org.org, name="vision")
    before = _team_count(db)
    response = client.post(TEAMS, json={"name": name}, headers=org.admin_headers)
    assert response.status_code == 409
    assert "already taken" in response.json()["error"]["message"]
    assert _team_count(db) == before


def test_team_name_equal_to_a_username_is_a_conflict(client, db, org):
    user, _ = _user_with_key(db, org, username="Alice")
    before = _team_count(db)
    response = client.post(TEAMS, json={"name": "alice"}, headers=org.admin_headers)
    assert response.status_code == 409
    assert _team_count(db) == before
    assert user.username == "Alice"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "has space"},
        {"name": ".hidden"},
        {"name": ""},
        {"name": "x" * 129},
        {"name": "ok", "colour": "red"},
        {"name": "ok", "private_only": "yes"},
        {"name": "ok", "private_only": 1},
        {"name": 42},
        {"name": "ok", "storage_type": "no spaces allowed"},
        {"name": "ok", "admin": "bad\u0000ref"},
        {},
    ],
)
def test_bad_team_input_is_422_and_writes_nothing(client, db, org, body):
    before = _team_count(db)
    response = client.post(TEAMS, json=body, headers=org.admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert _team_count(db) == before


def test_unknown_admin_is_404_and_writes_nothing(client, db, org):
    before = _team_count(db)
    response = client.post(
        TEAMS, json={"name": "ghosts", "admin": "nobody@example.com"}, headers=org.admin_headers
    )
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "admin"
    assert _team_count(db) == before


def test_deactivated_admin_is_422_and_writes_nothing(client, db, org):
    user = factories.user(db, org.org, active=False)
    before = _team_count(db)
    response = client.post(
        TEAMS, json={"name": "ghosts", "admin": user.username}, headers=org.admin_headers
    )
    assert response.status_code == 422
    assert "not an active member" in response.json()["error"]["message"]
    assert _team_count(db) == before


def test_team_admin_who_is_not_org_admin_cannot_create_teams(client, db, org):
    user, headers = _user_with_key(db, org)
    factories.member(db, factories.team(db, org.org), user, role="admin")
    before = _team_count(db)
    response = client.post(TEAMS, json={"name": "mine"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "org.member"
    assert _team_count(db) == before


def test_anonymous_cannot_create_teams(client, db, org):
    response = client.post(TEAMS, json={"name": "anon"})
    assert response.status_code == 401


# --- read -------------------------------------------------------------------------------------


def test_every_org_member_lists_teams_but_not_personal_entities(client, db, org):
    user, headers = _user_with_key(db, org)
    first = factories.team(db, org.org)
    second = factories.team(db, org.org)
    response = client.get(TEAMS, headers=headers)
    assert response.status_code == 200
    names = [t["name"] for t in response.json()["items"]]
    assert names == [first.name, second.name]
    assert user.username not in names


def test_team_details_need_team_read(client, db, org):
    user, headers = _user_with_key(db, org)
    mine, other = factories.team(db, org.org), factories.team(db, org.org)
    factories.member(db, mine, user, role="viewer")
    assert client.get(f"{TEAMS}/{mine.name.upper()}", headers=headers).status_code == 200
    assert client.get(f"{TEAMS}/{mine.id}", headers=headers).json()["name"] == mine.name
    denied = client.get(f"{TEAMS}/{other.name}", headers=headers)
    assert denied.status_code == 403
    assert denied.json()["error"]["rule"] == "base.none"
    # Org admins read every team.
    assert client.get(f"{TEAMS}/{other.name}", headers=org.admin_headers).status_code == 200


def test_unknown_team_and_personal_entity_are_404(client, db, org):
    assert client.get(f"{TEAMS}/nope", headers=org.admin_headers).status_code == 404
    personal = client.get(f"{TEAMS}/{org.admin.username}", headers=org.admin_headers)
    assert personal.status_code == 404


def test_default_team_is_flagged(client, db, org):
    team = factories.team(db, org.org)
    org.org.default_team_id = team.id
    db.flush()
    assert client.get(f"{TEAMS}/{team.name}", headers=org.admin_headers).json()["is_default"]


# --- update -----------------------------------------------------------------------------------


def test_team_admin_updates_settings_and_the_change_is_audited(client, db, org):
    user, headers = _user_with_key(db, org)
    team = factories.team(db, org.org)
    factories.member(db, team, user, role="admin")
    response = client.patch(
        f"{TEAMS}/{team.name}", json={"private_only": True, "storage_type": "gcs"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["private_only"] is True
    assert response.json()["storage_type"] == "gcs"
    assert response.json()["domain_matching"] is False
    (event,) = _events(db, "team.update", team.id)
    assert event.before == {"private_only": False, "storage_type": "default"}
    assert event.after == {"private_only": True, "storage_type": "gcs"}


def test_team_member_cannot_update_settings(client, db, org):
    user, headers = _user_with_key(db, org)
    team = factories.team(db, org.org)
    factories.member(db, team, user, role="member")
    response = client.patch(f"{TEAMS}/{team.name}", json={"private_only": True}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.team_role"
    db.expire_all()
    assert db.get(Team, team.id).private_only is False


def test_org_admin_updates_any_team(client, db, org):
    team = factories.team(db, org.org)
    response = client.patch(
        f"{TEAMS}/{team.name}", json={"domain_matching": True}, headers=org.admin_headers
    )
    assert response.status_code == 200
    assert response.json()["domain_matching"] is True


def test_rename_keeps_the_team_id_and_moves_the_name(client, db, org):
    team = factories.team(db, org.org, name="old-name")
    response = client.patch(
        f"{TEAMS}/old-name", json={"name": "New.Name"}, headers=org.admin_headers
    )
    assert response.status_code == 200
    assert response.json()["id"] == team.id
    assert client.get(f"{TEAMS}/new.name", headers=org.admin_headers).status_code == 200
    assert client.get(f"{TEAMS}/old-name", headers=org.admin_headers).status_code == 404
    (event,) = _events(db, "team.update", team.id)
    assert event.before == {"name": "old-name"}
    assert event.after == {"name": "New.Name"}


def test_rename_to_a_taken_name_is_a_conflict(client, db, org):
    team = factories.team(db, org.org)
    factories.user(db, org.org, username="bob")
    other = factories.team(db, org.org)
    for taken in ("BOB", other.name):
        response = client.patch(
            f"{TEAMS}/{team.name}", json={"name": taken}, headers=org.admin_headers
        )
        assert response.status_code == 409
    db.expire_all()
    assert db.get(Team, team.id).name == team.name


def test_rename_changing_only_case_is_allowed(client, db, org):
    factories.team(db, org.org, name="ml")
    response = client.patch(f"{TEAMS}/ml", json={"name": "ML"}, headers=org.admin_headers)
    assert response.status_code == 200
    assert response.json()["name"] == "ML"


@pytest.mark.parametrize(
    "body",
    [{"kind": "personal"}, {"private_only": "sure"}, {"name": "bad name"}, {"storage_type": ""}],
)
def test_bad_update_is_422_and_changes_nothing(client, db, org, body):
    team = factories.team(db, org.org)
    response = client.patch(f"{TEAMS}/{team.name}", json=body, headers=org.admin_headers)
    assert response.status_code == 422
    db.expire_all()
    row = db.get(Team, team.id)
    assert (row.name, row.private_only, row.storage_type) == (team.name, False, "default")


def test_empty_update_changes_nothing_and_records_nothing(client, db, org):
    team = factories.team(db, org.org)
    response = client.patch(f"{TEAMS}/{team.name}", json={}, headers=org.admin_headers)
    assert response.status_code == 200
    assert _events(db, "team.update", team.id) == []


# --- delete -----------------------------------------------------------------------------------


def test_delete_removes_projects_runs_and_memberships_and_clears_default_team(client, db, org):
    user, _ = _user_with_key(db, org)
    team = factories.team(db, org.org)
    factories.member(db, team, user)
    project = factories.project(db, team)
    factories.project_member(db, project, user, role="admin")
    db.add(Run(project_id=project.id, name="r1", created_by_user_id=user.id))
    org.org.default_team_id = team.id
    db.flush()
    team_id, project_id = team.id, project.id

    response = client.delete(f"{TEAMS}/{team.name}", headers=org.admin_headers)
    assert response.status_code == 204
    db.expire_all()
    assert db.get(Team, team_id) is None
    assert db.get(Project, project_id) is None
    assert db.scalar(select(func.count(Run.id)).where(Run.project_id == project_id)) == 0
    assert (
        db.scalar(select(func.count(TeamMembership.id)).where(TeamMembership.team_id == team_id))
        == 0
    )
    assert (
        db.scalar(
            select(func.count(ProjectMembership.id)).where(
                ProjectMembership.project_id == project_id
            )
        )
        == 0
    )
    assert db.get(Organization, org.org.id).default_team_id is None
    (event,) = _events(db, "team.delete", team_id)
    assert event.before["projects"] == 1
    assert event.before["members"] == 1


def test_team_admin_cannot_delete_its_team(client, db, org):
    user, headers = _user_with_key(db, org)
    team = factories.team(db, org.org)
    factories.member(db, team, user, role="admin")
    response = client.delete(f"{TEAMS}/{team.name}", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "org.member"
    db.expire_all()
    assert db.get(Team, team.id) is not None


def test_default_team_of_an_org_service_account_cannot_be_deleted(client, db, org):
    team = factories.team(db, org.org)
    factories.service_account(db, org.org, team, scope="org", name="trainer")
    response = client.delete(f"{TEAMS}/{team.name}", headers=org.admin_headers)
    assert response.status_code == 409
    assert "trainer" in response.json()["error"]["message"]
    db.expire_all()
    assert db.get(Team, team.id) is not None


def test_delete_unknown_team_is_404(client, org):
    assert client.delete(f"{TEAMS}/nope", headers=org.admin_headers).status_code == 404


# --- private only -----------------------------------------------------------------------------


def test_setting_private_only_keeps_existing_open_and_public_projects(client, db, org):
    team = factories.team(db, org.org, name="lab")
    open_project = factories.project(db, team, name="demo", visibility="open")
    public_project = factories.project(db, team, name="paper", visibility="public")
    internal = factories.project(db, team, name="internal", visibility="team")
    user, headers = _user_with_key(db, org)
    factories.member(db, team, user, role="admin")

    response = client.patch(f"{TEAMS}/lab", json={"private_only": True}, headers=headers)

    assert response.status_code == 200 and response.json()["private_only"] is True
    db.expire_all()
    # ACCESS.md (ours): projects already open or public keep their scope.
    assert db.get(Project, open_project.id).visibility == "open"
    assert db.get(Project, public_project.id).visibility == "public"
    assert client.get("/api/v1/projects/lab/paper").status_code == 200  # anonymous still reads
    # From now on: no new open or public project, no change to open or public.
    created = client.post(
        "/api/v1/projects",
        json={"entity": "lab", "name": "fresh", "visibility": "public"},
        headers=headers,
    )
    assert created.status_code == 409
    assert created.json()["error"]["code"] == "team.private_only"
    changed = client.patch(
        "/api/v1/projects/lab/internal", json={"visibility": "open"}, headers=headers
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "team.private_only"
    db.expire_all()
    assert db.get(Project, internal.id).visibility == "team"
    # Turning it off again allows open and public projects.
    client.patch(f"{TEAMS}/lab", json={"private_only": False}, headers=headers)
    reopened = client.patch(
        "/api/v1/projects/lab/internal", json={"visibility": "open"}, headers=headers
    )
    assert reopened.status_code == 200 and reopened.json()["visibility"] == "open"


# --- GORILLA_DISABLE_ADMIN_TEAM_ACCESS --------------------------------------------------------


def test_org_admin_names_itself_first_admin_unless_admin_team_access_is_disabled(
    make_client, db, org
):
    other, _ = _user_with_key(db, org)
    restricted = make_client(disable_admin_team_access=True)

    refused = restricted.post(
        TEAMS, json={"name": "mine", "admin": org.admin.username}, headers=org.admin_headers
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "org_admin.self_join_disabled"
    assert _team_count(db) == 0
    assert _events(db, "team.create") == []
    # Creating a team for someone else stays allowed under the setting.
    for_other = restricted.post(
        TEAMS, json={"name": "theirs", "admin": other.username}, headers=org.admin_headers
    )
    assert for_other.status_code == 201
    allowed = make_client().post(
        TEAMS, json={"name": "mine", "admin": org.admin.email}, headers=org.admin_headers
    )
    assert allowed.status_code == 201
    db.expire_all()
    row = db.scalar(
        select(TeamMembership).where(
            TeamMembership.team_id == allowed.json()["id"],
            TeamMembership.user_id == org.admin.id,
        )
    )
    assert row.role == "admin"
