"""Projects through the HTTP surface: create, read, list, visibility, owner, delete.

One named test per ACCESS.md visibility rule; denials assert the deciding rule.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.projects.models import Project
from rolecall.runs.models import Run
from rolecall.teams.models import Team
from tests import factories

PROJECTS = "/api/v1/projects"


def _member(db, org, team=None, role="member", **user_kw):
    """A user of the org (optionally in ``team`` with ``role``) and its API-key headers."""
    user = factories.user(db, org.org, **user_kw)
    if team is not None:
        factories.member(db, team, user, role=role)
    return user, factories.headers(factories.api_key(db, user))


def _count(db, model, *where):
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model).where(*where))


def _audit_count(db, action):
    return _count(db, AuditEvent, AuditEvent.action == action)


@pytest.fixture
def team(db, org):
    return factories.team(db, org.org, name="vision")


def _rule(response):
    return response.json()["error"]["rule"]


# --- create ---------------------------------------------------------------------------------------


def test_member_creates_team_project_owned_by_itself_with_team_visibility(client, db, org, team):
    _, headers = _member(db, org, team, username="alice")
    response = client.post(PROJECTS, json={"entity": "vision", "name": "Detector"}, headers=headers)
    assert response.status_code == 201
    body = response.json()
    assert body["entity"] == "vision"
    assert body["path"] == "vision/Detector"
    assert body["visibility"] == "team"
    assert body["owner"] == "alice"
    assert body["owner_needed"] is False
    assert _audit_count(db, "project.create") == 1


def test_user_creates_project_in_its_personal_entity(client, db, org):
    _, headers = _member(db, org, username="carol")
    body = {"entity": "carol", "name": "scratch", "visibility": "restricted"}
    response = client.post(PROJECTS, json=body, headers=headers)
    assert response.status_code == 201
    assert client.get(f"{PROJECTS}/carol/scratch", headers=headers).status_code == 200
    # Another user's personal entity is not the caller's to use (nor an org admin's).
    _, other = _member(db, org, username="dave")
    for headers in (other, org.admin_headers):
        refused = client.post(PROJECTS, json={"entity": "carol", "name": "x"}, headers=headers)
        assert refused.status_code == 403
        assert _rule(refused) == "base.none"
    assert _count(db, Project) == 1


def test_creator_of_restricted_project_is_its_first_invited_member(client, db, org, team):
    _, headers = _member(db, org, team)
    body = {"entity": "vision", "name": "secret", "visibility": "restricted"}
    assert client.post(PROJECTS, json=body, headers=headers).status_code == 201
    assert client.get(f"{PROJECTS}/vision/secret/runs", headers=headers).status_code == 200


def test_service_account_creates_project_without_owner(client, db, org, team):
    account = factories.service_account(db, org.org, team)
    headers = factories.headers(factories.api_key(db, account))
    response = client.post(PROJECTS, json={"entity": "vision", "name": "auto"}, headers=headers)
    assert response.status_code == 201
    assert response.json()["owner"] is None


def test_outsider_cannot_create_project_in_a_team(client, db, org, team):
    _, headers = _member(db, org)
    response = client.post(PROJECTS, json={"entity": "vision", "name": "p"}, headers=headers)
    assert response.status_code == 403
    assert _rule(response) == "base.none"
    assert _count(db, Project) == 0


def test_team_viewer_cannot_create_project(client, db, org, team):
    _, headers = _member(db, org, team, role="viewer")
    response = client.post(PROJECTS, json={"entity": "vision", "name": "p"}, headers=headers)
    assert response.status_code == 403
    assert _rule(response) == "base.team_role"
    assert _count(db, Project) == 0


def test_duplicate_project_name_is_a_conflict_case_insensitively(client, db, org, team):
    _, headers = _member(db, org, team)
    client.post(PROJECTS, json={"entity": "vision", "name": "Detector"}, headers=headers)
    response = client.post(PROJECTS, json={"entity": "VISION", "name": "detector"}, headers=headers)
    assert response.status_code == 409
    assert _count(db, Project) == 1
    assert _audit_count(db, "project.create") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"entity": "vision", "name": "bad name"},
        {"entity": "vision", "name": ".hidden"},
        {"entity": "vision", "name": ""},
        {"entity": "vision", "name": "x" * 129},
        {"entity": "vision", "name": "p", "visibility": "secret"},
        {"entity": "vision", "name": "p", "visibility": 3},
        {"entity": "vision", "name": 12},
        {"entity": "vision"},
        {"entity": "vision", "name": "p", "colour": "red"},
        {"entity": "vision", "name": "p", "description": "d" * 1025},
        {"entity": "vision", "name": "p", "members": "alice"},
    ],
)
def test_bad_create_input_is_422_and_writes_nothing(client, db, org, team, body):
    _, headers = _member(db, org, team)
    response = client.post(PROJECTS, json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert _count(db, Project) == 0
    assert _audit_count(db, "project.create") == 0


def test_unknown_entity_is_404(client, db, org):
    _, headers = _member(db, org)
    response = client.post(PROJECTS, json={"entity": "nowhere", "name": "p"}, headers=headers)
    assert response.status_code == 404


def test_anonymous_cannot_create(client, db, org, team):
    response = client.post(PROJECTS, json={"entity": "vision", "name": "p"})
    assert response.status_code == 401
    assert _count(db, Project) == 0


def test_members_at_creation_are_invited_to_restricted_project(client, db, org, team):
    _, headers = _member(db, org, team)
    _, bob_headers = _member(db, org, team, username="bob")
    body = {"entity": "vision", "name": "s", "visibility": "restricted", "members": ["user:bob"]}
    assert client.post(PROJECTS, json=body, headers=headers).status_code == 201
    assert client.get(f"{PROJECTS}/vision/s/runs", headers=bob_headers).status_code == 200


@pytest.mark.parametrize(
    ("members", "visibility", "status"),
    [
        (["user:outsider"], "restricted", 422),
        (["user:nobody"], "restricted", 404),
        (["team:vision"], "restricted", 422),
        (["user:bob"], "team", 422),
    ],
)
def test_bad_members_at_creation_write_nothing(client, db, org, team, members, visibility, status):
    _, headers = _member(db, org, team)
    _member(db, org, team, username="bob")
    _member(db, org, username="outsider")
    body = {"entity": "vision", "name": "s", "visibility": visibility, "members": members}
    assert client.post(PROJECTS, json=body, headers=headers).status_code == status
    assert _count(db, Project) == 0


# --- visibility scopes (ACCESS.md) ----------------------------------------------------------------


def test_open_project_anonymous_reads_and_any_authenticated_principal_submits(
    client, db, org, team
):
    project = factories.project(db, team, name="open-p", visibility="open")
    factories.member(db, team, factories.user(db, org.org), role="member")
    assert client.get(f"{PROJECTS}/vision/open-p").status_code == 200
    assert client.get(f"{PROJECTS}/vision/open-p/runs").status_code == 200
    assert client.post(f"{PROJECTS}/vision/open-p/runs", json={}).status_code == 401
    _, outsider = _member(db, org)
    response = client.post(f"{PROJECTS}/vision/open-p/runs", json={}, headers=outsider)
    assert response.status_code == 201
    assert _count(db, Run, Run.project_id == project.id) == 1


def test_public_project_anyone_reads_only_team_submits(client, db, org, team):
    factories.project(db, team, name="pub", visibility="public")
    _, insider = _member(db, org, team)
    _, outsider = _member(db, org)
    assert client.get(f"{PROJECTS}/vision/pub").status_code == 200
    assert client.get(f"{PROJECTS}/vision/pub/runs", headers=outsider).status_code == 200
    refused = client.post(f"{PROJECTS}/vision/pub/runs", json={}, headers=outsider)
    assert refused.status_code == 403
    assert _rule(refused) == "base.none"
    assert [s["rule"] for s in refused.json()["error"]["trace"]][:2] == [
        "base.none",
        "visibility.public",
    ]
    assert client.post(f"{PROJECTS}/vision/pub/runs", json={}, headers=insider).status_code == 201


def test_team_project_denies_outsiders(client, db, org, team):
    factories.project(db, team, name="internal")
    _, insider = _member(db, org, team)
    _, outsider = _member(db, org)
    assert client.get(f"{PROJECTS}/vision/internal", headers=insider).status_code == 200
    response = client.get(f"{PROJECTS}/vision/internal", headers=outsider)
    assert response.status_code == 403
    assert _rule(response) == "base.none"
    anonymous = client.get(f"{PROJECTS}/vision/internal")
    assert anonymous.status_code == 403
    assert _rule(anonymous) == "base.none"


def test_restricted_project_admits_invited_members_only(client, db, org, team):
    project = factories.project(db, team, name="secret", visibility="restricted")
    invited, invited_headers = _member(db, org, team)
    factories.project_member(db, project, invited)
    _, uninvited_headers = _member(db, org, team)
    assert client.get(f"{PROJECTS}/vision/secret", headers=invited_headers).status_code == 200
    response = client.get(f"{PROJECTS}/vision/secret/runs", headers=uninvited_headers)
    assert response.status_code == 403
    assert _rule(response) == "base.restricted_membership"


def test_team_to_restricted_loses_access_and_restricted_to_team_regains(client, db, org, team):
    factories.project(db, team, name="p")
    _, admin_headers = _member(db, org, team, role="admin")
    _, member_headers = _member(db, org, team)
    path = f"{PROJECTS}/vision/p"
    assert client.get(f"{path}/runs", headers=member_headers).status_code == 200
    changed = client.patch(path, json={"visibility": "restricted"}, headers=admin_headers)
    assert changed.status_code == 200
    assert changed.json()["visibility"] == "restricted"
    lost = client.get(f"{path}/runs", headers=member_headers)
    assert lost.status_code == 403
    assert _rule(lost) == "base.restricted_membership"
    assert (
        client.patch(path, json={"visibility": "team"}, headers=org.admin_headers).status_code
        == 200
    )
    assert client.get(f"{path}/runs", headers=member_headers).status_code == 200


def test_private_only_team_refuses_open_or_public_at_creation(client, db, org):
    private = factories.team(db, org.org, name="private", private_only=True)
    _, headers = _member(db, org, private)
    for visibility in ("open", "public"):
        body = {"entity": "private", "name": f"p-{visibility}", "visibility": visibility}
        response = client.post(PROJECTS, json=body, headers=headers)
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "team.private_only"
    assert _count(db, Project) == 0
    body = {"entity": "private", "name": "fine", "visibility": "team"}
    assert client.post(PROJECTS, json=body, headers=headers).status_code == 201


def test_private_only_team_refuses_change_to_public_but_keeps_existing_public(client, db, org):
    private = factories.team(db, org.org, name="private", private_only=True)
    factories.project(db, private, name="legacy", visibility="public")
    factories.project(db, private, name="internal", visibility="team")
    _, headers = _member(db, org, private, role="admin")
    refused = client.patch(
        f"{PROJECTS}/private/internal", json={"visibility": "public"}, headers=headers
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "team.private_only"
    assert (
        client.get(f"{PROJECTS}/private/internal", headers=headers).json()["visibility"] == "team"
    )
    kept = client.patch(
        f"{PROJECTS}/private/legacy",
        json={"visibility": "public", "description": "still public"},
        headers=headers,
    )
    assert kept.status_code == 200
    assert kept.json()["visibility"] == "public"
    assert client.get(f"{PROJECTS}/private/legacy").status_code == 200


def test_restricted_to_team_always_allowed_in_private_only_team(client, db, org):
    private = factories.team(db, org.org, name="private", private_only=True)
    project = factories.project(db, private, name="r", visibility="restricted")
    admin, headers = _member(db, org, private, role="admin")
    factories.project_member(db, project, admin)
    response = client.patch(f"{PROJECTS}/private/r", json={"visibility": "team"}, headers=headers)
    assert response.status_code == 200
    assert response.json()["visibility"] == "team"


# --- personal entities switched off ---------------------------------------------------------------


def test_disabled_personal_entity_refuses_new_projects_and_run_writes_but_reads_stay(
    make_client, db, org
):
    dana, headers = _member(db, org, username="dana")
    personal = db.scalar(select(Team).where(Team.personal_owner_id == dana.id))
    factories.project(db, personal, name="old")
    client = make_client(disable_personal_entity=True)
    created = client.post(PROJECTS, json={"entity": "dana", "name": "new"}, headers=headers)
    assert created.status_code == 403
    assert _rule(created) == "personal_entity.disabled"
    run = client.post(f"{PROJECTS}/dana/old/runs", json={}, headers=headers)
    assert run.status_code == 403
    assert _rule(run) == "personal_entity.disabled"
    assert client.get(f"{PROJECTS}/dana/old", headers=headers).status_code == 200
    assert client.get(f"{PROJECTS}/dana/old/runs", headers=headers).status_code == 200
    assert _count(db, Project, Project.team_id == personal.id) == 1


# --- read and list --------------------------------------------------------------------------------


def test_get_unknown_project_is_404(client, db, org, team):
    _, headers = _member(db, org, team)
    assert client.get(f"{PROJECTS}/vision/missing", headers=headers).status_code == 404
    assert client.get(f"{PROJECTS}/nowhere/missing", headers=headers).status_code == 404


def test_list_shows_only_readable_projects(client, db, org, team):
    other = factories.team(db, org.org, name="audio")
    factories.project(db, team, name="mine")
    factories.project(db, other, name="theirs")
    factories.project(db, other, name="shown", visibility="public")
    factories.project(db, team, name="hidden", visibility="restricted")
    _, headers = _member(db, org, team)
    body = client.get(PROJECTS, headers=headers).json()
    assert sorted(p["path"] for p in body["items"]) == ["audio/shown", "vision/mine"]
    assert body["total"] == 2
    anonymous = client.get(PROJECTS).json()
    assert [p["path"] for p in anonymous["items"]] == ["audio/shown"]
    only_vision = client.get(PROJECTS, params={"entity": "vision"}, headers=headers).json()
    assert [p["path"] for p in only_vision["items"]] == ["vision/mine"]


def test_list_pages_are_stable(client, db, org, team):
    for n in range(7):
        factories.project(db, team, name=f"p{n}")
    _, headers = _member(db, org, team)
    seen = []
    for offset in (0, 3, 6):
        page = client.get(PROJECTS, params={"offset": offset, "limit": 3}, headers=headers).json()
        assert page["total"] == 7
        assert (page["offset"], page["limit"]) == (offset, 3)
        seen += [p["name"] for p in page["items"]]
    assert sorted(seen) == sorted(f"p{n}" for n in range(7))


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}, {"entity": ""}]
)
def test_bad_list_parameters_are_422(client, db, org, params):
    response = client.get(PROJECTS, params=params, headers=org.admin_headers)
    assert response.status_code == 422


def test_list_unknown_entity_is_404(client, db, org):
    assert (
        client.get(PROJECTS, params={"entity": "nowhere"}, headers=org.admin_headers).status_code
        == 404
    )


# --- update: description, owner -------------------------------------------------------------------


def test_team_member_cannot_change_visibility(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    response = client.patch(f"{PROJECTS}/vision/p", json={"visibility": "open"}, headers=headers)
    assert response.status_code == 403
    assert _rule(response) == "base.team_role"
    db.expire_all()
    assert db.scalar(select(Project.visibility).where(Project.name == "p")) == "team"
    assert _audit_count(db, "project.update") == 0


def test_project_owner_may_change_visibility_and_description(client, db, org, team):
    owner, headers = _member(db, org, team)
    factories.project(db, team, name="p", owner=owner)
    body = {"visibility": "public", "description": "now public"}
    response = client.patch(f"{PROJECTS}/vision/p", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["visibility"] == "public"
    assert response.json()["description"] == "now public"
    db.expire_all()
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "project.update"))
    assert event.before == {"visibility": "team", "description": None}
    assert event.after == {"visibility": "public", "description": "now public"}


def test_a_description_holding_nul_is_422_on_every_backend(client, db, org, team):
    owner, headers = _member(db, org, team)
    factories.project(db, team, name="p", owner=owner)
    path = f"{PROJECTS}/vision/p"

    refused = client.patch(path, json={"description": "a\x00b"}, headers=headers)
    kept = client.patch(path, json={"description": "line one\n\tline two"}, headers=headers)

    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "description"
    assert kept.status_code == 200 and kept.json()["description"] == "line one\n\tline two"


def test_patch_owner_sets_a_team_member_and_clears_owner_needed(client, db, org, team):
    project = factories.project(db, team, name="r", visibility="restricted")
    project.owner_needed = True
    db.flush()
    _, admin_headers = _member(db, org, team, role="admin")
    _, erin_headers = _member(db, org, team, username="erin")
    # A team admin joins the restricted project, then names its new owner.
    assert client.post(f"{PROJECTS}/vision/r/join", headers=admin_headers).status_code == 200
    response = client.patch(f"{PROJECTS}/vision/r", json={"owner": "erin"}, headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["owner"] == "erin"
    assert response.json()["owner_needed"] is False
    db.expire_all()
    assert db.get(Project, project.id).owner_needed is False
    # The new owner of a restricted project is invited to it, as its creator is.
    assert client.get(f"{PROJECTS}/vision/r/runs", headers=erin_headers).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"owner": "outsider"}, 422),
        ({"owner": "nobody"}, 404),
        ({"owner": None}, 422),
        ({"visibility": None}, 422),
        ({"owner": "service_account:robot"}, 422),
        ({"visibility": "hidden"}, 422),
        ({"name": "renamed"}, 422),
    ],
)
def test_bad_update_changes_nothing(client, db, org, team, body, status):
    project = factories.project(db, team, name="p")
    factories.service_account(db, org.org, team, name="robot")
    _member(db, org, username="outsider")
    _, headers = _member(db, org, team, role="admin")
    response = client.patch(f"{PROJECTS}/vision/p", json=body, headers=headers)
    assert response.status_code == status
    db.expire_all()
    row = db.get(Project, project.id)
    assert (row.visibility, row.owner_user_id, row.name) == ("team", None, "p")
    assert _audit_count(db, "project.update") == 0


def test_member_cannot_change_owner(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team, username="frank")
    response = client.patch(f"{PROJECTS}/vision/p", json={"owner": "frank"}, headers=headers)
    assert response.status_code == 403
    assert _rule(response) == "base.team_role"


# --- delete ---------------------------------------------------------------------------------------


def test_team_admin_deletes_project_with_its_runs(client, db, org, team):
    project_id = factories.project(db, team, name="p").id
    _, headers = _member(db, org, team, role="admin")
    assert client.post(f"{PROJECTS}/vision/p/runs", json={}, headers=headers).status_code == 201
    assert client.delete(f"{PROJECTS}/vision/p", headers=headers).status_code == 204
    assert _count(db, Project, Project.id == project_id) == 0
    assert _count(db, Run, Run.project_id == project_id) == 0
    assert _audit_count(db, "project.delete") == 1


def test_member_cannot_delete_project(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    response = client.delete(f"{PROJECTS}/vision/p", headers=headers)
    assert response.status_code == 403
    assert _rule(response) == "base.team_role"
    assert _count(db, Project) == 1


def test_org_admin_manages_but_cannot_delete_or_read_runs_without_membership(client, db, org, team):
    factories.project(db, team, name="p")
    assert client.get(f"{PROJECTS}/vision/p", headers=org.admin_headers).status_code == 200
    runs = client.get(f"{PROJECTS}/vision/p/runs", headers=org.admin_headers)
    assert runs.status_code == 403
    assert _rule(runs) == "base.none"
    deleted = client.delete(f"{PROJECTS}/vision/p", headers=org.admin_headers)
    assert deleted.status_code == 403
    assert _count(db, Project) == 1


# --- who may change the scope (ACCESS.md, "Visibility scopes") ------------------------------------


@pytest.mark.parametrize(
    ("who", "rule"),
    [
        ("org_admin", None),
        ("team_admin", None),
        ("owner", None),
        ("viewer_owner", None),  # a view-only team member that owns the project
        ("member", "base.team_role"),
        ("outsider", "base.none"),
        ("org_viewer_owner", "extra.project_owner"),  # an org viewer gets no owner extras
    ],
)
def test_who_may_change_visibility(client, db, org, team, who, rule):
    """An org admin, a team admin or the project's owner; nobody else."""
    if who == "org_admin":
        user, headers = org.admin, org.admin_headers
    elif who == "outsider":
        user, headers = _member(db, org)
    else:
        team_role = {"team_admin": "admin", "viewer_owner": "viewer"}.get(who, "member")
        org_role = "viewer" if who == "org_viewer_owner" else "member"
        user = factories.user(db, org.org, role=org_role)
        factories.member(db, team, user, role=team_role)
        headers = factories.headers(factories.api_key(db, user))
    owner = user if who.endswith("owner") else None
    project = factories.project(db, team, name="p", owner=owner)
    response = client.patch(f"{PROJECTS}/vision/p", json={"visibility": "open"}, headers=headers)
    db.expire_all()
    if rule is None:
        assert response.status_code == 200, response.text
        assert db.get(Project, project.id).visibility == "open"
        assert _audit_count(db, "project.update") == 1
    else:
        assert response.status_code == 403
        assert _rule(response) == rule
        assert db.get(Project, project.id).visibility == "team"
        assert _audit_count(db, "project.update") == 0


# --- the owner of a restricted project leaves its team (ACCESS.md, ours) --------------------------


def test_restricted_project_owner_leaving_the_team_flags_it_until_a_team_admin_names_an_owner(
    client, db, org, team
):
    _, owner_headers = _member(db, org, team, username="olga")
    _, admin_headers = _member(db, org, team, role="admin", username="tad")
    _member(db, org, team, username="nina")
    body = {"entity": "vision", "name": "r", "visibility": "restricted"}
    assert client.post(PROJECTS, json=body, headers=owner_headers).status_code == 201
    path = f"{PROJECTS}/vision/r"
    # The owner leaves the team: the project is flagged.
    left = client.delete("/api/v1/teams/vision/members/olga", headers=admin_headers)
    assert left.status_code == 204
    flagged = client.get(path, headers=org.admin_headers).json()
    assert (flagged["owner"], flagged["owner_needed"]) == ("olga", True)
    # Back in the team and invited again, the former owner still may not manage the project:
    # until a new owner is set, only admins manage it.
    rejoined = client.post(
        "/api/v1/teams/vision/members", json={"user": "olga"}, headers=admin_headers
    )
    assert rejoined.status_code == 201
    invited = client.post(f"{path}/members", json={"principal": "olga"}, headers=org.admin_headers)
    assert invited.status_code == 201
    refused = client.patch(path, json={"visibility": "team"}, headers=owner_headers)
    assert refused.status_code == 403
    assert _rule(refused) == "extra.project_owner"
    refused = client.post(f"{path}/members", json={"principal": "nina"}, headers=owner_headers)
    assert refused.status_code == 403
    assert _rule(refused) == "extra.project_owner"
    # A team admin (after joining) names the new owner; the flag clears.
    assert client.post(f"{path}/join", headers=admin_headers).status_code == 200
    named = client.patch(path, json={"owner": "nina"}, headers=admin_headers)
    assert named.status_code == 200
    assert (named.json()["owner"], named.json()["owner_needed"]) == ("nina", False)
    db.expire_all()
    assert db.scalar(select(Project.owner_needed).where(Project.name == "r")) is False
    event = db.scalar(
        select(AuditEvent)
        .where(AuditEvent.action == "project.update")
        .order_by(AuditEvent.seq.desc())
    )
    assert event.before == {"owner": "olga", "owner_needed": True}
    assert event.after == {"owner": "nina", "owner_needed": False}


# --- the visibility matrix (ACCESS.md) through HTTP -----------------------------------------------

#: (principal, visibility) -> (reads runs, submits runs); ``None``: 401 (no credential).
_MATRIX = {
    "anonymous": {"open": (True, None), "public": (True, None), "team": (False, None),
                  "restricted": (False, None)},
    "outsider": {"open": (True, True), "public": (True, False), "team": (False, False),
                 "restricted": (False, False)},
    "team_member": {"open": (True, True), "public": (True, True), "team": (True, True),
                    "restricted": (False, False)},
    "org_account": {"open": (True, True), "public": (True, True), "team": (True, True),
                    "restricted": (False, False)},
    "team_account": {"open": (True, True), "public": (True, True), "team": (True, True),
                     "restricted": (False, False)},
    "other_team_account": {"open": (True, True), "public": (True, False), "team": (False, False),
                           "restricted": (False, False)},
}  # fmt: skip

#: The rule a denial names, per principal (restricted projects name their own rule).
_DENIAL_RULE = {
    "anonymous": "base.none",
    "outsider": "base.none",
    "other_team_account": "base.none",
}


@pytest.mark.parametrize("who", sorted(_MATRIX))
def test_visibility_matrix_for_each_kind_of_principal(client, db, org, team, who):
    other = factories.team(db, org.org, name="audio")
    for visibility in ("open", "public", "team", "restricted"):
        factories.project(db, team, name=visibility, visibility=visibility)
    headers: dict[str, str] = {}
    if who == "outsider":
        _, headers = _member(db, org)
    elif who == "team_member":
        _, headers = _member(db, org, team)
    elif who.endswith("account"):
        scope = "org" if who == "org_account" else "team"
        home = other if who == "other_team_account" else team
        account = factories.service_account(db, org.org, home, scope=scope)
        headers = factories.headers(factories.api_key(db, account))
    for visibility, (reads, submits) in _MATRIX[who].items():
        runs = f"{PROJECTS}/vision/{visibility}/runs"
        read = client.get(runs, headers=headers)
        submit = client.post(runs, json={}, headers=headers)
        assert (read.status_code == 200) is reads, (visibility, read.text)
        if submits is None:
            assert submit.status_code == 401, visibility
        else:
            assert (submit.status_code == 201) is submits, (visibility, submit.text)
        for response in (read, submit):
            if response.status_code == 403:
                expected = (
                    "base.restricted_membership"
                    if visibility == "restricted" and who != "anonymous"
                    else _DENIAL_RULE[who]
                )
                assert _rule(response) == expected, (visibility, response.json())


# --- an owner who left ----------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["team", "open"])
def test_an_owner_removed_from_the_team_can_no_longer_change_or_expose_its_project(
    client, db, org, team, visibility
):
    gina, headers = _member(db, org, team, username="gina")
    created = client.post(
        PROJECTS, json={"entity": "vision", "name": "p", "visibility": visibility}, headers=headers
    )
    assert created.status_code == 201 and created.json()["owner"] == "gina"
    removed = client.delete("/api/v1/teams/vision/members/gina", headers=org.admin_headers)
    assert removed.status_code == 204

    public = client.patch(f"{PROJECTS}/vision/p", json={"visibility": "public"}, headers=headers)
    given_away = client.patch(f"{PROJECTS}/vision/p", json={"owner": "admin"}, headers=headers)
    check = client.post(
        "/api/v1/authz/check",
        json={"principal": "user:gina", "permission": "project:update", "project": "vision/p"},
        headers=org.admin_headers,
    ).json()

    for refused in (public, given_away):
        assert refused.status_code == 403, refused.text
        assert _rule(refused) == "extra.project_owner"
    assert (check["allowed"], check["rule"]) == (False, "extra.project_owner")
    db.expire_all()
    stored = db.scalar(select(Project).where(Project.name == "p"))
    assert (stored.visibility, stored.owner_user_id) == (visibility, gina.id)
