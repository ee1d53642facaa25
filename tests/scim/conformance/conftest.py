"""A live ``rolecall serve`` for the conformance checks that speak real HTTP.

The server runs as its own process on a free loopback port with a fresh database (a SQLite file,
or a new database on the harness's PostgreSQL server under ``--db postgres``), initialised with
``rolecall init`` the way an operator does it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.live_server import START_TIMEOUT, serving

#: Settings a developer's shell might carry; the live server starts without them.
SERVER_ENV = (
    "LOCAL_RESTORE",
    "SESSION_LENGTH",
    "GORILLA_DISABLE_PERSONAL_ENTITY",
    "GORILLA_DISABLE_ADMIN_TEAM_ACCESS",
    "ROLECALL_MODE",
    "ROLECALL_HOST",
    "ROLECALL_PORT",
    "ROLECALL_PUBLIC_URL",
)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    admin_email: str
    api_key: str
    log: Path

    @property
    def scim_url(self) -> str:
        return f"{self.base_url}/scim/v2"

    @property
    def basic_auth(self) -> str:
        token = base64.b64encode(f"{self.admin_email}:{self.api_key}".encode()).decode()
        return f"Basic {token}"


def _postgres_conninfo(url: str) -> str:
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    return make_conninfo(
        host=parsed.host or "127.0.0.1",
        port=str(parsed.port or 5432),
        user=parsed.username or "postgres",
        password=parsed.password or "",
        dbname="postgres",
    )


@pytest.fixture(scope="module")
def live_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('live') / 'rolecall.db'}"
        return
    import psycopg

    server_url = request.getfixturevalue("database_url")
    name = f"rolecall_live_{uuid.uuid4().hex[:12]}"
    conninfo = _postgres_conninfo(server_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def live_server(
    live_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
    env["ROLECALL_DATABASE_URL"] = live_database_url
    cli = [sys.executable, "-m", "rolecall.cli"]
    init = subprocess.run(
        [*cli, "init", "--org", "acme", "--admin-email", "admin@example.com", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert init.returncode == 0, init.stderr
    initialised = json.loads(init.stdout)
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving({**env, "ROLECALL_LOG_LEVEL": "warning"}, log) as base_url:
        yield LiveServer(
            base_url=base_url,
            admin_email=initialised["admin"],
            api_key=initialised["api_key"],
            log=log,
        )


def runs_again(server: LiveServer, cause: str) -> float:
    """How many requests the server ran again after ``cause`` failed them (``/metrics``)."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    line = f'rolecall_transactions_run_again_total{{cause="{cause}"}} '
    return sum(float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line))
