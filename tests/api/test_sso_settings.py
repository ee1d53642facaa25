"""The SSO configuration through the API: stored by org admins, the environment wins, secrets
are write-only and stored encrypted."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.sso.config import ldap_config, oidc_config
from tests import factories

SSO = "/api/v1/sso"
KEY = "k" * 40


def test_an_admin_reads_the_defaults(client, org):
    body = client.get(SSO, headers=org.admin_headers).json()

    assert body["oidc"]["configured"] is False
    assert body["oidc"]["scopes"] == ["openid", "profile", "email"]
    assert body["oidc"]["redirect_uri"] == "http://testserver:80/oidc/callback"
    assert body["ldap"]["attributes"] == {"email": "mail"}
    assert body["ldap"]["name_attributes"] == ["displayName", "cn"]
    assert body["sso_enabled"] is True
    assert body["saml"] == "not supported"


def test_an_admin_stores_oidc_settings_and_the_secret_stays_hidden(make_client, org, db):
    client = make_client(secret_key=SecretStr(KEY))
    response = client.patch(
        f"{SSO}/oidc",
        json={
            "issuer": "https://idp.example.com/",
            "client_id": "rolecall",
            "secret": "s3cret-value",
            "custom_scopes": ["groups", "offline_access", "groups"],
        },
        headers=org.admin_headers,
    )

    assert response.status_code == 200, response.text
    oidc = response.json()["oidc"]
    assert oidc["issuer"] == "https://idp.example.com"
    assert oidc["secret_set"] is True and "s3cret-value" not in response.text
    assert oidc["scopes"] == ["openid", "profile", "email", "groups", "offline_access"]
    db.expire_all()
    stored = db.get(type(org.org), org.org.id).settings["oidc"]
    assert "s3cret-value" not in str(stored)  # encrypted at rest
    settings = client.app.state.settings
    assert oidc_config(db.get(type(org.org), org.org.id), settings).secret == "s3cret-value"
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "sso.oidc.update")).one()
    assert "secret" in event.after and "s3cret" not in str(event.after)


def test_a_secret_cannot_be_stored_without_the_server_key(client, org):
    response = client.patch(f"{SSO}/oidc", json={"secret": "x"}, headers=org.admin_headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "secret_key_missing"


def test_the_environment_wins_and_is_reported_as_fixed(make_client, org):
    client = make_client(oidc_issuer="https://env.example.com", ldap_login=True)

    body = client.get(SSO, headers=org.admin_headers).json()
    assert body["oidc"]["issuer"] == "https://env.example.com"
    assert body["oidc"]["fixed_by_environment"] == ["issuer"]
    assert body["ldap"]["login"] is True and body["ldap"]["fixed_by_environment"] == ["login"]

    refused = client.patch(
        f"{SSO}/oidc", json={"issuer": "https://other.example.com"}, headers=org.admin_headers
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "fixed_by_environment"
    assert "OIDC_ISSUER" in refused.json()["error"]["message"]


def test_ldap_settings_are_validated_and_bad_ones_change_nothing(client, org, db):
    for body, field in (
        ({"address": "http://ldap.example.com"}, "address"),
        ({"attributes": "email=mail,colour=blue"}, "attributes"),
        ({"attributes": "email"}, "attributes"),
        ({"base_dn": "dc=x\x00"}, "base_dn"),
    ):
        response = client.patch(f"{SSO}/ldap", json=body, headers=org.admin_headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field
    db.expire_all()
    assert "ldap" not in (db.get(type(org.org), org.org.id).settings or {})

    stored = client.patch(
        f"{SSO}/ldap",
        json={
            "address": "ldaps://ldap.example.com",
            "base_dn": "dc=example,dc=org",
            "attributes": "email=mail,group=gidNumber",
            "group_allow_list": ["ml", "admins"],
            "login": True,
        },
        headers=org.admin_headers,
    )
    assert stored.status_code == 200, stored.text
    ldap = stored.json()["ldap"]
    assert ldap["configured"] is True
    assert ldap["attributes"] == {"email": "mail", "group": "gidNumber"}
    assert ldap["group_allow_list"] == ["ml", "admins"]
    cleared = client.patch(f"{SSO}/ldap", json={"login": None}, headers=org.admin_headers)
    assert cleared.json()["ldap"]["login"] is False


@pytest.mark.parametrize(
    ("section", "content", "field"),
    [
        # A lone surrogate (no Unicode text) was stored, and every read of the settings failed.
        ("oidc", b'{"client_id": "a\\ud800"}', "client_id"),
        ("oidc", b'{"custom_scopes": ["\\udfff"]}', "custom_scopes"),
        ("ldap", b'{"base_dn": "dc=\\ud800"}', "base_dn"),
        ("ldap", b'{"group_allow_list": ["\\ud800"]}', "group_allow_list"),
        # An unclosed IPv6 bracket or a port out of range made urlsplit raise: a 500.
        ("oidc", b'{"issuer": "http://[::1"}', "issuer"),
        ("ldap", b'{"address": "ldap://[::1"}', "address"),
        ("ldap", b'{"address": "ldap://ldap.example.com:99999"}', "address"),
    ],
)
def test_text_and_urls_no_setting_can_hold_are_422_and_change_nothing(
    client, org, db, section, content, field
):
    headers = {**org.admin_headers, "Content-Type": "application/json"}

    response = client.patch(f"{SSO}/{section}", content=content, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert client.get(SSO, headers=org.admin_headers).status_code == 200
    db.expire_all()
    assert section not in (db.get(type(org.org), org.org.id).settings or {})


def test_unknown_fields_are_refused(client, org):
    response = client.patch(f"{SSO}/oidc", json={"issuers": "x"}, headers=org.admin_headers)

    assert response.status_code == 422


def test_only_those_who_manage_auth_read_or_change_it(client, org, db):
    member = factories.user(db, org.org)
    headers = factories.headers(factories.api_key(db, member))

    for response in (
        client.get(SSO, headers=headers),
        client.patch(f"{SSO}/ldap", json={"login": True}, headers=headers),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == "org.member"
    db.expire_all()
    assert ldap_config(db.get(type(org.org), org.org.id), client.app.state.settings).login is False


def test_an_sso_error_page_leads_back_to_its_organizations_sign_in(make_client, org):
    # In multi-org mode the link dropped ?org=, and the plain sign-in page checks local
    # passwords only.
    client = make_client(mode="multi")

    page = client.get(f"/oidc/login?org={org.org.name}", headers={"Accept": "text/html"})

    assert page.status_code >= 400 and page.headers["content-type"].startswith("text/html")
    assert f"href='/login?org={org.org.name}'" in page.text
    plain = client.get("/oidc/login", headers={"Accept": "text/html"})
    assert "href='/login'" in plain.text
