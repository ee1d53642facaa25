"""``rolecall serve --workers N``: several processes serving one database (``ROLECALL_WORKERS``).

Each request may reach any worker, so these tests send each request on a new connection and
check what must hold whichever answered: writes of all of them land (on SQLite they take turns
on the database's lock file), and what one worker changes, every other one honours at once.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_cli import assert_clean_failure
from tests.live_server import serving

WORKERS = 2
WORKER_STARTED = re.compile(r"Started server process \[(\d+)\]")
RESTORE_LINE = re.compile(r"Temporary password for (\S+) \(organization '([^']+)'\): (\S+)")


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{key}".encode()).decode()}


def fresh(method: str, url: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    """One request on a connection of its own (so the workers share the requests)."""
    with httpx.Client(timeout=30) as client:
        return client.request(method, url, **kwargs)


def test_several_workers_serve_one_database_as_one_server(initialised, tmp_path: Path):
    """Separate processes; concurrent SCIM creates through them all land; a key revoked
    through one is refused by all at once. Every worker caches what the key may read (the
    access cache): a revocation committed by any of them drops those caches everywhere before
    the next request."""
    log = tmp_path / "serve.log"
    headers = basic(initialised["api_key"])
    with serving({**os.environ, "ROLECALL_WORKERS": str(WORKERS)}, log) as base_url:
        statuses, listed = create_users_at_once(base_url, headers, 48)
        # Whichever worker answers /metrics, it counts every worker's requests.
        counted = {created_count(fresh("GET", f"{base_url}/metrics").text) for _ in range(8)}
        after = revoke_while_cached(base_url, headers)
        # Read last: /healthz may answer before every worker has started.
        pids = set(WORKER_STARTED.findall(log.read_text()))

    assert len(pids) == WORKERS, log.read_text()
    assert statuses == [201] * 48
    assert listed["totalResults"] == 48
    assert {r["userName"] for r in listed["Resources"]} == {f"worker-user-{i}" for i in range(48)}
    assert counted == {48}
    assert {r.status_code for r in after} == {401}
    assert {r.json()["error"]["code"] for r in after} == {"invalid_api_key"}


def sample_sum(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that carry ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def created_count(exposition: str) -> float:
    """``rolecall_http_requests_total`` of the SCIM creates that answered 201."""
    wanted = {"method": "POST", "route": "/scim/v2/Users", "status": "201"}
    return sample_sum(exposition, "rolecall_http_requests_total", **wanted)


def create_users_at_once(
    base_url: str, headers: dict[str, str], count: int
) -> tuple[list[int], dict[str, Any]]:
    """``count`` SCIM creates from 8 clients at once; their statuses, then the users listed."""
    scim = {**headers, "Content-Type": "application/scim+json"}

    def create(i: int) -> int:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"worker-user-{i}",
            "emails": [{"value": f"worker-user-{i}@example.com", "primary": True}],
        }
        return fresh("POST", f"{base_url}/scim/v2/Users", json=body, headers=scim).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(count)))
    listed = fresh(
        "GET",
        f"{base_url}/scim/v2/Users",
        params={"filter": 'userName sw "worker-user-"', "count": "100"},
        headers=scim,
    ).json()
    return statuses, listed


def revoke_while_cached(base_url: str, headers: dict[str, str]) -> list[httpx.Response]:
    """Make a project's reads cached in the workers, revoke the key, read again (20 times)."""
    viewer = fresh("GET", f"{base_url}/api/v1/viewer", headers=headers).json()
    entity = viewer["username"]
    made = fresh(
        "POST",
        f"{base_url}/api/v1/projects",
        json={"entity": entity, "name": "shared"},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    project = f"{base_url}/api/v1/projects/{entity}/shared"
    # Many fresh connections: every worker answers some, and keeps the answer cached.
    assert {fresh("GET", project, headers=headers).status_code for _ in range(20)} == {200}
    exposition = fresh("GET", f"{base_url}/metrics").text
    assert sample_sum(exposition, "rolecall_access_cache_fast_answers_total") > 0  # cached
    keys = fresh("GET", f"{base_url}/api/v1/api-keys", headers=headers).json()["items"]
    for key in keys:
        revoked = fresh("DELETE", f"{base_url}/api/v1/api-keys/{key['id']}", headers=headers)
        assert revoked.status_code == 204
    return [fresh("GET", project, headers=headers) for _ in range(20)]


def test_local_restore_sets_one_password_for_all_workers(run_cli: Callable, tmp_path: Path):
    result = run_cli("init", "--org", "acme", "--admin-email", "admin@example.com")
    assert result.exit_code == 0, result.output
    log = tmp_path / "serve.log"
    env = {**os.environ, "ROLECALL_WORKERS": str(WORKERS), "LOCAL_RESTORE": "true"}
    with serving(env, log) as base_url:
        found = RESTORE_LINE.findall(log.read_text())
        assert len(found) == 1, log.read_text()  # set and printed once, not once per worker
        email, _org, password = found[0]
        # Whichever worker answers, the one password signs in.
        signed_in = [
            fresh(
                "POST", f"{base_url}/api/v1/auth/login", json={"email": email, "password": password}
            )
            for _ in range(6)
        ]
    assert {r.status_code for r in signed_in} == {200}


def test_a_bad_worker_count_is_a_clean_error_before_anything_starts(run_cli: Callable):
    for value in ("0", "65"):
        result = run_cli("serve", "--workers", value)
        assert_clean_failure(result, "invalid settings: ROLECALL_WORKERS (--workers): Input should")


def test_a_port_out_of_range_is_a_clean_error(run_cli: Callable):
    for value in ("0", "65536"):
        result = run_cli("serve", "--port", value)
        assert_clean_failure(result, "invalid settings: ROLECALL_PORT (--port): Input should be")


def test_an_unsupported_database_is_a_clean_error_naming_the_variable(
    run_cli: Callable, monkeypatch
):
    """Before, a MySQL URL ended in a traceback (no driver), and an in-memory SQLite database
    started a server on a database of its own for each connection, the server's empty."""
    for url, reason in (
        ("mysql://root@db/rolecall", "mysql is not supported: use sqlite:///"),
        ("sqlite:///:memory:", "SQLite needs a file (sqlite:///path/to/file.db), not memory"),
        ("db.sqlite", "not a database URL: use sqlite:///"),
    ):
        monkeypatch.setenv("ROLECALL_DATABASE_URL", url)
        result = run_cli("serve")
        assert_clean_failure(result, f"invalid settings: ROLECALL_DATABASE_URL: {reason}")
