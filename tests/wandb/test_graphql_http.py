"""``POST /graphql`` through the app: credentials, refusals, bad input (never a 500), audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.teams.models import Team
from rolecall.users.models import User
from tests import factories

GQL = "/graphql"
VIEWER = (
    "query Viewer { viewer { id entity username email flags teams { edges { node { name } } } } }"
)
CREATE_USER = """
mutation CreateUserFromAdmin($email: String!, $admin: Boolean) {
  result: createUser(input: {email: $email, admin: $admin}) {
    user { id name username email admin }
  }
}
"""
TEAM = """
query GetTeamEntity($name: String!) {
  entity(name: $name) { id name isTeam members { id name admin accountType apiKey } }
}
"""
CREATE_SA = """
mutation CreateServiceAccount($entity: String!, $description: String!) {
  result: createServiceAccount(input: {description: $description, entityName: $entity}) {
    user { id }
  }
}
"""


def post(client, query, variables=None, headers=None, operation_name=""):
    body = {"query": query, "operationName": operation_name}
    if variables is not None:
        body["variables"] = variables
    return client.post(GQL, json=body, headers=headers or {})


def error_codes(response):
    return [error["extensions"]["code"] for error in response.json()["errors"]]


def test_viewer_with_the_sdks_headers(client, org):
    headers = {**org.admin_headers, "X-Wandb-Username": "", "X-Wandb-User-Email": ""}
    response = post(client, VIEWER, headers=headers, operation_name="Viewer")
    assert response.status_code == 200, response.text
    viewer = response.json()["data"]["viewer"]
    assert viewer["id"] == org.admin.id and isinstance(viewer["id"], str)
    assert (viewer["username"], viewer["entity"]) == (org.admin.username, org.admin.username)
    assert "errors" not in response.json()


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "credentials_required"),
        (factories.headers("rc_" + "0" * 64), "invalid_api_key"),
        ({"Authorization": "Basic !!!"}, "malformed_credentials"),
        ({"Authorization": "Bearer rct_unknown"}, "invalid_access_token"),
    ],
)
def test_wrong_or_missing_credentials_are_401(client, org, headers, code):
    response = post(client, VIEWER, headers=headers, operation_name="Viewer")
    assert response.status_code == 401
    assert error_codes(response) == [code]
    assert response.json()["errors"][0]["message"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_a_bad_document_without_credentials_is_still_401(client, org):
    assert post(client, "{ nonsense").status_code == 401


def test_non_admin_cannot_create_users_and_nothing_changes(client, db, org):
    member = factories.user(db, org.org, role="member")
    key = factories.api_key(db, member)
    response = post(
        client, CREATE_USER, {"email": "eve@example.com", "admin": True}, factories.headers(key)
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"result": None}
    [error] = body["errors"]
    assert error["path"] == ["result"]
    assert error["extensions"]["code"] == "permission_denied"
    assert error["extensions"]["rule"]
    assert "org:manage_users" in error["message"]
    db.expire_all()
    assert db.scalar(select(User).where(User.email_key == "eve@example.com")) is None


def test_a_created_user_is_audited_with_the_graphql_surface(client, db, org):
    response = post(
        client, CREATE_USER, {"email": "ann@example.com", "admin": None}, org.admin_headers
    )
    user = response.json()["data"]["result"]["user"]
    assert (user["email"], user["admin"]) == ("ann@example.com", False)
    db.expire_all()
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "user.create"))
    assert (event.surface, event.object_id, event.actor_id) == ("graphql", user["id"], org.admin.id)


def test_a_document_with_any_error_is_rolled_back_whole(client, db, org):
    twice = """mutation {
      a: createTeam(input: {teamName: "twice"}) { entity { id } }
      b: createTeam(input: {teamName: "twice"}) { entity { id } }
    }"""
    response = post(client, twice, headers=org.admin_headers)
    assert response.status_code == 200
    assert response.json()["data"]["b"] is None
    assert error_codes(response) == ["conflict"]
    db.expire_all()
    assert db.scalar(select(Team).where(Team.name_key == "twice")) is None


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[]", "bad_request"),
        (b'"query"', "bad_request"),
        (b"{}", "bad_request"),
        (b'{"query": ""}', "bad_request"),
        (b'{"query": "{ viewer { id } }", "variables": [1]}', "bad_request"),
        (b'{"query": "{ viewer { id } }", "operationName": 3}', "bad_request"),
        (b'{"query": "{ viewer { id "}', "graphql_syntax_error"),
        (b'{"query": "{ viewer { password } }"}', "graphql_validation_failed"),
        (b'{"query": "mutation { dropEverything }"}', "graphql_validation_failed"),
        (b'{"query": "query A { viewer { id } }", "operationName": "B"}', "bad_request"),
        (b'{"query": "query A { viewer { id } } query B { viewer { id } }"}', "bad_request"),
        (b'{"query": "\\u0000"}', "graphql_syntax_error"),
        # Refused before the query runs: no database stores a lone surrogate (it was a 500).
        (b'{"query": "{ viewer { id } }", "variables": {"n": "\\ud800"}}', "malformed_json"),
        (b"[" * 50_000, "malformed_json"),
    ],
)
def test_malformed_requests_are_400(client, org, content, code):
    headers = {**org.admin_headers, "Content-Type": "application/json"}
    response = client.post(GQL, content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert error_codes(response)[0] == code


def test_variables_that_do_not_fit_are_400(client, org):
    response = post(client, CREATE_USER, {"email": None}, org.admin_headers)
    assert response.status_code == 400
    assert "email" in response.json()["errors"][0]["message"]
    assert error_codes(response) == ["graphql_error"]


def test_bad_arguments_are_graphql_errors_not_500(client, org):
    for name in ("x\x00y", "x" * 5000, "  "):
        response = post(client, TEAM, {"name": name}, org.admin_headers)
        assert response.status_code == 200, response.text
        assert error_codes(response) == ["invalid_input"]
    response = post(client, CREATE_USER, {"email": "not an email"}, org.admin_headers)
    assert error_codes(response) == ["invalid_input"]


def test_an_oversized_body_is_413(client, org):
    response = client.post(GQL, content=b" " * (300 * 1024), headers=org.admin_headers)
    assert response.status_code == 413


def test_graphql_is_post_only_and_the_telemetry_probe_is_404(client, org):
    refused = client.get(GQL, headers=org.admin_headers)
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    # In GraphQL's own error format, as every other answer of this path (was REST's).
    assert refused.json() == {
        "errors": [
            {
                "message": "GET is not allowed on /graphql; use POST",
                "extensions": {"code": "method_not_allowed"},
            }
        ]
    }
    probe = client.post("/sdk/otel/v1/metrics", content=b"")
    assert probe.status_code == 404
    assert client.post("/sdk/otel/v1/logs", content=b"").status_code == 404


def test_unknown_entity_and_organization_are_null(client, org):
    assert post(client, TEAM, {"name": "nope"}, org.admin_headers).json() == {
        "data": {"entity": None}
    }
    query = 'query { organization(name: "other") { id } }'
    assert post(client, query, headers=org.admin_headers).json() == {"data": {"organization": None}}


def test_service_account_keys_are_shown_only_to_their_managers(client, db, org):
    team = factories.team(db, org.org, name="ml")
    member = factories.user(db, org.org)
    factories.member(db, team, member, role="member")
    response = post(client, CREATE_SA, {"entity": "ml", "description": "CI bot"}, org.admin_headers)
    account_id = response.json()["data"]["result"]["user"]["id"]
    as_admin = post(client, TEAM, {"name": "ml"}, org.admin_headers).json()["data"]["entity"]
    last = as_admin["members"][-1]
    assert (last["id"], last["name"], last["accountType"]) == (account_id, "ci-bot", "SERVICE")
    assert last["apiKey"].startswith("rc_")
    as_member = post(client, TEAM, {"name": "ml"}, factories.headers(factories.api_key(db, member)))
    assert [m["apiKey"] for m in as_member.json()["data"]["entity"]["members"]] == [None, None]
    db.expire_all()
    reveals = db.scalars(
        select(AuditEvent).where(AuditEvent.action == "service_account.api_key.reveal")
    ).all()
    assert [(e.actor_id, e.object_id, e.surface) for e in reveals] == [
        (org.admin.id, account_id, "graphql")
    ]


def test_without_a_secret_key_service_account_keys_stay_hidden(make_client, db, org):
    client = make_client(secret_key=None)
    factories.team(db, org.org, name="ml")
    response = post(client, CREATE_SA, {"entity": "ml", "description": "CI bot"}, org.admin_headers)
    assert "errors" not in response.json()
    members = post(client, TEAM, {"name": "ml"}, org.admin_headers).json()["data"]["entity"]
    assert [(m["name"], m["apiKey"]) for m in members["members"]] == [("ci-bot", None)]


def test_a_service_accounts_request_names_its_human(client, db, org):
    team = factories.team(db, org.org, name="ml")
    alice = factories.user(db, org.org, username="alice")
    factories.member(db, team, alice)
    account = factories.service_account(db, org.org, team, name="bot")
    key = factories.api_key(db, account)
    named = {**factories.headers(key), "X-Wandb-Username": "alice", "X-Wandb-User-Email": ""}
    response = post(client, VIEWER, headers=named, operation_name="Viewer")
    viewer = response.json()["data"]["viewer"]
    assert (viewer["id"], viewer["username"], viewer["entity"]) == (account.id, "bot", "ml")
    assert viewer["teams"] == {"edges": [{"node": {"name": "ml"}}]}
    assert response.headers["X-Rolecall-Attribution"].startswith("allow")
    unset = {**factories.headers(key), "X-Wandb-Username": "", "X-Wandb-User-Email": ""}
    response = post(client, VIEWER, headers=unset, operation_name="Viewer")
    assert "X-Rolecall-Attribution" not in response.headers


def test_a_member_removal_refused_by_the_policy_keeps_the_member(client, db, org):
    team = factories.team(db, org.org, name="ml")
    bob = factories.user(db, org.org, username="bob")
    mallory = factories.user(db, org.org, username="mallory")
    factories.member(db, team, bob)
    factories.member(db, team, mallory)
    remove = """mutation DeleteInvite($id: String, $entity: String) {
      result: deleteInvite(input: {id: $id, entityName: $entity}) { success }
    }"""
    headers = factories.headers(factories.api_key(db, mallory))
    response = post(client, remove, {"id": bob.id, "entity": "ml"}, headers)
    assert error_codes(response) == ["permission_denied"]
    assert "team:manage_members" in response.json()["errors"][0]["message"]
    members = post(client, TEAM, {"name": "ml"}, org.admin_headers).json()["data"]["entity"]
    assert [m["name"] for m in members["members"]] == ["bob", "mallory"]
    response = post(client, remove, {"id": bob.id, "entity": None}, org.admin_headers)
    assert error_codes(response) == ["invalid_input"]


SEARCH = """query SearchUsers($query: String) {
  users(query: $query) { edges { node { id username apiKeys { edges { node { id name } } } } } }
}"""
DELETE_KEY = """mutation DeleteApiKey($id: String!) {
  result: deleteApiKey(input: {id: $id}) { success }
}"""


def test_other_users_keys_are_listed_and_revoked_by_org_admins_only(client, db, org):
    bob = factories.user(db, org.org, username="bob")
    mallory = factories.user(db, org.org, username="mallory")
    bob_key = factories.api_key(db, bob)
    mallory_headers = factories.headers(factories.api_key(db, mallory))

    seen = post(client, SEARCH, {"query": "bob"}, mallory_headers).json()["data"]
    assert seen["users"]["edges"][0]["node"]["apiKeys"] is None
    listed = post(client, SEARCH, {"query": "bob"}, org.admin_headers).json()["data"]
    [key] = [edge["node"] for edge in listed["users"]["edges"][0]["node"]["apiKeys"]["edges"]]
    assert bob_key.startswith(key["name"]) and len(key["name"]) < 16  # a hint, not the secret

    refused = post(client, DELETE_KEY, {"id": key["id"]}, mallory_headers)
    assert error_codes(refused) == ["permission_denied"]
    assert post(client, VIEWER, headers=factories.headers(bob_key)).status_code == 200
    done = post(client, DELETE_KEY, {"id": key["id"]}, org.admin_headers)
    assert done.json() == {"data": {"result": {"success": True}}}
    assert post(client, VIEWER, headers=factories.headers(bob_key)).status_code == 401
    again = post(client, DELETE_KEY, {"id": key["id"]}, org.admin_headers)
    assert error_codes(again) == ["not_found"]


def test_a_scoped_key_sees_itself_but_not_its_key_list(client, db, org):
    from rolecall.authz.permissions import Permission

    user = factories.user(db, org.org, username="runner")
    key = factories.api_key(db, user, scopes=(Permission.RUN_CREATE,))
    query = "query GetViewer { viewer { id username apiKeys { edges { node { id } } } } }"
    response = post(client, query, headers=factories.headers(key))
    assert response.json() == {
        "data": {"viewer": {"id": user.id, "username": "runner", "apiKeys": None}}
    }
    own = post(client, query, headers=factories.headers(factories.api_key(db, user)))
    assert len(own.json()["data"]["viewer"]["apiKeys"]["edges"]) == 2


@pytest.mark.parametrize(("first", "edges"), [(0, 0), (1, 1), (2, 2), (None, 3)])
def test_users_first_is_how_many_edges(client, db, org, first, edges):
    for _ in range(2):
        factories.user(db, org.org)
    query = "query U($first: Int) { users(first: $first) { edges { node { id } } } }"

    response = post(client, query, {"first": first}, headers=org.admin_headers)

    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["users"]["edges"]) == edges


def test_users_first_below_zero_is_refused(client, org):
    query = "{ users(first: -1) { edges { node { id } } } }"
    response = post(client, query, headers=org.admin_headers)
    assert error_codes(response) == ["invalid_input"]
