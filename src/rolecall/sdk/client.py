"""``Api``: the admin SDK's entry point (``from rolecall import Api``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from rolecall.sdk._http import Transport, basic_authorization, segment
from rolecall.sdk.errors import Conflict, NotFound
from rolecall.sdk.federation import (
    CredentialsFile,
    FederatedAuth,
    credentials_file_path,
    identity_token_file_from_env,
)
from rolecall.sdk.models import (
    AuditEvent,
    Decision,
    Model,
    Role,
    ServiceAccount,
    Team,
    User,
    Viewer,
    principal_ref,
    user_ref,
)
from rolecall.sdk.projects import Project, split_project_path

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
ORG_HEADER = "X-Rolecall-Org"
USERNAME_HEADER = "X-Wandb-Username"
USER_EMAIL_HEADER = "X-Wandb-User-Email"
#: Service-account names: what the server accepts for usernames, kept short.
_NAME_MAX = 48
_NAME_ATTEMPTS = 20


def _env(*names: str) -> str | None:
    """The first of ``names`` set to a non-empty value (empty means unset, as on the server)."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def account_name(description: str) -> str:
    """A valid service-account name derived from a description (letters, digits, ``_``, ``-``)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", description.strip().lower()).strip("-_")
    return slug[:_NAME_MAX].rstrip("-_") or "service-account"


class Api:
    """A client of one rolecall server, acting with one API key or a federated identity.

    Arguments left unset come from the environment: ``ROLECALL_BASE_URL`` / ``ROLECALL_API_KEY``,
    then ``WANDB_BASE_URL`` / ``WANDB_API_KEY``; ``WANDB_USERNAME`` / ``WANDB_USER_EMAIL`` name
    the human a service account's work is attributed to. ``org`` names the organization on a
    multi-org server. ``client`` replaces the internal ``httpx.Client`` (a custom transport,
    proxy or TLS set-up). Refused calls raise subclasses of ``rolecall.sdk.RolecallError``.

    Without an API key, ``identity_token_file`` (else ``ROLECALL_IDENTITY_TOKEN_FILE``, then
    ``WANDB_IDENTITY_TOKEN_FILE``) names a file holding a JWT from the organization's issuer:
    it is exchanged at ``/oidc/token`` for access tokens, kept in ``credentials_file`` (else
    ``WANDB_CREDENTIALS_FILE``, default ``~/.config/wandb/credentials.json``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        username: str | None = None,
        user_email: str | None = None,
        *,
        org: str | None = None,
        timeout: float = 30,
        client: httpx.Client | None = None,
        identity_token_file: str | None = None,
        credentials_file: str | None = None,
    ) -> None:
        client_url = str(client.base_url).rstrip("/") if client is not None else ""
        self.base_url = (
            base_url
            or _env("ROLECALL_BASE_URL", "WANDB_BASE_URL")
            or client_url
            or DEFAULT_BASE_URL
        ).rstrip("/")
        self.api_key = api_key or _env("ROLECALL_API_KEY", "WANDB_API_KEY")
        self.username = username or _env("WANDB_USERNAME")
        self.user_email = user_email or _env("WANDB_USER_EMAIL")
        self.org = org
        headers = {"User-Agent": "rolecall-sdk", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = basic_authorization(self.api_key)
        if self.username:
            headers[USERNAME_HEADER] = self.username
        if self.user_email:
            headers[USER_EMAIL_HEADER] = self.user_email
        if org:
            headers[ORG_HEADER] = org
        self.auth: FederatedAuth | None = None
        token_file = identity_token_file or identity_token_file_from_env()
        if not self.api_key and token_file:
            path = Path(credentials_file).expanduser() if credentials_file else None
            self.auth = FederatedAuth(
                self.base_url, token_file, CredentialsFile(path or credentials_file_path())
            )
        self._http = Transport(
            self.base_url, headers, timeout=timeout, client=client, auth=self.auth
        )

    def __repr__(self) -> str:
        return f"<Api {self.base_url}>"

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not a client passed in by the caller)."""
        self._http.close()

    def _find(self, path: str) -> dict[str, Any] | None:
        try:
            return self._http.request("GET", path)  # type: ignore[no-any-return]
        except NotFound:
            return None

    # -- the caller ----------------------------------------------------------------------------

    def viewer(self) -> Viewer:
        """The caller: the user or service account owning the API key."""
        return Viewer(self, self._http.request("GET", "/viewer"))

    def create_api_key(
        self,
        description: str | None = None,
        expires_in: int | None = None,
        scopes: Iterable[str] | None = None,
    ) -> str:
        """Create an API key for the caller and return its secret (shown only now).

        ``expires_in`` is in seconds; ``scopes`` limits the key to those permissions.
        """
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if expires_in is not None:
            body["expires_in"] = expires_in
        if scopes is not None:
            body["scopes"] = list(scopes)
        return str(self._http.request("POST", "/api-keys", json=body)["key"])

    # -- users ---------------------------------------------------------------------------------

    def create_user(self, email: str, admin: bool = False) -> User:
        """Add a user to the organization, as an org admin when ``admin`` is true."""
        body = {"email": email, "role": "admin" if admin else "member"}
        return User(self, self._http.request("POST", "/users", json=body))

    def user(self, user_name_or_email: str) -> User | None:
        """The user with that username, email or id, or None."""
        data = self._find(f"/users/{segment(user_name_or_email)}")
        return User(self, data) if data is not None else None

    # -- teams and service accounts ------------------------------------------------------------

    def create_team(self, team_name: str, admin_user_name: str | User | None = None) -> Team:
        """Create a team, optionally with an org user as its first admin."""
        body: dict[str, Any] = {"name": team_name}
        if admin_user_name is not None:
            body["admin"] = user_ref(admin_user_name)
        return Team(self, self._http.request("POST", "/teams", json=body))

    def team(self, team_name: str) -> Team | None:
        """The team of that name, or None."""
        data = self._find(f"/teams/{segment(team_name)}")
        return Team(self, data) if data is not None else None

    def create_service_account(self, description: str, default_team: str | Team) -> ServiceAccount:
        """Create an org-scoped service account working in ``default_team`` unless told
        otherwise; its ``api_key`` is shown only now."""
        team = default_team.name if isinstance(default_team, Team) else default_team
        return self._create_service_account(description, scope="org", team=str(team))

    def _create_service_account(
        self, description: str, *, scope: str, team: str, subject: str | None = None
    ) -> ServiceAccount:
        # The name is derived from the description; when taken, try name-2, name-3 ...
        base = account_name(description)
        taken: Conflict | None = None
        for attempt in range(1, _NAME_ATTEMPTS + 1):
            name = base if attempt == 1 else f"{base}-{attempt}"
            body: dict[str, Any] = {
                "name": name, "description": description, "scope": scope, "team": team,
            }  # fmt: skip
            if subject is not None:
                body.update(kind="external", subject=subject)
            try:
                return ServiceAccount(
                    self, self._http.request("POST", "/service-accounts", json=body)
                )
            except Conflict as exc:
                if exc.field != "name":
                    raise
                taken = exc
        assert taken is not None
        raise taken

    # -- identity federation -------------------------------------------------------------------

    def jwt_issuer(self) -> str | None:
        """The JWT issuer URL the organization trusts, or None (org admins)."""
        return self._http.request("GET", "/federation/issuer")["issuer"]  # type: ignore[no-any-return]

    def set_jwt_issuer(self, url: str | None) -> str | None:
        """Register the organization's JWT issuer (the server runs discovery first); None
        removes it. Tokens issued under a previous issuer stop working. Org admins only."""
        body = self._http.request("PUT", "/federation/issuer", json={"issuer": url})
        return body["issuer"]  # type: ignore[no-any-return]

    def verify_jwt(self, assertion: str) -> dict[str, Any]:
        """Run every check of the token exchange on a JWT without issuing anything: ``valid``,
        ``failed_check``, ``subject`` and ``checks`` (each with ``expected`` and ``found``)."""
        body = {"assertion": assertion.strip()}
        return self._http.request("POST", "/federation/verify", json=body)  # type: ignore[no-any-return]

    # -- projects ------------------------------------------------------------------------------

    def create_project(self, entity: str, name: str, visibility: str = "team") -> Project:
        """Create a project in a team or personal entity."""
        body = {"entity": entity, "name": name, "visibility": visibility}
        return Project(self, self._http.request("POST", "/projects", json=body))

    def project(self, path: str) -> Project | None:
        """The project at ``"entity/name"``, or None. Raises ``ValueError`` for a bad path."""
        entity, name = split_project_path(path)
        data = self._find(f"/projects/{segment(entity)}/{segment(name)}")
        return Project(self, data) if data is not None else None

    # -- roles ---------------------------------------------------------------------------------

    def create_role(
        self,
        name: str,
        inherited_from: str,
        permissions: Iterable[str] = (),
        description: str = "",
    ) -> Role:
        """Create a custom role: ``inherited_from`` (member or viewer) plus ``permissions``."""
        body = {
            "name": name,
            "description": description,
            "inherited_from": inherited_from,
            "permissions": list(permissions),
        }
        return Role(self, self._http.request("POST", "/roles", json=body))

    def role(self, name_or_id: str) -> Role | None:
        """The custom role with that exact name or id, or None."""
        data = self._find(f"/roles/{segment(name_or_id)}")
        return Role(self, data) if data is not None else None

    # -- decisions and the audit log -----------------------------------------------------------

    def check(
        self, permission: str, project: str | Project, principal: str | Model | None = None
    ) -> Decision:
        """Whether ``principal`` (None: the caller) has ``permission`` on ``project``
        (``"entity/name"``), with the policy's trace."""
        path = project.path if isinstance(project, Project) else project
        body = {
            "principal": principal_ref(principal) if principal is not None else None,
            "permission": permission,
            "project": path,
        }
        return Decision(self, self._http.request("POST", "/authz/check", json=body))

    def audit_log(self, **filters: Any) -> list[AuditEvent]:
        """Audit events, oldest first, following every page.

        Filters: ``actor``, ``object_type``, ``object_id``, ``action``, ``since``, ``until``
        (datetimes or ISO strings), ``limit`` (page size).
        """
        params = _query(filters)
        events: list[AuditEvent] = []
        cursor = None
        while True:
            body = self._http.request("GET", "/audit", params={**params, "cursor": cursor})
            events.extend(AuditEvent(self, item) for item in body["items"])
            cursor = body.get("next_cursor")
            if cursor is None or not body["items"]:
                return events


def _query(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()}
