"""Two organizations of a multi-org server add one new person at the same moment (issue 3,
"Scale and concurrency"): both get it, as one identity, as they would a moment apart.

A module of its own: its server is a multi-org one, on a database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import START_TIMEOUT, serving
from tests.scim.conformance.conftest import SERVER_ENV, LiveServer
from tests.scim.conformance.held_audit import audit_table_held
from tests.scim.conftest import SCIM_JSON, new_user


@pytest.fixture(scope="module")
def two_org_servers(
    live_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """One multi-org ``rolecall serve``, as seen by the admins of its two organizations."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
    env.update(ROLECALL_DATABASE_URL=live_database_url, ROLECALL_MODE="multi")
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    admins = []
    for org, admin in (("acme", "admin@acme.example.com"), ("globex", "admin@globex.example")):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "rolecall.cli",
                "init",
                "--org",
                org,
                "--admin-email",
                admin,
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
        admins.append((admin, json.loads(done.stdout)["api_key"]))
    with serving({**env, "ROLECALL_LOG_LEVEL": "warning"}, log) as base_url:
        acme, globex = (LiveServer(base_url, admin, key, log) for admin, key in admins)
        yield acme, globex


@pytest.mark.postgres_only
def test_two_organizations_adding_one_new_person_at_once_both_join_it(
    two_org_servers: tuple[LiveServer, LiveServer], live_database_url: str
) -> None:
    """The race is made certain: the test holds the audit table, so the first create waits
    with its new user inserted and not committed; the second, not seeing it, inserts the same
    email and waits for the first. Let go, the first commits and the second breaks the email's
    unique key; run again, it finds the user and joins it, as it would have a moment later."""
    acme, globex = two_org_servers
    body = new_user("grace@example.com")
    responses: dict[str, httpx.Response] = {}

    def create(server: LiveServer) -> None:
        headers = {"Authorization": server.basic_auth, "Content-Type": SCIM_JSON}
        with httpx.Client(base_url=server.scim_url, headers=headers, timeout=60) as client:
            responses[server.admin_email] = client.post("/Users", json=body)

    threads = [threading.Thread(target=create, args=(s,)) for s in (acme, globex)]
    with audit_table_held(live_database_url) as until_waiting:
        for waiting, thread in enumerate(threads, start=1):
            thread.start()
            until_waiting(waiting)
        assert until_waiting(2) == 2  # one at the audit table, one at the email
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a create never finished"
    assert [r.status_code for r in responses.values()] == [201, 201], [
        r.text for r in responses.values()
    ]
    assert len({r.json()["id"] for r in responses.values()}) == 1  # one identity, two orgs
    assert "Traceback" not in acme.log.read_text()
