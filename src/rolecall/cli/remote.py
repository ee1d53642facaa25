"""CLI commands that talk to a server over HTTP (through the SDK), and their stored login.

``rolecall login --host URL`` checks a credential against the server and stores the host and
the credential in ``$ROLECALL_CONFIG_DIR/cli.json`` (default ``~/.config/rolecall``; mode 0600).
Later commands use, in order: ``--host`` / the environment (``ROLECALL_BASE_URL``,
``ROLECALL_API_KEY`` ... as the SDK reads them), then the stored login.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from rolecall.sdk import Api
from rolecall.sdk.errors import RolecallError as SdkError
from rolecall.sdk.federation import identity_token_file_from_env

CONFIG_FILE = "cli.json"


def config_path() -> Path:
    directory = os.environ.get("ROLECALL_CONFIG_DIR", "").strip()
    base = Path(directory).expanduser() if directory else Path("~/.config/rolecall").expanduser()
    return base / CONFIG_FILE


def load_login() -> dict[str, Any]:
    """The stored login, or ``{}`` when there is none. Exits 1 with ``error: ...`` naming the
    file when it cannot be read or is no login (it was taken for none: "no server")."""
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise _failed(f"cannot read the stored login {path}: {exc.strerror or exc}") from None
    except ValueError:  # not JSON, or not UTF-8
        data = None
    if not isinstance(data, dict):
        raise _failed(
            f"the stored login {path} is not valid (not a JSON object): "
            "run `rolecall login --host URL` again, or remove the file"
        )
    return data


def _failed(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def store_login(login: dict[str, Any]) -> Path:
    """Write the login atomically with mode 0600; returns the file's path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cli-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(login, out, indent=2)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def remote_api(host: str | None = None) -> Api:
    """An ``Api`` for the command: options and environment first, then the stored login."""
    login = load_login()
    base_url = host or _env("ROLECALL_BASE_URL", "WANDB_BASE_URL") or login.get("host")
    if not base_url:
        raise typer.BadParameter("no server: run `rolecall login --host URL` or pass --host")
    same_host = str(login.get("host", "")).rstrip("/") == str(base_url).rstrip("/")
    api_key = _env("ROLECALL_API_KEY", "WANDB_API_KEY") or (
        login.get("api_key") if same_host else None
    )
    token_file = identity_token_file_from_env() or (
        login.get("identity_token_file") if same_host else None
    )
    return Api(base_url=str(base_url), api_key=api_key, identity_token_file=token_file)


@contextmanager
def server_errors() -> Iterator[None]:
    """A refused or failed call: ``error: <the server's message>`` and exit code 1."""
    try:
        yield
    except SdkError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
