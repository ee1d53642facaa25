"""CLI fixtures: a fresh, empty database per test (SQLite file, or a new PostgreSQL database on
the harness's server), named by ``ROLECALL_DATABASE_URL`` the way an operator would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from rolecall.cli.main import app
from rolecall.db.engine import make_engine

#: Settings a developer's shell might carry; each test starts without them.
SERVER_ENV = (
    "LOCAL_RESTORE",
    "SESSION_LENGTH",
    "GORILLA_DISABLE_PERSONAL_ENTITY",
    "GORILLA_DISABLE_ADMIN_TEAM_ACCESS",
    "ROLECALL_MODE",
    "ROLECALL_HOST",
    "ROLECALL_PORT",
    "ROLECALL_PUBLIC_URL",
    "ROLECALL_WORKERS",
    "ROLECALL_ADMIN_PASSWORD",
)


def _postgres_admin_conninfo(url: str) -> str:
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    return make_conninfo(
        host=parsed.host or "127.0.0.1",
        port=str(parsed.port or 5432),
        user=parsed.username or "postgres",
        password=parsed.password or "",
        dbname="postgres",
    )


@pytest.fixture
def fresh_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('cli') / 'rolecall.db'}"
        return
    import psycopg

    # The harness's server (started for the session's test database) hosts one more database.
    server_url = request.getfixturevalue("database_url")
    name = f"rolecall_cli_{uuid.uuid4().hex[:12]}"
    conninfo = _postgres_admin_conninfo(server_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, fresh_database_url: str) -> dict[str, str]:
    """The environment of an operator's shell: only the database URL is set."""
    for name in SERVER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROLECALL_DATABASE_URL", fresh_database_url)
    return {"ROLECALL_DATABASE_URL": fresh_database_url}


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> Callable[..., Result]:
    """Run ``rolecall ARGS...`` in-process; stdout and stderr stay separate."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return run


@pytest.fixture
def initialised(run_cli: Callable[..., Result]) -> dict[str, str]:
    """``rolecall init`` done: the JSON it printed (org, admin, api_key)."""
    result = run_cli("init", "--org", "acme", "--admin-email", "admin@example.com", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def cli_db(fresh_database_url: str) -> Callable[[], AbstractContextManager[Session]]:
    """Open a session on the CLI's database (committed on success), to arrange and inspect."""

    @contextmanager
    def open_session() -> Iterator[Session]:
        engine = make_engine(fresh_database_url)
        try:
            with Session(engine, expire_on_commit=False) as session:
                yield session
                session.commit()
        finally:
            engine.dispose()

    return open_session
