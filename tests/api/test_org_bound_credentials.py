"""Credentials that work in one organization only (multi-org mode): a session an
organization's single sign-on opened, and the API keys such a session makes. Another
organization's identity provider or directory vouches for nobody here."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.api_keys.issue import issue_key
from rolecall.api_keys.models import ApiKey
from rolecall.identity.sessions import open_session
from rolecall.orgs.models import OrgMembership
from rolecall.settings import Settings
from tests import factories

API = "/api/v1"
ORG_HEADER = "X-Rolecall-Org"


@pytest.fixture
def two_orgs(db, org):
    """``org`` (acme) and globex, whose admin also belongs to acme, as its admin too."""
    globex = factories.bootstrap(db, org_name="globex", email="boss@globex.example")
    db.add(OrgMembership(org_id=org.org.id, user_id=globex.admin.id, role="admin"))
    db.flush()
    return org, globex


def _session(db, user, org, method):
    signed = open_session(db, user=user, org_id=org.id, method=method, settings=Settings())
    db.flush()
    return signed


def _as(client, signed, org, method="GET", path=f"{API}/viewer", **kwargs):
    client.cookies.set("rolecall_session", signed.cookie_secret)
    headers = {ORG_HEADER: org.name, "X-CSRF-Token": signed.csrf_token}
    return client.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize("method", ["oidc", "ldap"])
def test_a_single_sign_on_session_works_in_its_own_organization_only(
    make_client, db, two_orgs, method
):
    # globex's provider said "boss": that signs boss in to globex, not to acme, where he is an
    # admin too (it signed in acme's admin, org-wide, before).
    acme, globex = two_orgs
    client = make_client(mode="multi")
    signed = _session(db, globex.admin, globex.org, method)

    at_home = _as(client, signed, globex.org)
    elsewhere = _as(client, signed, acme.org)
    unnamed = client.get(f"{API}/viewer")  # no org named: the session's own

    assert at_home.status_code == 200 and at_home.json()["org"]["name"] == globex.org.name
    assert elsewhere.status_code == 401
    assert elsewhere.json()["error"]["code"] == "other_organization"
    assert unnamed.status_code == 200 and unnamed.json()["org"]["name"] == globex.org.name


def test_a_password_session_works_in_every_organization_of_its_user(make_client, db, two_orgs):
    acme, globex = two_orgs
    client = make_client(mode="multi")
    signed = _session(db, globex.admin, globex.org, "password")

    assert _as(client, signed, globex.org).status_code == 200
    assert _as(client, signed, acme.org).json()["org"]["name"] == acme.org.name


def test_a_key_a_single_sign_on_session_makes_works_where_the_session_does(
    make_client, db, two_orgs
):
    acme, globex = two_orgs
    client = make_client(mode="multi")
    signed = _session(db, globex.admin, globex.org, "oidc")
    acme_name, globex_name = acme.org.name, globex.org.name

    made = _as(client, signed, globex.org, "POST", f"{API}/api-keys", json={})
    assert made.status_code == 201, made.text
    key = factories.headers(made.json()["key"])
    client.cookies.clear()

    home = client.get(f"{API}/viewer", headers={**key, ORG_HEADER: globex_name})
    away = client.get(f"{API}/viewer", headers={**key, ORG_HEADER: acme_name})
    scim = client.get("/scim/v2/Users", headers={**key, ORG_HEADER: acme_name})

    assert home.status_code == 200
    assert away.status_code == 401 and away.json()["error"]["code"] == "other_organization"
    assert scim.status_code == 401
    db.expire_all()
    stored = db.scalar(select(ApiKey).where(ApiKey.id == made.json()["id"]))
    assert stored.org_id == globex.org.id
    # A key made with an unbound credential works everywhere, as before.
    unbound = client.post(
        f"{API}/api-keys", json={}, headers={**globex.admin_headers, ORG_HEADER: globex_name}
    )
    assert db.get(ApiKey, unbound.json()["id"]).org_id is None


# --- one organization's admin and a user other organizations hold too ----------------------------

KEYS_OF = """query Keys($q: String!) {
  users(query: $q) { edges { node { apiKeys { edges { node { id } } } } } }
}"""
REVOKE = "mutation Revoke($id: String!) { deleteApiKey(input: {id: $id}) { success } }"


def _graphql(client, headers, query, **variables):
    body = {"query": query, "variables": variables}
    response = client.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_admin_manages_only_the_keys_that_work_in_its_own_organization(
    make_client, db, two_orgs
):
    # acme added globex's admin: acme's admin listed and revoked every key of his, globex's too.
    acme, globex = two_orgs
    client = make_client(mode="multi")
    everywhere, _ = issue_key(db, user_id=globex.admin.id)
    only_acme, _ = issue_key(db, user_id=globex.admin.id)
    only_acme.org_id = acme.org.id
    db.flush()
    as_acme = {**acme.admin_headers, ORG_HEADER: acme.org.name}

    listed = _graphql(client, as_acme, KEYS_OF, q="boss")
    refused = _graphql(client, as_acme, REVOKE, id=everywhere.id)
    revoked = _graphql(client, as_acme, REVOKE, id=only_acme.id)

    [user] = listed["data"]["users"]["edges"]
    assert [e["node"]["id"] for e in user["node"]["apiKeys"]["edges"]] == [only_acme.id]
    assert refused["errors"][0]["extensions"]["code"] == "not_found"
    assert revoked["data"]["deleteApiKey"]["success"] is True
    db.expire_all()
    assert db.get(ApiKey, everywhere.id).revoked_at is None
    assert db.get(ApiKey, only_acme.id).revoked_at is not None


@pytest.mark.parametrize("action", ["deactivate", "remove"])
def test_leaving_one_organization_keeps_the_user_signed_in_to_the_others(
    make_client, db, two_orgs, action
):
    # Deactivating or removing globex's admin in acme signed him out of globex too.
    acme, globex = two_orgs
    client = make_client(mode="multi")
    everywhere = _session(db, globex.admin, globex.org, "password")
    acme_only = _session(db, globex.admin, acme.org, "oidc")
    as_acme = {**acme.admin_headers, ORG_HEADER: acme.org.name}

    if action == "deactivate":
        done = client.post(f"{API}/users/{globex.admin.username}/deactivate", headers=as_acme)
    else:
        done = client.delete(f"{API}/users/{globex.admin.username}", headers=as_acme)
    assert done.status_code in (200, 204), done.text

    assert _as(client, everywhere, globex.org).status_code == 200
    client.cookies.clear()
    assert _as(client, acme_only, acme.org).status_code == 401
