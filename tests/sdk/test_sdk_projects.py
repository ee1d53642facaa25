"""The admin SDK over HTTP against a live server: projects, project members, runs, custom
roles, decisions, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall import Api
from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.sdk import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Project,
    ProjectMember,
    Role,
    Run,
    TraceStep,
)
from tests import factories


@pytest.fixture
def team(api, org):
    """A team administered by the org admin (who creates its projects) and bob, with carol."""
    team = api.create_team("lab", admin_user_name=org.admin.username)
    api.create_user("bob@example.com")
    api.create_user("carol@example.com")
    team.invite("bob@example.com", admin=True)
    team.invite("carol@example.com")
    return team


def _key_for(db, email: str) -> str:
    from rolecall.users.queries import find_user

    return factories.api_key(db, find_user(db, email))


# --- projects ---------------------------------------------------------------------------------


def test_create_and_find_a_project(api, team, org):
    project = api.create_project("lab", "detector")
    assert isinstance(project, Project)
    assert (project.entity, project.name, project.path) == ("lab", "detector", "lab/detector")
    assert project.visibility == "team"
    assert project.owner == org.admin.username
    assert api.project("lab/detector") == project


def test_project_path_must_be_entity_slash_name(api):
    for bad in ("no-slash", "/name", "entity/", "a/b/c"):
        with pytest.raises(ValueError):
            api.project(bad)


def test_duplicate_project_is_a_conflict(api, team):
    api.create_project("lab", "twice")
    with pytest.raises(Conflict):
        api.create_project("lab", "TWICE")


def test_private_only_team_refuses_public_projects_with_the_rule(api, team):
    team.update(private_only=True)
    with pytest.raises(Conflict) as refused:
        api.create_project("lab", "leaky", visibility="public")
    assert refused.value.code == policy.RULE_PRIVATE_ONLY
    assert "public" in refused.value.message
    assert api.project("lab/leaky") is None


def test_set_visibility_and_restricted_membership(api, api_for, db, team):
    project = api.create_project("lab", "secret")
    assert project.set_visibility("restricted") is project
    assert api.project("lab/secret").visibility == "restricted"
    carol = api_for(_key_for(db, "carol@example.com"))
    with pytest.raises(PermissionDenied) as refused:
        carol.project("lab/secret")
    assert refused.value.rule == policy.RULE_RESTRICTED_MEMBERSHIP
    assert not carol.check("run:read", "lab/secret").allowed
    added = project.add_member("user:carol")
    assert isinstance(added, ProjectMember)
    assert (added.name, added.invited) == ("carol", True)
    assert carol.check("run:read", "lab/secret").allowed
    assert "carol" in [m.name for m in project.members]
    project.remove_member("carol")
    assert "carol" not in [m.name for m in project.members]
    assert not carol.check("run:read", "lab/secret").allowed


def test_project_role_override_and_tracking(api, team):
    project = api.create_project("lab", "roles")
    carol = api.user("carol@example.com")
    override = project.set_role(carol, "admin")
    assert (override.project_role, override.is_override) == ("admin", True)
    tracking = project.set_role(carol, "member")  # equal to the team role: tracks it again
    assert tracking.is_override is False


def test_team_admin_joins_a_restricted_project(api, api_for, db, team):
    api.create_project("lab", "vault", visibility="restricted")
    bob = api_for(_key_for(db, "bob@example.com"))
    assert not bob.check("run:read", "lab/vault").allowed
    joined = bob.project("lab/vault").join()
    assert (joined.name, joined.invited) == ("bob", True)
    assert bob.check("run:read", "lab/vault").allowed


def test_member_cannot_change_visibility(api, api_for, db, team):
    api.create_project("lab", "locked")
    carol = api_for(_key_for(db, "carol@example.com"))
    with pytest.raises(PermissionDenied) as refused:
        carol.project("lab/locked").set_visibility("open")
    assert refused.value.rule
    assert api.project("lab/locked").visibility == "team"


def test_project_delete(api, team):
    api.create_project("lab", "gone").delete()
    assert api.project("lab/gone") is None


# --- runs -------------------------------------------------------------------------------------


def test_run_lifecycle(api, team, org):
    project = api.create_project("lab", "runs")
    run = project.create_run("first")
    assert isinstance(run, Run)
    assert (run.name, run.project, run.state) == ("first", "lab/runs", "running")
    assert run.attributed_to == org.admin.username
    assert run.stop() is run
    assert run.state == "stopped"
    assert project.create_run().name  # the server names it
    run.delete()
    assert "first" not in [r.name for r in project.runs()]


def test_run_move_and_never_out_of_restricted(api, team):
    source = api.create_project("lab", "source")
    vault = api.create_project("lab", "vault", visibility="restricted")
    run = source.create_run("mover")
    assert run.move("lab/vault").project == "lab/vault"
    assert [r.id for r in vault.runs()] == [run.id]
    with pytest.raises(Conflict) as refused:
        run.move("lab/source")
    assert refused.value.code == policy.RULE_RUN_MOVE
    assert "restricted" in refused.value.message
    assert [r.id for r in vault.runs()] == [run.id]
    with pytest.raises(ValueError):
        run.move("not-a-path")


def test_service_account_run_attributed_to_named_member(api, api_for, team):
    account = team.create_service_account("trainer")
    project = api.create_project("lab", "attributed")
    as_bob = api_for(account.api_key, username="bob")
    assert as_bob.viewer().kind == "service_account"
    assert project.api is api
    run = as_bob.project("lab/attributed").create_run("by-bob")
    assert run.attributed_to == "bob"
    outsider = api_for(account.api_key, user_email="nobody@example.com")
    unattributed = outsider.project("lab/attributed").create_run("by-nobody")
    assert unattributed.attributed_to != "nobody@example.com"
    assert unattributed.attribution_note


def test_attribution_comes_from_the_wandb_environment(api, base_url, monkeypatch, team):
    account = team.create_service_account("env trainer")
    api.create_project("lab", "from-env")
    monkeypatch.setenv("ROLECALL_BASE_URL", base_url)
    monkeypatch.setenv("WANDB_API_KEY", account.api_key)
    monkeypatch.setenv("WANDB_USERNAME", "carol")
    monkeypatch.setenv("WANDB_USER_EMAIL", "")  # empty means unset: not sent
    with Api() as robot:
        assert (robot.username, robot.user_email) == ("carol", None)
        run = robot.project("lab/from-env").create_run("by-carol")
    assert (run.attributed_to, run.created_by["kind"]) == ("carol", "service_account")
    monkeypatch.delenv("WANDB_USERNAME")
    monkeypatch.setenv("WANDB_USER_EMAIL", "bob@example.com")
    with Api() as robot:
        assert robot.project("lab/from-env").create_run("by-bob").attributed_to == "bob"


def test_add_member_with_a_project_role(api, team):
    project = api.create_project("lab", "guests", visibility="restricted")
    added = project.add_member("carol@example.com", role="viewer")
    assert (added.name, added.invited, added.project_role) == ("carol", True, "viewer")
    listed = {m.name: m for m in project.members}
    assert listed["carol"].project_role == "viewer"
    assert not api.check("run:create", "lab/guests", principal="user:carol").allowed


# --- custom roles -----------------------------------------------------------------------------


def test_custom_role_lifecycle(api, team):
    role = api.create_role("Sample", "member", ["run:delete"], description="can delete runs")
    assert isinstance(role, Role)
    assert (role.name, role.inherited_from, role.custom_permissions) == (
        "Sample",
        "member",
        ["run:delete"],
    )
    assert {"run:delete", "run:create", "project:read"} <= set(role.permissions)
    assert api.role("Sample") == role
    assert api.role("sample") is None  # custom role names are case sensitive
    role.update(description="renamed later", inherited_from="viewer")
    assert (role.description, role.inherited_from) == ("renamed later", "viewer")
    assert role.custom_permissions == ["run:delete"]  # PUT keeps custom permissions
    assert "run:create" not in role.permissions
    role.add_permissions("project:delete", "run:stop")
    assert set(role.custom_permissions) == {"run:delete", "project:delete", "run:stop"}
    role.remove_permissions("run:delete")
    assert set(role.custom_permissions) == {"project:delete", "run:stop"}
    role.update(name="Renamed")
    assert api.role("Renamed") == role
    team.set_role("carol", "Renamed")
    role.delete()
    assert api.role("Renamed") is None
    carol = next(m for m in team.members if m.name == "carol")
    assert carol.role == "viewer"  # back to the inherited role


def test_unknown_permission_in_a_role_is_invalid(api):
    with pytest.raises(InvalidInput):
        api.create_role("Broken", "member", ["run:fly"])
    assert api.role("Broken") is None


# --- decisions --------------------------------------------------------------------------------


def test_check_self_and_others_with_trace(api, api_for, db, team):
    api.create_project("lab", "checked", visibility="restricted")
    mine = api.check("project:update", "lab/checked")
    assert mine.allowed and bool(mine)
    assert mine.permission == "project:update"
    assert all(isinstance(step, TraceStep) for step in mine.trace)
    theirs = api.check("run:read", api.project("lab/checked"), principal="user:carol")
    assert not theirs.allowed
    assert theirs.rule == policy.RULE_RESTRICTED_MEMBERSHIP
    assert theirs.rule in [step.rule for step in theirs.trace]
    carol = api_for(_key_for(db, "carol@example.com"))
    with pytest.raises(PermissionDenied):
        carol.check("run:read", "lab/checked", principal="user:bob")


def test_check_bad_inputs(api, team):
    api.create_project("lab", "probe")
    with pytest.raises(InvalidInput):
        api.check("run:fly", "lab/probe")
    with pytest.raises(NotFound):
        api.check("run:read", "lab/missing")
    with pytest.raises(NotFound):
        api.check("run:read", "lab/probe", principal="user:nobody")


# --- audit ------------------------------------------------------------------------------------


def test_audit_log_follows_every_page(api, db):
    emails = [f"audited{n}@example.com" for n in range(5)]
    for email in emails:
        api.create_user(email)
    events = api.audit_log(action="user.create", limit=2)
    db.expire_all()
    stored = db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "user.create"))
    assert len(events) == stored >= 5
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert len({e.id for e in events}) == len(events)
    assert {e.object["id"] for e in events} >= {api.user(m).id for m in emails}
    assert api.audit_log(action="no.such.action") == []
