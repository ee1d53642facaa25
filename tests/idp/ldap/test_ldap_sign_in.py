"""``POST /api/v1/auth/login`` through a real slapd: LDAP sign-in, provisioning, group sync,
the allow-list, an unreachable directory and the local admin's way in."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.audit.models import AuditEvent
from rolecall.errors import AuthenticationFailed
from rolecall.orgs.models import OrgMembership
from rolecall.sso import sign_in
from rolecall.sso.sign_in import sign_in_with_email_password
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from tests import factories
from tests.idp.conftest import LOOPBACK
from tests.idp.ldap.conftest import BASE, GROUPS, SERVICE_DN, SERVICE_PW, Slapd, user_dn

LOGIN = "/api/v1/auth/login"
ADMIN_PASSWORD = factories.ADMIN_PASSWORD


def ldap_env(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """Settings as the LOCAL_LDAP_* variables would set them (so they win over stored ones)."""
    values: dict[str, Any] = {
        "ldap_address": server.url,
        "ldap_base_dn": BASE,
        "ldap_bind_dn": SERVICE_DN,
        "ldap_bind_pw": SecretStr(SERVICE_PW),
        "ldap_attributes": "email=mail,group=gidNumber",
        "ldap_ca_file": server.ca_file,
        "ldap_login": True,
    }
    values.update(overrides)
    return values


@pytest.fixture
def ldap_client(make_client: Callable[..., TestClient], slapd: Slapd, org):  # type: ignore[no-untyped-def]
    """A client of a server whose LDAP login uses ``slapd`` (with changes given as kwargs)."""

    def make(server: Slapd | None = None, **overrides: Any) -> TestClient:
        return make_client(**ldap_env(server or slapd, **overrides))

    return make


def login(client: TestClient, email: str, password: str) -> Any:
    return client.post(LOGIN, json={"email": email, "password": password})


def error(response: Any) -> dict[str, Any]:
    return dict(response.json()["error"])


def user_named(db: Session, email: str) -> User | None:
    db.expire_all()
    return db.scalar(select(User).where(User.email_key == email.lower()))


def team_names(db: Session, user: User) -> list[str]:
    db.expire_all()
    query = (
        select(Team.name)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == user.id, Team.kind == "team")
    )
    return sorted(db.scalars(query))


def events(db: Session, action: str) -> list[AuditEvent]:
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return list(db.scalars(query))


# --- sign-in -------------------------------------------------------------------------------------


def test_right_password_provisions_a_member_and_opens_a_session(ldap_client, db, org) -> None:
    client = ldap_client()
    response = login(client, "alice@example.org", "alice-pw")
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == "alice@example.org"
    viewer = client.get("/api/v1/viewer")
    assert viewer.status_code == 200 and "alice@example.org" in viewer.text
    user = user_named(db, "alice@example.org")
    assert user is not None and user.password_hash is None
    assert user.full_name == "Alice Anders"
    membership = db.scalar(
        select(OrgMembership).where(
            OrgMembership.user_id == user.id, OrgMembership.org_id == org.org.id
        )
    )
    assert membership is not None and membership.role == "member" and membership.active
    (event,) = events(db, "auth.login")
    assert event.after["method"] == "ldap" and event.object_id == user.id


#: Gives bob a displayName unlike his cn ("Bob Baker"), and takes it away again.
BOB_DISPLAY_NAME = f"""dn: {user_dn("bob")}
changetype: modify
{{change}}: displayName
displayName: Bobby B.
"""


@pytest.fixture
def bob_with_a_display_name(slapd: Slapd) -> Iterator[None]:
    slapd.modify(BOB_DISPLAY_NAME.format(change="add"))
    try:
        yield
    finally:
        slapd.modify(BOB_DISPLAY_NAME.format(change="delete"))


@pytest.mark.parametrize(
    ("attributes", "full_name", "names"),
    [
        ("email=mail", "Bobby B.", ["displayName", "cn"]),
        ("email=mail,name=cn", "Bob Baker", ["cn", "displayName"]),
        ("email=mail,name=sn", "Baker", ["sn", "displayName", "cn"]),
    ],
)
def test_the_full_name_is_the_display_name_unless_name_says_otherwise(
    ldap_client, db, org, bob_with_a_display_name, attributes: str, full_name: str,
    names: list[str],
) -> None:  # fmt: skip
    """docs/ldap.md: the full name comes from ``name=`` when set, else ``displayName``, then
    ``cn``; and ``GET /api/v1/sso`` shows that, not a ``name=cn`` nothing set."""
    client = ldap_client(ldap_attributes=attributes)
    assert login(client, "bob@example.org", "bob-pw").status_code == 200
    bob = user_named(db, "bob@example.org")
    assert bob is not None and bob.full_name == full_name
    ldap = client.get("/api/v1/sso", headers=org.admin_headers).json()["ldap"]
    assert ldap["attributes"] == dict(pair.split("=") for pair in attributes.split(","))
    assert ldap["name_attributes"] == names


def test_without_a_display_name_the_full_name_is_the_cn(ldap_client, db) -> None:
    assert login(ldap_client(ldap_attributes="email=mail"), "bob@example.org", "bob-pw").is_success
    bob = user_named(db, "bob@example.org")
    assert bob is not None and bob.full_name == "Bob Baker"


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("alice@example.org", "wrong-pw"),  # wrong password
        ("nobody@example.org", "alice-pw"),  # unknown email
        ("dave@example.org", "dave-pw"),  # dave's entry has no mail attribute
    ],
)
def test_refusals_share_one_message(ldap_client, db, email: str, password: str) -> None:
    response = login(ldap_client(), email, password)
    assert response.status_code == 401, response.text
    assert error(response) == {"code": "sign_in_failed", "message": "wrong email or password"}
    assert user_named(db, email) is None
    (failure,) = events(db, "auth.login_failed")  # kept although the request failed
    assert "LDAP" in failure.detail and password not in failure.detail


#: Passwords SASLprep (RFC 4013 §2.3) refuses: ldap3 would not send them in a bind.
UNSENDABLE_PASSWORDS = ["wrong\u0000", "wrong\t", "wrong\ue000", "\u00ad"]


@pytest.mark.parametrize("password", UNSENDABLE_PASSWORDS)
def test_a_password_the_directory_cannot_take_is_a_wrong_password_for_every_email(
    ldap_client, slapd: Slapd, db, password: str
) -> None:
    """Not "the directory cannot be reached" (503) for an email the directory holds and "wrong
    email or password" for one it does not: that told which emails it holds. Such a password
    is refused before any connection, for both alike."""
    client = ldap_client()
    before = slapd.counters()
    known = login(client, "alice@example.org", password)
    unknown = login(client, "nobody@example.org", password)
    after = slapd.counters()
    for response in (known, unknown):
        assert response.status_code == 401, response.text
        assert error(response) == {"code": "sign_in_failed", "message": "wrong email or password"}
    assert known.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")
    # Reading the counters costs one connection and one bind; the two sign-ins cost none.
    assert (after["connections"] - before["connections"], after["binds"] - before["binds"]) == (
        1,
        1,
    )
    failures = events(db, "auth.login_failed")
    assert [f.object_name for f in failures] == ["alice@example.org", "nobody@example.org"]
    reasons = [f.detail.split(": ", 1)[1] for f in failures]
    assert reasons[0] == reasons[1] and "SASLprep" in reasons[0]
    assert all(password not in f.detail for f in failures)
    assert user_named(db, "alice@example.org") is None


def test_empty_password_never_reaches_the_directory(
    ldap_client, slapd: Slapd, db, org, settings
) -> None:
    client = ldap_client()
    before = slapd.counters()
    assert login(client, "alice@example.org", "").status_code == 422  # refused by the schema
    with pytest.raises(AuthenticationFailed) as caught:  # and by the service itself
        sign_in_with_email_password(
            db, org=org.org, email="alice@example.org", password="",
            settings=settings.model_copy(update=ldap_env(slapd)),
        )  # fmt: skip
    after = slapd.counters()
    assert caught.value.code == "sign_in_failed"
    # Reading the counters costs one connection and one bind; neither refusal cost any.
    assert (after["connections"] - before["connections"], after["binds"] - before["binds"]) == (
        1,
        1,
    )


def test_mixed_case_email_is_one_user(ldap_client, db) -> None:
    client = ldap_client()
    first = login(client, "eve.smith@example.org", "eve-pw")
    again = login(client, "EVE.SMITH@EXAMPLE.ORG", "eve-pw")
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["user"]["id"] == again.json()["user"]["id"]
    assert first.json()["user"]["email"].lower() == "eve.smith@example.org"


def test_anonymous_bind(ldap_client, slapd_anon: Slapd) -> None:
    client = ldap_client(slapd_anon, ldap_bind_dn=None, ldap_bind_pw=None)
    assert login(client, "bob@example.org", "bob-pw").status_code == 200


def test_anonymous_bind_refused_by_a_strict_directory(ldap_client, slapd: Slapd) -> None:
    response = login(ldap_client(ldap_bind_dn=None, ldap_bind_pw=None), "bob@example.org", "bob-pw")
    assert response.status_code == 503
    assert error(response)["code"] == "ldap_bind_failed"


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_tls(ldap_client, slapd: Slapd, tls: str) -> None:
    address = slapd.ldaps_url if tls == "ldaps" else slapd.url
    client = ldap_client(ldap_address=address, ldap_tls_enable=True)
    assert login(client, "bob@example.org", "bob-pw").status_code == 200


def test_tls_with_the_wrong_ca_is_a_clear_503(ldap_client, slapd: Slapd, slapd_anon: Slapd) -> None:
    client = ldap_client(ldap_address=slapd.ldaps_url, ldap_ca_file=slapd_anon.ca_file)
    response = login(client, "bob@example.org", "bob-pw")
    assert response.status_code == 503
    assert error(response)["code"] == "ldap_tls_failed"


def test_allow_list_admits_a_member_and_refuses_others(ldap_client, db) -> None:
    client = ldap_client(ldap_group_allow_list="researchers,ml-engineers")
    assert login(client, "bob@example.org", "bob-pw").status_code == 200
    refused = login(client, "carol@example.org", "carol-pw")
    assert refused.status_code == 401
    assert error(refused)["code"] == "ldap_group_not_allowed"
    assert "not in an allowed LDAP group" in error(refused)["message"]
    assert user_named(db, "carol@example.org") is None


def test_ldap_login_false_leaves_sign_in_local(ldap_client, db, org) -> None:
    client = ldap_client(ldap_login=False)
    assert error(login(client, "bob@example.org", "bob-pw"))["code"] == "sign_in_failed"
    assert user_named(db, "bob@example.org") is None
    assert login(client, org.admin.email, ADMIN_PASSWORD).status_code == 200
    # ...and the settings are still testable.
    check = client.post("/api/v1/sso/ldap/test", json={}, headers=org.admin_headers)
    assert check.status_code == 200 and check.json()["ok"] is True, check.text


# --- provisioning -------------------------------------------------------------------------------


def test_provisioning_off_admits_only_existing_users(ldap_client, db, org) -> None:
    client = ldap_client(disable_sso_provisioning=True)
    refused = login(client, "bob@example.org", "bob-pw")
    assert refused.status_code == 401
    assert error(refused)["code"] == "sso_provisioning_disabled"
    assert user_named(db, "bob@example.org") is None
    factories.user(db, org.org, username="carol", email="carol@example.org")
    assert login(client, "carol@example.org", "carol-pw").status_code == 200


def test_deactivated_user_is_refused(ldap_client, db, org) -> None:
    factories.user(db, org.org, username="bob", email="bob@example.org", active=False)
    response = login(ldap_client(), "bob@example.org", "bob-pw")
    assert response.status_code == 401
    assert error(response)["code"] == "user_deactivated"


MOVE_BOB = f"""dn: {user_dn("bob")}
changetype: modify
replace: gidNumber
gidNumber: {{to_gid}}

dn: cn={{from_group}},{GROUPS}
changetype: modify
delete: member
member: {user_dn("bob")}
-
delete: memberUid
memberUid: bob

dn: cn={{to_group}},{GROUPS}
changetype: modify
add: member
member: {user_dn("bob")}
-
add: memberUid
memberUid: bob
"""


def move_bob(slapd: Slapd, from_group: str, to_group: str, to_gid: int) -> None:
    slapd.modify(MOVE_BOB.format(from_group=from_group, to_group=to_group, to_gid=to_gid))


@pytest.mark.parametrize("attributes", ["email=mail,group=gidNumber", "email=mail"])
def test_group_sync_follows_a_change_in_the_directory(
    ldap_client, slapd: Slapd, db, org, attributes: str
) -> None:
    for name in ("researchers", "ml-engineers", "contractors"):
        factories.team(db, org.org, name=name)
    client = ldap_client(ldap_group_sync=True, ldap_attributes=attributes)
    assert login(client, "bob@example.org", "bob-pw").status_code == 200
    bob = user_named(db, "bob@example.org")
    assert bob is not None and team_names(db, bob) == ["researchers"]
    move_bob(slapd, "researchers", "ml-engineers", 5001)
    try:
        assert login(client, "bob@example.org", "bob-pw").status_code == 200
        assert team_names(db, bob) == ["ml-engineers"]
    finally:
        move_bob(slapd, "ml-engineers", "researchers", 5002)
    last = events(db, "auth.login")[-1]
    assert "ml-engineers" in last.detail and "researchers" in last.detail


def test_without_group_sync_memberships_stay(ldap_client, db, org) -> None:
    team = factories.team(db, org.org, name="contractors")
    bob = factories.user(db, org.org, username="bob", email="bob@example.org")
    factories.member(db, team, bob)
    assert login(ldap_client(), "bob@example.org", "bob-pw").status_code == 200
    assert team_names(db, bob) == ["contractors"]


# --- the directory down, LOCAL_RESTORE ------------------------------------------------------


def test_unreachable_directory_is_a_clear_503_and_the_local_admin_still_gets_in(
    ldap_client, unreachable_url: str, db, org
) -> None:
    client = ldap_client(ldap_address=unreachable_url)
    response = login(client, "bob@example.org", "bob-pw")
    assert response.status_code == 503
    assert error(response)["code"] == "ldap_unreachable"
    assert "cannot be reached" in error(response)["message"]
    assert login(client, org.admin.email, ADMIN_PASSWORD).status_code == 200
    (failure,) = events(db, "auth.login_failed")
    assert "connection refused" in failure.detail


def test_local_restore_turns_ldap_sign_in_off(ldap_client, db, org) -> None:
    client = ldap_client(local_restore=True)
    assert error(login(client, "bob@example.org", "bob-pw"))["code"] == "sign_in_failed"
    assert user_named(db, "bob@example.org") is None
    assert login(client, org.admin.email, ADMIN_PASSWORD).status_code == 200


def test_a_local_password_wins_over_the_directory(ldap_client, db, org) -> None:
    """The bootstrap admin signs in locally even when the directory has its address."""
    client = ldap_client()
    assert login(client, org.admin.email, ADMIN_PASSWORD).status_code == 200
    assert events(db, "auth.login")[-1].after["method"] == "password"


@pytest.mark.parametrize(
    ("email", "password", "refusal"),
    [("alice@example.org", "alice-pw", None),
     ("alice@example.org", "wrong-pw", "sign_in_failed"),
     ("nobody@example.org", "alice-pw", "sign_in_failed")],
)  # fmt: skip
def test_a_directory_sign_in_spends_a_local_checks_time(
    slapd: Slapd, db, org, settings, monkeypatch, email: str, password: str, refusal: str | None
) -> None:
    """So how long a refusal takes does not tell which emails have a local password: every
    directory sign-in, right or wrong, spends one argon2id computation as a local one does,
    and holds no transaction meanwhile."""
    spent: list[bool] = []
    real = sign_in.spend_verification_time

    def watched() -> None:
        spent.append(db.in_transaction())
        real()

    monkeypatch.setattr(sign_in, "spend_verification_time", watched)
    ldap_settings = settings.model_copy(update=ldap_env(slapd))

    def attempt() -> Any:
        return sign_in_with_email_password(
            db, org=org.org, email=email, password=password, settings=ldap_settings
        )

    if refusal is None:
        assert attempt().browser_session.method == "ldap"
    else:
        with pytest.raises(AuthenticationFailed) as refused:
            attempt()
        assert refused.value.code == refusal
    assert spent == [False]


# --- the console's form uses the same service ----------------------------------------------


def submit_form(client: TestClient, email: str, password: str) -> Any:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and token, page.text
    data = {"email": email, "password": password, "csrf_token": token.group(1), "return_to": "/"}
    return client.post("/login", data=data, follow_redirects=False)


def test_the_console_form_signs_in_through_ldap(ldap_client) -> None:
    client = ldap_client()
    response = submit_form(client, "bob@example.org", "bob-pw")
    assert response.status_code == 303, response.text
    assert client.get("/api/v1/viewer").json()["email"] == "bob@example.org"
    refused = submit_form(ldap_client(), "carol@example.org", "wrong")
    assert refused.status_code == 401
    assert re.search(r'id="error"[^>]*>wrong email or password<', refused.text)


def test_the_console_form_says_when_the_directory_is_down(ldap_client, unreachable_url) -> None:
    response = submit_form(ldap_client(ldap_address=unreachable_url), "bob@example.org", "bob-pw")
    assert response.status_code == 503
    assert re.search(r'id="error"[^>]*>the LDAP directory cannot be reached', response.text)


def test_multi_org_mode_uses_the_named_orgs_ldap(ldap_client, db, org) -> None:
    client = ldap_client(mode="multi", outbound_allow=LOOPBACK)
    # Without ?org= no organization's directory applies: local passwords only.
    assert error(login(client, "bob@example.org", "bob-pw"))["code"] == "sign_in_failed"
    response = client.post(
        LOGIN, params={"org": org.org.name}, json={"email": "bob@example.org", "password": "bob-pw"}
    )
    assert response.status_code == 200, response.text
    assert login(client, org.admin.email, ADMIN_PASSWORD).status_code == 200


def test_multi_org_mode_does_not_connect_to_a_directory_on_a_private_address(
    ldap_client, db, org
) -> None:
    """``federation.destinations``: in multi-org mode a directory on loopback (or any address
    that is not public) is refused before a connection is made, unless the operator allows it."""
    client = ldap_client(mode="multi")
    body = {"email": "bob@example.org", "password": "bob-pw"}
    response = client.post(LOGIN, params={"org": org.org.name}, json=body)
    assert response.status_code == 503
    assert error(response)["code"] == "ldap_destination_refused"
    assert "may reach" in error(response)["message"]
    (failure,) = events(db, "auth.login_failed")
    assert "LDAP connect: will not connect: 127.0.0.1 is not a public address" in failure.detail
    assert db.query(User).filter_by(email="bob@example.org").count() == 0


def test_multi_org_mode_refuses_to_store_a_directory_on_a_private_address(
    make_client, slapd: Slapd, org
) -> None:
    client = make_client(mode="multi")
    headers = {**org.admin_headers, "X-Rolecall-Org": org.org.name}
    refused = client.patch("/api/v1/sso/ldap", json={"address": slapd.url}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "address"
    assert "not a public address (multi-org mode)" in refused.json()["error"]["message"]
    assert client.get("/api/v1/sso", headers=headers).json()["ldap"]["address"] is None
    allowed = make_client(mode="multi", outbound_allow=LOOPBACK)
    stored = allowed.patch("/api/v1/sso/ldap", json={"address": slapd.url}, headers=headers)
    assert stored.status_code == 200, stored.text
