"""Against a real, certified OpenID Provider (panva/oidc-provider on node): its RFC 9068 JWT
access tokens (``typ: at+jwt``, from the client_credentials grant) are exchanged at
``/oidc/token`` for a user and for an external service account.

Needs node and npm; ``npm ci`` runs in ``tests/idp/oidc_provider`` when its packages are
missing (``scripts/test.sh`` installs them beforehand)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote_plus

import httpx
import pytest

from tests import factories
from tests.idp.conftest import API, bearer, exchange, register
from tests.idp.oidc_op import SECRET, running_provider

SUBJECTS = ("alice@example.org", "repo:acme/train:ref:refs/heads/main", "mallory@example.org")


@pytest.fixture(scope="module")
def op() -> Iterator[str]:
    env = {"OP_SUBJECTS": ",".join(SUBJECTS), "OP_AUDIENCE": "wandb", "OP_SECRET": SECRET}
    with running_provider(**env) as issuer:
        yield issuer


def access_token_jwt(op: str, subject: str) -> str:
    # client_secret_basic: the id and secret are form-encoded first (RFC 6749 §2.3.1).
    credentials = (quote_plus(subject), quote_plus(SECRET))
    response = httpx.post(
        f"{op}/token", data={"grant_type": "client_credentials"}, auth=credentials
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def test_a_user_exchanges_the_providers_jwt_access_token(client, db, org, op):
    factories.user(db, org.org, username="alice", email="alice@example.org")
    assert register(client, org.admin_headers, op).status_code == 200
    response = exchange(client, access_token_jwt(op, "alice@example.org"))
    assert response.status_code == 200, response.text
    viewer = client.get(f"{API}/viewer", headers=bearer(response.json()["access_token"]))
    assert viewer.json()["username"] == "alice"


def test_an_external_service_account_exchanges_the_providers_token(client, db, org, op):
    factories.team(db, org.org, name="ml")
    body = {"name": "ci", "scope": "team", "team": "ml", "kind": "external", "subject": SUBJECTS[1]}
    assert client.post(f"{API}/service-accounts", json=body, headers=org.admin_headers).is_success
    assert register(client, org.admin_headers, op).status_code == 200
    response = exchange(client, access_token_jwt(op, SUBJECTS[1]))
    assert response.status_code == 200, response.text
    viewer = client.get(f"{API}/viewer", headers=bearer(response.json()["access_token"])).json()
    assert (viewer["kind"], viewer["name"]) == ("service_account", "ci")


def test_an_unknown_subject_from_the_provider_is_refused(client, org, op):
    assert register(client, org.admin_headers, op).status_code == 200
    response = exchange(client, access_token_jwt(op, "mallory@example.org"))
    assert response.status_code == 400
    assert response.json()["error_description"].startswith("sub:")
