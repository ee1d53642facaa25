"""The SSO configuration an organization runs with: the one place stored values meet the
environment (DESIGN.md: a variable, when set, wins and the API shows it as fixed).

Stored values live in ``Organization.settings["oidc"]`` and ``["ldap"]``. The two secrets (the
OIDC client secret and the LDAP bind password) are stored encrypted with a key derived from
``ROLECALL_SECRET_KEY`` (JWE ``dir`` + ``A256GCM``), so a copy of the database alone does not
reveal them; storing one through the API needs that key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from rolecall.errors import Conflict, InvalidInput
from rolecall.federation.destinations import SINGLE_ORG, DestinationRefused, Destinations
from rolecall.orgs.models import Organization
from rolecall.orgs.settings import hold_settings
from rolecall.settings import (
    Settings,
    is_http_url,
    is_ldap_url,
    ldap_attributes,
    sso_text,
)

#: Scopes every OIDC sign-in asks for (the seeds: ``openid profile email``).
BASE_SCOPES = ("openid", "profile", "email")
AUTH_METHODS = ("pkce", "implicit")
#: ``LOCAL_LDAP_ATTRIBUTES`` keys rolecall reads, and the directory attribute each defaults to
#: (``group``: none; ``name``: see ``LDAP_NAME_ATTRIBUTES``).
LDAP_ATTRIBUTE_DEFAULTS = {"email": "mail"}
#: Where the full name is read after the ``name=`` attribute (or without one): the first of
#: these an entry has.
LDAP_NAME_ATTRIBUTES = ("displayName", "cn")

#: Stored name -> (Settings attribute, environment variable, kind).
OIDC_FIELDS: dict[str, tuple[str, str, str]] = {
    "issuer": ("oidc_issuer", "OIDC_ISSUER", "url"),
    "client_id": ("oidc_client_id", "OIDC_CLIENT_ID", "text"),
    "auth_method": ("oidc_auth_method", "OIDC_AUTH_METHOD", "auth_method"),
    "secret": ("oidc_secret", "OIDC_SECRET", "secret"),
    "custom_scopes": ("oidc_custom_scopes", "GORILLA_OIDC_CUSTOM_SCOPES", "list"),
}
LDAP_FIELDS: dict[str, tuple[str, str, str]] = {
    "address": ("ldap_address", "LOCAL_LDAP_ADDRESS", "ldap_url"),
    "base_dn": ("ldap_base_dn", "LOCAL_LDAP_BASE_DN", "text"),
    "bind_dn": ("ldap_bind_dn", "LOCAL_LDAP_BIND_DN", "text"),
    "bind_pw": ("ldap_bind_pw", "LOCAL_LDAP_BIND_PW", "secret"),
    "attributes": ("ldap_attributes", "LOCAL_LDAP_ATTRIBUTES", "attributes"),
    "tls_enable": ("ldap_tls_enable", "LOCAL_LDAP_TLS_ENABLE", "bool"),
    "ca_file": ("ldap_ca_file", "ROLECALL_LDAP_CA_FILE", "text"),
    "group_allow_list": ("ldap_group_allow_list", "LOCAL_LDAP_GROUP_ALLOW_LIST", "list"),
    "login": ("ldap_login", "LOCAL_LDAP_LOGIN", "bool"),
}


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str | None = None
    client_id: str | None = None
    auth_method: str = "pkce"
    secret: str | None = None
    custom_scopes: tuple[str, ...] = ()
    fixed_by_environment: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.issuer and self.client_id)

    @property
    def scopes(self) -> tuple[str, ...]:
        """``openid profile email`` and the custom scopes, each once, in that order."""
        return tuple(dict.fromkeys((*BASE_SCOPES, *self.custom_scopes)))


@dataclass(frozen=True, slots=True)
class LdapConfig:
    address: str | None = None
    base_dn: str | None = None
    bind_dn: str | None = None
    bind_pw: str | None = None
    attributes: dict[str, str] = field(default_factory=lambda: dict(LDAP_ATTRIBUTE_DEFAULTS))
    tls_enable: bool = False
    ca_file: str | None = None
    group_allow_list: tuple[str, ...] = ()
    login: bool = False
    fixed_by_environment: tuple[str, ...] = ()
    #: Where the directory may be (the server's mode and ``ROLECALL_OUTBOUND_ALLOW``).
    destinations: Destinations = SINGLE_ORG

    @property
    def configured(self) -> bool:
        return bool(self.address and self.base_dn)

    @property
    def name_attributes(self) -> tuple[str, ...]:
        """Where an entry's full name is read, the first it has: the ``name=`` attribute when
        set, then ``displayName``, then ``cn``."""
        named = self.attributes.get("name")
        rest = [a for a in LDAP_NAME_ATTRIBUTES if not named or a.lower() != named.lower()]
        return (named, *rest) if named else tuple(rest)


# --- resolution -------------------------------------------------------------------------------


def oidc_config(org: Organization | None, settings: Settings) -> OidcConfig:
    """The OIDC relying-party settings in force for ``org``."""
    values, fixed = _resolve(org, settings, "oidc", OIDC_FIELDS)
    return OidcConfig(**values, fixed_by_environment=fixed)


def ldap_config(org: Organization | None, settings: Settings) -> LdapConfig:
    """The LDAP settings in force for ``org``."""
    values, fixed = _resolve(org, settings, "ldap", LDAP_FIELDS)
    return LdapConfig(**values, fixed_by_environment=fixed, destinations=Destinations.of(settings))


def ldap_config_from(values: dict[str, Any], base: LdapConfig) -> LdapConfig:
    """``base`` with ``values`` (stored names, raw input) laid over it: what "test settings"
    tries. Raises ``InvalidInput`` on a bad value."""
    changes = {name: _parse(LDAP_FIELDS, name, value) for name, value in values.items()}
    merged = {name: getattr(base, name) for name in LDAP_FIELDS}
    merged.update({k: v for k, v in changes.items() if v is not None or k in values})
    if merged.get("attributes") is None:
        merged["attributes"] = dict(LDAP_ATTRIBUTE_DEFAULTS)
    for name in ("tls_enable", "login"):
        merged[name] = bool(merged[name])
    merged["group_allow_list"] = tuple(merged["group_allow_list"] or ())
    return LdapConfig(
        **merged, fixed_by_environment=base.fixed_by_environment, destinations=base.destinations
    )


def _from_environment(settings: Settings, attribute: str) -> Any:
    """The variable's value when it is set (and not empty), else ``None``."""
    if attribute not in settings.env_fixed():
        return None
    value = getattr(settings, attribute)
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value() or None
    return value


def _resolve(
    org: Organization | None,
    settings: Settings,
    section: str,
    fields: dict[str, tuple[str, str, str]],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    org_settings = (org.settings or {}) if org is not None else {}
    stored: dict[str, Any] = dict(org_settings.get(section) or {})
    values: dict[str, Any] = {}
    fixed: list[str] = []
    for name, (attribute, _variable, kind) in fields.items():
        from_env = _from_environment(settings, attribute)
        if from_env is not None:
            fixed.append(name)
            values[name] = _parse(fields, name, from_env)
        elif kind == "secret":
            values[name] = _reveal(settings, stored.get(name))
        else:
            values[name] = stored.get(name)
    values["custom_scopes" if section == "oidc" else "group_allow_list"] = tuple(
        values["custom_scopes" if section == "oidc" else "group_allow_list"] or ()
    )
    if section == "oidc":
        values["auth_method"] = values["auth_method"] or "pkce"
    else:
        values["attributes"] = {**LDAP_ATTRIBUTE_DEFAULTS, **(values["attributes"] or {})}
        values["tls_enable"] = bool(values["tls_enable"])
        values["login"] = bool(values["login"])
    return values, tuple(fixed)


# --- parsing ----------------------------------------------------------------------------------


def _parse(fields: dict[str, tuple[str, str, str]], name: str, value: Any) -> Any:
    """One setting's value from input (API body or environment); ``None`` clears it.

    Raises ``InvalidInput`` naming the setting.
    """
    if name not in fields:
        raise InvalidInput(f"unknown setting {name!r}", field=name)
    kind = fields[name][2]
    if value is None:
        return None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise InvalidInput(f"{name} must be true or false", field=name)
    if kind == "list":
        items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
        parsed = tuple(dict.fromkeys(_text(name, str(item)) for item in items if str(item).strip()))
        return parsed
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    text = _text(name, value)
    if not text:
        return None
    if kind == "url":
        return _issuer_url(name, text)
    if kind == "ldap_url":
        if not _checked_url(name, text, is_ldap_url):
            raise InvalidInput(f"{name} must be an ldap:// or ldaps:// URL with a host", field=name)
        return text
    if kind == "auth_method":
        if text.lower() not in AUTH_METHODS:
            raise InvalidInput(f"{name} must be one of {', '.join(AUTH_METHODS)}", field=name)
        return text.lower()
    if kind == "attributes":
        return _attributes(name, text)
    return text


# The rules themselves live in ``rolecall.settings``, which checks the environment's values once
# at start with them; here they check every value read (the environment's, and those stored).


def _text(name: str, value: str) -> str:
    try:
        return sso_text(value)
    except ValueError:
        raise InvalidInput(f"{name} is too long or holds control characters", field=name) from None


def _checked_url(name: str, text: str, check: Callable[[str], bool]) -> bool:
    """``check(text)``, whose ``ValueError`` (no URL at all: ``http://[::1``, a port out of
    range) is a bad value of ``name``, not a server error."""
    try:
        return check(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} is {exc}", field=name) from None


def _issuer_url(name: str, text: str) -> str:
    if not _checked_url(name, text, is_http_url):
        raise InvalidInput(
            f"{name} must be an http(s) URL without query or fragment (the issuer identifier)",
            field=name,
        )
    return text.rstrip("/")


def _attributes(name: str, text: str) -> dict[str, str]:
    """``email=mail,group=gidNumber`` -> ``{"email": "mail", "group": "gidNumber"}``."""
    try:
        return ldap_attributes(text)
    except ValueError as exc:
        raise InvalidInput(f"{name}: {exc}", field=name) from None


# --- storing ----------------------------------------------------------------------------------

#: The stored values that are addresses rolecall connects to, and their schemes' ports.
DEFAULT_PORTS_OF = {
    "issuer": {"https": 443, "http": 80},
    "address": {"ldap": 389, "ldaps": 636},
}


def _check_destination(name: str, value: str, destinations: Destinations) -> None:
    """Refuse an address rolecall may not connect to now, rather than at the next sign-in."""
    try:
        parts = urlsplit(value)
        port = parts.port or DEFAULT_PORTS_OF[name].get(parts.scheme.lower())
    except ValueError:
        return  # not a URL: the value's own parsing says so
    if parts.hostname and port:
        try:
            destinations.check(parts.hostname, port)
        except DestinationRefused as exc:
            raise InvalidInput(f"{name}: {exc}", field=name) from None


def store_section(
    org: Organization,
    settings: Settings,
    section: str,
    changes: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Store changes to ``section`` ("oidc" or "ldap"); returns (before, after) of what changed,
    with secrets shown only as ``"(set)"``/``None``.

    Raises ``InvalidInput`` on a bad value; ``Conflict`` (code ``fixed_by_environment``) when a
    change names a setting the environment fixes, or a secret is stored without
    ``ROLECALL_SECRET_KEY``.
    """
    hold_settings(org)  # the whole document is written back: no change lost to another's
    fields = OIDC_FIELDS if section == "oidc" else LDAP_FIELDS
    current = oidc_config(org, settings) if section == "oidc" else ldap_config(org, settings)
    stored = dict((org.settings or {}).get(section) or {})
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, raw in changes.items():
        value = _parse(fields, name, raw)
        if name in DEFAULT_PORTS_OF and isinstance(value, str):
            _check_destination(name, value, Destinations.of(settings))
        if name in current.fixed_by_environment:
            raise Conflict(
                f"{section} {name} is fixed by the environment variable {fields[name][1]}; "
                "unset it on the server to manage the setting here",
                field=name,
                code="fixed_by_environment",
            )
        is_secret = fields[name][2] == "secret"
        old = stored.get(name)
        if is_secret:
            new = _conceal(settings, value) if value is not None else None
            if (old is None) == (new is None) and (new is None or _reveal(settings, old) == value):
                continue
            before[name], after[name] = _shown(old), _shown(new)
        else:
            new = list(value) if isinstance(value, tuple) else value
            if old == new:
                continue
            before[name], after[name] = old, new
        if new is None:
            stored.pop(name, None)
        else:
            stored[name] = new
    if after:
        # A new dict, so SQLAlchemy sees the JSON column change.
        org.settings = {**(org.settings or {}), section: stored}
    return before, after


def _shown(value: Any) -> str | None:
    return None if value is None else "(set)"


_SECRET_LABEL = b"rolecall sso settings v1\x00"


def _key(settings: Settings) -> OctKey | None:
    server_key = settings.secret_key_bytes
    if server_key is None:
        return None
    return OctKey.import_key(hmac.new(server_key, _SECRET_LABEL, hashlib.sha256).digest())


def _conceal(settings: Settings, plaintext: str) -> str:
    key = _key(settings)
    if key is None:
        raise Conflict(
            "storing a secret needs ROLECALL_SECRET_KEY on the server (it encrypts stored "
            "secrets); set it, or give the secret through the environment",
            field="secret",
            code="secret_key_missing",
        )
    return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, plaintext.encode(), key)


def _reveal(settings: Settings, stored: Any) -> str | None:
    """The stored secret, or ``None`` when there is none or it cannot be read (the server's
    secret key changed): sign-in then fails as with a wrong secret, and an admin stores it again."""
    key = _key(settings)
    if not isinstance(stored, str) or key is None:
        return None
    try:
        plaintext = jwe.decrypt_compact(stored, key).plaintext
    except (JoseError, ValueError):
        return None
    return plaintext.decode() if plaintext is not None else None
