"""An organization's effective settings: the one place stored values meet the environment.

DESIGN.md: settings made through the API (and later the console) are stored on the organization;
an environment variable, when set, wins over the stored value and is shown as fixed by it.
``LOCAL_RESTORE`` is an operator's recovery switch and only ever comes from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import object_session

from rolecall.errors import Conflict
from rolecall.orgs.models import Organization
from rolecall.settings import Settings

#: Settings an org admin may store on the organization, with the variable that overrides each.
STORABLE: dict[str, str] = {
    "disable_personal_entity": "GORILLA_DISABLE_PERSONAL_ENTITY",
    "disable_admin_team_access": "GORILLA_DISABLE_ADMIN_TEAM_ACCESS",
    "session_length_hours": "SESSION_LENGTH",
    "disable_sso_provisioning": "DISABLE_SSO_PROVISIONING",
    "use_identifier_claims": "GORILLA_USE_IDENTIFIER_CLAIMS",
    "enable_sso_group_claims": "GORILLA_ENABLE_SSO_GROUP_CLAIMS",
    "ldap_group_sync": "GORILLA_LDAP_GROUP_SYNC",
}
#: Shown beside the stored ones, never stored.
ENVIRONMENT_ONLY: tuple[str, ...] = ("local_restore",)


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """What the organization runs with, and which names the environment fixes."""

    values: dict[str, Any]
    fixed_by_environment: list[str]

    @property
    def disable_personal_entity(self) -> bool:
        return bool(self.values["disable_personal_entity"])

    @property
    def disable_admin_team_access(self) -> bool:
        return bool(self.values["disable_admin_team_access"])

    @property
    def session_length_hours(self) -> int:
        return int(self.values["session_length_hours"])

    @property
    def disable_sso_provisioning(self) -> bool:
        return bool(self.values["disable_sso_provisioning"])

    @property
    def use_identifier_claims(self) -> bool:
        return bool(self.values["use_identifier_claims"])

    @property
    def enable_sso_group_claims(self) -> bool:
        return bool(self.values["enable_sso_group_claims"])

    @property
    def ldap_group_sync(self) -> bool:
        return bool(self.values["ldap_group_sync"])


def effective_settings(org: Organization | None, settings: Settings) -> EffectiveSettings:
    """Environment (when set) over the organization's stored value over the default."""
    from_environment = settings.env_fixed()
    stored = (org.settings or {}) if org is not None else {}
    values: dict[str, Any] = {}
    for name in STORABLE:
        default = getattr(settings, name)
        values[name] = default if name in from_environment else stored.get(name, default)
    for name in ENVIRONMENT_ONLY:
        values[name] = getattr(settings, name)
    fixed = sorted((set(STORABLE) & from_environment) | set(ENVIRONMENT_ONLY))
    return EffectiveSettings(values, fixed)


def hold_settings(org: Organization) -> None:
    """Lock ``org``'s row until the transaction ends and read its settings again, before a
    change to them. Every change writes the whole settings document back, built from the one it
    read: two at once (PostgreSQL, two workers) each kept only its own, silently losing the
    other's (a security switch turned back off, say). SQLite's one writer needs nothing."""
    session = object_session(org)
    if session is not None and session.get_bind().dialect.name != "sqlite":
        session.refresh(org, attribute_names=["settings"], with_for_update={"key_share": True})


def store_settings(
    org: Organization, settings: Settings, changes: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Store ``changes`` on ``org``; returns the (before, after) of what really changed.

    Raises ``Conflict`` when a change names a setting the environment fixes.
    """
    hold_settings(org)
    current = effective_settings(org, settings)
    for name in changes:
        if name in current.fixed_by_environment:
            variable = STORABLE.get(name, name.upper())
            raise Conflict(
                f"{name} is fixed by the environment variable {variable}; "
                "unset it on the server to manage the setting here",
                field=f"settings.{name}",
                code="fixed_by_environment",
            )
    before = {k: current.values[k] for k, v in changes.items() if current.values[k] != v}
    after = {k: changes[k] for k in before}
    if after:
        # A new dict, so SQLAlchemy sees the JSON column change.
        org.settings = {**(org.settings or {}), **after}
    return before, after
