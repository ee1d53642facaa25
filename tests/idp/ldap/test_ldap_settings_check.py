"""``POST /api/v1/sso/ldap/test``: an org admin tries LDAP settings against a real slapd and
learns which step failed and why."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from tests import factories
from tests.idp.ldap.conftest import BASE, SERVICE_DN, SERVICE_PW, Slapd
from tests.idp.ldap.test_ldap_sign_in import ldap_env

TEST = "/api/v1/sso/ldap/test"


@pytest.fixture
def client(make_client, slapd: Slapd):  # type: ignore[no-untyped-def]
    """LDAP configured by the environment, with LDAP login off: testable, not used to sign in."""
    return make_client(**ldap_env(slapd, ldap_login=False))


def check(client, org, **body: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.post(TEST, json=body, headers=org.admin_headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def last_step(result: dict[str, Any]) -> tuple[str, bool, str]:
    step = result["steps"][-1]
    return step["step"], step["ok"], step["detail"]


def test_the_configured_settings_pass(client, org) -> None:
    result = check(client, org)
    assert result["ok"] is True
    assert [s["step"] for s in result["steps"]] == [
        "connect",
        "tls",
        "bind",
        "base_dn",
        "attributes",
    ]
    assert all(s["ok"] for s in result["steps"])


def test_looking_up_an_entry_and_trying_its_password(client, org) -> None:
    result = check(client, org, email="alice@example.org", password="alice-pw")
    assert result["ok"] is True
    steps = {s["step"]: s["detail"] for s in result["steps"]}
    assert "uid=alice,ou=people" in steps["search"]
    assert "ml-engineers" in steps["groups"]
    assert "password accepted" in steps["password"]
    wrong = check(client, org, email="alice@example.org", password="nope")
    assert (wrong["ok"], last_step(wrong)[:2]) == (False, ("password", False))


def test_unreachable(client, org, unreachable_url: str) -> None:
    result = check(client, org, address=unreachable_url)
    assert result["ok"] is False and len(result["steps"]) == 1
    step, ok, detail = last_step(result)
    assert (step, ok) == ("connect", False) and "connection refused" in detail


def test_tls_failure(client, org, slapd: Slapd, slapd_anon: Slapd) -> None:
    result = check(client, org, address=slapd.ldaps_url, ca_file=slapd_anon.ca_file)
    assert [(s["step"], s["ok"]) for s in result["steps"]] == [("connect", True), ("tls", False)]
    assert "not trusted" in last_step(result)[2]
    starttls = check(client, org, tls_enable=True, ca_file=slapd_anon.ca_file)
    assert [(s["step"], s["ok"]) for s in starttls["steps"]] == [("connect", True), ("tls", False)]


def test_tls_passes_with_the_right_ca(client, org, slapd: Slapd) -> None:
    for body in ({"address": slapd.ldaps_url}, {"tls_enable": True}):
        result = check(client, org, **body)
        assert result["ok"] is True, result
        assert "certificate verified" in result["steps"][1]["detail"]


def test_bind_failures(client, org) -> None:
    anonymous = check(client, org, bind_dn=None, bind_pw=None)
    step, ok, detail = last_step(anonymous)
    assert (step, ok) == ("bind", False)
    assert "refuses anonymous binds" in detail and "LOCAL_LDAP_BIND_DN" in detail
    wrong = check(client, org, bind_pw="not-the-password")
    step, ok, detail = last_step(wrong)
    assert (step, ok) == ("bind", False) and SERVICE_DN in detail
    assert "not-the-password" not in str(wrong)


def test_anonymous_bind_passes_where_allowed(client, org, slapd_anon: Slapd) -> None:
    result = check(client, org, address=slapd_anon.url, bind_dn=None, bind_pw=None)
    assert result["ok"] is True and "anonymously" in result["steps"][2]["detail"]


def test_base_dn_not_found(client, org) -> None:
    step, ok, detail = last_step(check(client, org, base_dn="dc=elsewhere,dc=org"))
    assert (step, ok) == ("base_dn", False) and "does not exist" in detail


def test_attribute_missing(client, org) -> None:
    step, ok, detail = last_step(check(client, org, attributes="email=homePostalAddress"))
    assert (step, ok) == ("attributes", False)
    assert "homePostalAddress" in detail and "LOCAL_LDAP_ATTRIBUTES" in detail


def test_an_entry_not_found(client, org) -> None:
    step, ok, detail = last_step(check(client, org, email="dave@example.org"))
    assert (step, ok) == ("search", False) and "dave@example.org" in detail


def test_the_allow_list_verdict(client, org) -> None:
    step, ok, detail = last_step(
        check(client, org, email="carol@example.org", group_allow_list=["researchers"])
    )
    assert (step, ok) == ("groups", False) and "not in an allowed LDAP group" in detail


def test_a_bad_value_is_invalid_input(client, org) -> None:
    response = client.post(TEST, json={"address": "http://example.org"}, headers=org.admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "address"


def test_stored_settings_are_tested_too(make_client, org, db, slapd_anon: Slapd) -> None:
    org.org.settings = {
        **(org.org.settings or {}),
        "ldap": {"address": slapd_anon.url, "base_dn": BASE},
    }
    db.flush()
    result = check(make_client(), org, email="bob@example.org", password="bob-pw")
    assert result["ok"] is True, result


def test_only_org_admins_may_test(client, db, org) -> None:
    member = factories.user(db, org.org)
    response = client.post(
        TEST, json={"bind_pw": SERVICE_PW}, headers=factories.headers(factories.api_key(db, member))
    )
    assert response.status_code == 403
    body = response.json()["error"]
    assert body["code"] == "permission_denied"
    assert "org:manage_auth" in body["message"]
    assert body["rule"] == "org.member"  # a member: org:manage_auth is not granted
    assert body["trace"][-1] == {
        "rule": "result",
        "outcome": "deny",
        "detail": "org:manage_auth not granted",
    }


def test_each_test_is_audited_without_the_password(client, db, org) -> None:
    check(client, org, email="bob@example.org", password="bob-pw")
    check(client, org, base_dn="dc=elsewhere,dc=org")
    db.expire_all()
    rows = list(
        db.scalars(
            select(AuditEvent).where(AuditEvent.action == "sso.ldap.test").order_by(AuditEvent.seq)
        )
    )
    assert [r.detail.split(": ", 1)[1].split(" ")[0] for r in rows] == ["passed", "failed"]
    assert "bob-pw" not in " ".join(r.detail for r in rows)
    assert "base_dn" in rows[1].detail
