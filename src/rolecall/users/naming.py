"""Usernames and emails: validation and normalisation."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from rolecall.errors import InvalidInput

USERNAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENTITY_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


def normalise_email(email: str) -> str:
    """The address as given (trimmed), validated for syntax only (no DNS)."""
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"invalid email address: {exc}", field="email") from exc
    return result.normalized


def check_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            "usernames use only letters, digits, '_' and '-' (1-64 characters)",
            field="username",
        )
    return username


def check_entity_name(name: str, field: str = "name") -> str:
    if not ENTITY_NAME_RE.fullmatch(name):
        raise InvalidInput(
            "names use letters, digits, '_', '-' and '.' (1-128 characters, not starting with '.')",
            field=field,
        )
    return name


#: Names no organization takes: ``wandb`` is the JWT audience every organization accepts (the
#: seeds' identity federation), which an organization of that name would take for its own.
RESERVED_ORG_NAMES = frozenset({"wandb"})


def check_org_name(name: str, field: str = "name") -> str:
    """An organization's name: an entity name (``check_entity_name``), not a reserved one.
    Raises ``InvalidInput``."""
    check_entity_name(name, field=field)
    if name.lower() in RESERVED_ORG_NAMES:
        raise InvalidInput(
            f"{name!r} is reserved: it is the audience every organization's JWTs may name",
            field=field,
        )
    return name


def username_from_email(email: str) -> str:
    """A valid username suggested by an email's local part."""
    local = email.split("@", 1)[0]
    candidate = re.sub(r"[^A-Za-z0-9_-]+", "-", local).strip("-")[:48]
    return candidate or "user"
