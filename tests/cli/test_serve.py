"""``rolecall serve`` as a real process on a free port, reached over real HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rolecall import Api
from rolecall.sdk import AuthenticationError

START_TIMEOUT = 60
RESTORE_LINE = re.compile(r"Temporary password for (\S+) \(organization '([^']+)'\): (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(log: Path, **env: str) -> Iterator[str]:
    """Run ``rolecall serve`` until /healthz answers; yield its base URL; stop it."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rolecall.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not answer /healthz:\n{log.read_text()}")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def test_local_restore_prints_a_temporary_password_that_signs_in(
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
        old = httpx.post(login, json={"email": email, "password": "original-password"})
        assert old.status_code == 401
