"""Who is making a request, and with which credential."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.permissions import Permission


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Services take it as ``actor``."""

    kind: PrincipalKind
    name: str
    credential: CredentialKind
    user_id: str | None = None
    service_account_id: str | None = None
    #: The API key, session or token id, for the audit log.
    credential_id: str | None = None
    key_scopes: frozenset[Permission] | None = None
    #: When the credential stops working: an API key with an expiry, an access token. Keys it
    #: makes for its own principal may not outlive it.
    credential_expires_at: datetime | None = None
    #: Which surface the request came through: api, cli, scim, graphql, console, oidc.
    surface: str = "api"
    #: A human named by a service account's request (X-Wandb-Username / X-Wandb-User-Email).
    attribution: str | None = None
    #: The organization the request is about, when the surface picked one.
    org_id: str | None = None
    #: The one organization the credential works in: an access token's, a session a single
    #: sign-on of that organization opened, a key such a session made. ``None``: every
    #: organization of the principal (the surfaces refuse the credential in any other).
    bound_org_id: str | None = None

    @property
    def is_service_account(self) -> bool:
        return self.kind is PrincipalKind.SERVICE_ACCOUNT

    @property
    def id(self) -> str | None:
        return self.user_id or self.service_account_id

    @property
    def credential_label(self) -> str:
        if self.credential_id:
            return f"{self.credential.value}:{self.credential_id}"
        return self.credential.value


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS, "anonymous", CredentialKind.NONE)


def operator(surface: str = "cli") -> Principal:
    """The server host's operator: only for commands run on the host itself."""
    return Principal(PrincipalKind.OPERATOR, "operator", CredentialKind.LOCAL, surface=surface)
