"""Test harness: one migrated database per xdist worker, one rolled-back transaction per test.

``--db sqlite`` (default) or ``--db postgres`` (a private PostgreSQL cluster per worker, or the
server named by ``ROLECALL_TEST_POSTGRES_URL``). The app under test gets sessions bound to the
test's connection, each in its own SAVEPOINT, so a request's commit is visible to the next
request and everything is rolled back at teardown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from rolecall.db.engine import make_engine
from rolecall.db.migrate import upgrade
from rolecall.settings import Settings
from rolecall.web.app import create_app
from tests import factories


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgres"),
        default=os.environ.get("ROLECALL_TEST_DB", "sqlite"),
        help="database backend for the tests",
    )


#: Fixtures through which a test reaches the backend under test. A test using none of them
#: runs the same on either backend, so the PostgreSQL pass leaves it out (it ran once already).
BACKEND_FIXTURES = frozenset(
    {"backend", "database_url", "engine", "connection", "session_factory", "db"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres_only`` exercise a PostgreSQL mechanism (LISTEN/NOTIFY) that
    SQLite has no counterpart of: the SQLite pass leaves them out instead of skipping them, and
    the PostgreSQL pass runs them. The PostgreSQL pass runs only the tests that reach the
    database (see ``BACKEND_FIXTURES``)."""
    if config.getoption("--db") == "postgres":
        kept = [i for i in items if BACKEND_FIXTURES & set(getattr(i, "fixturenames", ()))]
    else:
        kept = [item for item in items if item.get_closest_marker("postgres_only") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[str]:
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / f"rolecall_test_{worker_id}.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    from tests.pgserver import PostgresServer

    external = os.environ.get("ROLECALL_TEST_POSTGRES_URL")
    server = None
    if external:
        import psycopg

        name = f"rolecall_test_{worker_id}"
        plain = external.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = external.rsplit("/", 1)[0] + f"/{name}"
    else:
        server = PostgresServer().start()
        url = server.create_database(f"rolecall_test_{worker_id}")
    upgrade(url)
    yield url
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    if outer.is_active:
        outer.rollback()
    conn.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, host="testserver", port=80)


@pytest.fixture
def session_factory(connection: Connection, settings: Settings) -> Callable[[], Session]:
    def factory() -> Session:
        session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        session.info["settings"] = settings
        return session

    return factory


@pytest.fixture
def db(session_factory: Callable[[], Session]) -> Iterator[Session]:
    """The test's own session, for arranging and inspecting data."""
    session = session_factory()
    yield session
    session.close()


@pytest.fixture
def make_client(
    settings: Settings, session_factory: Callable[[], Session]
) -> Callable[..., TestClient]:
    """A TestClient for an app built with ``settings`` (override fields with kwargs)."""

    def make(**overrides: object) -> TestClient:
        app_settings = settings.model_copy(update=overrides) if overrides else settings

        def factory() -> Session:
            session = session_factory()
            session.info["settings"] = app_settings
            return session

        app = create_app(app_settings, session_factory=factory)  # type: ignore[arg-type]
        return TestClient(app, raise_server_exceptions=False)

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def org(db: Session) -> factories.World:
    """An initialised organization with its admin (and the admin's API key)."""
    return factories.bootstrap(db)


def auth(secret: str) -> dict[str, str]:
    """Headers carrying an API key the way the wandb SDK does (Basic api:KEY)."""
    import base64

    token = base64.b64encode(f"api:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
