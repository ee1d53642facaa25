"""OIDC sign-in end to end against the real node oidc-provider: rolecall's ``/oidc/login`` and
``/oidc/callback`` driven by an HTTP client that follows the provider's redirects (and posts its
self-submitting ``form_post`` pages, as a browser's script would).

The app runs in process (``TestClient``) behind the public URL ``http://127.0.0.1:8080``; the
user agent sends that origin to the app and everything else to the provider over real HTTP.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.identity.models import BrowserSession
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from tests import factories
from tests.idp.conftest import LOOPBACK
from tests.idp.oidc_op import (
    SECRET,
    AppTransport,
    AutoForm,
    free_port,
    query_of,
    running_provider,
    walk,
)

RP = "http://127.0.0.1:8080"
CALLBACK = f"{RP}/oidc/callback"


@pytest.fixture(scope="session")
def sso_op() -> Iterator[str]:
    """The provider every SSO test shares: it signs the login_hint's user in at once."""
    with running_provider(OP_POST_LOGOUT_REDIRECT_URIS=f"{RP}/") as issuer:
        yield issuer


@dataclass
class Rp:
    """rolecall as a relying party, and a user agent with its own cookie jar."""

    client: TestClient
    agent: httpx.Client
    issuer: str

    def start(self, **params: str) -> httpx.Response:
        """``/oidc/login`` up to the provider's answer for the callback, not yet delivered: a
        redirect (code flow) or a page posting a form (form_post)."""
        first = self.agent.get(f"{RP}/oidc/login", params=params)
        return walk(self.agent, first, until=CALLBACK, deliver=False)

    def sign_in(self, prompts: list[str] | None = None, **params: str) -> httpx.Response:
        """The whole dance; returns rolecall's callback answer (or the error on the way)."""
        first = self.agent.get(f"{RP}/oidc/login", params=params)
        return walk(self.agent, first, until=CALLBACK, prompts=prompts)

    def viewer(self) -> httpx.Response:
        return self.agent.get(f"{RP}/api/v1/viewer")


@pytest.fixture
def make_rp(make_client, org, sso_op) -> Iterator[Callable[..., Rp]]:  # type: ignore[no-untyped-def]
    agents: list[httpx.Client] = []

    def make(issuer: str | None = None, **overrides: object) -> Rp:
        settings = {
            "public_url": RP,
            "oidc_issuer": issuer or sso_op,
            "oidc_client_id": "rolecall-pkce",
            **overrides,
        }
        client = make_client(**settings)
        agent = httpx.Client(mounts={RP: AppTransport(client)}, timeout=10)
        agents.append(agent)
        return Rp(client, agent, issuer or sso_op)

    yield make
    for agent in agents:
        agent.close()


def signed_in(response: httpx.Response, to: str = "/") -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == to
    assert "rolecall_session" in response.headers.get("set-cookie", "")


def events(db, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return list(db.scalars(query))


def error_of(response: httpx.Response) -> dict[str, str]:
    return response.json()["error"]  # type: ignore[no-any-return]


# --- the two flows ------------------------------------------------------------------------------


def test_code_flow_with_pkce_provisions_the_user_and_the_cookie_names_it(make_rp, db, org):
    rp = make_rp()
    login = rp.agent.get(f"{RP}/oidc/login", params={"login_hint": "alice@example.org"})
    assert login.status_code == 302
    asked = query_of(login.headers["location"])
    assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
    assert asked["scope"] == "openid profile email"
    assert asked["redirect_uri"] == CALLBACK and asked["client_id"] == "rolecall-pkce"
    assert "max_age" not in asked  # ROLECALL_OIDC_MAX_AGE unset
    answer = walk(rp.agent, login, until=CALLBACK)
    assert "code" in query_of(str(answer.request.url))
    signed_in(answer)
    viewer = rp.viewer()
    assert viewer.status_code == 200, viewer.text
    assert viewer.json()["email"] == "alice@example.org"
    user = db.scalar(select(User).where(User.email_key == "alice@example.org"))
    assert user is not None
    session = db.scalar(select(BrowserSession).where(BrowserSession.user_id == user.id))
    assert session.method == "oidc" and session.id_token
    assert events(db, "auth.login")[-1].after["method"] == "oidc"


def test_code_flow_with_a_client_secret_by_basic(make_rp):
    rp = make_rp(oidc_client_id="rolecall-secret", oidc_secret=SECRET)
    signed_in(rp.sign_in(login_hint="alice@example.org"))
    assert rp.viewer().json()["email"] == "alice@example.org"


def test_post_only_provider_and_email_from_userinfo(make_rp):
    """A provider offering only client_secret_post, keeping scope claims out of the ID token
    (OpenID Connect Core's default): the secret goes in the form, the email comes from userinfo."""
    with running_provider(
        OP_TOKEN_AUTH_METHODS="client_secret_post", OP_CONFORM_ID_TOKEN="1"
    ) as issuer:
        rp = make_rp(issuer, oidc_client_id="rolecall-secret-post", oidc_secret=SECRET)
        signed_in(rp.sign_in(login_hint="alice@example.org"))
        assert rp.viewer().json()["email"] == "alice@example.org"


def test_implicit_flow_with_form_post(make_rp, db):
    rp = make_rp(oidc_client_id="rolecall-implicit", oidc_auth_method="implicit")
    page = rp.start(login_hint="Bob@Example.org", return_to="/acme/projects")
    form = AutoForm.of(page)
    assert form is not None and form.action == CALLBACK and "id_token" in form.fields
    answer = rp.agent.post(form.action, data=form.fields)
    signed_in(answer, to="/acme/projects")
    assert rp.viewer().json()["email"].lower() == "bob@example.org"


def test_an_existing_user_matched_by_email_case_insensitively(make_rp, db, org):
    bob = factories.user(db, org.org, username="bobby", email="BOB@example.org")
    rp = make_rp()
    signed_in(rp.sign_in(login_hint="bob"))
    assert rp.viewer().json()["username"] == "bobby"
    assert db.scalar(select(User).where(User.email_key == "bob@example.org")).id == bob.id


def test_custom_scopes_are_asked_for(make_rp):
    rp = make_rp(oidc_custom_scopes="groups offline_access,groups")
    login = rp.agent.get(f"{RP}/oidc/login")
    assert (
        query_of(login.headers["location"])["scope"] == "openid profile email groups offline_access"
    )


# --- provisioning -------------------------------------------------------------------------------


def test_provisioning_off_refuses_unknown_users_and_admits_known_ones(make_rp, db, org):
    rp = make_rp(disable_sso_provisioning=True)
    refused = rp.sign_in(login_hint="alice@example.org")
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "sso_provisioning_disabled"
    assert db.scalar(select(User).where(User.email_key == "alice@example.org")) is None
    assert events(db, "auth.login_failed")[-1].detail.startswith("oidc sign-in failed")
    factories.user(db, org.org, username="alice", email="alice@example.org")
    signed_in(rp.sign_in(login_hint="alice@example.org"))


def test_a_deactivated_user_is_refused(make_rp, db, org):
    factories.user(db, org.org, username="bob", email="bob@example.org", active=False)
    rp = make_rp()
    refused = rp.sign_in(login_hint="bob")
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "user_deactivated"
    assert rp.viewer().status_code == 401


def _team_names(db, user_id: str) -> set[str]:  # type: ignore[no-untyped-def]
    db.expire_all()
    query = (
        select(Team.name)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == user_id, Team.kind == "team")
    )
    return set(db.scalars(query))


def test_group_claims_decide_team_memberships(make_rp, db, org):
    alice = factories.user(db, org.org, username="alice", email="alice@example.org")
    ml = factories.team(db, org.org, name="ml-engineers")
    old = factories.team(db, org.org, name="old-team")
    factories.member(db, old, alice)
    rp = make_rp(enable_sso_group_claims=True)
    signed_in(rp.sign_in(login_hint="alice@example.org"))  # groups: ml-engineers, admins
    assert _team_names(db, alice.id) == {ml.name}
    detail = events(db, "auth.login")[-1].detail
    assert "added: ml-engineers" in detail and "removed: old-team" in detail
    assert "admins" in detail  # a group that is no team: ignored, and said so
    changes = {e.action for e in events(db, "team.member.add") + events(db, "team.member.remove")}
    assert changes == {"team.member.add", "team.member.remove"}


def test_without_group_claims_memberships_stay(make_rp, db, org):
    alice = factories.user(db, org.org, username="alice", email="alice@example.org")
    factories.team(db, org.org, name="ml-engineers")
    old = factories.team(db, org.org, name="old-team")
    factories.member(db, old, alice)
    signed_in(make_rp().sign_in(login_hint="alice@example.org"))
    assert _team_names(db, alice.id) == {"old-team"}


def test_identifier_claims_name_the_user(make_rp, db):
    rp = make_rp(use_identifier_claims=True)
    signed_in(rp.sign_in(login_hint="alice@example.org"))
    viewer = rp.viewer().json()
    assert viewer["username"] == "alice_a"
    user = db.scalar(select(User).where(User.email_key == "alice@example.org"))
    assert user.full_name == "Alice Anders"


def test_an_invalid_preferred_username_is_refused_clearly(make_rp, db):
    rp = make_rp(use_identifier_claims=True)
    refused = rp.sign_in(login_hint="erin@example.org")  # preferred_username "erin evans!"
    assert refused.status_code == 401
    error = error_of(refused)
    assert error["code"] == "invalid_identity"
    assert "preferred_username" in error["message"] and "'erin evans!'" in error["message"]
    assert db.scalar(select(User).where(User.email_key == "erin@example.org")) is None


def test_an_identity_without_email_is_refused(make_rp):
    refused = make_rp().sign_in(login_hint="nomail")
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "email_missing"


# --- what is checked ----------------------------------------------------------------------------


def test_a_replayed_state_is_refused(make_rp):
    rp = make_rp()
    callback = rp.start(login_hint="alice@example.org").headers["location"]
    signed_in(rp.agent.get(callback))
    replayed = rp.agent.get(callback)
    assert replayed.status_code == 401
    assert error_of(replayed)["code"] == "invalid_state"
    assert "already used" in error_of(replayed)["message"]


def test_an_unknown_or_missing_state_is_refused(make_rp):
    rp = make_rp()
    cases = [
        ("?code=x&state=made-up", "is unknown"),
        ("?code=x", "has no state"),
        ("?code=x&state=" + "s" * 513, "longer than 512 characters"),
    ]
    for query, why in cases:
        refused = rp.agent.get(CALLBACK + query)
        assert refused.status_code == 401
        assert error_of(refused)["code"] == "invalid_state"
        assert why in error_of(refused)["message"]


def test_a_wrong_or_missing_iss_parameter_is_refused(make_rp, sso_op):
    rp = make_rp()
    for iss in ("http://127.0.0.1:1", None):
        params = query_of(rp.start(login_hint="alice@example.org").headers["location"])
        assert params["iss"] == sso_op  # RFC 9207: the provider says who it is
        if iss is None:
            del params["iss"]
        else:
            params["iss"] = iss
        refused = rp.agent.get(f"{CALLBACK}?{urlencode(params)}")
        assert refused.status_code == 401, refused.text
        assert error_of(refused)["code"] == "iss_mismatch"
    assert rp.viewer().status_code == 401


def _implicit_post(rp: Rp, **hint: str) -> AutoForm:
    form = AutoForm.of(rp.start(**hint))
    assert form is not None
    return form


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_tampered_id_token_is_refused(make_rp, db):
    rp = make_rp(oidc_client_id="rolecall-implicit", oidc_auth_method="implicit")
    form = _implicit_post(rp, login_hint="alice@example.org")
    header, payload, signature = form.fields["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = {**claims, "email": "admin@example.org"}
    form.fields["id_token"] = f"{header}.{_b64(forged)}.{signature}"
    refused = rp.agent.post(CALLBACK, data=form.fields)
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "invalid_id_token"
    assert "signature" in error_of(refused)["message"]
    # Unsigned (alg none) and HMAC tokens never get as far as a key.
    for alg in ("none", "HS256"):
        form = _implicit_post(rp, login_hint="alice@example.org")
        _, payload, signature = form.fields["id_token"].split(".")
        form.fields["id_token"] = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{payload}.{signature}"
        refused = rp.agent.post(CALLBACK, data=form.fields)
        assert error_of(refused)["code"] == "invalid_id_token"
        assert "asymmetric" in error_of(refused)["message"]
    assert rp.viewer().status_code == 401
    assert db.scalar(select(User).where(User.email_key == "admin@example.org")) is None


def test_an_id_token_with_another_logins_nonce_is_refused(make_rp):
    rp = make_rp(oidc_client_id="rolecall-implicit", oidc_auth_method="implicit")
    first = _implicit_post(rp, login_hint="alice@example.org")
    second = _implicit_post(rp, login_hint="alice@example.org")
    # The first sign-in's (validly signed) ID token delivered with the second one's state.
    mixed = {**second.fields, "id_token": first.fields["id_token"]}
    refused = rp.agent.post(CALLBACK, data=mixed)
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "invalid_id_token"
    assert "nonce" in error_of(refused)["message"]


def test_the_providers_error_is_shown(make_rp, sso_op):
    rp = make_rp()
    login = rp.agent.get(f"{RP}/oidc/login", headers={"Accept": "text/html"})
    state = query_of(login.headers["location"])["state"]
    params = {
        "error": "access_denied",
        "error_description": "the user said <no>",
        "state": state,
        "iss": sso_op,
    }
    refused = rp.agent.get(f"{CALLBACK}?{urlencode(params)}", headers={"Accept": "text/html"})
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("text/html")
    assert "access_denied" in refused.text and "the user said &lt;no&gt;" in refused.text
    again = rp.agent.get(f"{CALLBACK}?{urlencode(params)}")
    assert error_of(again)["code"] == "invalid_state"  # the state went with the refusal


def test_an_unreachable_provider_is_a_clear_503_and_passwords_still_work(make_rp, org):
    rp = make_rp(issuer=f"http://127.0.0.1:{free_port()}")
    refused = rp.agent.get(f"{RP}/oidc/login")
    assert refused.status_code == 503
    assert error_of(refused)["code"] == "idp_unavailable"
    assert "cannot be reached" in error_of(refused)["message"]
    body = {"email": org.admin.email, "password": factories.ADMIN_PASSWORD}
    assert rp.agent.post(f"{RP}/api/v1/auth/login", json=body).status_code == 200
    assert rp.viewer().json()["email"] == org.admin.email


def test_return_to_stays_on_this_site(make_rp):
    rp = make_rp()
    for asked, expected in (
        ("/acme/ml", "/acme/ml"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
    ):
        signed_in(rp.sign_in(login_hint="alice@example.org", return_to=asked), to=expected)


def test_local_restore_turns_oidc_sign_in_off(make_rp):
    rp = make_rp(local_restore=True)
    refused = rp.agent.get(f"{RP}/oidc/login")
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "sso_disabled"


def test_without_configuration_the_login_says_so(make_rp):
    rp = make_rp(oidc_issuer=None)
    refused = rp.agent.get(f"{RP}/oidc/login")
    assert refused.status_code == 404
    assert error_of(refused)["code"] == "oidc_not_configured"


# --- at_hash and auth_time -----------------------------------------------------------------------


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def _session_id_token(db) -> dict[str, object]:  # type: ignore[no-untyped-def]
    db.expire_all()
    row = db.scalar(select(BrowserSession).order_by(BrowserSession.created_at.desc()).limit(1))
    assert row is not None and row.id_token
    return _claims(row.id_token)


def _start_changed(
    rp: Rp, change: Callable[[dict[str, str]], None], **params: str
) -> httpx.Response:
    """``rp.start`` with the authorization request changed on its way to the provider (by the
    user agent, or anyone between it and the provider)."""
    login = rp.agent.get(f"{RP}/oidc/login", params=params)
    url = urlsplit(login.headers["location"])
    asked = query_of(login.headers["location"])
    change(asked)
    first = rp.agent.get(url._replace(query=urlencode(asked)).geturl())
    return walk(rp.agent, first, until=CALLBACK, deliver=False)


def _with_token(asked: dict[str, str]) -> None:
    asked["response_type"] = "id_token token"


def _refused_as(response: httpx.Response, db, code: str, says: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    error = error_of(response)
    assert error["code"] == code, error
    assert says in error["message"], error
    assert says in events(db, "auth.login_failed")[-1].detail


def test_the_code_flows_at_hash_is_checked_against_the_access_token(make_rp, db):
    with running_provider(OP_CODE_AT_HASH="1") as issuer:
        rp = make_rp(issuer)
        signed_in(rp.sign_in(login_hint="alice@example.org"))
        assert "at_hash" in _session_id_token(db)


def test_a_code_flow_access_token_not_matching_at_hash_is_refused(make_rp, db):
    with running_provider(OP_CODE_AT_HASH="other-token") as issuer:
        rp = make_rp(issuer)
        refused = rp.sign_in(login_hint="alice@example.org")
        _refused_as(refused, db, "invalid_id_token", "at_hash does not match the access token")
        assert rp.viewer().status_code == 401


def test_an_implicit_access_token_is_bound_by_at_hash(make_rp, db):
    rp = make_rp(oidc_client_id="rolecall-implicit", oidc_auth_method="implicit")
    form = AutoForm.of(_start_changed(rp, _with_token, login_hint="alice@example.org"))
    assert form is not None and form.fields["access_token"]
    assert "at_hash" in _claims(form.fields["id_token"])
    signed_in(rp.agent.post(CALLBACK, data=form.fields))
    assert rp.viewer().json()["email"] == "alice@example.org"


@pytest.mark.parametrize("alg", ["ES384", "EdDSA"])
def test_at_hash_uses_the_hash_of_the_id_tokens_alg(make_rp, alg):
    """The provider's own at_hash (oidc-provider's implementation): SHA-384 for ES384, SHA-512
    for EdDSA with Ed25519."""
    with running_provider(OP_ID_TOKEN_ALG=alg) as issuer:
        rp = make_rp(issuer, oidc_client_id="rolecall-implicit", oidc_auth_method="implicit")
        form = AutoForm.of(_start_changed(rp, _with_token, login_hint="alice@example.org"))
        assert form is not None
        assert (
            json.loads(base64.urlsafe_b64decode(form.fields["id_token"].split(".")[0] + "=="))[
                "alg"
            ]
            == alg
        )
        signed_in(rp.agent.post(CALLBACK, data=form.fields))


def test_a_substituted_implicit_access_token_is_refused(make_rp, db):
    rp = make_rp(oidc_client_id="rolecall-implicit", oidc_auth_method="implicit")
    bobs = AutoForm.of(_start_changed(rp, _with_token, login_hint="bob@example.org"))
    alices = AutoForm.of(_start_changed(rp, _with_token, login_hint="alice@example.org"))
    assert bobs is not None and alices is not None
    swapped = {**alices.fields, "access_token": bobs.fields["access_token"]}
    refused = rp.agent.post(CALLBACK, data=swapped)
    _refused_as(refused, db, "invalid_id_token", "at_hash does not match the access token")
    assert rp.viewer().status_code == 401


def test_an_implicit_access_token_without_at_hash_is_refused(make_rp, db):
    """An ID token from ``response_type=id_token`` (no at_hash) with an access token added."""
    rp = make_rp(oidc_client_id="rolecall-implicit", oidc_auth_method="implicit")
    other = AutoForm.of(_start_changed(rp, _with_token, login_hint="bob@example.org"))
    form = _implicit_post(rp, login_hint="alice@example.org")
    assert other is not None and "at_hash" not in _claims(form.fields["id_token"])
    injected = {**form.fields, "access_token": other.fields["access_token"]}
    refused = rp.agent.post(CALLBACK, data=injected)
    _refused_as(refused, db, "invalid_id_token", "no at_hash")


def test_max_age_is_asked_for_and_auth_time_checked(make_rp, db):
    rp = make_rp(oidc_max_age=300)
    login = rp.agent.get(f"{RP}/oidc/login", params={"login_hint": "alice@example.org"})
    assert query_of(login.headers["location"])["max_age"] == "300"
    signed_in(walk(rp.agent, login, until=CALLBACK))
    assert isinstance(_session_id_token(db)["auth_time"], int)


def test_an_authentication_older_than_max_age_is_refused(make_rp, db):
    """A provider that keeps an hour-old login whatever max_age asks."""
    with running_provider(OP_AUTH_AGE="3600") as issuer:
        rp = make_rp(issuer, oidc_max_age=600)
        refused = rp.sign_in(login_hint="alice@example.org")
        _refused_as(refused, db, "invalid_id_token", "longer than max_age=600")
        assert rp.viewer().status_code == 401
        signed_in(make_rp(issuer).sign_in(login_hint="alice@example.org"))  # no max_age: in


def test_a_token_without_auth_time_is_refused_when_max_age_was_asked(make_rp, db):
    """max_age dropped from the request on its way: the provider sends no auth_time."""
    rp = make_rp(oidc_max_age=300)
    answer = _start_changed(rp, lambda asked: asked.pop("max_age"), login_hint="alice@example.org")
    refused = rp.agent.get(answer.headers["location"])
    _refused_as(refused, db, "invalid_id_token", "no auth_time although max_age=300")


# --- logout and SAML ----------------------------------------------------------------------------


def _logout_form(rp: Rp) -> dict[str, str]:
    """The confirmation page ``GET /logout`` shows: its form posts the session's token."""
    page = rp.agent.get(f"{RP}/logout", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    form = AutoForm.of(page)
    assert form is not None and form.action == "/logout"
    return form.fields


def test_logout_revokes_the_session_and_signs_out_at_the_provider(make_rp, db, sso_op):
    rp = make_rp()
    signed_in(rp.sign_in(login_hint="alice@example.org"))
    cookie = rp.agent.cookies.get("rolecall_session")
    fields = _logout_form(rp)
    assert rp.viewer().status_code == 200  # showing the page signs nobody out
    out = rp.agent.post(f"{RP}/logout", data=fields)
    assert out.status_code == 303
    target = out.headers["location"]
    assert target.startswith(f"{sso_op}/session/end?")
    params = query_of(target)
    assert params["post_logout_redirect_uri"] == f"{RP}/"
    assert params["id_token_hint"].count(".") == 2
    # The cookie is cleared, and the session is over even for a client that keeps it.
    rp.agent.cookies.set("rolecall_session", cookie)
    assert rp.viewer().status_code == 401
    assert events(db, "auth.logout")
    # The provider ends its own session and sends the browser back to the host root.
    home = walk(rp.agent, rp.agent.get(target), until=f"{RP}/")
    assert str(home.request.url) == f"{RP}/"
    # Signed out at the provider too: the next sign-in asks for a login again.
    prompts: list[str] = []
    signed_in(rp.sign_in(prompts))
    assert "login" in prompts


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_logout_without_the_sessions_token_is_refused_and_the_session_stays(make_rp, db, token):
    """Logout CSRF: another site's form (or link) must not end the session here, nor send the
    browser to sign out at the provider."""
    rp = make_rp()
    signed_in(rp.sign_in(login_hint="alice@example.org"))
    refused = rp.agent.post(f"{RP}/logout", data={} if token is None else {"csrf_token": token})
    assert refused.status_code == 403
    error = error_of(refused)
    assert error["code"] == "csrf_failed" and error["rule"] == "csrf"
    assert "CSRF token" in error["message"]
    assert "set-cookie" not in refused.headers and "location" not in refused.headers
    assert rp.viewer().status_code == 200
    assert events(db, "auth.logout") == []


def test_logout_of_a_password_session_goes_home(make_rp, org):
    rp = make_rp()
    body = {"email": org.admin.email, "password": factories.ADMIN_PASSWORD}
    signed = rp.agent.post(f"{RP}/api/v1/auth/login", json=body)
    assert signed.status_code == 200
    assert rp.agent.post(f"{RP}/logout").status_code == 403
    # The sign-in's csrf_token (what the console's pages carry) does it.
    token = signed.json()["csrf_token"]
    out = rp.agent.post(f"{RP}/logout", data={"csrf_token": token})
    assert (out.status_code, out.headers["location"]) == (303, "/")
    assert rp.viewer().status_code == 401
    assert rp.agent.get(f"{RP}/logout").headers["location"] == "/"  # no session: nothing to do


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/saml/login"), ("POST", "/saml/acs"), ("GET", "/saml/metadata")]
)
def test_saml_is_not_supported(client, method, path):
    response = client.request(method, path)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "saml_not_supported"
    assert error["message"] == "SAML is not supported; use OIDC or LDAP"
    assert urlsplit(path).path.startswith("/saml")


def test_settings_stored_through_the_api_are_used(make_rp, org, sso_op):
    rp = make_rp(oidc_issuer=None, oidc_client_id=None)
    body = {"issuer": sso_op, "client_id": "rolecall-implicit", "auth_method": "implicit"}
    stored = rp.client.patch("/api/v1/sso/oidc", json=body, headers=org.admin_headers)
    assert stored.status_code == 200, stored.text
    login = rp.agent.get(f"{RP}/oidc/login")
    assert query_of(login.headers["location"])["response_type"] == "id_token"
    signed_in(rp.sign_in(login_hint="alice@example.org"))


def test_multi_org_mode_signs_in_to_the_named_organization(make_rp, org):
    rp = make_rp(mode="multi", outbound_allow=LOOPBACK)
    unnamed = rp.agent.get(f"{RP}/oidc/login")
    assert unnamed.status_code == 422
    assert error_of(unnamed)["field"] == "org"
    assert rp.agent.get(f"{RP}/oidc/login", params={"org": "nope"}).status_code == 404
    signed_in(rp.sign_in(org=org.org.name, login_hint="alice@example.org"))
    viewer = rp.agent.get(f"{RP}/api/v1/viewer", headers={"X-Rolecall-Org": org.org.name})
    assert viewer.json()["email"] == "alice@example.org"


def test_a_response_carried_to_another_browser_is_refused(make_rp, db):
    """Login CSRF (RFC 6749 §10.12): an attacker's own callback URL, opened by a victim, must
    not sign the victim in as the attacker."""
    rp = make_rp()
    callback = rp.start(login_hint="alice@example.org").headers["location"]
    victim = httpx.Client(mounts={RP: AppTransport(rp.client)}, timeout=10)
    refused = victim.get(callback)
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "invalid_state"
    assert "another browser" in error_of(refused)["message"]
    assert victim.get(f"{RP}/api/v1/viewer").status_code == 401
    victim.close()
    # The state is spent: the attacker's browser cannot use it afterwards either.
    assert error_of(rp.agent.get(callback))["code"] == "invalid_state"


def test_a_provider_gone_before_the_code_exchange_is_a_clear_503(make_rp):
    with running_provider() as issuer:
        rp = make_rp(issuer)
        callback = rp.start(login_hint="alice@example.org").headers["location"]
    refused = rp.agent.get(callback)  # the token endpoint is gone now
    assert refused.status_code == 503
    assert error_of(refused)["code"] == "idp_unavailable"
    assert "token endpoint cannot be reached" in error_of(refused)["message"]


# --- where the provider may be (federation.destinations) ----------------------------------------


def test_multi_org_mode_does_not_call_a_provider_on_a_private_address(make_rp, org):
    """In multi-org mode the provider on loopback is refused before any request goes out."""
    rp = make_rp(mode="multi")
    refused = rp.agent.get(f"{RP}/oidc/login", params={"org": org.org.name})
    assert refused.status_code == 503
    assert error_of(refused)["code"] == "idp_unavailable"
    assert "not a public address (multi-org mode)" in error_of(refused)["message"]


def test_multi_org_mode_refuses_to_store_a_provider_on_a_private_address(make_rp, org, sso_op):
    rp = make_rp(mode="multi", oidc_issuer=None, oidc_client_id=None)
    headers = {**org.admin_headers, "X-Rolecall-Org": org.org.name}
    body = {"issuer": sso_op, "client_id": "rolecall-pkce"}
    refused = rp.client.patch("/api/v1/sso/oidc", json=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert error_of(refused)["field"] == "issuer"
    assert "not a public address (multi-org mode)" in error_of(refused)["message"]
    stored = rp.client.get("/api/v1/sso", headers=headers).json()["oidc"]
    assert stored["issuer"] is None and stored["client_id"] is None  # nothing stored
