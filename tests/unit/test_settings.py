"""Settings are pure: read from the environment, with the documented defaults."""

from __future__ import annotations

import re

import pytest
from pydantic import AliasChoices, SecretStr, ValidationError

from rolecall.settings import Settings

SERVER_ENV = (
    "ROLECALL_PUBLIC_URL",
    "ROLECALL_HOST",
    "ROLECALL_PORT",
    "SESSION_LENGTH",
    "LOCAL_RESTORE",
    "ROLECALL_ACCESS_TOKEN_LIFETIME",
    "SKIP_AUDIENCE_VALIDATION",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in SERVER_ENV:
        monkeypatch.delenv(name, raising=False)


def test_public_url_defaults_to_the_serve_address():
    assert Settings().base_url == "http://127.0.0.1:8080"
    assert Settings(host="0.0.0.0", port=9000).base_url == "http://0.0.0.0:9000"
    assert Settings(host="::1", port=9000).base_url == "http://[::1]:9000"


def test_public_url_follows_the_serve_address_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROLECALL_HOST", "10.0.0.5")
    monkeypatch.setenv("ROLECALL_PORT", "8443")

    assert Settings().base_url == "http://10.0.0.5:8443"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://iam.example.com", "https://iam.example.com"),
        ("https://iam.example.com/", "https://iam.example.com"),
        ("https://example.com/rolecall//", "https://example.com/rolecall"),
        ("  https://iam.example.com/ ", "https://iam.example.com"),
    ],
)
def test_an_explicit_public_url_wins_without_its_trailing_slash(monkeypatch, value, expected):
    monkeypatch.setenv("ROLECALL_PUBLIC_URL", value)
    monkeypatch.setenv("ROLECALL_PORT", "9999")

    assert Settings().public_url == expected
    assert Settings().base_url == expected


def test_an_empty_public_url_means_unset(monkeypatch):
    monkeypatch.setenv("ROLECALL_PUBLIC_URL", "")

    assert Settings().base_url == "http://127.0.0.1:8080"


def test_session_length_defaults_to_thirty_days_and_reads_session_length(monkeypatch):
    assert Settings().session_length_hours == 720
    monkeypatch.setenv("SESSION_LENGTH", "12")

    assert Settings().session_length_hours == 12


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_session_length_is_refused(monkeypatch, value):
    monkeypatch.setenv("SESSION_LENGTH", value)

    with pytest.raises(ValueError):
        Settings()


def test_local_restore_turns_sso_off(monkeypatch):
    assert Settings().local_restore is False and Settings().sso_enabled is True
    monkeypatch.setenv("LOCAL_RESTORE", "true")

    assert Settings().local_restore is True and Settings().sso_enabled is False


def test_worker_threads_default_and_environment(monkeypatch):
    assert Settings().worker_threads == 4
    monkeypatch.setenv("ROLECALL_WORKER_THREADS", "16")

    assert Settings().worker_threads == 16


@pytest.mark.parametrize("value", ["0", "-2", "many", "1000"])
def test_a_bad_worker_thread_count_is_refused(monkeypatch, value):
    monkeypatch.setenv("ROLECALL_WORKER_THREADS", value)

    with pytest.raises(ValueError):
        Settings()


def test_workers_default_and_environment(monkeypatch):
    assert Settings().workers == 1
    monkeypatch.setenv("ROLECALL_WORKERS", "3")

    assert Settings().workers == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "65"])
def test_a_bad_worker_count_is_refused(monkeypatch, value):
    monkeypatch.setenv("ROLECALL_WORKERS", value)

    with pytest.raises(ValueError):
        Settings()


def test_oidc_max_age_is_unset_by_default_or_empty(monkeypatch):
    assert Settings().oidc_max_age is None
    monkeypatch.setenv("ROLECALL_OIDC_MAX_AGE", " ")
    assert Settings().oidc_max_age is None
    monkeypatch.setenv("ROLECALL_OIDC_MAX_AGE", "900")
    assert Settings().oidc_max_age == 900


@pytest.mark.parametrize("value", ["-1", "soon", str(366 * 24 * 3600 + 1)])
def test_a_bad_oidc_max_age_is_refused(monkeypatch, value):
    monkeypatch.setenv("ROLECALL_OIDC_MAX_AGE", value)

    with pytest.raises(ValueError):
        Settings()


def test_access_cache_settings_default_and_environment(monkeypatch):
    assert Settings().access_cache_size == 20_000
    assert Settings().access_cache_seconds == 300.0
    monkeypatch.setenv("ROLECALL_ACCESS_CACHE_SIZE", "0")
    monkeypatch.setenv("ROLECALL_ACCESS_CACHE_SECONDS", "2.5")

    assert Settings().access_cache_size == 0
    assert Settings().access_cache_seconds == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROLECALL_ACCESS_CACHE_SIZE", "-1"),
        ("ROLECALL_ACCESS_CACHE_SIZE", "lots"),
        ("ROLECALL_ACCESS_CACHE_SIZE", "1.5"),
        ("ROLECALL_ACCESS_CACHE_SECONDS", "0"),
        ("ROLECALL_ACCESS_CACHE_SECONDS", "-3"),
        ("ROLECALL_ACCESS_CACHE_SECONDS", "forever"),
    ],
)
def test_a_bad_access_cache_setting_is_refused(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValueError):
        Settings()


def test_access_token_lifetime_defaults_to_an_hour_and_reads_the_environment(monkeypatch):
    assert Settings().access_token_lifetime == 3600
    monkeypatch.setenv("ROLECALL_ACCESS_TOKEN_LIFETIME", "301")

    assert Settings().access_token_lifetime == 301


@pytest.mark.parametrize("value", ["300", "60", "0", "604801", "long"])
def test_an_access_token_lifetime_of_five_minutes_or_less_is_refused(monkeypatch, value):
    # The wandb SDK exchanges before every request when the token expires within 300 s.
    monkeypatch.setenv("ROLECALL_ACCESS_TOKEN_LIFETIME", value)

    with pytest.raises(ValueError):
        Settings()


def test_skip_audience_validation_reads_the_seeds_name(monkeypatch):
    assert Settings().skip_audience_validation is False
    monkeypatch.setenv("SKIP_AUDIENCE_VALIDATION", "true")

    assert Settings().skip_audience_validation is True


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///./rolecall.db",
        "sqlite:////var/lib/rolecall/rolecall.db",
        "sqlite+pysqlite:///x.db",
        "postgresql://rolecall:secret@db.internal:5432/rolecall",
        "postgres://rolecall@db/rolecall",
        "postgresql+psycopg://rolecall@db/rolecall?sslmode=require",
    ],
)
def test_sqlite_files_and_postgresql_are_the_databases_taken(monkeypatch, url):
    monkeypatch.setenv("ROLECALL_DATABASE_URL", f"  {url} ")
    assert Settings().database_url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://root@db/rolecall", "mysql is not supported"),
        ("postgresql+asyncpg://db/rolecall", "postgresql+asyncpg is not supported"),
        ("sqlite://", "SQLite needs a file"),
        ("sqlite:///:memory:", "SQLite needs a file"),
        ("sqlite:///file:x?mode=memory&uri=true", "SQLite needs a file"),
        ("rolecall.db", "not a database URL"),
    ],
)
def test_other_databases_and_memory_are_refused(monkeypatch, url, reason):
    monkeypatch.setenv("ROLECALL_DATABASE_URL", url)
    with pytest.raises(ValueError, match=re.escape(reason)):
        Settings()


# --- an empty variable is an unset one ----------------------------------------------------------


def env_name(name: str) -> str:
    """The environment variable of the field ``name`` (its seed alias, or ``ROLECALL_NAME``)."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"ROLECALL_{name}".upper()


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize("name", sorted(set(Settings.model_fields) - {"database_url"}))
def test_an_empty_variable_means_the_default(monkeypatch, name, blank):
    # Helm charts render VAR: "". Booleans and numbers refused it ("Input should be a valid
    # boolean"), strings took it as unset: now every setting takes it as unset.
    monkeypatch.delenv(env_name(name), raising=False)
    default = getattr(Settings(), name)
    monkeypatch.setenv(env_name(name), blank)

    settings = Settings()

    assert getattr(settings, name) == default
    assert name not in settings.env_fixed()  # a stored value wins over an empty variable


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_database_url_is_refused_not_taken_for_the_default(monkeypatch, blank):
    # Taken as unset, it would put a deployment meant for PostgreSQL on a SQLite file.
    monkeypatch.setenv("ROLECALL_DATABASE_URL", blank)

    with pytest.raises(ValueError, match="ROLECALL_DATABASE_URL is set but empty"):
        Settings()


def test_empty_seed_variables_keep_their_defaults(monkeypatch):
    for variable in ("LOCAL_RESTORE", "SESSION_LENGTH", "GORILLA_DISABLE_PERSONAL_ENTITY"):
        monkeypatch.setenv(variable, "")
    monkeypatch.setenv("ROLECALL_MODE", "")
    monkeypatch.setenv("ROLECALL_WORKERS", "")

    settings = Settings()

    assert settings.local_restore is False and settings.disable_personal_entity is False
    assert settings.session_length_hours == 720
    assert settings.mode == "single" and settings.workers == 1


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity"])
def test_an_access_cache_lifetime_that_is_no_number_says_so(monkeypatch, value):
    # nan was refused as "less than or equal to 86400", which it is not either.
    monkeypatch.setenv("ROLECALL_ACCESS_CACHE_SECONDS", value)

    with pytest.raises(ValidationError) as refused:
        Settings()

    (error,) = refused.value.errors()
    assert error["loc"] == ("access_cache_seconds",)
    assert error["msg"] == "Input should be a finite number"


# --- bounds ----------------------------------------------------------------------------------


def test_session_length_is_at_most_ten_years_like_the_stored_setting(monkeypatch):
    monkeypatch.setenv("SESSION_LENGTH", "87600")
    assert Settings().session_length_hours == 87600
    # 99999999999 hours started the server, then every sign-in was a 500 (OverflowError).
    for value in ("87601", "99999999999"):
        monkeypatch.setenv("SESSION_LENGTH", value)
        with pytest.raises(ValidationError, match="at most 87600 hours"):
            Settings()


def test_the_session_length_bound_is_the_apis():
    from rolecall.orgs.schemas import OrgSettingsUpdate
    from rolecall.settings import MAX_SESSION_LENGTH_HOURS

    stored = OrgSettingsUpdate.model_fields["session_length_hours"].metadata
    assert any(getattr(rule, "le", None) == MAX_SESSION_LENGTH_HOURS for rule in stored)


@pytest.mark.parametrize(
    ("value", "level"),
    [("critical", "critical"), ("ERROR", "error"), (" Warning ", "warning"), ("trace", "trace")],
)
def test_log_level_is_one_of_uvicorns_in_any_case(monkeypatch, value, level):
    monkeypatch.setenv("ROLECALL_LOG_LEVEL", value)

    assert Settings().log_level == level


def test_the_log_levels_are_uvicorns():
    from uvicorn.config import LOG_LEVELS as UVICORN_LEVELS

    from rolecall.settings import LOG_LEVELS

    assert set(LOG_LEVELS) == set(UVICORN_LEVELS)


@pytest.mark.parametrize("value", ["loud", "warn", "10"])
def test_an_unknown_log_level_is_refused(monkeypatch, value):
    # loud was a KeyError traceback from uvicorn, after the migrations had run.
    monkeypatch.setenv("ROLECALL_LOG_LEVEL", value)

    with pytest.raises(ValidationError, match="must be one of critical, error, warning"):
        Settings()


# --- OIDC and LDAP values: refused at start by the rules rolecall.sso.config reads them with ------

SSO_VALUES = [
    ("oidc_issuer", "https://idp.example.com/realms/ml/", True),
    ("oidc_issuer", " http://localhost:8080 ", True),
    ("oidc_issuer", "notaurl", False),
    ("oidc_issuer", "HTTPS://idp.example.com", True),
    ("oidc_issuer", "ftp://idp.example.com", False),
    ("oidc_issuer", "https://idp.example.com/?tenant=1", False),
    ("oidc_issuer", "https://idp.example.com/#top", False),
    ("oidc_issuer", "http://[::1", False),
    ("oidc_issuer", "https://idp.example.com:99999", False),
    ("oidc_client_id", "rolecall", True),
    ("oidc_client_id", "a" * 2049, False),
    ("oidc_client_id", "roll\x01call", False),
    ("oidc_secret", "s3cret \x7f", True),
    ("oidc_secret", "s3cret\x1b", False),
    ("oidc_custom_scopes", "groups,\toffline_access", True),
    ("oidc_custom_scopes", "groups bad\x02scope", False),
    ("ldap_address", "ldap://ldap.example.com:389", True),
    ("ldap_address", "LDAPS://ldap.example.com", True),
    ("ldap_address", "http://x", False),
    ("ldap_address", "ldap://", False),
    ("ldap_address", "ldap://[::1", False),
    ("ldap_address", "ldap.example.com", False),
    ("ldap_base_dn", "dc=example,dc=com", True),
    ("ldap_base_dn", "dc=\udcff", False),
    ("ldap_bind_dn", "cn=admin\n,dc=example", False),
    ("ldap_bind_pw", "pw\x07", False),
    ("ldap_attributes", "email=mail,group=gidNumber", True),
    ("ldap_attributes", "EMAIL = mail , name=displayName;lang-en", True),
    ("ldap_attributes", "foo", False),
    ("ldap_attributes", "colour=blue", False),
    ("ldap_attributes", "email=", False),
    ("ldap_attributes", "email=ma il", False),
    ("ldap_ca_file", "/etc/ssl/ca.pem", True),
    ("ldap_group_allow_list", "admins, ml-team", True),
    ("ldap_group_allow_list", "admins," + "g" * 2049, False),
]


def sso_reading(name: str, value: str):
    """What ``rolecall.sso.config`` makes of the variable, unchecked by ``Settings``: the
    config it resolves, or the ``InvalidInput`` it raises (at every sign-in)."""
    from rolecall.errors import InvalidInput
    from rolecall.sso.config import ldap_config, oidc_config

    raw = value if name not in ("oidc_secret", "ldap_bind_pw") else SecretStr(value)
    unchecked = Settings.model_construct(_fields_set={name}, **{name: raw})
    try:
        return (oidc_config if name.startswith("oidc") else ldap_config)(None, unchecked)
    except InvalidInput as exc:
        return exc


@pytest.mark.parametrize(("name", "value", "accepted"), SSO_VALUES)
def test_sso_values_are_checked_at_start_as_sign_in_reads_them(monkeypatch, name, value, accepted):
    # A bad one started the server, then failed every sign-in, the local admin's password too.
    from rolecall.errors import InvalidInput
    from rolecall.sso.config import ldap_config, oidc_config

    reading = sso_reading(name, value)
    assert isinstance(reading, InvalidInput) is not accepted  # the case is sso.config's verdict
    monkeypatch.setenv(env_name(name), value)
    if not accepted:
        with pytest.raises(ValidationError) as refused:
            Settings()
        (error,) = refused.value.errors()
        assert error["loc"] == (env_name(name),)
        assert value not in error["msg"] or name not in ("oidc_secret", "ldap_bind_pw")
        return
    settings = Settings()
    # A value that works keeps working, and means what it meant.
    assert (oidc_config if name.startswith("oidc") else ldap_config)(None, settings) == reading


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("HTTPS://IAM.example.com/rolecall/", "https://IAM.example.com/rolecall"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_a_public_url_with_a_host_is_taken(monkeypatch, value, expected):
    monkeypatch.setenv("ROLECALL_PUBLIC_URL", value)

    assert Settings().public_url == expected


@pytest.mark.parametrize(
    "value",
    [
        "notaurl",
        "iam.example.com",
        "ftp://iam.example.com",
        "https://",
        "https://iam.example.com/?next=/",
        "https://iam.example.com/#top",
        "http://[::1",
        "https://iam.example.com:70000",
    ],
)
def test_a_public_url_that_is_no_http_url_with_a_host_is_refused(monkeypatch, value):
    # It is the base of redirect URIs, cookie security and the console's origin check.
    monkeypatch.setenv("ROLECALL_PUBLIC_URL", value)

    with pytest.raises(ValidationError) as refused:
        Settings()

    (error,) = refused.value.errors()
    assert error["loc"] == ("public_url",)
