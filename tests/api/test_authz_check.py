"""POST /api/v1/authz/check: the policy's decision and trace, for the caller or (org admins) for
any principal of the org."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from rolecall.authz.permissions import Permission
from rolecall.orgs.models import OrgMembership
from rolecall.service_accounts.models import ServiceAccount
from rolecall.users.models import User
from tests import factories

CHECK = "/api/v1/authz/check"


@pytest.fixture
def world(db, org):
    """Team ``vision`` with team project ``p`` and restricted ``r``; member ``mia``; outsider
    ``otto``; team-scoped service account ``robot``."""
    team = factories.team(db, org.org, name="vision")
    factories.project(db, team, name="p")
    factories.project(db, team, name="r", visibility="restricted")
    factories.project(db, team, name="o", visibility="open")
    mia = factories.user(db, org.org, username="mia")
    factories.member(db, team, mia)
    otto = factories.user(db, org.org, username="otto")
    factories.service_account(db, org.org, team, name="robot")
    return {
        "team": team,
        "mia": factories.headers(factories.api_key(db, mia)),
        "otto": factories.headers(factories.api_key(db, otto)),
        "mia_run_create_only": factories.headers(
            factories.api_key(db, mia, scopes=(Permission.RUN_CREATE,))
        ),
    }


def _check(client, headers, permission, project, principal=None, **extra):
    body = {"principal": principal, "permission": permission, "project": project, **extra}
    return client.post(CHECK, json=body, headers=headers)


def test_caller_asks_about_itself_and_gets_the_decision_and_trace(client, world):
    response = _check(client, world["mia"], "run:create", "vision/p")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"allowed", "permission", "rule", "trace"}
    assert (body["allowed"], body["permission"], body["rule"]) == (
        True,
        "run:create",
        "base.team_role",
    )
    assert body["trace"][0] == {
        "rule": "base.team_role",
        "outcome": "grant",
        "detail": "team role member in vision",
    }
    assert body["trace"][-1]["rule"] == "result"


def test_a_denial_is_an_answer_not_an_error(client, world):
    response = _check(client, world["otto"], "run:read", "vision/p")
    assert response.status_code == 200
    assert (response.json()["allowed"], response.json()["rule"]) == (False, "base.none")


def test_caller_may_name_itself(client, world):
    response = _check(client, world["mia"], "run:delete", "vision/p", principal="user:mia")
    assert response.status_code == 200
    assert response.json()["allowed"] is False


def test_self_check_uses_the_callers_own_key_scopes(client, world):
    response = _check(client, world["mia_run_create_only"], "run:read", "vision/p")
    assert response.status_code == 200
    assert (response.json()["allowed"], response.json()["rule"]) == (False, "credential.key_scopes")


def test_others_are_judged_as_with_an_unscoped_key(client, org, world):
    response = _check(client, org.admin_headers, "run:read", "vision/p", principal="user:mia")
    assert (response.json()["allowed"], response.json()["rule"]) == (True, "base.team_role")


def test_org_admin_asks_about_any_principal(client, org, world):
    for principal, permission, project, allowed in (
        ("user:mia", "run:read", "vision/p", True),
        ("user:mia@example.com", "run:read", "vision/r", False),
        ("mia", "run:create", "vision/p", True),
        ("user:otto", "run:read", "vision/p", False),
        ("service_account:robot", "run:create", "vision/p", True),
        ("service_account:ROBOT", "run:create", "vision/r", False),
        ("anonymous", "run:read", "vision/o", True),
        ("anonymous", "run:create", "vision/o", False),
    ):
        response = _check(client, org.admin_headers, permission, project, principal=principal)
        assert response.status_code == 200, principal
        assert response.json()["allowed"] is allowed, (principal, permission, project)


def test_restricted_denial_names_its_rule(client, org, world):
    response = _check(client, org.admin_headers, "run:read", "vision/r", principal="user:mia")
    assert response.json()["rule"] == "base.restricted_membership"


def test_member_may_not_ask_about_others(client, world):
    response = _check(client, world["mia"], "run:read", "vision/p", principal="user:otto")
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "org.member"


def test_anonymous_may_ask_about_itself_only(client, world):
    response = _check(client, {}, "run:read", "vision/o")
    assert response.status_code == 200
    assert response.json()["allowed"] is True
    assert (
        _check(client, {}, "run:read", "vision/p", principal="anonymous").json()["allowed"] is False
    )
    refused = _check(client, {}, "run:read", "vision/p", principal="user:mia")
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "principal.other_org"


@pytest.mark.parametrize(
    ("permission", "project", "principal", "status"),
    [
        ("run:fly", "vision/p", None, 422),
        ("", "vision/p", None, 422),
        ("run:read", "vision", None, 422),
        ("run:read", "vision/p/x", None, 422),
        ("run:read", "vision/missing", None, 404),
        ("run:read", "nowhere/p", None, 404),
        ("run:read", "vision/p", "user:nobody", 404),
        ("run:read", "vision/p", "service_account:ghost", 404),
        ("run:read", "vision/p", "team:vision", 422),
        ("run:read", "vision/p", "user:", 422),
    ],
)
def test_bad_questions_are_4xx(client, org, world, permission, project, principal, status):
    response = _check(client, org.admin_headers, permission, project, principal=principal)
    assert response.status_code == status
    assert response.json()["error"]["code"] in ("invalid_input", "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"permission": "run:read"},
        {"project": "vision/p"},
        {"permission": 1, "project": "vision/p"},
        {"permission": "run:read", "project": "vision/p", "verbose": True},
    ],
)
def test_malformed_bodies_are_422(client, org, world, body):
    assert client.post(CHECK, json=body, headers=org.admin_headers).status_code == 422


def test_user_of_another_organization_is_unknown(client, db, org, world):
    elsewhere = factories.bootstrap(db)
    response = _check(
        client, org.admin_headers, "run:read", "vision/p", principal=f"user:{elsewhere.admin.email}"
    )
    assert response.status_code == 404


def test_deactivated_user_and_deleted_service_account_hold_nothing(client, db, org, world):
    mia_id = db.scalar(select(User.id).where(User.username == "mia"))
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == mia_id))
    membership.active = False
    robot = db.scalar(select(ServiceAccount).where(ServiceAccount.name == "robot"))
    robot.deleted_at = datetime.now(UTC)
    db.flush()
    for principal, rule in (
        ("user:mia", "principal.deactivated"),
        ("service_account:robot", "principal.deleted"),
    ):
        for permission, project in (("run:read", "vision/p"), ("project:read", "vision/o")):
            response = _check(client, org.admin_headers, permission, project, principal=principal)
            assert response.status_code == 200
            assert (response.json()["allowed"], response.json()["rule"]) == (False, rule)


def test_org_viewer_and_seat_caps_are_explained(client, db, org, world):
    team = world["team"]
    for username, kw, rule in (
        ("vera", {"role": "viewer"}, "cap.org_viewer"),
        ("sam", {"models_seat": "viewer"}, "cap.models_seat"),
    ):
        user = factories.user(db, org.org, username=username, **kw)
        factories.member(db, team, user, role="admin")
        asked = _check(client, org.admin_headers, "run:create", "vision/p", principal=username)
        assert (asked.json()["allowed"], asked.json()["rule"]) == (False, rule)
        reads = _check(client, org.admin_headers, "run:read", "vision/p", principal=username)
        assert reads.json()["allowed"] is True


def test_a_service_account_asks_about_itself(client, db, org, world):
    robot = db.scalar(select(ServiceAccount).where(ServiceAccount.name == "robot"))
    headers = factories.headers(factories.api_key(db, robot))
    for principal in (None, "service_account:robot"):
        response = _check(client, headers, "run:create", "vision/p", principal=principal)
        assert response.status_code == 200
        assert response.json()["allowed"] is True
    refused = _check(client, headers, "run:read", "vision/p", principal="user:mia")
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "org.member"


def test_a_team_admin_may_not_ask_about_its_team_members(client, db, org, world):
    admin = factories.user(db, org.org, username="tad")
    factories.member(db, world["team"], admin, role="admin")
    headers = factories.headers(factories.api_key(db, admin))
    refused = _check(client, headers, "run:read", "vision/p", principal="user:mia")
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "org.member"


@pytest.mark.parametrize(
    ("who", "method", "path", "permission", "project"),
    [
        ("mia", "GET", "/api/v1/projects/vision/p/runs", "run:read", "vision/p"),
        ("mia", "POST", "/api/v1/projects/vision/p/runs", "run:create", "vision/p"),
        ("mia", "GET", "/api/v1/projects/vision/r/runs", "run:read", "vision/r"),
        ("mia", "DELETE", "/api/v1/projects/vision/p", "project:delete", "vision/p"),
        ("otto", "GET", "/api/v1/projects/vision/p", "project:read", "vision/p"),
        ("otto", "POST", "/api/v1/projects/vision/o/runs", "run:create", "vision/o"),
        ("mia_run_create_only", "GET", "/api/v1/projects/vision/p", "project:read", "vision/p"),
    ],
)
def test_the_check_agrees_with_the_guard(client, world, who, method, path, permission, project):
    """The same engine answers the check and guards the request itself (ACCESS.md)."""
    answer = _check(client, world[who], permission, project).json()
    kwargs = {"json": {}} if method == "POST" else {}
    response = client.request(method, path, headers=world[who], **kwargs)
    assert response.status_code < 300 if answer["allowed"] else response.status_code == 403
    if not answer["allowed"]:
        assert response.json()["error"]["rule"] == answer["rule"]


@pytest.mark.parametrize("principal", ["user:otto", "user:nobody", "service_account:ghost"])
def test_asking_about_others_does_not_reveal_who_exists(client, world, principal):
    """A caller that may not ask about others gets the same refusal, principal known or not."""
    for headers, rule in ((world["mia"], "org.member"), ({}, "principal.other_org")):
        response = _check(client, headers, "run:read", "vision/p", principal=principal)
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == rule
