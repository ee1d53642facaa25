"""Identity federation on the client: a JWT from a file, exchanged for an access token.

With ``WANDB_IDENTITY_TOKEN_FILE`` (or ``ROLECALL_IDENTITY_TOKEN_FILE``) and no API key, the SDK
sends the file's JWT to ``POST {base}/oidc/token`` (RFC 7523), keeps the access token in the
credentials file the wandb SDK uses (``WANDB_CREDENTIALS_FILE``, default
``~/.config/wandb/credentials.json``; mode 0600; keyed by base URL), and sends it as
``Authorization: Bearer``. The JWT file is read again at each exchange (the IdP may have
refreshed it); a new exchange happens when the stored token is within ``REFRESH_BEFORE`` of its
expiry, and once more when the server answers 401.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from rolecall.sdk.errors import AuthenticationError, RolecallError

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/oidc/token"
DEFAULT_CREDENTIALS_FILE = Path("~/.config/wandb/credentials.json")
#: A stored token this close to its expiry is exchanged again (the wandb SDK's window).
REFRESH_BEFORE = timedelta(minutes=5)
#: ``expires_at`` as the wandb SDK writes it (UTC).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def credentials_file_path() -> Path:
    """``WANDB_CREDENTIALS_FILE`` or the wandb SDK's default."""
    value = os.environ.get("WANDB_CREDENTIALS_FILE", "").strip()
    return Path(value).expanduser() if value else DEFAULT_CREDENTIALS_FILE.expanduser()


def identity_token_file_from_env() -> str | None:
    for name in ("ROLECALL_IDENTITY_TOKEN_FILE", "WANDB_IDENTITY_TOKEN_FILE"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


class CredentialsFile:
    """The JSON file of access tokens by base URL: ``{"credentials": {URL: {...}}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"credentials": {}}
        if not isinstance(data, dict) or not isinstance(data.get("credentials"), dict):
            return {"credentials": {}}
        return data

    def read(self, base_url: str, now: datetime) -> str | None:
        """The stored token for ``base_url`` unless it is within ``REFRESH_BEFORE`` of expiry."""
        entry = self._load()["credentials"].get(base_url)
        if not isinstance(entry, dict):
            return None
        token, expires = entry.get("access_token"), entry.get("expires_at")
        try:
            expires_at = datetime.strptime(str(expires), TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return None
        if not isinstance(token, str) or not token or expires_at - REFRESH_BEFORE <= now:
            return None
        return token

    def write(self, base_url: str, token: str, expires_at: datetime) -> None:
        """Store ``token`` for ``base_url`` (other URLs' entries kept); the file is 0600,
        replaced atomically so a reader never sees half of it."""
        data = self._load()
        data["credentials"][base_url] = {
            "expires_at": expires_at.astimezone(UTC).strftime(TIME_FORMAT),
            "access_token": token,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=4)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def read_identity_token(path: str) -> str:
    """The JWT in ``path``, whitespace stripped. Raises ``AuthenticationError``."""
    try:
        token = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise AuthenticationError(f"cannot read the identity token file {path}: {exc}") from exc
    if not token:
        raise AuthenticationError(f"the identity token file {path} is empty")
    return token


def exchange_error(response: httpx.Response) -> RolecallError:
    """The SDK error for a refused exchange, with the server's RFC 6749 description."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        described = str(body.get("error_description") or error)
        message = f"the JWT exchange was refused ({error}): {described}"
    else:
        message = f"the JWT exchange failed: HTTP {response.status_code}"
        error = "exchange_failed"
    cls = RolecallError if response.status_code >= 500 else AuthenticationError
    return cls(message, status=response.status_code, code=error)


class FederatedAuth(httpx.Auth):
    """httpx authentication flow: a stored access token, or an exchange of the JWT file."""

    requires_response_body = True

    def __init__(
        self,
        base_url: str,
        identity_token_file: str,
        credentials: CredentialsFile | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity_token_file = identity_token_file
        self.credentials = credentials or CredentialsFile(credentials_file_path())
        self._clock = clock
        #: How many exchanges this object made (useful to tests and logs).
        self.exchanges = 0

    def exchange_request(self) -> httpx.Request:
        form = {
            "grant_type": GRANT_TYPE,
            "assertion": read_identity_token(self.identity_token_file),
        }
        return httpx.Request("POST", self.base_url + TOKEN_PATH, data=form)

    def accept(self, response: httpx.Response) -> str:
        """Store the access token of a successful exchange. Raises the SDK's error."""
        self.exchanges += 1
        if response.status_code != 200:
            raise exchange_error(response)
        try:
            body = response.json()
            token, expires_in = str(body["access_token"]), int(body.get("expires_in") or 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthenticationError("the JWT exchange answered without an access token") from exc
        self.credentials.write(self.base_url, token, self._clock() + timedelta(seconds=expires_in))
        return token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.credentials.read(self.base_url, self._clock())
        if token is None:
            token = self.accept((yield self.exchange_request()))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # The token may have been revoked or the server may not know it: exchange once more.
            token = self.accept((yield self.exchange_request()))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
