"""The ``rolecall`` command in-process: init, db upgrade, api-key create, explain, version.

``serve`` runs as a real process in ``test_serve.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from rolecall import __version__
from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.db.engine import make_engine
from rolecall.db.migrate import alembic_config
from rolecall.identity.authenticate import authenticate_api_key
from rolecall.identity.passwords import verify_password
from rolecall.orgs.models import Organization
from rolecall.users.models import User
from tests import factories


def assert_clean_failure(result, *fragments: str) -> None:
    """Exit 1 with ``error: ...`` on stderr naming ``fragments``, and no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def migrated(database_url: str) -> bool:
    """Whether any migration ran on the database (SQLite: whether the file exists at all)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return False
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return inspect(conn).has_table("alembic_version")
    finally:
        engine.dispose()


def org_count(cli_db) -> int:
    with cli_db() as session:
        return session.scalar(select(func.count(Organization.id)))


def test_version(run_cli):
    result = run_cli("version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"rolecall {__version__}"


# --- init -------------------------------------------------------------------------------------


def test_init_prints_a_working_admin_key(run_cli, cli_db):
    result = run_cli(
        "init",
        "--org",
        "acme",
        "--admin-email",
        "Admin@Example.com",
        "--admin-password",
        "s3cret-pw",
    )
    assert result.exit_code == 0, result.output
    assert "Initialised organization 'acme'" in result.stdout
    keys = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("rc_")]
    assert len(keys) == 1
    with cli_db() as session:
        principal = authenticate_api_key(session, keys[0])
        admin = session.scalars(select(User)).one()
        assert principal.user_id == admin.id
        assert admin.email == "Admin@example.com"
        assert admin.password_hash and "s3cret-pw" not in admin.password_hash


def test_init_takes_the_password_from_the_environment(run_cli, cli_db, monkeypatch):
    """So scripts need not put it on a command line, which every user of the host can read."""
    monkeypatch.setenv("ROLECALL_ADMIN_PASSWORD", "from-the-environment")
    result = run_cli("init", "--org", "acme", "--admin-email", "admin@example.com")
    assert result.exit_code == 0, result.output
    with cli_db() as session:
        admin = session.scalars(select(User)).one()
        assert verify_password(admin.password_hash, "from-the-environment")


def test_init_json_and_migrations(run_cli, cli_db, fresh_database_url):
    result = run_cli("init", "--org", "acme", "--admin-email", "admin@example.com", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"org", "admin", "api_key"}
    assert (body["org"], body["admin"]) == ("acme", "admin@example.com")
    head = ScriptDirectory.from_config(alembic_config(fresh_database_url)).get_current_head()
    with cli_db() as session:
        assert authenticate_api_key(session, body["api_key"]).name == "admin"
        events = session.scalars(select(AuditEvent.action)).all()
        assert "org.initialize" in events
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == head


def test_init_twice_is_a_clear_error(run_cli, initialised, cli_db):
    with cli_db() as session:
        before = session.scalar(select(func.count(AuditEvent.id)))
    for org in ("other", "acme"):
        result = run_cli("init", "--org", org, "--admin-email", "other@example.com", "--json")
        assert_clean_failure(result, "already initialised", "acme")
    assert org_count(cli_db) == 1
    with cli_db() as session:
        assert session.scalars(select(User.email)).all() == ["admin@example.com"]
        assert session.scalar(select(func.count(AuditEvent.id))) == before
        assert authenticate_api_key(session, initialised["api_key"]).name == "admin"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--org", "acme", "--admin-email", "not-an-email"], "email"),
        (["--org", "bad name!", "--admin-email", "a@example.com"], "names use"),
        (["--org", "acme", "--admin-email", "a@example.com", "--admin-password", "short"], "8"),
    ],
)
def test_init_bad_input_writes_no_organization(run_cli, cli_db, args, fragment):
    assert_clean_failure(run_cli("init", *args), fragment)
    assert org_count(cli_db) == 0


def test_init_without_required_options_is_a_usage_error(run_cli):
    result = run_cli("init", "--org", "acme")
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "--admin-email" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["explain", "--principal", "user:a", "--permision", "run:create"], "--permision"),
        (["explain", "--permission", "run:create", "--project", "ml/p"], "--principal"),
        (["api-key", "create"], "--user"),
        (["no-such-command"], "no-such-command"),
    ],
)
def test_a_mistyped_command_line_exits_1_not_explains_deny(run_cli, args, fragment):
    # Click exits 2 for usage errors, which is explain's deny: a script could not tell them.
    result = run_cli(*args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and fragment in result.output
    assert "--help" in result.output and "Traceback" not in result.output


# --- the installed console script ---------------------------------------------------------------


def test_rolecall_console_script_is_declared_and_runs(cli_env):
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["rolecall"] == "rolecall.cli.main:app"
    script = Path(sys.executable).parent / "rolecall"
    assert script.exists(), "install the project (pip install -e .) to get the rolecall script"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **cli_env}
        return subprocess.run(
            [str(script), *args], env=env, capture_output=True, text=True, timeout=120
        )

    done = run("init", "--org", "acme", "--admin-email", "admin@example.com", "--json")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"org", "admin", "api_key"}
    again = run("init", "--org", "acme", "--admin-email", "admin@example.com")
    assert again.returncode == 1
    assert again.stderr.startswith("error: ") and "already initialised" in again.stderr
    missing = run("api-key", "create", "--user", "ghost@example.com")
    assert missing.returncode == 1 and "ghost@example.com" in missing.stderr
    unknown = run("explain", "--principal", "admin", "--permission", "run:fly", "--project", "x/y")
    assert unknown.returncode == 1 and "unknown permission" in unknown.stderr
    assert "Traceback" not in again.stderr + missing.stderr + unknown.stderr


# --- db upgrade -------------------------------------------------------------------------------


def test_db_upgrade_is_idempotent(run_cli, cli_db, fresh_database_url):
    for _ in range(2):
        result = run_cli("db", "upgrade")
        assert result.exit_code == 0, result.output
        assert "newest revision" in result.stdout
    head = ScriptDirectory.from_config(alembic_config(fresh_database_url)).get_current_head()
    with cli_db() as session:
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == head
        assert session.scalar(select(func.count(Organization.id))) == 0


def test_unreachable_database_is_a_clear_error(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("ROLECALL_DATABASE_URL", f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert_clean_failure(run_cli("db", "upgrade"), "database error")


# --- api-key create ---------------------------------------------------------------------------


def test_api_key_create_issues_a_working_key(run_cli, initialised, cli_db):
    result = run_cli("api-key", "create", "--user", "admin@example.com")
    assert result.exit_code == 0, result.output
    secret = result.stdout.splitlines()[-1].strip()
    assert secret.startswith("rc_") and secret != initialised["api_key"]
    with cli_db() as session:
        assert authenticate_api_key(session, secret).name == "admin"


def test_api_key_create_json_and_audit(run_cli, initialised, cli_db):
    with cli_db() as session:
        org = session.scalars(select(Organization)).one()
        factories.user(session, org, username="bob", email="bob@example.com")
    result = run_cli("api-key", "create", "--user", "BOB@example.com", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"user", "key_id", "api_key"}
    with cli_db() as session:
        principal = authenticate_api_key(session, body["api_key"])
        assert (principal.name, principal.credential_id) == ("bob", body["key_id"])
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "api_key.create")
        ).one()
        assert (event.object_id, event.surface, event.actor_type) == (
            body["key_id"],
            "cli",
            "operator",
        )
        assert body["api_key"] not in json.dumps([event.before, event.after, event.detail])


def test_api_key_create_for_unknown_user(run_cli, initialised):
    assert_clean_failure(run_cli("api-key", "create", "--user", "nobody@example.com"), "nobody")


def test_api_key_create_for_deactivated_user(run_cli, initialised, cli_db):
    with cli_db() as session:
        org = session.scalars(select(Organization)).one()
        factories.user(session, org, username="gone", active=False)
    assert_clean_failure(run_cli("api-key", "create", "--user", "gone"), "not an active member")


# --- explain ----------------------------------------------------------------------------------


@pytest.fixture
def lab(initialised, cli_db):
    """Team ``lab`` with member bob, project ``lab/notes`` (team) and ``lab/vault``
    (restricted, bob not invited)."""
    with cli_db() as session:
        org = session.scalars(select(Organization)).one()
        bob = factories.user(session, org, username="bob")
        team = factories.team(session, org, name="lab")
        factories.member(session, team, bob)
        factories.project(session, team, name="notes")
        factories.project(session, team, name="vault", visibility="restricted")


def test_explain_allow_prints_the_trace_and_exits_0(run_cli, lab):
    result = run_cli(
        "explain", "--principal", "user:bob", "--permission", "run:create", "--project", "lab/notes"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ALLOW run:create for user:bob on lab/notes"
    assert lines[1] == f"deciding rule: {policy.RULE_TEAM_ROLE}"
    steps = [line for line in lines[2:] if line.startswith("  ")]
    assert steps[0].startswith(f"  1. {policy.RULE_TEAM_ROLE} [grant] ")
    assert steps[-1].strip().endswith("run:create granted")


def test_explain_deny_prints_the_deciding_rule_and_exits_2(run_cli, lab):
    result = run_cli(
        "explain", "--principal", "bob", "--permission", "run:read", "--project", "lab/vault"
    )
    assert result.exit_code == 2, result.output
    assert result.stdout.startswith("DENY run:read for bob on lab/vault")
    assert f"deciding rule: {policy.RULE_RESTRICTED_MEMBERSHIP}" in result.stdout
    assert f"{policy.RULE_RESTRICTED_MEMBERSHIP} [skip]" in result.stdout
    assert "Traceback" not in result.output


def test_explain_of_an_argument_that_is_no_utf8_is_a_clear_error(run_cli, lab):
    """Bytes that are no UTF-8 reach Python as lone surrogates, which no query can send (it
    was a traceback)."""
    result = run_cli(
        "explain",
        "--principal",
        "user:\udcff",
        "--permission",
        "run:read",
        "--project",
        "lab/notes",
    )

    assert result.exit_code == 1, result.output
    assert "not UTF-8 text" in result.stderr and "Traceback" not in result.output


def test_explain_json(run_cli, lab):
    args = ("--principal", "user:bob", "--permission", "run:read", "--project", "lab/vault")
    result = run_cli("explain", *args, "--json")
    assert result.exit_code == 2
    body = json.loads(result.stdout)
    assert (body["allowed"], body["permission"]) == (False, "run:read")
    assert body["rule"] == policy.RULE_RESTRICTED_MEMBERSHIP
    assert all(set(step) == {"rule", "outcome", "detail"} for step in body["trace"])
    allowed = run_cli("explain", *args[:4], "--project", "lab/notes", "--json")
    assert allowed.exit_code == 0
    assert json.loads(allowed.stdout)["allowed"] is True


def test_explain_anonymous(run_cli, lab):
    result = run_cli(
        "explain",
        "--principal",
        "anonymous",
        "--permission",
        "project:read",
        "--project",
        "lab/notes",
    )
    assert result.exit_code == 2
    assert result.stdout.startswith("DENY")


@pytest.mark.parametrize(
    ("principal", "permission", "project", "fragment"),
    [
        ("user:bob", "run:fly", "lab/notes", "unknown permission"),
        ("user:bob", "run:read", "no-slash", "project"),
        ("user:bob", "run:read", "lab/missing", "lab/missing"),
        ("user:nobody", "run:read", "lab/notes", "nobody"),
        ("robot:x", "run:read", "lab/notes", "principal must be"),
    ],
)
def test_explain_bad_input(run_cli, lab, principal, permission, project, fragment):
    result = run_cli(
        "explain", "--principal", principal, "--permission", permission, "--project", project
    )
    assert_clean_failure(result, fragment)


def test_explain_before_init(run_cli):
    run_cli("db", "upgrade")
    result = run_cli(
        "explain", "--principal", "bob", "--permission", "run:read", "--project", "lab/notes"
    )
    assert_clean_failure(result, "rolecall init")


@pytest.mark.parametrize(
    "args",
    [
        ("explain", "--principal", "bob", "--permission", "run:read", "--project", "lab/notes"),
        ("api-key", "create", "--user", "bob@example.com"),
    ],
)
def test_a_task_on_a_missing_database_file_says_so_and_makes_no_file(
    run_cli, monkeypatch, tmp_path, args
):
    # Opening a SQLite file that is not there would make an empty one (and its lock file).
    missing = tmp_path / "typo.db"
    monkeypatch.setenv("ROLECALL_DATABASE_URL", f"sqlite:///{missing}")

    result = run_cli(*args)

    assert_clean_failure(result, f"no database at {missing}", "rolecall init")
    assert list(tmp_path.iterdir()) == []


# --- multi-org mode ---------------------------------------------------------------------------


def test_multi_org_mode_initialises_more_orgs_and_explain_needs_org(
    run_cli, initialised, cli_db, monkeypatch
):
    monkeypatch.setenv("ROLECALL_MODE", "multi")
    second = run_cli("init", "--org", "globex", "--admin-email", "boss@globex.example", "--json")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["org"] == "globex"
    assert_clean_failure(
        run_cli("init", "--org", "GLOBEX", "--admin-email", "x@example.com"), "already exists"
    )
    assert org_count(cli_db) == 2
    with cli_db() as session:
        org = session.scalars(select(Organization).where(Organization.name == "globex")).one()
        team = factories.team(session, org, name="ops")
        factories.project(session, team, name="board")
    args = ("--principal", "boss", "--permission", "project:read", "--project", "ops/board")
    assert_clean_failure(run_cli("explain", *args), "--org")
    assert_clean_failure(run_cli("explain", *args, "--org", "initech"), "initech")
    allowed = run_cli("explain", *args, "--org", "globex")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.startswith("ALLOW")


def test_db_upgrade_on_an_unknown_revision_is_a_clear_error(run_cli, cli_db):
    assert run_cli("db", "upgrade").exit_code == 0
    with cli_db() as session:
        session.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    assert_clean_failure(run_cli("db", "upgrade"), "from_the_future")


# --- settings from the environment ------------------------------------------------------------


def test_empty_variables_are_unset_and_the_server_starts(run_cli, monkeypatch):
    # Helm charts render VAR: "": booleans and numbers refused it, strings took it as unset.
    for variable in (
        "LOCAL_RESTORE",
        "SESSION_LENGTH",
        "GORILLA_DISABLE_PERSONAL_ENTITY",
        "ROLECALL_MODE",
        "ROLECALL_WORKERS",
        "ROLECALL_PORT",
        "ROLECALL_SECRET_KEY",
        "OIDC_ISSUER",
    ):
        monkeypatch.setenv(variable, "")

    result = run_cli("db", "upgrade")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_session_length_past_ten_years_stops_the_start(run_cli, fresh_database_url, monkeypatch):
    # 99999999999 started the server, then every sign-in was a 500 (OverflowError).
    monkeypatch.setenv("SESSION_LENGTH", "99999999999")

    result = run_cli("db", "upgrade")

    assert_clean_failure(result, "invalid settings: SESSION_LENGTH: at most 87600 hours")
    assert not migrated(fresh_database_url)


def test_an_unknown_log_level_stops_serve_before_the_migrations(
    run_cli, fresh_database_url, monkeypatch
):
    # It was uvicorn's KeyError traceback, after the migrations had run.
    monkeypatch.setenv("ROLECALL_LOG_LEVEL", "loud")

    result = run_cli("serve")

    assert_clean_failure(
        result, "invalid settings: ROLECALL_LOG_LEVEL: must be one of critical, error, warning"
    )
    assert not migrated(fresh_database_url)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("OIDC_ISSUER", "notaurl", "OIDC_ISSUER: must be an http(s) URL"),
        ("LOCAL_LDAP_ADDRESS", "http://x", "LOCAL_LDAP_ADDRESS: must be an ldap:// or ldaps://"),
        ("LOCAL_LDAP_ATTRIBUTES", "foo", "LOCAL_LDAP_ATTRIBUTES: must look like email=mail"),
        ("ROLECALL_PUBLIC_URL", "notaurl", "ROLECALL_PUBLIC_URL: must be an http(s) URL"),
    ],
)
def test_a_bad_sso_value_stops_the_start(
    run_cli, fresh_database_url, monkeypatch, variable, value, reason
):
    # It started, then every password sign-in failed, the local admin's too.
    monkeypatch.setenv(variable, value)

    result = run_cli("db", "upgrade")

    assert_clean_failure(result, f"invalid settings: {reason}")
    assert not migrated(fresh_database_url)


# --- command lines and the stored login ---------------------------------------------------------


@pytest.mark.parametrize("group", [[], ["db"], ["api-key"], ["federation"], ["service-account"]])
def test_a_group_named_alone_shows_its_help_and_exits_0(run_cli, group):
    # It printed the help and exited 1 with no error line: neither a failure nor --help.
    result = run_cli(*group)

    assert result.exit_code == 0, result.output
    assert "Usage: rolecall" in result.stdout and "Commands" in result.stdout
    assert result.stderr == ""


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """``$ROLECALL_CONFIG_DIR``, with no server or credential from the SDK's variables."""
    for name in (
        "ROLECALL_BASE_URL",
        "WANDB_BASE_URL",
        "ROLECALL_API_KEY",
        "WANDB_API_KEY",
        "ROLECALL_IDENTITY_TOKEN_FILE",
        "WANDB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "config"
    directory.mkdir()
    monkeypatch.setenv("ROLECALL_CONFIG_DIR", str(directory))
    return directory


def test_login_with_both_a_key_and_a_token_file_is_a_usage_error(run_cli, config_dir):
    # The key won and the token file, not even there, went unnoticed (exit 0).
    result = run_cli(
        "login",
        "--host",
        "http://127.0.0.1:9",
        "--api-key",
        "rc_key",
        "--identity-token-file",
        "/nonexistent",
    )

    assert_clean_failure(result, "--api-key or --identity-token-file, not both", "--help")
    assert list(config_dir.iterdir()) == []


@pytest.mark.parametrize("content", [b"{bad", b"[1, 2]", b'"host"', b"\xff\xfe{}"])
def test_a_stored_login_that_is_no_login_is_named(run_cli, config_dir, content):
    # It was taken for none: "no server: run rolecall login", with the file left unnamed.
    stored = config_dir / "cli.json"
    stored.write_bytes(content)

    result = run_cli("federation", "show")

    assert_clean_failure(result, f"the stored login {stored} is not valid", "rolecall login")
    assert stored.read_bytes() == content


def test_a_stored_login_that_cannot_be_read_is_named(run_cli, config_dir):
    stored = config_dir / "cli.json"
    stored.mkdir()

    assert_clean_failure(run_cli("federation", "show"), f"cannot read the stored login {stored}")


def test_no_stored_login_still_says_to_log_in(run_cli, config_dir):
    assert_clean_failure(run_cli("federation", "show"), "no server", "rolecall login --host URL")


def test_an_empty_database_url_is_named_and_opens_no_default_file(run_cli, monkeypatch, tmp_path):
    # Taken for unset, it would have made ./rolecall.db and served from it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLECALL_DATABASE_URL", "")

    result = run_cli("db", "upgrade")

    assert_clean_failure(result, "invalid settings: ROLECALL_DATABASE_URL is set but empty")
    assert "invalid settings: :" not in result.stderr
    assert list(tmp_path.iterdir()) == []
