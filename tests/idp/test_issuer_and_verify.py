"""Registering the organization's JWT issuer (REST, org admins only, audited) and explaining a
JWT's refusal without issuing anything."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from rolecall.api_keys.models import ApiKey
from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.identity.models import AccessToken
from tests import factories
from tests.idp.conftest import API, bearer, exchange, register


def _events(db, action):
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_admin_registers_reads_and_removes_the_issuer(client, db, org, shared_issuer):
    assert client.get(f"{API}/federation/issuer", headers=org.admin_headers).json() == {
        "issuer": None, "jwks_uri": None, "created_at": None,
    }  # fmt: skip
    response = register(client, org.admin_headers, shared_issuer.issuer)
    assert response.status_code == 200, response.text
    assert response.json()["jwks_uri"] == shared_issuer.issuer + "/.well-known/jwks.json"
    read = client.get(f"{API}/federation/issuer", headers=org.admin_headers).json()
    assert read["issuer"] == shared_issuer.issuer
    [event] = _events(db, "federation.issuer.set")
    assert event.after["issuer"] == shared_issuer.issuer and event.before is None
    removed = register(client, org.admin_headers, None)
    assert removed.status_code == 200 and removed.json()["issuer"] is None
    [event] = _events(db, "federation.issuer.remove")
    assert event.before == {"issuer": shared_issuer.issuer}
    # Removing what is not there changes nothing.
    assert register(client, org.admin_headers, None).json()["issuer"] is None
    assert len(_events(db, "federation.issuer.remove")) == 1


def test_changing_the_issuer_revokes_tokens_issued_under_the_old_one(
    client, db, org, shared_issuer, issuer
):
    factories.user(db, org.org, username="alice", email="alice@example.org")
    register(client, org.admin_headers, shared_issuer.issuer)
    jwt = shared_issuer.mint(sub="alice@example.org", aud=org.org.name)
    token = exchange(client, jwt).json()["access_token"]
    assert client.get(f"{API}/viewer", headers=bearer(token)).status_code == 200
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    assert client.get(f"{API}/viewer", headers=bearer(token)).status_code == 401
    db.expire_all()
    assert all(row.revoked_at for row in db.scalars(select(AccessToken)))
    [event] = [e for e in _events(db, "federation.issuer.set") if e.before]
    assert event.detail == "1 access tokens revoked"


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_org_admins_manage_the_issuer(client, db, org, shared_issuer, role):
    user = factories.user(db, org.org, role=role)
    headers = factories.headers(factories.api_key(db, user))
    for response in (
        register(client, headers, shared_issuer.issuer),
        client.get(f"{API}/federation/issuer", headers=headers),
        client.post(f"{API}/federation/verify", json={"assertion": "a.b.c"}, headers=headers),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == policy.RULE_ORG_MEMBER
    assert _events(db, "federation.issuer.set") == []


def test_an_access_token_cannot_change_the_issuer_that_trusts_it(client, db, org, federated):
    org.admin.email_key = org.admin.email.lower()
    token = exchange(client, federated.mint(sub=org.admin.email, aud=org.org.name)).json()
    refused = register(client, bearer(token["access_token"]), None)
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == policy.RULE_CREDENTIAL_KIND
    assert client.get(f"{API}/federation/issuer", headers=org.admin_headers).json()["issuer"]


def test_an_access_token_cannot_mint_an_api_key_that_could_change_the_issuer(
    client, db, org, federated
):
    # A key would outlive the token and hold org:manage_auth, which the token may not use.
    org.admin.email_key = org.admin.email.lower()
    token = exchange(client, federated.mint(sub=org.admin.email, aud=org.org.name)).json()
    headers = bearer(token["access_token"])
    keys_before = db.scalars(select(ApiKey.id)).all()
    mutation = 'mutation { result: generateApiKey(input: {description: "x"}) { apiKey { name } } }'

    rest = client.post(f"{API}/api-keys", json={"expires_in": 60}, headers=headers)
    graphql = client.post("/graphql", json={"query": mutation}, headers=headers)

    assert rest.status_code == 403, rest.text
    assert "access token" in rest.json()["error"]["message"]
    assert rest.json()["error"]["rule"] == policy.RULE_CREDENTIAL_MINT
    assert graphql.status_code == 200 and graphql.json()["data"] == {"result": None}
    [error] = graphql.json()["errors"]
    assert error["extensions"]["code"] == "permission_denied" and "access token" in error["message"]
    assert error["extensions"]["rule"] == policy.RULE_CREDENTIAL_MINT
    db.expire_all()
    assert db.scalars(select(ApiKey.id)).all() == keys_before


def test_an_access_token_makes_account_keys_only_within_its_own_life(client, db, org, federated):
    org.admin.email_key = org.admin.email.lower()
    team = factories.team(db, org.org, name="ml")
    factories.service_account(db, org.org, team, name="bot")
    token = exchange(client, federated.mint(sub=org.admin.email, aud=org.org.name)).json()
    headers = bearer(token["access_token"])
    accounts = f"{API}/service-accounts"

    forever = client.post(f"{accounts}/bot/api-keys", json={}, headers=headers)
    account = client.post(
        accounts, json={"name": "new", "scope": "team", "team": "ml"}, headers=headers
    )
    within = client.post(f"{accounts}/bot/api-keys", json={"expires_in": 60}, headers=headers)

    for refused in (forever, account):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["rule"] == policy.RULE_CREDENTIAL_MINT
        assert "this access token expires at" in refused.json()["error"]["message"]
    assert within.status_code == 201, within.text


def test_an_access_token_is_shown_no_account_key_that_outlives_it(make_client, db, org, federated):
    # Keys are shown again only when the server derives them from its secret key.
    client = make_client(secret_key=SecretStr("k" * 32))
    org.admin.email_key = org.admin.email.lower()
    factories.team(db, org.org, name="ml")
    created = client.post(
        "/graphql",
        json={
            "query": 'mutation { createServiceAccount(input: {entityName: "ml", description:'
            ' "CI"}) { user { id } } }'
        },
        headers=org.admin_headers,
    )
    assert "errors" not in created.json(), created.text
    token = exchange(client, federated.mint(sub=org.admin.email, aud=org.org.name)).json()
    query = '{ entity(name: "ml") { members { name apiKey } } }'

    as_key = client.post("/graphql", json={"query": query}, headers=org.admin_headers).json()
    as_token = client.post(
        "/graphql", json={"query": query}, headers=bearer(token["access_token"])
    ).json()

    [shown] = as_key["data"]["entity"]["members"]
    assert shown["apiKey"].startswith("rc_")
    assert as_token["data"]["entity"]["members"] == [{"name": shown["name"], "apiKey": None}]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://idp.example", "https URL"),
        ("http://idp.example", "plain http only on a loopback"),
        ("https://idp.example/?a=1", "no query"),
        ("not a url", None),
    ],
)
def test_bad_issuer_urls_are_422_and_store_nothing(client, db, org, url, message):
    response = register(client, org.admin_headers, url)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "issuer"
    if message:
        assert message in response.json()["error"]["message"]
    assert _events(db, "federation.issuer.set") == []


def test_an_issuer_without_discovery_is_refused_with_the_reason(client, db, org, issuer):
    url = issuer.issuer
    issuer.stop()
    response = register(client, org.admin_headers, url)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "issuer_discovery_failed"
    assert "oidc-configuration" in error["message"] and "openid-configuration" in error["message"]


def test_a_discovery_document_naming_another_issuer_is_refused(client, org, issuer):
    # Registered under a different spelling than the one its discovery document states.
    response = register(client, org.admin_headers, issuer.issuer.replace("127.0.0.1", "localhost"))
    assert response.status_code == 422
    assert "names another issuer" in response.json()["error"]["message"]


# --- explaining -----------------------------------------------------------------------------------


def _verify(client, org, assertion):
    return client.post(
        f"{API}/federation/verify", json={"assertion": assertion}, headers=org.admin_headers
    )


def test_verify_reports_every_check_with_expected_and_found(client, db, org, federated):
    factories.user(db, org.org, username="alice", email="alice@example.org")
    jwt = federated.mint(sub="alice@example.org", aud="someone-else", ttl=-600)
    response = _verify(client, org, jwt)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["valid"] is False and report["subject"] is None
    assert report["failed_check"] == "exp"
    checks = {c["check"]: c for c in report["checks"]}
    assert list(checks) == ["format", "alg", "iss", "signature", "exp", "nbf", "iat", "aud", "sub"]
    assert checks["signature"]["ok"] and checks["iss"]["found"] == federated.issuer
    assert not checks["exp"]["ok"] and "expired" in checks["exp"]["detail"]
    assert not checks["aud"]["ok"]
    assert checks["aud"]["found"] == "someone-else"
    assert org.org.name in checks["aud"]["expected"] and "wandb" in checks["aud"]["expected"]
    assert checks["sub"]["ok"] and checks["sub"]["detail"] == "sub: user alice"
    # Nothing was issued, nothing audited as an exchange.
    assert db.scalars(select(AccessToken)).all() == []
    assert _events(db, "federation.token_exchange") == []


def test_verify_a_valid_jwt_names_the_subject(client, db, org, federated):
    factories.user(db, org.org, username="alice", email="alice@example.org")
    report = _verify(client, org, federated.mint(sub="alice@example.org", aud="wandb")).json()
    assert report["valid"] is True and report["failed_check"] is None
    assert report["subject"]["name"] == "alice" and report["subject"]["kind"] == "user"


def test_verify_a_malformed_jwt(client, org, federated):
    report = _verify(client, org, "garbage").json()
    assert report["failed_check"] == "format" and len(report["checks"]) == 1
