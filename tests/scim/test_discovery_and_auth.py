"""SCIM discovery documents, authentication and the org-admin gate, errors in SCIM form."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.users.models import User
from tests import factories
from tests.scim.conftest import (
    GROUP_URN,
    ROLE_URN,
    USER_URN,
    assert_scim_error,
    new_user,
    patch,
)


@pytest.mark.parametrize("prefix", ["/scim", "/scim/v2"])
def test_service_provider_config_says_what_is_supported(client, prefix):
    response = client.get(f"{prefix}/ServiceProviderConfig")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["patch"] == {"supported": True}
    assert body["filter"]["supported"] is True and body["filter"]["maxResults"] >= 100
    assert body["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576}
    assert body["sort"] == {"supported": True} and body["etag"] == {"supported": True}
    assert body["changePassword"] == {"supported": False}
    assert body["authenticationSchemes"][0]["type"] == "httpbasic"


def test_resource_types_and_schemas(client):
    types = client.get("/scim/v2/ResourceTypes").json()
    assert types["totalResults"] == 3
    assert {(t["name"], t["endpoint"], t["schema"]) for t in types["Resources"]} == {
        ("User", "/Users", USER_URN),
        ("Group", "/Groups", GROUP_URN),
        ("Role", "/Roles", ROLE_URN),
    }
    assert client.get("/scim/v2/ResourceTypes/User").json()["schema"] == USER_URN

    schemas = client.get("/scim/v2/Schemas").json()
    assert {s["id"] for s in schemas["Resources"]} == {USER_URN, GROUP_URN, ROLE_URN}
    user = client.get(f"/scim/v2/Schemas/{USER_URN}").json()
    names = {a["name"] for a in user["attributes"]}
    assert {"userName", "name", "emails", "active", "organizationRole", "teamRoles"} <= names
    # Only what is stored: no password, phone numbers, addresses...
    assert not names & {"password", "phoneNumbers", "addresses", "locale", "title"}
    user_name = next(a for a in user["attributes"] if a["name"] == "userName")
    assert user_name["caseExact"] is False and user_name["uniqueness"] == "server"


def test_the_user_schema_says_what_a_create_needs_and_what_references_point_to(client):
    """Every user has these (active and organizationRole are defaulted on create, and cannot
    be removed); a user's groups refer to Groups, a group's members to Users (RFC 7643 §7)."""
    user = client.get(f"/scim/v2/Schemas/{USER_URN}").json()
    group = client.get(f"/scim/v2/Schemas/{GROUP_URN}").json()
    by_name = {a["name"]: a for a in user["attributes"]}

    required = {name for name, attr in by_name.items() if attr["required"]}
    assert required == {"userName", "emails", "active", "organizationRole"}

    def ref(attr: dict) -> list:
        return next(s for s in attr["subAttributes"] if s["name"] == "$ref")["referenceTypes"]

    members = next(a for a in group["attributes"] if a["name"] == "members")
    assert (ref(by_name["groups"]), ref(members)) == (["Group"], ["User"])


@pytest.mark.parametrize(
    "path", ["ServiceProviderConfig", "ResourceTypes", "ResourceTypes/User", "Schemas"]
)
def test_the_discovery_endpoints_refuse_a_filter(client, org, path):
    """RFC 7644 §4: they SHOULD answer a filter with 403, so no client takes the whole list
    for what matched."""
    response = client.get(
        f"/scim/v2/{path}", params={"filter": 'name eq "User"'}, headers=org.admin_headers
    )

    body = assert_scim_error(response, 403)
    assert "no filter" in body["detail"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_me_is_not_implemented(client, org, method):
    """RFC 7644 §3.11: a service provider without the /Me alias SHOULD answer 501."""
    response = client.request(method, "/scim/v2/Me", headers=org.admin_headers)

    assert_scim_error(response, 501)


def test_unknown_schema_and_resource_type_are_scim_404(client):
    assert_scim_error(client.get("/scim/v2/Schemas/urn:nope"), 404)
    assert_scim_error(client.get("/scim/v2/ResourceTypes/Nope"), 404)
    assert_scim_error(client.get("/scim/v2/NoSuchEndpoint"), 404)


def test_no_credentials_is_401_in_scim_form(client, org):
    response = client.get("/scim/v2/Users")

    assert_scim_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_api_key_is_401(client, org):
    token = base64.b64encode(b"okta:not-a-key").decode()
    response = client.get("/scim/Users", headers={"Authorization": f"Basic {token}"})

    assert_scim_error(response, 401)


def test_basic_auth_takes_any_username_with_the_api_key(client, org):
    token = base64.b64encode(f"demo:{org.admin_key}".encode()).decode()
    response = client.get("/scim/Users", headers={"Authorization": f"Basic {token}"})

    assert response.status_code == 200


def test_bearer_api_key_works_too(client, org):
    response = client.get("/scim/Users", headers={"Authorization": f"Bearer {org.admin_key}"})

    assert response.status_code == 200


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_non_admins_are_refused_by_the_policy(client, db, org, role):
    user = factories.user(db, org.org, role=role)
    headers = factories.headers(factories.api_key(db, user))

    listing = client.get("/scim/v2/Users", headers=headers)
    created = client.post("/scim/v2/Users", json=new_user(), headers=headers)

    for response in (listing, created):
        body = assert_scim_error(response, 403)
        assert policy.RULE_ORG_MEMBER in body["detail"]  # the deciding rule is named
    db.expire_all()
    assert db.scalar(select(User).where(User.email_key == "ada@example.com")) is None


def test_deactivated_admin_is_refused(client, db, org):
    other_admin = factories.user(db, org.org, role="admin", active=False)
    headers = factories.headers(factories.api_key(db, other_admin))

    response = client.get("/scim/v2/Users", headers=headers)

    assert response.status_code in (401, 403)
    assert_scim_error(response, response.status_code)


def test_org_scoped_service_account_is_refused(client, db, org):
    team = factories.team(db, org.org)
    account = factories.service_account(db, org.org, team, scope="org")
    headers = factories.headers(factories.api_key(db, account))

    assert_scim_error(client.get("/scim/v2/Users", headers=headers), 403)


def test_unsupported_method_is_scim_error(client, org):
    response = client.put("/scim/v2/Users", headers=org.admin_headers, json={})
    assert_scim_error(response, 405)
    # Every method of the path (Starlette's own Allow named only its first route's, GET).
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json()["detail"] == "PUT is not allowed on /scim/v2/Users; use GET, HEAD, POST"
    item = client.post("/scim/Users/some-id", headers=org.admin_headers, json={})
    assert_scim_error(item, 405)
    assert item.headers["allow"] == "GET, HEAD, PUT, PATCH, DELETE"


# --- multi-org mode -----------------------------------------------------------------------------


def test_multi_org_uses_the_header_then_the_chosen_scim_org(make_client, db, org):
    other = factories.bootstrap(db)
    # The first org's admin also administers the second org.
    db.add(OrgMembership(org_id=other.org.id, user_id=org.admin.id, role="admin", active=True))
    db.flush()
    client = make_client(mode="multi")
    client.headers.update(org.admin_headers)

    ambiguous = client.get("/scim/v2/Users")
    assert_scim_error(ambiguous, 400, "invalidValue")

    named = client.get("/scim/v2/Users", headers={"X-Rolecall-Org": other.org.name})
    assert named.status_code == 200
    ids = {r["id"] for r in named.json()["Resources"]}
    assert other.admin.id in ids

    choose = client.put("/api/v1/viewer/scim-org", headers={"X-Rolecall-Org": other.org.name})
    assert choose.status_code == 204, choose.text
    db.expire_all()
    assert db.get(User, org.admin.id).scim_org_id == other.org.id
    chosen = client.post("/scim/v2/Users", json=new_user())
    assert chosen.status_code == 201, chosen.text
    db.expire_all()
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.action == "user.create")).all()
    assert event.org_id == other.org.id and event.surface == "scim"
    assert db.get(Organization, other.org.id) is not None


def test_multi_org_refuses_deactivation(make_client, db, org):
    client = make_client(mode="multi")
    client.headers.update(org.admin_headers)
    created = client.post("/scim/v2/Users", json=new_user()).json()

    response = client.patch(
        f"/scim/v2/Users/{created['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        },
    )

    body = assert_scim_error(response, 400, "invalidValue")
    assert "multi-organization" in body["detail"]
    # Sending the current state (Okta's PUT always carries active) is fine.
    same = client.put(f"/scim/v2/Users/{created['id']}", json=new_user())
    assert same.status_code == 200


def test_multi_org_leaves_the_identity_of_a_user_other_orgs_hold_as_it_is(make_client, db, org):
    """Rule ``user.shared_identity``: one organization's identity provider may change a user's
    role and external id, not the email, userName or names another organization sees too."""
    client = make_client(mode="multi")
    client.headers.update(org.admin_headers)
    created = client.post("/scim/v2/Users", json=new_user("ada@example.com")).json()
    elsewhere = factories.bootstrap(db)
    db.add(OrgMembership(org_id=elsewhere.org.id, user_id=created["id"], role="member"))
    db.flush()
    url = f"/scim/v2/Users/{created['id']}"

    def replaced(**value: object):  # type: ignore[no-untyped-def]
        return client.patch(url, json=patch({"op": "replace", "value": value}))

    refused = [
        replaced(emails=[{"value": "ada@attacker.example", "primary": True}]),
        replaced(userName="ada-b"),
        replaced(displayName="Set elsewhere"),
        replaced(**{"name.givenName": "Eve"}),
        client.put(url, json=new_user("ada@example.com", displayName="Set elsewhere")),
    ]
    allowed = [replaced(externalId="b-1"), replaced(organizationRole="viewer")]

    for response in refused:
        body = assert_scim_error(response, 409)
        assert "other organizations" in body["detail"]
    assert [response.status_code for response in allowed] == [200, 200]
    db.expire_all()
    user = db.get(User, created["id"])
    identity = (user.email, user.username, user.user_name, user.full_name, user.given_name)
    assert identity == ("ada@example.com", "ada", "ada@example.com", None, "Ada")
    # Alone in its organization again, the user's identity is the organization's to change.
    theirs = OrgMembership.org_id == elsewhere.org.id, OrgMembership.user_id == user.id
    db.delete(db.scalar(select(OrgMembership).where(*theirs)))
    db.flush()
    assert replaced(displayName="Ada L.").status_code == 200


def test_schemas_suggest_the_orgs_team_and_role_names_to_an_admin(client, db, org):
    factories.team(db, org.org, name="team1")
    factories.custom_role(db, org.org, name="Sample custom role")

    anonymous = client.get(f"/scim/v2/Schemas/{USER_URN}").json()
    admin = client.get(f"/scim/v2/Schemas/{USER_URN}", headers=org.admin_headers).json()
    role = client.get(f"/scim/v2/Schemas/{ROLE_URN}").json()

    def team_roles(schema: dict) -> dict:
        attr = next(a for a in schema["attributes"] if a["name"] == "teamRoles")
        return {sub["name"]: sub.get("canonicalValues") for sub in attr["subAttributes"]}

    assert team_roles(anonymous)["teamName"] is None
    assert team_roles(admin) == {
        "teamName": ["team1"],
        "roleName": ["admin", "member", "viewer", "Sample custom role"],
    }
    emails = next(a for a in admin["attributes"] if a["name"] == "emails")
    assert emails["required"] is True
    permissions = next(a for a in role["attributes"] if a["name"] == "permissions")
    names = next(s for s in permissions["subAttributes"] if s["name"] == "name")
    # Only what a custom role may hold: org operations stay with org admins.
    assert "run:delete" in names["canonicalValues"]
    assert "org:manage_users" not in names["canonicalValues"]


def test_only_an_admin_of_the_org_may_choose_it_for_scim(make_client, db, org):
    member = factories.user(db, org.org, role="member")
    client = make_client(mode="multi")

    response = client.put(
        "/api/v1/viewer/scim-org",
        headers={
            **factories.headers(factories.api_key(db, member)),
            "X-Rolecall-Org": org.org.name,
        },
    )

    assert response.status_code == 403
    assert response.json()["error"]["rule"]
    db.expire_all()
    assert db.get(User, member.id).scim_org_id is None
