"""``rolecall serve`` as a real process on a free port, reached over real HTTP."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rolecall import Api
from rolecall.sdk import AuthenticationError
from tests.live_server import serving

RESTORE_LINE = re.compile(r"Temporary password for (\S+) \(organization '([^']+)'\): (\S+)")


@contextmanager
def served(log: Path, **env: str) -> Iterator[str]:
    """Run ``rolecall serve`` until /healthz answers; yield its base URL; stop it."""
    with serving({**os.environ, **env}, log) as base_url:
        yield base_url


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "serve.log"


def test_serve_answers_the_sdk_with_the_init_key(initialised, log_path):
    with served(log_path) as base_url:
        assert httpx.get(f"{base_url}/readyz").json() == {"status": "ok"}
        with Api(base_url=base_url, api_key=initialised["api_key"]) as api:
            viewer = api.viewer()
            assert (viewer.kind, viewer.email, viewer.role) == (
                "user",
                "admin@example.com",
                "admin",
            )
            assert viewer.org["name"] == "acme"
        with pytest.raises(AuthenticationError), Api(base_url=base_url, api_key="rc_bad") as bad:
            bad.viewer()
    assert "LOCAL_RESTORE" not in log_path.read_text()


def test_the_access_log_keeps_paths_but_not_query_strings(initialised, log_path):
    # A query string can carry secrets (the OIDC callback's code and state).
    with served(log_path) as base_url:
        httpx.get(f"{base_url}/oidc/callback?code=SECRET-CODE&state=SECRET-STATE")
        httpx.get(f"{base_url}/healthz")

    logged = log_path.read_text()
    assert '"GET /oidc/callback?… HTTP/1.1"' in logged
    assert '"GET /healthz HTTP/1.1" 200' in logged
    assert "SECRET" not in logged


def test_local_restore_prints_a_temporary_password_that_signs_in_while_it_is_set(
    run_cli: Callable, cli_env, log_path
):
    result = run_cli(
        "init",
        "--org",
        "acme",
        "--admin-email",
        "admin@example.com",
        "--admin-password",
        "original-password",
    )
    assert result.exit_code == 0, result.output
    with served(log_path, LOCAL_RESTORE="true") as base_url:
        log = log_path.read_text()
        found = RESTORE_LINE.findall(log)
        assert len(found) == 1, log  # printed once
        email, org, password = found[0]
        assert (email, org) == ("admin@example.com", "acme")
        assert "SSO is off" in log
        login = f"{base_url}/api/v1/auth/login"
        signed_in = httpx.post(login, json={"email": email, "password": password})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email"] == "admin@example.com"
        assert signed_in.cookies.get("rolecall_session")
        own = httpx.post(login, json={"email": email, "password": "original-password"})
        assert own.status_code == 200, own.text  # the admin's own password is kept
    # Restarted without LOCAL_RESTORE: the temporary password no longer signs in.
    with served(log_path) as base_url:
        login = f"{base_url}/api/v1/auth/login"
        temporary = httpx.post(login, json={"email": email, "password": password})
        assert temporary.status_code == 401
        own = httpx.post(login, json={"email": email, "password": "original-password"})
        assert own.status_code == 200, own.text
