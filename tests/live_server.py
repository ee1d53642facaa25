"""A real ``rolecall serve`` process for tests that need HTTP over a socket (the CLI, SCIM
clients, a browser): started on a free loopback port, waited for until ``/healthz`` answers,
stopped afterwards. Its output goes to a log file the failure message shows."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 60
CLI = [sys.executable, "-m", "rolecall.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], log: Path, *, port: int | None = None) -> Iterator[str]:
    """Run ``rolecall serve`` with ``env`` (the whole environment) until /healthz answers;
    yield its base URL; stop it. A server that exits or never answers fails the test."""
    port = port or free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, base_url, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"serve did not answer /healthz:\n{log.read_text()}")
        time.sleep(0.1)
