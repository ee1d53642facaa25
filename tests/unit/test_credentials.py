"""Credentials: parsing the Authorization header and authenticating API keys."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from rolecall.api_keys.models import ApiKey
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.permissions import Permission
from rolecall.errors import AuthenticationFailed
from rolecall.identity.authenticate import (
    KeyGrant,
    authenticate_api_key,
    record_key_use,
    secret_from_authorization,
)
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import API_KEY_PREFIX, digest
from rolecall.orgs.models import OrgMembership
from tests import factories


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("username", ["api", "anything", "alice@example.com", ""])
def test_basic_takes_the_key_as_password_whatever_the_username(username):
    assert secret_from_authorization(basic(username, "rc_secret")) == "rc_secret"


def test_bearer_carries_the_key():
    assert secret_from_authorization("Bearer rc_secret") == "rc_secret"
    assert secret_from_authorization("bearer   rc_secret ") == "rc_secret"


def test_no_header_means_no_credential():
    assert secret_from_authorization(None) is None
    assert secret_from_authorization("") is None


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        basic("api", ""),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest abc",
        "Bearer",
        "Basic " + base64.b64encode(b"api:\xff\xfe").decode(),
        "Basic \u00e9t\u00e9",
        "Bearer  ",
    ],
)
def test_malformed_authorization_is_refused_cleanly(header):
    with pytest.raises(AuthenticationFailed) as refused:
        secret_from_authorization(header)
    assert refused.value.code == "malformed_credentials"


def test_user_key_authenticates_as_the_user(db, org):
    principal = authenticate_api_key(db, org.admin_key)
    assert principal.kind is PrincipalKind.USER
    assert principal.user_id == org.admin.id
    assert principal.credential is CredentialKind.API_KEY
    assert principal.key_scopes is None


def test_keys_are_stored_as_digests_only(db, org):
    key = db.query(ApiKey).filter_by(user_id=org.admin.id).one()
    assert key.digest == digest(org.admin_key)
    assert org.admin_key not in {key.digest, key.hint}
    assert org.admin_key.startswith(API_KEY_PREFIX) and key.hint.startswith(API_KEY_PREFIX)


def test_unknown_key_is_refused(db, org):
    with pytest.raises(AuthenticationFailed, match="invalid API key"):
        authenticate_api_key(db, org.admin_key + "x")


def test_oversized_key_is_refused_before_any_lookup(db, org):
    with pytest.raises(AuthenticationFailed):
        authenticate_api_key(db, "rc_" + "a" * 10_000)


def test_revoked_key_is_refused(db, org):
    key = db.query(ApiKey).filter_by(user_id=org.admin.id).one()
    key.revoked_at = datetime.now(UTC)
    db.flush()
    with pytest.raises(AuthenticationFailed):
        authenticate_api_key(db, org.admin_key)


def test_expired_key_is_refused(db, org):
    secret = factories.api_key(db, org.admin, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed, match="expired"):
        authenticate_api_key(db, secret)


def test_scoped_key_carries_its_scopes(db, org):
    secret = factories.api_key(db, org.admin, scopes=(Permission.RUN_CREATE,))
    assert authenticate_api_key(db, secret).key_scopes == frozenset({Permission.RUN_CREATE})


def test_deactivated_user_key_is_refused(db, org):
    user = factories.user(db, org.org)
    secret = factories.api_key(db, user)
    db.query(OrgMembership).filter_by(user_id=user.id).one().active = False
    db.flush()
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        authenticate_api_key(db, secret)


def test_service_account_key_authenticates_as_the_account(db, org):
    team = factories.team(db, org.org)
    account = factories.service_account(db, org.org, team)
    principal = authenticate_api_key(db, factories.api_key(db, account))
    assert principal.kind is PrincipalKind.SERVICE_ACCOUNT
    assert principal.service_account_id == account.id
    assert principal.org_id == org.org.id


def test_deleted_service_account_key_is_refused(db, org):
    team = factories.team(db, org.org)
    account = factories.service_account(db, org.org, team)
    secret = factories.api_key(db, account)
    account.deleted_at = datetime.now(UTC)
    db.flush()
    with pytest.raises(AuthenticationFailed):
        authenticate_api_key(db, secret)


def _use(db, secret: str, now: datetime) -> datetime | None:
    """Authenticate, record the use as a request does afterwards, return the stored time."""
    authenticate_api_key(db, secret, now=now)
    record_key_use(db)
    db.expire_all()
    return db.query(ApiKey).filter_by(digest=digest(secret)).one().last_used_at


def test_last_used_time_is_recorded_at_most_once_a_minute(db, org):
    now = datetime.now(UTC)
    assert _use(db, org.admin_key, now) == now
    assert _use(db, org.admin_key, now + timedelta(seconds=30)) == now
    later = now + timedelta(minutes=2)
    assert _use(db, org.admin_key, later) == later


def test_authenticating_writes_nothing_until_the_use_is_recorded(db, org):
    now = datetime.now(UTC)

    authenticate_api_key(db, org.admin_key, now=now)

    assert not db.dirty and not db.new
    assert record_key_use(db) is True
    assert record_key_use(db) is False  # recorded once


# --- KeyGrant: what the access cache may reuse without the database ----------------------------


def _grant(expires_at=None, last_used_at=None):
    principal = Principal(PrincipalKind.USER, "alice", CredentialKind.API_KEY, user_id="u")
    return KeyGrant(principal, expires_at, last_used_at)


def test_a_grant_is_reusable_while_unexpired_and_recently_used():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    grant = _grant(expires_at=now + timedelta(hours=1), last_used_at=now - timedelta(seconds=59))

    assert grant.usable_without_lookup(now)


def test_a_grant_is_not_reusable_once_expired():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    assert not _grant(expires_at=now, last_used_at=now).usable_without_lookup(now)


def test_a_grant_is_not_reusable_when_its_use_is_due_to_be_recorded():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    assert not _grant(last_used_at=now - timedelta(minutes=1)).usable_without_lookup(now)
    assert not _grant(last_used_at=None).usable_without_lookup(now)
