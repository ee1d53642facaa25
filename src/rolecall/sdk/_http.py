"""The HTTP transport: credentials and headers, one request, error mapping."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from rolecall.sdk.errors import ConnectionFailed, error_from_response

API_PREFIX = "/api/v1"
USER_AGENT = "rolecall-sdk"


def segment(value: str) -> str:
    """One path segment, escaped (``@`` and ``:`` stay readable in emails and principal refs).

    Raises ``TypeError`` for anything but a string (``None`` looked up the name "None"), and
    ``ValueError`` for an empty one."""
    if not isinstance(value, str):
        raise TypeError(f"expected a name or id (a string), got {type(value).__name__}")
    if not value:
        raise ValueError("expected a name or id, got an empty string")
    return quote(value, safe="@:")


def basic_authorization(api_key: str) -> str:
    """``Basic base64("api:KEY")``: the wandb SDK's habit, which the server accepts."""
    token = base64.b64encode(f"api:{api_key}".encode()).decode("ascii")
    return f"Basic {token}"


class Transport:
    """Sends requests to ``{base_url}/api/v1`` with the caller's credential and headers."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float,
        client: httpx.Client | None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        #: Per-request authentication (identity federation); None: the headers carry the key.
        self.auth = auth
        self._owns_client = client is None
        # A client passed in keeps its own settings (timeout included).
        self.client = client if client is not None else httpx.Client(timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON body (None for 204); raises the typed error for a refusal.

        Raises ``ConnectionFailed`` when the server cannot be reached.
        """
        url = f"{self.base_url}{API_PREFIX}{path}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.client.request(
                method,
                url,
                json=json,
                params=query or None,
                headers=self.headers,
                auth=self.auth or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def close(self) -> None:
        """Close the internal client (a client passed in belongs to the caller)."""
        if self._owns_client:
            self.client.close()
