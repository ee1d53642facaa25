"""The real ``wandb`` SDK with identity federation: ``WANDB_IDENTITY_TOKEN_FILE`` holds a JWT
from the organization's issuer (a real one on loopback); ``wandb-core`` exchanges it at
``/oidc/token`` and calls ``/graphql`` with the access token as a Bearer credential."""

from __future__ import annotations

import pytest
import wandb
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.identity.models import AccessToken
from tests import factories
from tests.idp.jwt_issuer import JwtIssuer


@pytest.fixture(scope="module")
def issuer():
    issuer = JwtIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def trusted(client, org, issuer):
    response = client.put(
        "/api/v1/federation/issuer", json={"issuer": issuer.issuer}, headers=org.admin_headers
    )
    assert response.status_code == 200, response.text
    return issuer


def test_a_federated_user_works_through_the_sdk(base_url, db, org, trusted, tmp_path, monkeypatch):
    alice = factories.user(db, org.org, username="alice", email="alice@example.org")
    token_file = tmp_path / "identity.jwt"
    token_file.write_text(trusted.mint(sub="alice@example.org", aud=org.org.name) + "\n")
    monkeypatch.setenv("WANDB_IDENTITY_TOKEN_FILE", str(token_file))

    api = wandb.Api(overrides={"base_url": base_url}, timeout=15)
    viewer = api.viewer
    assert (viewer.username, viewer.email, viewer.admin) == ("alice", "alice@example.org", False)
    assert api.organization().name == org.org.name
    # The policy applies to federated callers as to keys: a member may not create users.
    with pytest.raises(Exception, match="org:manage_users"):
        api.create_user("eve@example.com")

    db.expire_all()
    tokens = db.scalars(select(AccessToken).where(AccessToken.user_id == alice.id)).all()
    assert len(tokens) == 1
    exchanges = db.scalars(
        select(AuditEvent).where(AuditEvent.action == "federation.token_exchange")
    ).all()
    # expires_in is well above 300 s: one exchange, its token reused for every request.
    assert len(exchanges) == 1


def test_a_jwt_for_an_unknown_subject_fails_cleanly(base_url, org, trusted, tmp_path, monkeypatch):
    token_file = tmp_path / "identity.jwt"
    token_file.write_text(trusted.mint(sub="stranger@example.org", aud=org.org.name))
    monkeypatch.setenv("WANDB_IDENTITY_TOKEN_FILE", str(token_file))
    api = wandb.Api(overrides={"base_url": base_url}, timeout=15)
    with pytest.raises(Exception, match="invalid_grant"):
        _ = api.viewer
