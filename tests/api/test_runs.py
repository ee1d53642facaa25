"""Runs through the HTTP surface: submit (service-account reach and attribution), read, stop,
delete, move. Denials assert the deciding rule; domain-rule refusals the rule's code."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.orgs.models import OrgMembership
from rolecall.runs.models import Run
from rolecall.teams.models import Team
from rolecall.users.models import User
from tests import factories

API = "/api/v1"


@pytest.fixture
def team(db, org):
    return factories.team(db, org.org, name="vision")


@pytest.fixture
def other_team(db, org):
    return factories.team(db, org.org, name="audio")


def _member(db, org, team=None, role="member", username=None):
    user = factories.user(db, org.org, username=username)
    if team is not None:
        factories.member(db, team, user, role=role)
    return user, factories.headers(factories.api_key(db, user))


def _account(db, org, team, scope="team", name=None):
    account = factories.service_account(db, org.org, team, scope=scope, name=name)
    return account, factories.headers(factories.api_key(db, account))


def _submit(client, path, headers, **body):
    return client.post(f"{API}/projects/{path}/runs", json=body, headers=headers)


def _runs(db, *where):
    db.expire_all()
    return db.scalars(select(Run).where(*where)).all()


def _rule(response):
    return response.json()["error"]["rule"]


# --- submitting -----------------------------------------------------------------------------------


def test_user_submits_run_attributed_to_itself(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team, username="alice")
    response = _submit(client, "vision/p", headers, name="baseline 1")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "baseline 1"
    assert body["project"] == "vision/p"
    assert body["state"] == "running"
    assert body["created_by"] == {"kind": "user", "name": "alice"}
    assert (body["attributed_to"], body["attribution_note"]) == ("alice", None)
    db.expire_all()
    assert db.scalar(select(func.count()).where(AuditEvent.action == "run.create")) == 1


def test_run_without_name_gets_a_generated_one(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    names = {_submit(client, "vision/p", headers).json()["name"] for _ in range(2)}
    assert len(names) == 2
    assert all(name.startswith("run-") for name in names)


def test_post_runs_with_bare_name_uses_the_users_personal_entity(client, db, org):
    user, headers = _member(db, org, username="carol")
    personal = db.scalar(select(Team).where(Team.personal_owner_id == user.id))
    factories.project(db, personal, name="scratch")
    response = client.post(f"{API}/runs", json={"project": "scratch"}, headers=headers)
    assert response.status_code == 201
    assert response.json()["project"] == "carol/scratch"


def test_post_runs_with_bare_name_uses_the_service_accounts_team(client, db, org, team):
    factories.project(db, team, name="p")
    _, team_headers = _account(db, org, team)
    _, org_headers = _account(db, org, team, scope="org")
    for headers in (team_headers, org_headers):
        response = client.post(f"{API}/runs", json={"project": "p"}, headers=headers)
        assert response.status_code == 201
        assert response.json()["project"] == "vision/p"


def test_post_runs_with_entity_path(client, db, org, team, other_team):
    factories.project(db, other_team, name="p")
    _, headers = _account(db, org, team, scope="org")
    response = client.post(f"{API}/runs", json={"project": "audio/p"}, headers=headers)
    assert response.status_code == 201
    assert response.json()["project"] == "audio/p"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"project": "missing"}, 404),
        ({"project": "vision/missing"}, 404),
        ({"project": "a/b/c"}, 422),
        ({"project": "/p"}, 422),
        ({"project": ""}, 422),
        ({}, 422),
        ({"project": "vision/p", "name": ""}, 422),
        ({"project": "vision/p", "name": " "}, 422),
        ({"project": "vision/p", "name": "\u3000\u00a0"}, 422),
        ({"project": "vision/p", "name": "x" * 129}, 422),
        ({"project": "vision/p", "name": "bad\nname"}, 422),
        ({"project": "vision/p", "name": 7}, 422),
        ({"project": "vision/p", "state": "finished"}, 422),
    ],
)
def test_bad_run_submissions_write_nothing(client, db, org, team, body, status):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    response = client.post(f"{API}/runs", json=body, headers=headers)
    assert response.status_code == status
    assert _runs(db) == []


def test_anonymous_cannot_submit(client, db, org, team):
    factories.project(db, team, name="o", visibility="open")
    assert _submit(client, "vision/o", {}).status_code == 401
    assert _runs(db) == []


# --- service accounts' reach (ACCESS.md, "Service accounts") --------------------------------------


def test_team_scoped_account_submits_to_its_teams_non_restricted_projects(client, db, org, team):
    for visibility in ("team", "public", "open"):
        factories.project(db, team, name=visibility, visibility=visibility)
    _, headers = _account(db, org, team)
    for visibility in ("team", "public", "open"):
        assert _submit(client, f"vision/{visibility}", headers).status_code == 201


def test_team_scoped_account_reaches_restricted_project_only_when_added(client, db, org, team):
    project = factories.project(db, team, name="r", visibility="restricted")
    account, headers = _account(db, org, team)
    refused = _submit(client, "vision/r", headers)
    assert refused.status_code == 403
    assert _rule(refused) == "base.restricted_membership"
    factories.project_member(db, project, account)
    assert _submit(client, "vision/r", headers).status_code == 201


def test_team_scoped_account_submits_to_open_project_of_another_team(
    client, db, org, team, other_team
):
    factories.project(db, other_team, name="o", visibility="open")
    _, headers = _account(db, org, team)
    response = _submit(client, "audio/o", headers)
    assert response.status_code == 201


def test_team_scoped_account_cannot_submit_to_team_project_of_another_team(
    client, db, org, team, other_team
):
    factories.project(db, other_team, name="t")
    factories.project(db, other_team, name="pub", visibility="public")
    _, headers = _account(db, org, team)
    for path in ("audio/t", "audio/pub"):
        response = _submit(client, path, headers)
        assert response.status_code == 403
        assert _rule(response) == "base.none"
    assert _runs(db) == []


def test_org_scoped_account_is_a_member_everywhere_except_restricted(
    client, db, org, team, other_team
):
    factories.project(db, team, name="t")
    factories.project(db, other_team, name="t")
    restricted = factories.project(db, other_team, name="r", visibility="restricted")
    account, headers = _account(db, org, team, scope="org")
    assert _submit(client, "vision/t", headers).status_code == 201
    assert _submit(client, "audio/t", headers).status_code == 201
    refused = _submit(client, "audio/r", headers)
    assert refused.status_code == 403
    assert _rule(refused) == "base.restricted_membership"
    factories.project_member(db, restricted, account)
    assert _submit(client, "audio/r", headers).status_code == 201


# --- attribution ----------------------------------------------------------------------------------


def test_attribution_honoured_for_an_active_team_member(client, db, org, team):
    factories.project(db, team, name="p")
    _member(db, org, team, username="alice")
    _, headers = _account(db, org, team, name="robot")
    for header, value in (
        ("X-Wandb-Username", "alice"),
        ("X-Wandb-User-Email", "ALICE@example.com"),
    ):
        response = _submit(client, "vision/p", {**headers, header: value})
        body = response.json()
        assert response.status_code == 201
        assert body["created_by"] == {"kind": "service_account", "name": "robot"}
        assert (body["attributed_to"], body["attribution_note"]) == ("alice", None)
    assert {run.attributed_to_user_id for run in _runs(db)} == {
        db.scalar(select(User.id).where(User.username == "alice"))
    }


def test_attribution_refused_for_a_non_member(client, db, org, team):
    factories.project(db, team, name="p")
    _member(db, org, None, username="outsider")
    _, headers = _account(db, org, team, name="robot")
    response = _submit(client, "vision/p", {**headers, "X-Wandb-Username": "outsider"})
    body = response.json()
    assert response.status_code == 201
    assert body["attributed_to"] == "robot"
    assert "not an active member of the account's team" in body["attribution_note"]
    assert _runs(db)[0].attributed_to_user_id is None


def test_attribution_refused_for_a_deactivated_user(client, db, org, team):
    factories.project(db, team, name="p")
    gone, _ = _member(db, org, team, username="gone")
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == gone.id))
    membership.active = False
    db.flush()
    _, headers = _account(db, org, team, name="robot")
    body = _submit(client, "vision/p", {**headers, "X-Wandb-Username": "gone"}).json()
    assert body["attributed_to"] == "robot"
    assert "not an active member" in body["attribution_note"]


def test_attribution_refused_for_an_unknown_user(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _account(db, org, team, name="robot")
    body = _submit(client, "vision/p", {**headers, "X-Wandb-Username": "nobody"}).json()
    assert body["attributed_to"] == "robot"
    assert "no user 'nobody'" in body["attribution_note"]


def test_org_scoped_account_attributes_to_any_active_org_member(client, db, org, team):
    factories.project(db, team, name="p")
    _member(db, org, None, username="outsider")
    _, headers = _account(db, org, team, scope="org", name="org-robot")
    body = _submit(client, "vision/p", {**headers, "X-Wandb-Username": "outsider"}).json()
    assert (body["attributed_to"], body["attribution_note"]) == ("outsider", None)


def test_empty_attribution_header_means_unset(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _account(db, org, team, name="robot")
    body = _submit(client, "vision/p", {**headers, "X-Wandb-Username": ""}).json()
    assert (body["attributed_to"], body["attribution_note"]) == ("robot", None)


def test_users_cannot_attribute_runs_to_others(client, db, org, team):
    factories.project(db, team, name="p")
    _member(db, org, team, username="alice")
    _, headers = _member(db, org, team, username="bob")
    body = _submit(client, "vision/p", {**headers, "X-Wandb-Username": "alice"}).json()
    assert body["attributed_to"] == "bob"


# --- read, stop, delete ---------------------------------------------------------------------------


def test_list_and_get_runs(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    first = _submit(client, "vision/p", headers, name="one").json()
    _submit(client, "vision/p", headers, name="two")
    listed = client.get(f"{API}/projects/vision/p/runs", headers=headers).json()["items"]
    assert [run["name"] for run in listed] == ["one", "two"]
    fetched = client.get(f"{API}/runs/{first['id']}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json() == first


def test_outsider_cannot_read_runs_of_team_project(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    run_id = _submit(client, "vision/p", headers).json()["id"]
    _, outsider = _member(db, org)
    response = client.get(f"{API}/runs/{run_id}", headers=outsider)
    assert response.status_code == 403
    assert _rule(response) == "base.none"
    assert client.get(f"{API}/runs/{run_id}").status_code == 403


def test_unknown_run_is_404(client, db, org):
    for method, suffix in (("get", ""), ("delete", ""), ("post", "/stop")):
        response = client.request(
            method, f"{API}/runs/no-such-run{suffix}", headers=org.admin_headers
        )
        assert response.status_code == 404


def test_stop_run(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    _, viewer = _member(db, org, team, role="viewer")
    run_id = _submit(client, "vision/p", headers).json()["id"]
    refused = client.post(f"{API}/runs/{run_id}/stop", headers=viewer)
    assert refused.status_code == 403
    assert _rule(refused) == "base.team_role"
    stopped = client.post(f"{API}/runs/{run_id}/stop", headers=headers)
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stopped"
    run = _runs(db)[0]
    assert run.stopped_at is not None
    assert client.post(f"{API}/runs/{run_id}/stop", headers=headers).status_code == 409


def test_delete_run_needs_run_delete(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team)
    _, admin = _member(db, org, team, role="admin")
    run_id = _submit(client, "vision/p", headers).json()["id"]
    refused = client.delete(f"{API}/runs/{run_id}", headers=headers)
    assert refused.status_code == 403
    assert _rule(refused) == "base.team_role"
    assert len(_runs(db)) == 1
    assert client.delete(f"{API}/runs/{run_id}", headers=admin).status_code == 204
    assert _runs(db) == []
    db.expire_all()
    assert db.scalar(select(func.count()).where(AuditEvent.action == "run.delete")) == 1


# --- moving ---------------------------------------------------------------------------------------


@pytest.fixture
def move_world(client, db, org, team):
    """A team admin invited to restricted ``vision/r``, with a run in team project ``vision/t``."""
    factories.project(db, team, name="t")
    restricted = factories.project(db, team, name="r", visibility="restricted")
    admin, headers = _member(db, org, team, role="admin")
    factories.project_member(db, restricted, admin)
    run_id = _submit(client, "vision/t", headers).json()["id"]
    return run_id, headers


def test_run_moves_into_a_restricted_project(client, db, move_world):
    run_id, headers = move_world
    response = client.post(
        f"{API}/runs/{run_id}/move", json={"project": "vision/r"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["project"] == "vision/r"
    db.expire_all()
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "run.move"))
    assert (event.before, event.after) == ({"project": "vision/t"}, {"project": "vision/r"})


def test_run_never_moves_out_of_a_restricted_project(client, db, move_world):
    run_id, headers = move_world
    client.post(f"{API}/runs/{run_id}/move", json={"project": "vision/r"}, headers=headers)
    response = client.post(
        f"{API}/runs/{run_id}/move", json={"project": "vision/t"}, headers=headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run.move_out_of_restricted"
    assert client.get(f"{API}/runs/{run_id}", headers=headers).json()["project"] == "vision/r"


def test_move_needs_run_create_on_the_destination(client, db, org, move_world, other_team):
    run_id, headers = move_world
    factories.project(db, other_team, name="elsewhere")
    response = client.post(
        f"{API}/runs/{run_id}/move", json={"project": "audio/elsewhere"}, headers=headers
    )
    assert response.status_code == 403
    assert _rule(response) == "base.none"
    assert client.get(f"{API}/runs/{run_id}", headers=headers).json()["project"] == "vision/t"


def test_member_cannot_move_runs(client, db, org, team, move_world):
    run_id, _ = move_world
    _, headers = _member(db, org, team)
    response = client.post(
        f"{API}/runs/{run_id}/move", json={"project": "vision/r"}, headers=headers
    )
    assert response.status_code == 403
    assert _rule(response) == "base.team_role"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"project": "vision/missing"}, 404),
        ({"project": "vision/t"}, 422),  # already there
        ({"project": "t"}, 422),
        ({"project": "vision/r", "force": True}, 422),
        ({}, 422),
    ],
)
def test_bad_moves_change_nothing(client, db, move_world, body, status):
    run_id, headers = move_world
    response = client.post(f"{API}/runs/{run_id}/move", json=body, headers=headers)
    assert response.status_code == status
    assert client.get(f"{API}/runs/{run_id}", headers=headers).json()["project"] == "vision/t"


def test_move_to_another_organizations_project_is_404(client, db, org, move_world):
    run_id, headers = move_world
    elsewhere = factories.bootstrap(db)
    factories.project(db, factories.team(db, elsewhere.org, name="foreign"), name="p")
    response = client.post(
        f"{API}/runs/{run_id}/move", json={"project": "foreign/p"}, headers=headers
    )
    assert response.status_code == 404


# --- caps: org viewer role and Models seat (ACCESS.md, "Roles") ----------------------------------


def _capped(db, org, team, *, role="member", models_seat="full", team_role="admin"):
    user = factories.user(db, org.org, role=role, models_seat=models_seat)
    factories.member(db, team, user, role=team_role)
    return factories.headers(factories.api_key(db, user))


def test_org_viewer_reads_only_whatever_its_team_role(client, db, org, team):
    factories.project(db, team, name="p")
    factories.project(db, team, name="o", visibility="open")
    _, writer = _member(db, org, team)
    run_id = _submit(client, "vision/p", writer).json()["id"]
    headers = _capped(db, org, team, role="viewer", team_role="admin")
    assert client.get(f"{API}/projects/vision/p/runs", headers=headers).status_code == 200
    assert client.get(f"{API}/runs/{run_id}", headers=headers).status_code == 200
    for response in (
        _submit(client, "vision/p", headers),
        _submit(client, "vision/o", headers),  # not even where any authenticated principal may
        client.post(f"{API}/runs/{run_id}/stop", headers=headers),
        client.delete(f"{API}/runs/{run_id}", headers=headers),
    ):
        assert response.status_code == 403
        assert _rule(response) == "cap.org_viewer"
    assert [run.state for run in _runs(db)] == ["running"]


def test_models_viewer_seat_reads_runs_but_writes_none(client, db, org, team):
    factories.project(db, team, name="p")
    _, writer = _member(db, org, team)
    run_id = _submit(client, "vision/p", writer).json()["id"]
    headers = _capped(db, org, team, models_seat="viewer")
    assert client.get(f"{API}/projects/vision/p/runs", headers=headers).status_code == 200
    for response in (
        _submit(client, "vision/p", headers),
        client.post(f"{API}/runs/{run_id}/stop", headers=headers),
        client.delete(f"{API}/runs/{run_id}", headers=headers),
    ):
        assert response.status_code == 403
        assert _rule(response) == "cap.models_seat"
    assert len(_runs(db)) == 1


def test_models_seat_none_removes_even_reads(client, db, org, team):
    factories.project(db, team, name="p")
    _, writer = _member(db, org, team)
    run_id = _submit(client, "vision/p", writer).json()["id"]
    headers = _capped(db, org, team, models_seat="none")
    for response in (
        client.get(f"{API}/projects/vision/p", headers=headers),
        client.get(f"{API}/projects/vision/p/runs", headers=headers),
        client.get(f"{API}/runs/{run_id}", headers=headers),
        _submit(client, "vision/p", headers),
    ):
        assert response.status_code == 403
        assert _rule(response) == "cap.models_seat"
    assert len(_runs(db)) == 1


# --- runs outlive their creator's membership (ACCESS.md, "Organization membership") --------------


def test_removing_the_creator_from_the_team_keeps_its_runs(client, db, org, team):
    factories.project(db, team, name="p")
    _, headers = _member(db, org, team, username="leaver")
    run_id = _submit(client, "vision/p", headers, name="kept").json()["id"]
    removed = client.delete(f"{API}/teams/vision/members/leaver", headers=org.admin_headers)
    assert removed.status_code == 204
    refused = client.get(f"{API}/runs/{run_id}", headers=headers)
    assert refused.status_code == 403
    assert _rule(refused) == "base.none"
    _, admin = _member(db, org, team, role="admin")
    kept = client.get(f"{API}/runs/{run_id}", headers=admin)
    assert kept.status_code == 200
    assert kept.json()["name"] == "kept"
    assert kept.json()["created_by"] == {"kind": "user", "name": "leaver"}
    assert kept.json()["attributed_to"] == "leaver"
