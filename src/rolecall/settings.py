"""Server settings, read from the environment.

Our own settings carry the ``ROLECALL_`` prefix; the seed documents' names (``SESSION_LENGTH``,
``LOCAL_RESTORE``, ``GORILLA_*`` ...) are read as they are spelled there.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OrgMode(StrEnum):
    SINGLE = "single"
    MULTI = "multi"


DEFAULT_DATABASE_URL = "sqlite:///./rolecall.db"
#: The longest session, in hours (ten years): the bound of the value an org admin stores
#: (``orgs.schemas.OrgSettingsUpdate``); a longer one overflows the expiry time.
MAX_SESSION_LENGTH_HOURS = 87_600
#: uvicorn's log levels (``uvicorn.config.LOG_LEVELS``).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class Settings(BaseSettings):
    """Every setting the server reads; see the README's configuration table."""

    # An empty variable is an unset one, whatever its type (Helm charts render ``VAR: ""``).
    model_config = SettingsConfigDict(
        env_prefix="ROLECALL_", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    mode: OrgMode = OrgMode.SINGLE
    #: One of ``LOG_LEVELS``, in any case.
    log_level: str = "info"
    #: Server processes ``rolecall serve`` starts (each with its own threads, one database).
    workers: int = Field(default=1, ge=1, le=64)
    #: Threads serving the (synchronous) request handlers of one server process.
    worker_threads: int = Field(default=4, ge=1, le=256)
    #: Entries of the in-process access cache (``authz.cache``); 0 turns it off.
    access_cache_size: int = Field(default=20_000, ge=0, le=10_000_000)
    #: Seconds an access-cache entry lives at most (writes drop the cache sooner).
    access_cache_seconds: float = Field(default=300.0, gt=0, le=86_400, allow_inf_nan=False)

    session_length_hours: int = Field(
        default=720, ge=1, validation_alias=AliasChoices("SESSION_LENGTH")
    )
    local_restore: bool = Field(default=False, validation_alias=AliasChoices("LOCAL_RESTORE"))
    disable_personal_entity: bool = Field(
        default=False, validation_alias=AliasChoices("GORILLA_DISABLE_PERSONAL_ENTITY")
    )
    disable_admin_team_access: bool = Field(
        default=False, validation_alias=AliasChoices("GORILLA_DISABLE_ADMIN_TEAM_ACCESS")
    )
    # --- single sign-on (seed names). Each OIDC/LDAP value may also be stored on the
    # organization through the API; a variable set here wins (``rolecall.sso.config``).
    oidc_issuer: str | None = Field(default=None, validation_alias=AliasChoices("OIDC_ISSUER"))
    oidc_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("OIDC_CLIENT_ID")
    )
    oidc_auth_method: str = Field(default="pkce", validation_alias=AliasChoices("OIDC_AUTH_METHOD"))
    oidc_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OIDC_SECRET")
    )
    oidc_custom_scopes: str | None = Field(
        default=None, validation_alias=AliasChoices("GORILLA_OIDC_CUSTOM_SCOPES")
    )
    #: OIDC ``max_age`` (Core §3.1.2.1): the longest, in seconds, since the user last
    #: authenticated at the provider; unset: not sent, and ``auth_time`` is not required.
    oidc_max_age: int | None = Field(default=None, ge=0, le=366 * 24 * 3600)
    ldap_address: str | None = Field(
        default=None, validation_alias=AliasChoices("LOCAL_LDAP_ADDRESS")
    )
    ldap_base_dn: str | None = Field(
        default=None, validation_alias=AliasChoices("LOCAL_LDAP_BASE_DN")
    )
    ldap_bind_dn: str | None = Field(
        default=None, validation_alias=AliasChoices("LOCAL_LDAP_BIND_DN")
    )
    ldap_bind_pw: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LOCAL_LDAP_BIND_PW")
    )
    ldap_attributes: str | None = Field(
        default=None, validation_alias=AliasChoices("LOCAL_LDAP_ATTRIBUTES")
    )
    ldap_tls_enable: bool = Field(
        default=False, validation_alias=AliasChoices("LOCAL_LDAP_TLS_ENABLE")
    )
    #: A CA bundle (PEM file) that verifies the directory's certificate; default: the system's.
    ldap_ca_file: str | None = Field(
        default=None, validation_alias=AliasChoices("ROLECALL_LDAP_CA_FILE")
    )
    ldap_group_allow_list: str | None = Field(
        default=None, validation_alias=AliasChoices("LOCAL_LDAP_GROUP_ALLOW_LIST")
    )
    ldap_login: bool = Field(default=False, validation_alias=AliasChoices("LOCAL_LDAP_LOGIN"))
    disable_sso_provisioning: bool = Field(
        default=False, validation_alias=AliasChoices("DISABLE_SSO_PROVISIONING")
    )
    use_identifier_claims: bool = Field(
        default=False, validation_alias=AliasChoices("GORILLA_USE_IDENTIFIER_CLAIMS")
    )
    enable_sso_group_claims: bool = Field(
        default=False, validation_alias=AliasChoices("GORILLA_ENABLE_SSO_GROUP_CLAIMS")
    )
    ldap_group_sync: bool = Field(
        default=False, validation_alias=AliasChoices("GORILLA_LDAP_GROUP_SYNC")
    )

    #: Hosts, addresses or networks (comma-separated) that calls to identity providers may
    #: reach although ``federation.destinations`` would refuse them (multi-org mode: any
    #: non-public address; every mode: link-local and cloud metadata addresses).
    outbound_allow: str | None = None

    #: Identity federation: any ``aud`` is accepted (honoured in single-org mode only).
    skip_audience_validation: bool = Field(
        default=False, validation_alias=AliasChoices("SKIP_AUDIENCE_VALIDATION")
    )
    #: Seconds an access token from ``POST /oidc/token`` lives. More than 300: the wandb SDK
    #: treats a token expiring within five minutes as expired and exchanges before every request.
    access_token_lifetime: int = Field(default=3600, gt=300, le=7 * 24 * 3600)
    #: Server secret (at least 32 characters). With it, service-account keys created through
    #: the GraphQL surface can be shown again to those who manage the account, which is the
    #: only way the wandb SDK receives them (``members[].apiKey``).
    secret_key: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        """A value of only spaces is unset too, like an empty one (``env_ignore_empty``): the
        setting keeps its default and is not fixed by the environment."""
        if not isinstance(values, dict):
            return values
        return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}

    @model_validator(mode="after")
    def _database_named_if_set(self) -> Settings:
        """An empty ``ROLECALL_DATABASE_URL`` is refused, unlike other empty settings: taken as
        unset, it would silently put a deployment meant for PostgreSQL (a chart that rendered
        the value empty) on a fresh SQLite file of its own."""
        if os.environ.get("ROLECALL_DATABASE_URL", "unset").strip() == "":
            raise ValueError(
                "ROLECALL_DATABASE_URL is set but empty: name the database, or unset it for "
                f"the default ({DEFAULT_DATABASE_URL})"
            )
        return self

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 32:
            raise ValueError("ROLECALL_SECRET_KEY must be at least 32 characters")
        return value

    @property
    def secret_key_bytes(self) -> bytes | None:
        """The secret key as bytes, or ``None`` when it is not set."""
        return self.secret_key.get_secret_value().encode("utf-8") if self.secret_key else None

    @field_validator("session_length_hours")
    @classmethod
    def _session_ends(cls, value: int) -> int:
        if value > MAX_SESSION_LENGTH_HOURS:
            raise ValueError(
                f"at most {MAX_SESSION_LENGTH_HOURS} hours (ten years), as stored on an "
                f"organization; got {value}"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (got {value!r})")
        return level

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        """SQLite (a file) or PostgreSQL (psycopg), the two databases rolecall runs on."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        value = value.strip()
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL: use sqlite:///path/to/file.db or postgresql://user@host/db"
            ) from None
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
            return value
        if url.drivername in ("sqlite", "sqlite+pysqlite"):
            database = (url.database or "").strip()
            if not database or database == ":memory:" or url.query.get("mode") == "memory":
                # Each connection would get a database of its own, the server's empty.
                raise ValueError("SQLite needs a file (sqlite:///path/to/file.db), not memory")
            return value
        raise ValueError(
            f"{url.drivername} is not supported: use sqlite:///path/to/file.db or "
            "postgresql://user@host/db"
        )

    @field_validator("oidc_auth_method")
    @classmethod
    def _known_auth_method(cls, value: str) -> str:
        value = (value or "pkce").strip().lower()
        if value not in ("pkce", "implicit"):
            raise ValueError("OIDC_AUTH_METHOD must be 'pkce' or 'implicit'")
        return value

    # The OIDC and LDAP values pass the rules ``rolecall.sso.config`` applies when it reads them
    # at each sign-in (where a bad one failed every sign-in, the local admin's password too).
    @field_validator(
        "oidc_issuer",
        "oidc_client_id",
        "ldap_address",
        "ldap_base_dn",
        "ldap_bind_dn",
        "ldap_attributes",
        "ldap_ca_file",
    )
    @classmethod
    def _sso_text(cls, value: str | None) -> str | None:
        return sso_text(value) or None if value is not None else None

    @field_validator("oidc_custom_scopes", "ldap_group_allow_list")
    @classmethod
    def _sso_list(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for item in value.replace(",", " ").split():
            sso_text(item)
        return value.strip() or None

    @field_validator("oidc_secret", "ldap_bind_pw")
    @classmethod
    def _sso_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            sso_text(value.get_secret_value())
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_url(cls, value: str | None) -> str | None:
        if value is not None and not is_http_url(value):
            raise ValueError(
                "must be an http(s) URL without query or fragment (the issuer identifier), "
                f"got {value!r}"
            )
        return value

    @field_validator("ldap_address")
    @classmethod
    def _ldap_url(cls, value: str | None) -> str | None:
        if value is not None and not is_ldap_url(value):
            raise ValueError(f"must be an ldap:// or ldaps:// URL with a host, got {value!r}")
        return value

    @field_validator("ldap_attributes")
    @classmethod
    def _ldap_attributes(cls, value: str | None) -> str | None:
        if value is not None:
            ldap_attributes(value)
        return value

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _allowed_destinations(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from rolecall.federation.destinations import parse_allowed

        parse_allowed(value.split(","))  # a bad entry: ValueError names it
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        value = value.strip().rstrip("/") if value else None
        if not value:
            return None
        if not is_http_url(value):
            raise ValueError(
                "must be an http(s) URL with a host and no query or fragment, such as "
                f"https://iam.example.com, got {value!r}"
            )
        scheme, rest = value.split(":", 1)
        return f"{scheme.lower()}:{rest}"  # cookies are Secure when it starts with https

    @property
    def base_url(self) -> str:
        """The external base URL: ``ROLECALL_PUBLIC_URL`` or the serve address."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}"

    @property
    def sso_enabled(self) -> bool:
        """Whether single sign-on may be used: ``LOCAL_RESTORE`` turns it off (local password
        sign-in only, so an admin locked out by a broken identity provider can get back in)."""
        return not self.local_restore

    def env_fixed(self) -> set[str]:
        """Names of fields set explicitly by the environment (they win over stored values)."""
        return set(self.model_fields_set)


# --- the rules for OIDC and LDAP values ----------------------------------------------------------
# Applied once at start to the environment's values, and by rolecall.sso.config to every value
# it reads (the environment's and those stored in the database): one set of rules for both.

#: The longest OIDC or LDAP value, in characters.
SSO_MAX_TEXT = 2048
#: ``LOCAL_LDAP_ATTRIBUTES`` keys rolecall reads.
LDAP_ATTRIBUTE_KEYS = ("email", "group", "name")


def sso_text(value: str) -> str:
    """``value`` stripped. Raises ``ValueError`` when it is too long or holds control characters
    (a lone surrogate among them: it is no Unicode text)."""
    text = value.strip()
    if len(text) > SSO_MAX_TEXT or any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ValueError(f"longer than {SSO_MAX_TEXT} characters or holds control characters")
    return text


def url_parts(text: str) -> SplitResult:
    """``urlsplit(text)``. Raises ``ValueError`` for what it cannot split (``http://[::1``) or a
    port out of range."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    return parts


def is_http_url(text: str) -> bool:
    """Whether ``text`` is an http(s) URL (the scheme in any case) with a host and no query or
    fragment. Raises ``ValueError`` when it is no URL at all."""
    parts = url_parts(text)  # its scheme lower-case
    return (
        parts.scheme in ("https", "http")
        and bool(parts.hostname)
        and not parts.query
        and not parts.fragment
    )


def is_ldap_url(text: str) -> bool:
    """Whether ``text`` is an ldap:// or ldaps:// URL with a host. Raises ``ValueError`` when it
    is no URL at all."""
    parts = url_parts(text)
    return parts.scheme in ("ldap", "ldaps") and bool(parts.hostname)


def ldap_attributes(text: str) -> dict[str, str]:
    """``email=mail,group=gidNumber`` -> ``{"email": "mail", "group": "gidNumber"}``. Raises
    ``ValueError`` naming the pair that is not ``key=attribute`` with a known key."""
    mapping: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",")):
        key, sep, attribute = pair.partition("=")
        key, attribute = key.strip().lower(), attribute.strip()
        if not sep or not attribute or not all(c.isalnum() or c in "-;." for c in attribute):
            raise ValueError(f"must look like email=mail,group=gidNumber (got {pair!r})")
        if key not in LDAP_ATTRIBUTE_KEYS:
            raise ValueError(f"unknown key {key!r}; known: {', '.join(LDAP_ATTRIBUTE_KEYS)}")
        mapping[key] = attribute
    return mapping


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
