"""``POST /oidc/token`` against a real JWT issuer on loopback (discovery + JWKS over HTTP):
tokens for users and external service accounts, and a refusal for each failed check, each
naming the check (RFC 6749 §5.2 JSON) and audited with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from rolecall.identity.models import AccessToken
from rolecall.orgs.models import OrgMembership
from tests import factories
from tests.idp.conftest import API, GRANT, LOOPBACK, bearer, exchange, register
from tests.idp.jwt_issuer import unsigned


@pytest.fixture
def alice(db, org):
    return factories.user(db, org.org, username="alice", email="Alice@Example.org")


def _viewer(client, token):
    return client.get(f"{API}/viewer", headers=bearer(token))


# --- accepted -----------------------------------------------------------------------------------


def test_user_exchanges_a_jwt_for_an_access_token(client, db, org, federated, alice, exchanges):
    jwt = federated.mint(sub="alice@example.org", aud=org.org.name)
    response = exchange(client, jwt)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].startswith("rct_")
    assert response.headers["cache-control"] == "no-store"
    viewer = _viewer(client, body["access_token"])
    assert viewer.status_code == 200
    assert (viewer.json()["username"], viewer.json()["credential"]) == ("alice", "access_token")
    # Stored as a digest only.
    row = db.scalar(select(AccessToken).where(AccessToken.user_id == alice.id))
    assert row is not None and body["access_token"] not in (row.digest, row.subject)
    [event] = exchanges()
    assert event.after["outcome"] == "accepted"
    assert event.actor_name == "alice" and event.object_id == row.id
    assert body["access_token"] not in str(event.after) + str(event.detail)
    assert jwt not in str(event.after) + str(event.detail)


def test_wandb_is_an_audience_of_every_organization(client, org, federated, alice):
    response = exchange(client, federated.mint(sub="alice@example.org", aud=["other", "wandb"]))
    assert response.status_code == 200, response.text


def test_external_service_account_exchanges_and_acts_with_attribution(client, db, org, federated):
    team = factories.team(db, org.org, name="vision")
    factories.project(db, team, name="p")
    human = factories.user(db, org.org, username="bob")
    factories.member(db, team, human)
    subject = "repo:acme/train:ref:refs/heads/main"
    created = client.post(
        f"{API}/service-accounts",
        json={"name": "ci", "scope": "team", "team": "vision", "kind": "external",
              "subject": subject},
        headers=org.admin_headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["api_key"] is None
    response = exchange(client, federated.mint(sub=subject, aud=org.org.name))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    viewer = _viewer(client, token).json()
    assert (viewer["kind"], viewer["name"], viewer["credential"]) == (
        "service_account", "ci", "access_token",
    )  # fmt: skip
    run = client.post(
        f"{API}/projects/vision/p/runs",
        json={"name": "r1"},
        headers={**bearer(token), "X-Wandb-Username": "bob"},
    )
    assert run.status_code == 201, run.text
    assert run.json()["attributed_to"] == "bob"
    assert run.headers["X-Rolecall-Attribution"].startswith("allow")


# --- refused: one test per check ------------------------------------------------------------------


def _refused(response, error, check):
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith(f"{check}:") or check in body["error_description"]
    return body["error_description"]


def _claims(issuer, org, **over):
    return issuer.claims(**{"sub": "alice@example.org", "aud": org.org.name, **over})


def test_a_users_email_names_the_user_even_if_an_account_has_it_as_subject(
    client, db, org, federated, alice
):
    # An account given a user's email as its subject (made before the user joined, or
    # written straight to the database) must not take that user's JWTs.
    team = factories.team(db, org.org, name="vision")
    account = factories.service_account(db, org.org, team, name="capture")
    account.kind, account.subject = "external", "alice@example.org"
    db.flush()

    response = exchange(client, federated.mint(sub="alice@example.org", aud=org.org.name))

    assert response.status_code == 200, response.text
    viewer = _viewer(client, response.json()["access_token"]).json()
    assert (viewer["kind"], viewer["username"]) == ("user", "alice")
    db.execute(update(OrgMembership).where(OrgMembership.user_id == alice.id).values(active=False))
    refused = exchange(client, federated.mint(sub="alice@example.org", aud=org.org.name))
    assert refused.status_code == 400 and "deactivated" in refused.json()["error_description"]


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("alg_none", "alg"),
        ("hs256_with_public_key", "alg"),
        ("expired", "exp"),
        ("not_yet_valid", "nbf"),
        ("issued_in_the_future", "iat"),
        ("wrong_iss", "iss"),
        ("wrong_aud", "aud"),
        ("no_aud", "aud"),
        ("unknown_sub", "sub"),
        ("unknown_kid", "signature"),
        ("key_not_in_jwks", "signature"),
        ("malformed", "format"),
        ("not_base64", "format"),
        ("encrypted", "format"),
        ("oversized", "format"),
        ("no_exp", "exp"),
        ("crit_header", "alg"),
    ],
)
def test_refused_assertion_names_the_failed_check(
    client, org, federated, alice, exchanges, case, check
):
    sub, aud = "alice@example.org", org.org.name
    iss = federated
    jwts = {
        "alg_none": lambda: unsigned(_claims(iss, org)),
        "hs256_with_public_key": lambda: iss.mint_hs256_with_public_key(sub=sub, aud=aud),
        "expired": lambda: iss.mint(sub=sub, aud=aud, ttl=-120),
        "not_yet_valid": lambda: iss.mint(sub=sub, aud=aud, nbf=int(_now()) + 3600),
        "issued_in_the_future": lambda: iss.mint(sub=sub, aud=aud, iat=int(_now()) + 3600),
        "wrong_iss": lambda: iss.mint(sub=sub, aud=aud, iss="https://evil.example"),
        "wrong_aud": lambda: iss.mint(sub=sub, aud="another-org"),
        "no_aud": lambda: iss.mint(sub=sub),
        "unknown_sub": lambda: iss.mint(sub="mallory@example.org", aud=aud),
        "unknown_kid": lambda: iss.mint(sub=sub, aud=aud, key=iss.rogue),
        "key_not_in_jwks": lambda: iss.mint(
            sub=sub, aud=aud, key=iss.rogue, header={"kid": iss.signing_key.kid}
        ),
        "malformed": lambda: "not-a-jwt",
        "not_base64": lambda: "%%%.%%%.%%%",
        "encrypted": lambda: "a.b.c.d.e",
        "oversized": lambda: iss.mint(sub=sub, aud=aud, padding="x" * 20_000),
        "no_exp": lambda: iss.mint(sub=sub, aud=aud, exp=None),
        "crit_header": lambda: iss.mint_by_hand({"crit": ["x-a"], "x-a": 1}, sub=sub, aud=aud),
    }
    description = _refused(exchange(client, jwts[case]()), "invalid_grant", check)
    [event] = exchanges()
    assert event.after["outcome"] == "refused"
    assert event.after["check"] == check
    assert event.detail == description
    assert event.org_id == org.org.id


def _now():
    import time

    return time.time()


def test_deactivated_user_is_refused_and_its_tokens_stop_working(client, db, org, federated, alice):
    jwt = federated.mint(sub="alice@example.org", aud=org.org.name)
    token = exchange(client, jwt).json()["access_token"]
    assert _viewer(client, token).status_code == 200
    response = client.post(f"{API}/users/alice/deactivate", headers=org.admin_headers)
    assert response.status_code == 200, response.text
    assert _viewer(client, token).status_code == 401
    description = _refused(exchange(client, jwt), "invalid_grant", "sub")
    assert "deactivated" in description


def test_deleted_service_account_tokens_stop_working(client, db, org, federated):
    team = factories.team(db, org.org, name="vision")
    body = {"name": "ci", "scope": "team", "team": "vision", "kind": "external", "subject": "ci-1"}
    assert client.post(f"{API}/service-accounts", json=body, headers=org.admin_headers).is_success
    token = exchange(client, federated.mint(sub="ci-1", aud=org.org.name)).json()["access_token"]
    assert _viewer(client, token).status_code == 200
    deleted = client.delete(f"{API}/service-accounts/ci", headers=org.admin_headers)
    assert deleted.status_code == 204
    refused = _viewer(client, token)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_access_token"
    _refused(exchange(client, federated.mint(sub="ci-1", aud=org.org.name)), "invalid_grant", "sub")
    assert team is not None


def test_expired_access_token_is_refused(client, db, org, federated, alice):
    jwt = federated.mint(sub="alice@example.org", aud=org.org.name)
    token = exchange(client, jwt).json()["access_token"]
    row = db.scalar(select(AccessToken).where(AccessToken.user_id == alice.id))
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.flush()
    refused = _viewer(client, token)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "access_token_expired"


def test_user_removed_from_the_organization_loses_access(client, db, org, federated, alice):
    token = exchange(client, federated.mint(sub="alice@example.org", aud=org.org.name)).json()
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == alice.id))
    db.delete(membership)
    db.flush()
    assert _viewer(client, token["access_token"]).status_code == 401


def test_unknown_access_token_is_refused(client, org):
    refused = _viewer(client, "rct_" + "x" * 43)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_access_token"


# --- the form -------------------------------------------------------------------------------------


def test_missing_grant_type(client, org, federated, alice, exchanges):
    response = exchange(client, federated.mint(sub="alice@example.org"), grant_type=None)
    _refused(response, "invalid_request", "grant_type")
    assert exchanges()[0].after["check"] == "grant_type"


def test_unsupported_grant_type(client, org, federated):
    response = exchange(client, "x.y.z", grant_type="client_credentials")
    _refused(response, "unsupported_grant_type", "grant type")


def test_missing_assertion(client, org, federated):
    _refused(exchange(client, None), "invalid_request", "assertion")


def test_parameter_sent_twice(client, org, federated):
    body = f"grant_type={GRANT}&grant_type={GRANT}&assertion=a.b.c"
    response = client.post(
        "/oidc/token", content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    _refused(response, "invalid_request", "more than once")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"grant_type": "x"}', "application/json"),
        (b"assertion=" + b"a" * 70_000, "application/x-www-form-urlencoded"),
        (b"\xff\xfe=\xff", "application/x-www-form-urlencoded"),
    ],
)
def test_unusable_body_is_an_invalid_request(client, org, content, content_type):
    response = client.post("/oidc/token", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("&".join(f"f{i}=x" for i in range(21)).encode(), "more than 20 fields"),
        (b"\xff\xfe=\xff", "not UTF-8"),
    ],
)
def test_an_unusable_form_says_why(client, org, content, why):
    response = client.post(
        "/oidc/token", content=content,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    _refused(response, "invalid_request", why)


def test_no_issuer_registered(client, org, shared_issuer, alice):
    response = exchange(client, shared_issuer.mint(sub="alice@example.org", aud=org.org.name))
    assert "no JWT issuer registered" in _refused(response, "invalid_grant", "iss")


def test_unreachable_issuer_is_temporarily_unavailable(client, org, issuer, alice):
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    jwt = issuer.mint(sub="alice@example.org", aud=org.org.name)
    issuer.stop()
    response = exchange(client, jwt)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.json()["error_description"].startswith("signature:")


# --- keys -----------------------------------------------------------------------------------------


def test_key_rotation_at_the_issuer_needs_nothing_from_us(client, org, issuer, alice):
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    sub, aud = "alice@example.org", org.org.name
    assert exchange(client, issuer.mint(sub=sub, aud=aud)).status_code == 200
    jwks_fetches = issuer.requests.count("/.well-known/jwks.json")
    issuer.rotate()
    issuer.retire_old_keys()
    response = exchange(client, issuer.mint(sub=sub, aud=aud))
    assert response.status_code == 200, response.text
    assert issuer.requests.count("/.well-known/jwks.json") == jwks_fetches + 1


def test_unknown_kids_do_not_make_us_fetch_again_and_again(client, org, issuer, alice):
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    sub, aud = "alice@example.org", org.org.name
    assert exchange(client, issuer.mint(sub=sub, aud=aud)).status_code == 200
    before = issuer.requests.count("/.well-known/jwks.json")
    for n in range(5):
        jwt = issuer.mint(sub=sub, aud=aud, key=issuer.rogue, header={"kid": f"made-up-{n}"})
        _refused(exchange(client, jwt), "invalid_grant", "signature")
    # The first unknown kid fetches the keys again (a rotation?); the others within the
    # refetch interval use that set.
    assert issuer.requests.count("/.well-known/jwks.json") == before + 1


def test_unknown_kids_do_not_make_us_ask_a_failing_issuer_again_and_again(
    client, org, issuer, alice
):
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    sub, aud = "alice@example.org", org.org.name
    assert exchange(client, issuer.mint(sub=sub, aud=aud)).status_code == 200
    before = issuer.requests.count("/.well-known/jwks.json")
    issuer.overrides["/.well-known/jwks.json"] = (500, b"down")

    answers = [
        exchange(client, issuer.mint(sub=sub, aud=aud, key=issuer.rogue, header={"kid": f"x{n}"}))
        for n in range(5)
    ]

    # The first unknown kid asks the issuer, which fails; within the refetch interval the
    # others use the key set in hand, the failure counting as the attempt.
    assert answers[0].status_code == 503, answers[0].text
    for answer in answers[1:]:
        _refused(answer, "invalid_grant", "signature")
    assert issuer.requests.count("/.well-known/jwks.json") == before + 1
    # A token signed with a key in hand still verifies while the issuer is down.
    assert exchange(client, issuer.mint(sub=sub, aud=aud)).status_code == 200


def test_discovery_at_the_seeds_path(client, org, alice):
    from tests.idp.jwt_issuer import JwtIssuer

    seeds_issuer = JwtIssuer(discovery_path="/.well-known/oidc-configuration").start()
    try:
        assert register(client, org.admin_headers, seeds_issuer.issuer).status_code == 200
        jwt = seeds_issuer.mint(sub="alice@example.org", aud=org.org.name)
        assert exchange(client, jwt).status_code == 200
        assert seeds_issuer.requests[0] == "/.well-known/oidc-configuration"
    finally:
        seeds_issuer.stop()


# --- audience settings and organizations ----------------------------------------------------------


def test_skip_audience_validation_in_single_mode(make_client, org, shared_issuer, alice):
    client = make_client(skip_audience_validation=True)
    assert register(client, org.admin_headers, shared_issuer.issuer).status_code == 200
    response = exchange(client, shared_issuer.mint(sub="alice@example.org", aud="anything"))
    assert response.status_code == 200, response.text


def test_skip_audience_validation_is_ignored_in_multi_mode(make_client, db, org, shared_issuer):
    client = make_client(skip_audience_validation=True, mode="multi", outbound_allow=LOOPBACK)
    factories.user(db, org.org, username="carol", email="carol@example.org")
    headers = {**org.admin_headers, "X-Rolecall-Org": org.org.name}
    assert register(client, headers, shared_issuer.issuer).status_code == 200
    response = exchange(client, shared_issuer.mint(sub="carol@example.org", aud="anything"))
    _refused(response, "invalid_grant", "aud")


def test_multi_org_aud_picks_among_orgs_trusting_one_issuer(make_client, db, org, shared_issuer):
    client = make_client(mode="multi", outbound_allow=LOOPBACK)
    other = factories.bootstrap(db)
    factories.user(db, org.org, username="carol", email="carol@example.org")
    factories.user(db, other.org, username="dan", email="dan@example.org")
    for world in (org, other):
        headers = {**world.admin_headers, "X-Rolecall-Org": world.org.name}
        assert register(client, headers, shared_issuer.issuer).status_code == 200
    ok = exchange(client, shared_issuer.mint(sub="dan@example.org", aud=other.org.name))
    assert ok.status_code == 200, ok.text
    token = ok.json()["access_token"]
    viewer = client.get(f"{API}/viewer", headers=bearer(token)).json()
    assert viewer["org"]["name"] == other.org.name
    # The token is for that organization only.
    elsewhere = client.get(
        f"{API}/viewer", headers={**bearer(token), "X-Rolecall-Org": org.org.name}
    )
    assert elsewhere.status_code == 401
    # carol is not in `other`; "wandb" cannot pick between two organizations.
    _refused(exchange(client, shared_issuer.mint(sub="carol@example.org", aud=other.org.name)),
             "invalid_grant", "sub")  # fmt: skip
    _refused(exchange(client, shared_issuer.mint(sub="dan@example.org", aud="wandb")),
             "invalid_grant", "aud")  # fmt: skip


def test_unregistered_issuer_in_multi_mode(make_client, org, shared_issuer):
    client = make_client(mode="multi")
    response = exchange(client, shared_issuer.mint(sub="x@example.org", aud=org.org.name))
    assert "no organization has registered" in _refused(response, "invalid_grant", "iss")
    assert exchange(client, "junk").json()["error"] == "invalid_grant"


def test_configured_lifetime(make_client, org, shared_issuer, alice):
    client = make_client(access_token_lifetime=900)
    assert register(client, org.admin_headers, shared_issuer.issuer).status_code == 200
    response = exchange(client, shared_issuer.mint(sub="alice@example.org", aud=org.org.name))
    assert response.json()["expires_in"] == 900


def test_a_get_of_the_token_endpoint_is_an_oauth_error(client):
    """RFC 6749 §3.2: the token endpoint takes POST. Its 405 is in OAuth's error format, as
    its every other answer (was the REST format), and says what to use."""
    refused = client.get("/oidc/token")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"
    assert refused.headers["cache-control"] == "no-store"
    assert refused.json() == {
        "error": "invalid_request",
        "error_description": "GET is not allowed on /oidc/token; use POST",
    }
