"""Operator tasks on the server host, without Typer: the CLI commands print what these return.

Each task opens its own engine and session on ``settings.database_url``, acts as the host's
operator (``identity.principal.operator``), and commits only when everything succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from rolecall.api_keys.issue import issue_key
from rolecall.audit.service import record
from rolecall.authz.explain import explain
from rolecall.authz.policy import Decision
from rolecall.db.engine import make_engine, make_sessionmaker
from rolecall.errors import Conflict, InvalidInput, NotFound
from rolecall.identity.passwords import MIN_PASSWORD_LENGTH
from rolecall.identity.principal import operator
from rolecall.identity.sessions import home_org_id
from rolecall.orgs.bootstrap import initialize
from rolecall.orgs.models import Organization
from rolecall.settings import OrgMode, Settings
from rolecall.users.queries import find_user

SURFACE = "cli"


def _require_database_file(url: str) -> None:
    """``NotFound`` for a SQLite database file that is not there: opening it would leave an
    empty file (and its lock file) behind and then fail on a missing table. ``init`` and
    ``db upgrade`` make the file; the other host tasks only use one."""
    parsed = make_url(url)
    path = parsed.database
    if not parsed.drivername.startswith("sqlite") or not path or path == ":memory:":
        return
    if path.startswith("file:"):
        return  # a SQLite URI names its own open mode (mode=rw refuses a missing file)
    if not Path(path).exists():
        raise NotFound(f"no database at {path}: run `rolecall init` first", field="database_url")


@contextmanager
def open_session(settings: Settings) -> Iterator[Session]:
    """A session on the configured database; the caller commits, the engine is disposed.

    Raises ``NotFound`` for a SQLite database file that does not exist."""
    _require_database_file(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            session.info["settings"] = settings
            yield session
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Initialised:
    org: str
    admin: str
    username: str
    api_key: str


def initialise(
    settings: Settings, *, org_name: str, admin_email: str, admin_password: str | None
) -> Initialised:
    """Create the organization and its admin in one transaction; return the admin's first key.

    Raises ``Conflict`` when the database is already initialised (single mode: any org; multi
    mode: an org of that name), ``InvalidInput`` for a bad name, email or password.
    """
    if admin_password is not None and len(admin_password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the admin password needs at least {MIN_PASSWORD_LENGTH} characters",
            field="admin_password",
        )
    with open_session(settings) as session:
        existing = session.scalar(select(Organization).order_by(Organization.created_at).limit(1))
        if existing is not None and settings.mode is OrgMode.SINGLE:
            raise Conflict(
                f"the database is already initialised (organization {existing.name!r}); "
                "use `rolecall api-key create --user EMAIL` for a new admin key",
                code="already_initialised",
            )
        result = initialize(
            session, org_name=org_name, admin_email=admin_email, admin_password=admin_password
        )
        answer = Initialised(
            org=result.org.name,
            admin=result.admin.email,
            username=result.admin.username,
            api_key=result.api_key,
        )
        session.commit()
    return answer


def pick_org(session: Session, settings: Settings, name: str | None) -> Organization:
    """The org named, else the only (single mode: the first) one.

    Raises ``NotFound`` (no such org, or none yet), ``InvalidInput`` (several, none named).
    """
    if name:
        org = session.scalar(select(Organization).where(Organization.name_key == name.lower()))
        if org is None:
            raise NotFound(f"no organization {name!r}", field="org")
        return org
    orgs = list(session.scalars(select(Organization).order_by(Organization.created_at).limit(2)))
    if not orgs:
        raise NotFound("no organization yet: run `rolecall init` first")
    if len(orgs) > 1 and settings.mode is OrgMode.MULTI:
        raise InvalidInput("several organizations: name one with --org", field="org")
    return orgs[0]


@dataclass(frozen=True)
class IssuedKey:
    user: str
    username: str
    key_id: str
    api_key: str


def create_user_key(settings: Settings, *, user_ref: str, description: str | None) -> IssuedKey:
    """Issue an API key for a user (by email, username or id) with an active membership.

    Raises ``NotFound`` for an unknown user, ``InvalidInput`` for one active in no org.
    """
    with open_session(settings) as session:
        user = find_user(session, user_ref)
        if user is None:
            raise NotFound(f"no user {user_ref!r}", field="user")
        org_id = home_org_id(session, user.id)
        if org_id is None:
            raise InvalidInput(
                f"user {user.email!r} is not an active member of any organization", field="user"
            )
        key, secret = issue_key(session, user_id=user.id, description=description)
        record(
            session,
            actor=operator(SURFACE),
            action="api_key.create",
            object_type="api_key",
            object_id=key.id,
            object_name=user.username,
            org_id=org_id,
            after={"user": user.email, "description": description},
        )
        answer = IssuedKey(user=user.email, username=user.username, key_id=key.id, api_key=secret)
        session.commit()
    return answer


def explain_decision(
    settings: Settings,
    *,
    principal: str,
    permission: str,
    project: str,
    org_name: str | None,
) -> Decision:
    """The policy's decision and trace, asked by the operator (who may ask about anyone).

    Raises ``InvalidInput`` (unknown permission, malformed principal or project path) and
    ``NotFound`` (unknown org, principal or project). Nothing is written.
    """
    with open_session(settings) as session:
        org = pick_org(session, settings, org_name)
        decision = explain(
            session,
            actor=operator(SURFACE),
            org=org,
            principal_spec=principal,
            permission=permission,
            project_path=project,
        )
        session.rollback()
    return decision
