"""POST /api/v1/authz/check: the policy's decision and trace, for the caller or (org admins) for
any principal of the org."""

from __future__ import annotations

import pytest

from rolecall.authz.permissions import Permission
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
