"""The SDK and identity federation, over real HTTP: registering the issuer, external service
accounts, and an ``Api`` that signs in with a JWT file instead of an API key."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.sdk import AuthenticationError
from rolecall.sdk.federation import TIME_FORMAT
from tests import factories
from tests.idp.jwt_issuer import JwtIssuer


@pytest.fixture(scope="module")
def issuer():
    issuer = JwtIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def trusted(api, issuer):
    assert api.set_jwt_issuer(issuer.issuer) == issuer.issuer
    return issuer


@pytest.fixture
def alice(db, org):
    return factories.user(db, org.org, username="alice", email="alice@example.org")


@pytest.fixture
def files(tmp_path, monkeypatch):
    token_file = tmp_path / "jwt"
    credentials = tmp_path / "wandb" / "credentials.json"
    monkeypatch.setenv("WANDB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("WANDB_CREDENTIALS_FILE", str(credentials))
    return token_file, credentials


def _exchanges(db):
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == "federation.token_exchange")
    return list(db.scalars(query))


def test_admin_sets_reads_and_removes_the_issuer(api, issuer):
    assert api.jwt_issuer() is None
    assert api.set_jwt_issuer(issuer.issuer) == issuer.issuer
    assert api.jwt_issuer() == issuer.issuer
    assert api.set_jwt_issuer(None) is None
    assert api.jwt_issuer() is None


def test_api_signs_in_with_the_identity_token_file(
    api_for, base_url, db, org, trusted, alice, files
):
    token_file, credentials = files
    token_file.write_text(trusted.mint(sub="alice@example.org", aud=org.org.name) + "\n")
    federated = api_for(None)
    viewer = federated.viewer()
    assert (viewer.username, viewer.credential) == ("alice", "access_token")
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    stored = json.loads(credentials.read_text())["credentials"][base_url]
    assert stored["access_token"].startswith("rct_")
    expires_at = datetime.strptime(stored["expires_at"], TIME_FORMAT).replace(tzinfo=UTC)
    assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)
    # Another process reuses the stored token: no new exchange.
    again = api_for(None)
    assert again.viewer().username == "alice"
    assert again.auth is not None and again.auth.exchanges == 0
    assert len(_exchanges(db)) == 1


def test_a_token_close_to_expiry_is_exchanged_again_reading_the_file_anew(
    api_for, base_url, db, org, trusted, alice, files
):
    token_file, credentials = files
    credentials.parent.mkdir()
    soon = (datetime.now(UTC) + timedelta(minutes=4)).strftime(TIME_FORMAT)
    credentials.write_text(
        json.dumps({"credentials": {base_url: {"access_token": "rct_old", "expires_at": soon}}})
    )
    token_file.write_text(trusted.mint(sub="alice@example.org", aud=org.org.name))
    federated = api_for(None)
    assert federated.viewer().username == "alice"
    assert federated.auth.exchanges == 1
    assert json.loads(credentials.read_text())["credentials"][base_url]["access_token"] != "rct_old"


def test_a_refused_token_is_exchanged_once_after_a_401(
    api_for, base_url, db, org, trusted, alice, files
):
    token_file, credentials = files
    credentials.parent.mkdir()
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime(TIME_FORMAT)
    entries = {
        base_url: {"access_token": "rct_unknown", "expires_at": later},
        "http://other": {"access_token": "keep", "expires_at": later},
    }
    stale = {"credentials": entries}
    credentials.write_text(json.dumps(stale))
    token_file.write_text(trusted.mint(sub="alice@example.org", aud=org.org.name))
    federated = api_for(None)
    assert federated.viewer().username == "alice"
    assert federated.auth.exchanges == 1
    kept = json.loads(credentials.read_text())["credentials"]
    assert kept["http://other"]["access_token"] == "keep"


def test_a_refused_exchange_raises_with_the_failed_check(api_for, org, trusted, alice, files):
    token_file, _ = files
    token_file.write_text(trusted.mint(sub="mallory@example.org", aud=org.org.name))
    with pytest.raises(AuthenticationError) as refused:
        api_for(None).viewer()
    assert refused.value.code == "invalid_grant"
    assert "sub:" in refused.value.message


def test_a_missing_token_file_is_an_authentication_error(api_for, files):
    with pytest.raises(AuthenticationError, match="identity token file"):
        api_for(None).viewer()


def test_an_api_key_wins_over_the_token_file(api_for, org, files):
    keyed = api_for(org.admin_key)
    assert keyed.auth is None and keyed.viewer().credential == "api_key"


def test_team_creates_an_external_service_account_that_signs_in(
    api, api_for, db, org, trusted, files
):
    team = api.create_team("vision")
    member = team.create_service_account("ci pipeline", subject="repo:acme/ml:ref:main")
    assert member.kind == "service_account" and member.api_key is None
    account = api._http.request("GET", f"/service-accounts/{member.id}")
    assert (account["kind"], account["subject"]) == ("external", "repo:acme/ml:ref:main")
    token_file, _ = files
    token_file.write_text(trusted.mint(sub="repo:acme/ml:ref:main", aud="wandb"))
    viewer = api_for(None).viewer()
    assert (viewer.kind, viewer.name, viewer.credential) == (
        "service_account", "ci-pipeline", "access_token",
    )  # fmt: skip


def test_verify_jwt_reports_each_check(api, org, trusted):
    report = api.verify_jwt(trusted.mint(sub="nobody@example.org", aud=org.org.name))
    assert report["valid"] is False and report["failed_check"] == "sub"
    assert [c["check"] for c in report["checks"]][:3] == ["format", "alg", "iss"]
