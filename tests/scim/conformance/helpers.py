"""What the vendor replays share: a SCIM client over the app's TestClient, and the URNs."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


@dataclass
class Scim:
    """Requests as an identity provider sends them: under ``prefix``, with Basic auth and the
    SCIM media type, plus a ``user_agent`` the way each vendor names itself."""

    client: TestClient
    prefix: str
    authorization: str
    user_agent: str

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Response:
        headers = {
            "Authorization": self.authorization,
            "Accept": "application/scim+json",
            "User-Agent": self.user_agent,
            **kwargs.pop("headers", {}),
        }
        if body is not None:
            headers.setdefault("Content-Type", "application/scim+json; charset=utf-8")
            kwargs["json"] = body
        return self.client.request(method, f"{self.prefix}{path}", headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Response:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> Response:
        return self.request("PUT", path, body, **kwargs)

    def patch(self, path: str, operations: list[dict[str, Any]], **kwargs: Any) -> Response:
        body = {"schemas": [PATCH_OP], "Operations": operations}
        return self.request("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)

    def search(self, resource: str, scim_filter: str, **params: Any) -> dict[str, Any]:
        """A filtered list that must answer 200 with a ListResponse."""
        response = self.get(f"/{resource}", params={"filter": scim_filter, **params})
        assert response.status_code == 200, response.text
        found = response.json()
        assert LIST_RESPONSE in found["schemas"], found
        return found


def assert_scim_error(response: Response, status: int, scim_type: str | None = None) -> None:
    """The response is a SCIM Error with this status (as a string, RFC 7644 §3.12)."""
    assert response.status_code == status, response.text
    error = response.json()
    assert ERROR in error["schemas"], error
    assert error["status"] == str(status), error
    assert error.get("detail"), error
    if scim_type is not None:
        assert error.get("scimType") == scim_type, error


def member_ids(group: dict[str, Any]) -> set[str]:
    return {m["value"] for m in group.get("members") or []}
