"""Migrations: the models and the migrations agree, and the newest revision goes down and up."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from rolecall.db.migrate import alembic_config, downgrade, upgrade


@pytest.fixture
def fresh_url(backend, tmp_path, database_url, worker_id):
    """A database of its own (migrations cannot run inside the per-test transaction)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    import psycopg

    base, _, _ = database_url.rpartition("/")
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        name = f"rolecall_migrations_{worker_id}"
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def test_models_match_the_migrations(fresh_url):
    upgrade(fresh_url)
    try:
        command.check(alembic_config(fresh_url))
    except CommandError as exc:  # pragma: no cover - the failure message is the diff
        pytest.fail(f"models and migrations differ: {exc}")


def test_newest_revision_downgrades_and_upgrades_again(fresh_url):
    config = alembic_config(fresh_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    upgrade(fresh_url)
    revision = ScriptDirectory.from_config(config).get_revision(head)
    downgrade(fresh_url, revision.down_revision or "base")
    upgrade(fresh_url)
    command.check(config)


def index_names(url: str) -> set[str]:
    """Every index of the database, expression indexes included (SQLAlchemy's inspector does
    not reflect those on SQLite, so ``alembic check`` cannot see one go missing)."""
    from sqlalchemy import text

    from rolecall.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                query = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            else:
                query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            return set(conn.scalars(text(query)))
    finally:
        engine.dispose()


def test_newest_revision_down_and_up_keeps_every_index(fresh_url):
    """SQLite's batch mode rebuilds a table to drop a column, and the rebuilt table has only the
    indexes it could reflect: a downgrade must put the expression indexes back itself."""
    config = alembic_config(fresh_url)
    head = ScriptDirectory.from_config(config).get_revision(
        ScriptDirectory.from_config(config).get_current_head()
    )
    upgrade(fresh_url)
    before = index_names(fresh_url)
    assert "uq_users_scim_user_name" in before

    downgrade(fresh_url, head.down_revision or "base")
    upgrade(fresh_url)

    assert index_names(fresh_url) == before
