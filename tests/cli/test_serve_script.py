"""``scripts/serve.sh``, run for real in a copy of the checkout: what it prints and what it
puts on command lines. Only installing is skipped (its ``.venv`` runs this interpreter and
answers ``pip`` with nothing), so no package index is needed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.live_server import _wait_until_up, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "serve.sh"


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory laid out like the repository, whose ``.venv/bin/rolecall`` writes each
    command line it is given (what ``ps`` and ``/proc/PID/cmdline`` show) to ``argv.log``."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "scripts" / "serve.sh")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    executable(
        bin_dir / "python",
        f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 0\nexec {sys.executable} "$@"\n',
    )
    record = f'echo "$*" >> {root / "argv.log"}'
    executable(
        bin_dir / "rolecall", f'#!/bin/sh\n{record}\nexec {sys.executable} -m rolecall.cli "$@"\n'
    )
    return root


@contextmanager
def serve_sh(checkout: Path, log: Path) -> Iterator[str]:
    """Run ``./scripts/serve.sh`` until its server answers; yield its base URL; stop it."""
    port = free_port()
    env = {**os.environ, "ROLECALL_PORT": str(port)}
    env.pop("ROLECALL_SECRET_KEY", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "scripts/serve.sh"], cwd=checkout, env=env, stdout=out, stderr=out
        )
    try:
        _wait_until_up(process, f"http://127.0.0.1:{port}", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


def kept(checkout: Path) -> dict[str, str]:
    lines = (checkout / ".rolecall-admin.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_the_credentials_are_printed_on_the_first_run_only(checkout, cli_env, tmp_path):
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with serve_sh(checkout, first_log) as base_url:
        admin = kept(checkout)
        signed_in = httpx.post(
            f"{base_url}/api/v1/auth/login",
            json={"email": admin["email"], "password": admin["password"]},
        )
        viewer = httpx.get(f"{base_url}/api/v1/viewer", auth=("api", admin["api_key"]))
    with serve_sh(checkout, second_log):
        pass

    assert signed_in.status_code == 200, signed_in.text
    assert viewer.status_code == 200 and viewer.json()["email"] == "admin@example.com"
    assert stat.S_IMODE((checkout / ".rolecall-admin.txt").stat().st_mode) == 0o600
    first, second = first_log.read_text(), second_log.read_text()
    # What it made, it shows once.
    assert admin["password"] in first and admin["api_key"] in first
    # Later starts (whose output a service manager keeps, start after start) only say where.
    assert admin["password"] not in second and admin["api_key"] not in second
    assert ".rolecall-admin.txt (mode 600)" in second
    assert kept(checkout) == admin  # reused, not made again


def test_the_password_is_on_no_command_line(checkout, cli_env, tmp_path):
    with serve_sh(checkout, tmp_path / "serve.log"):
        password = kept(checkout)["password"]

    command_lines = (checkout / "argv.log").read_text().splitlines()
    assert [line.split()[0] for line in command_lines] == ["init", "serve"]
    assert not any(password in line for line in command_lines), command_lines
