"""identity.authenticate and its neighbours, at their edges: secrets too long to be ours, a
principal whose row went away, a failed sign-in of a user in no organization."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from rolecall.audit.models import AuditEvent
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.errors import AuthenticationFailed
from rolecall.identity.attribution import resolve_attribution
from rolecall.identity.authenticate import (
    MAX_SECRET_LENGTH,
    authenticate_access_token,
    authenticate_api_key,
    authenticate_session,
)
from rolecall.identity.principal import Principal
from rolecall.identity.sessions import record_sign_in_failure
from rolecall.orgs.models import OrgMembership
from tests import factories

TOO_LONG = "x" * (MAX_SECRET_LENGTH + 1)


@pytest.mark.parametrize(
    ("authenticate", "code"),
    [
        (authenticate_access_token, "invalid_access_token"),
        (authenticate_api_key, "invalid_api_key"),
        (authenticate_session, "invalid_session"),
    ],
)
def test_a_secret_longer_than_any_we_issue_is_refused(db, org, authenticate, code):
    with pytest.raises(AuthenticationFailed) as refused:
        authenticate(db, TOO_LONG)
    assert refused.value.code == code


def test_a_service_account_gone_since_it_authenticated_attributes_to_nobody(db):
    gone = Principal(
        PrincipalKind.SERVICE_ACCOUNT,
        "ci",
        CredentialKind.API_KEY,
        service_account_id="no-such-account",
        attribution="alice",
    )
    assert resolve_attribution(db, actor=gone) is None


def test_a_failed_sign_in_of_a_user_in_no_organization_is_logged_in_the_only_one(db, org):
    drifter = factories.user(db, org.org, email="drifter@example.com")
    db.execute(delete(OrgMembership).where(OrgMembership.user_id == drifter.id))
    record_sign_in_failure(
        db, user=drifter, email="drifter@example.com", reason="wrong password", surface="api"
    )
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login_failed")).one()
    assert (event.org_id, event.object_id) == (org.org.id, drifter.id)
