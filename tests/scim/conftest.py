"""SCIM tests: through ``create_app`` against the real database, as an org admin."""

from __future__ import annotations

import pytest

SCIM_JSON = "application/scim+json"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ROLE_URN = "urn:ietf:params:scim:schemas:core:2.0:Role"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_URN], "Operations": list(operations)}


def new_user(user_name: str = "ada@example.com", **extra: object) -> dict:
    body: dict = {
        "schemas": [USER_URN],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }
    body.update(extra)
    return body


def assert_scim_error(response, status: int, scim_type: str | None = None) -> dict:
    """The response is a SCIM Error message with that status and scimType."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == [ERROR_URN]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]
    return body


@pytest.fixture
def scim(client, org):
    """A client sending the org admin's API key the way identity providers do."""
    client.headers.update(org.admin_headers)
    client.headers["Content-Type"] = SCIM_JSON
    return client
