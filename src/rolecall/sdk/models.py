"""The SDK's objects: the server's JSON plus a back-reference to the ``Api`` that fetched it.

Fields read straight from the JSON (``user.email``, ``team.private_only`` ...); methods call the
server and, where the server answers with the new state, update the object in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from rolecall.sdk._http import segment

if TYPE_CHECKING:
    from rolecall.sdk.client import Api


class field:
    """A read-only attribute backed by one key of the object's JSON (lower case, like
    ``property``, whose role it plays)."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = self.key or name

    def __get__(self, obj: Model | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj._data.get(self.key)  # type: ignore[arg-type]


class Model:
    """Base of every SDK object: holds the JSON (``.json``) and the ``Api`` (``.api``)."""

    id = field()

    def __init__(self, api: Api, data: dict[str, Any]) -> None:
        self.api = api
        self._data = dict(data)

    @property
    def json(self) -> dict[str, Any]:
        """A copy of the server's JSON for this object."""
        return dict(self._data)

    def _update(self, data: dict[str, Any] | None) -> None:
        if data:
            self._data.update(data)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._data.get("id") == self._data.get("id")  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._data.get("id")))

    def __repr__(self) -> str:
        label = self._data.get("path") or self._data.get("name") or self._data.get("id")
        return f"<{type(self).__name__} {label!r}>"


def user_ref(user: str | Model) -> str:
    """A user reference (id, username or email) from a string or an SDK object."""
    if isinstance(user, User):
        return str(user.username)
    if isinstance(user, Model):
        return str(user._data.get("username") or user._data.get("name") or user.id)
    return user


def principal_ref(principal: str | Model) -> str:
    """A principal reference (``user:<name>``, ``service_account:<name>`` or a bare name)."""
    if isinstance(principal, str):
        return principal
    if isinstance(principal, ServiceAccount):
        return f"service_account:{principal.name}"
    kind = principal._data.get("kind", "user")
    if kind == "service_account":
        return f"service_account:{principal._data['name']}"
    return f"user:{user_ref(principal)}"


class User(Model):
    """A user of the organization (``UserRead``)."""

    username = field()
    email = field()
    full_name = field()
    role = field()
    models_seat = field()
    weave_seat = field()
    active = field()
    created_at = field()

    @property
    def name(self) -> str:
        """The username (the wandb SDK's ``user.name``)."""
        return str(self.username)

    @property
    def _path(self) -> str:
        return f"/users/{segment(self.id)}"

    def teams(self) -> list[Team]:
        """The teams this user belongs to."""
        body = self.api._http.request("GET", f"{self._path}/teams")
        return [Team(self.api, item) for item in body["items"]]

    def set_role(self, role: str) -> User:
        """Set the org role: ``admin``, ``member`` or ``viewer``. Raises ``Conflict`` when it
        would demote the last active admin."""
        self._update(self.api._http.request("PATCH", self._path, json={"role": role}))
        return self

    def set_seats(self, models: str | None = None, weave: str | None = None) -> User:
        """Set the Models and/or Weave seat: ``full``, ``viewer`` or ``none``.

        Raises ``ValueError`` when neither is given.
        """
        changes = {"models_seat": models, "weave_seat": weave}
        body = {k: v for k, v in changes.items() if v is not None}
        if not body:
            raise ValueError("set_seats needs models= and/or weave=")
        self._update(self.api._http.request("PATCH", self._path, json=body))
        return self

    def deactivate(self) -> User:
        """Deactivate the user: it keeps its place in listings but holds no permission."""
        self._update(self.api._http.request("POST", f"{self._path}/deactivate"))
        return self

    def reactivate(self) -> User:
        """Give a deactivated user its access back."""
        self._update(self.api._http.request("POST", f"{self._path}/reactivate"))
        return self

    def delete(self) -> None:
        """Remove the user from the organization (its runs stay)."""
        self.api._http.request("DELETE", self._path)


class Member(Model):
    """A member of a team (``MemberRead``): a user or a team-scoped service account.

    ``api_key`` holds the key of a service account just created with
    ``Team.create_service_account`` (shown once); it is None otherwise.
    """

    kind = field()
    name = field()
    email = field()
    role = field()
    custom_role_id = field()
    joined_at = field()

    def __init__(
        self, api: Api, data: dict[str, Any], team: Team, api_key: str | None = None
    ) -> None:
        super().__init__(api, data)
        self.team = team
        self.api_key = api_key

    @property
    def ref(self) -> str:
        """How the team-member routes name this member: its id (users and service accounts
        have separate namespaces, ids never collide)."""
        return str(self.id)

    @property
    def admin(self) -> bool:
        """Whether the member is a team admin."""
        return self.role == "admin"

    def set_role(self, role: str) -> Member:
        """Change this member's team role (``admin``, ``member``, ``viewer`` or a custom role)."""
        self._update(self.team._member_request("PATCH", self.ref, {"role": role}))
        return self

    def delete(self) -> None:
        """Remove the member from the team (its runs stay).

        A team-scoped service account exists only in its team, so removing it deletes the
        account (the server refuses to remove it otherwise); its keys stop working.
        """
        if self.kind == "service_account":
            self.api._http.request("DELETE", f"/service-accounts/{segment(self.ref)}")
        else:
            self.team._member_request("DELETE", self.ref)


class Team(Model):
    """A team of the organization (``TeamRead``)."""

    name = field()
    kind = field()
    private_only = field()
    domain_matching = field()
    storage_type = field()
    is_default = field()
    created_at = field()

    @property
    def _path(self) -> str:
        return f"/teams/{segment(self.name)}"

    def _member_request(self, method: str, ref: str, body: dict[str, Any] | None = None) -> Any:
        return self.api._http.request(method, f"{self._path}/members/{segment(ref)}", json=body)

    @property
    def members(self) -> list[Member]:
        """The team's members (users and service accounts) in the order they joined."""
        body = self.api._http.request("GET", f"{self._path}/members")
        return [Member(self.api, item, self) for item in body["items"]]

    def invite(self, user_name_or_email: str | User, admin: bool = False) -> Member:
        """Add an org user to the team, as a team admin when ``admin`` is true."""
        body = {"user": user_ref(user_name_or_email), "role": "admin" if admin else "member"}
        created = self.api._http.request("POST", f"{self._path}/members", json=body)
        return Member(self.api, created, self)

    def create_service_account(self, description: str, subject: str | None = None) -> Member:
        """Create a team-scoped service account named after ``description``.

        Built-in (no ``subject``): the returned member's ``api_key`` holds the account's key
        (shown only now). External (``subject`` given): it signs in with JWTs from the
        organization's issuer whose ``sub`` equals ``subject``, and has no API key.
        """
        account = self.api._create_service_account(
            description, scope="team", team=self.name, subject=subject
        )
        for member in self.members:
            if member.kind == "service_account" and member.id == account.id:
                member.api_key = account.api_key
                return member
        # The server created the account but does not list it as a member: show what we have.
        data = {"kind": "service_account", "id": account.id, "name": account.name, "email": None}
        return Member(self.api, {**data, "role": "service"}, self, api_key=account.api_key)

    def set_role(self, user: str | Model, role: str) -> Member:
        """Change a member's team role (``admin``, ``member``, ``viewer`` or a custom role)."""
        ref = user.ref if isinstance(user, Member) else user_ref(user)
        return Member(self.api, self._member_request("PATCH", ref, {"role": role}), self)

    def update(self, private_only: bool | None = None, domain_matching: bool | None = None) -> Team:
        """Change the team's settings; arguments left as None are unchanged."""
        changes = {"private_only": private_only, "domain_matching": domain_matching}
        body = {k: v for k, v in changes.items() if v is not None}
        if body:
            self._update(self.api._http.request("PATCH", self._path, json=body))
        return self

    def delete(self) -> None:
        """Delete the team with its projects."""
        self.api._http.request("DELETE", self._path)


class ServiceAccount(Model):
    """A service account (``ServiceAccountRead``); ``api_key`` is set only on creation."""

    name = field()
    description = field()
    scope = field()
    team = field()
    kind = field()
    subject = field()
    created_at = field()
    api_key = field()

    def delete(self) -> None:
        """Delete the account; its keys stop working."""
        self.api._http.request("DELETE", f"/service-accounts/{segment(self.id)}")


class Role(Model):
    """A custom role (``RoleRead``): an inherited predefined role plus extra permissions."""

    name = field()
    description = field()
    inherited_from = field()
    custom_permissions = field()
    created_at = field()
    updated_at = field()

    @property
    def permissions(self) -> list[str]:
        """Every permission the role grants (inherited and custom), by name."""
        return [p["name"] for p in self._data.get("permissions", [])]

    @property
    def _path(self) -> str:
        return f"/roles/{segment(self.id)}"

    def update(
        self,
        name: str | None = None,
        description: str | None = None,
        inherited_from: str | None = None,
    ) -> Role:
        """Rename, describe or re-base the role; its custom permissions are kept."""
        body = {
            "name": self.name if name is None else name,
            "description": self.description if description is None else description,
            "inherited_from": self.inherited_from if inherited_from is None else inherited_from,
        }
        self._update(self.api._http.request("PUT", self._path, json=body))
        return self

    def add_permissions(self, *permissions: str) -> Role:
        """Add catalogue permissions (``"run:delete"`` ...) to the role."""
        body = {"add": list(permissions), "remove": []}
        self._update(self.api._http.request("PATCH", self._path, json=body))
        return self

    def remove_permissions(self, *permissions: str) -> Role:
        """Remove custom permissions from the role."""
        body = {"add": [], "remove": list(permissions)}
        self._update(self.api._http.request("PATCH", self._path, json=body))
        return self

    def delete(self) -> None:
        """Delete the role; everyone holding it falls back to the role it inherited from."""
        self.api._http.request("DELETE", self._path)


class Viewer(Model):
    """The caller as the server sees it (``GET /viewer``)."""

    kind = field()
    name = field()
    username = field()
    email = field()
    full_name = field()
    org = field()
    role = field()
    credential = field()
    teams = field()
    #: Service accounts: ``org`` or ``team``, and the default (org) or parent (team) team.
    scope = field()
    team = field()


class TraceStep(NamedTuple):
    """One step of a policy decision."""

    rule: str
    outcome: str
    detail: str


class Decision(Model):
    """The answer of ``Api.check``: ``allowed``, the deciding ``rule`` and the ``trace``."""

    allowed = field()
    permission = field()
    rule = field()

    @property
    def trace(self) -> list[TraceStep]:
        """The policy's steps, in order."""
        return [
            TraceStep(s.get("rule", ""), s.get("outcome", ""), s.get("detail", ""))
            for s in self._data.get("trace", [])
        ]

    def __bool__(self) -> bool:
        return bool(self.allowed)

    def __repr__(self) -> str:
        verdict = "allow" if self.allowed else "deny"
        return f"<Decision {verdict} {self.permission} by {self.rule}>"


class AuditEvent(Model):
    """One entry of the audit log (``AuditEventRead``)."""

    seq = field()
    at = field()
    org_id = field()
    actor = field()
    surface = field()
    action = field()
    object = field()
    before = field()
    after = field()
    detail = field()

    def __repr__(self) -> str:
        return f"<AuditEvent {self.seq} {self.action}>"


__all__ = [
    "AuditEvent",
    "Decision",
    "Member",
    "Model",
    "Role",
    "ServiceAccount",
    "Team",
    "TraceStep",
    "User",
    "Viewer",
    "field",
    "principal_ref",
    "user_ref",
]
