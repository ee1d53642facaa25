"""The ``rolecall`` command: initialise, serve, migrate, issue keys, explain decisions.

Commands run on the server host with the database of ``ROLECALL_DATABASE_URL``. Expected
failures print ``error: <message>`` on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from rolecall import __version__
from rolecall.cli.federation import federation_app, service_account_app
from rolecall.cli.groups import HelpGroup
from rolecall.cli.host import create_user_key, explain_decision, initialise
from rolecall.cli.remote import server_errors, store_login
from rolecall.db.migrate import upgrade
from rolecall.errors import RolecallError
from rolecall.settings import Settings


class _Commands(HelpGroup):
    """The top-level command group, whose mistyped command lines exit 1 with ``error: ...``
    like every other failure. Click exits 2 for them, which is ``explain``'s deny and
    ``federation verify``'s refusal: a script could not tell a typo from an answer."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.exceptions.TyperException as exc:  # usage errors among them
            message = exc.format_message()
            if message:  # none when help was printed instead (HelpGroup answers a bare group)
                context = getattr(exc, "ctx", None)
                hint = f" (see {context.command_path} --help)" if context is not None else ""
                typer.echo(f"error: {message}{hint}", err=True)
            sys.exit(1)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        # Click answers an Exit (a command's own exit code, --help) with its code.
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="rolecall",
    help="rolecall: identity and access management for machine-learning teams.",
    cls=_Commands,
    no_args_is_help=True,
    # Locals may hold keys and passwords: never print them in a traceback.
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="The database schema.", cls=HelpGroup, no_args_is_help=True)
api_key_app = typer.Typer(
    help="API keys, for operators on the server host.", cls=HelpGroup, no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(api_key_app, name="api-key")
app.add_typer(federation_app, name="federation")
app.add_typer(service_account_app, name="service-account")

#: Exit code of ``explain`` when the answer is deny (1 is an error).
EXIT_DENIED = 2

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn expected failures into a one-line message and exit code 1."""
    try:
        yield
    except RolecallError as exc:
        raise fail(exc.message) from None
    except ValidationError as exc:
        # A check across settings (no field: ``loc`` is empty) names its variable itself.
        problems = "; ".join(
            f"{_variable(e['loc'])}: {_reason(e['msg'])}" if e["loc"] else _reason(e["msg"])
            for e in exc.errors()
        )
        raise fail(f"invalid settings: {problems}") from None
    except CommandError as exc:
        # Alembic: e.g. the database is at a revision this version does not know.
        raise fail(f"migrations: {exc}") from None
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise fail(f"database error: {detail}") from None
    except UnicodeEncodeError:
        # An argument of bytes that are no UTF-8 (Python keeps them as lone surrogates), which
        # no query can send: nothing can be named so.
        raise fail("an argument is not UTF-8 text") from None


#: Settings that ``serve`` also takes as options.
SERVE_OPTIONS = ("host", "port", "workers")


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable a settings error is about: a field's ``ROLECALL_`` name (an
    alias, such as ``SESSION_LENGTH``, is its own name already), and its option if it has one."""
    name = ".".join(map(str, loc))
    if name not in Settings.model_fields:
        return name
    variable = f"{Settings.model_config.get('env_prefix', '')}{name}".upper()
    return f"{variable} (--{name})" if name in SERVE_OPTIONS else variable


def _reason(message: str) -> str:
    # pydantic prefixes a validator's own message so; the message says it all.
    return message.removeprefix("Value error, ")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (read afresh: each command is its own process)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)  # type: ignore[arg-type]


def shown_url(url: str) -> str:
    """The database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"rolecall {__version__}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (safe to repeat)."""
    with reported_errors():
        settings = load_settings()
        upgrade(settings.database_url)
    typer.echo(f"database {shown_url(settings.database_url)} is at the newest revision")


@app.command()
def init(
    org: Annotated[str, typer.Option("--org", help="Name of the organization.")],
    admin_email: Annotated[str, typer.Option("--admin-email", help="Email of its first admin.")],
    admin_password: Annotated[
        str | None,
        typer.Option(
            "--admin-password",
            envvar="ROLECALL_ADMIN_PASSWORD",
            help="A password for signing in to the console; from ROLECALL_ADMIN_PASSWORD when"
            " not given (a command line is visible to every user of the host, in ps).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create the database, the organization and its admin; print the admin's API key."""
    with reported_errors():
        settings = load_settings()
        upgrade(settings.database_url)
        done = initialise(
            settings, org_name=org, admin_email=admin_email, admin_password=admin_password
        )
    if as_json:
        typer.echo(json.dumps({"org": done.org, "admin": done.admin, "api_key": done.api_key}))
        return
    typer.echo(f"Initialised organization {done.org!r} with admin {done.admin} ({done.username}).")
    typer.echo("The admin's API key (shown once; keep it safe):")
    typer.echo(f"  {done.api_key}")
    typer.echo("Next: `rolecall serve`, then use the key with the SDK (ROLECALL_API_KEY).")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [8080].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes, sharing the database [1].")
    ] = None,
) -> None:
    """Apply migrations and run the server."""
    # Imported here: the web stack is heavy and only this command needs it.
    import uvicorn

    from rolecall.web.access_log import log_config
    from rolecall.web.app import WORKER_APP, create_app, restore_before_workers
    from rolecall.web.no_delay import NoDelayH11Protocol

    with reported_errors():
        settings = load_settings(host=host, port=port, workers=workers)
        upgrade(settings.database_url)
        if settings.workers == 1:
            # LOCAL_RESTORE's temporary password is set and logged by the app's start-up.
            server_app = create_app(settings)
        else:
            # Once, here, not in every worker (each would set and log a password of its own).
            restore_before_workers(settings)
    if settings.workers == 1:
        uvicorn.run(
            server_app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=log_config(),
            http=NoDelayH11Protocol,
        )
        return
    # The workers are new processes that read their settings from the environment: hand on the
    # address given on the command line.
    os.environ["ROLECALL_HOST"], os.environ["ROLECALL_PORT"] = settings.host, str(settings.port)
    with _shared_metrics():
        uvicorn.run(
            WORKER_APP,
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=log_config(),
            http=NoDelayH11Protocol,
        )


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """Workers count their metrics in files of one directory, so that ``/metrics`` shows them
    all: the operator's ``PROMETHEUS_MULTIPROC_DIR``, else a fresh one removed at the end."""
    from rolecall.web.metrics import MULTIPROCESS_DIR

    if os.environ.get(MULTIPROCESS_DIR):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="rolecall-metrics-") as directory:
        os.environ[MULTIPROCESS_DIR] = directory
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR]


@api_key_app.command("create")
def api_key_create(
    user: Annotated[str, typer.Option("--user", help="Email (or username) of the user.")],
    description: Annotated[
        str | None, typer.Option(help="What the key is for.")
    ] = "created by rolecall api-key create",
    as_json: JsonOption = False,
) -> None:
    """Issue an API key for a user and print it (shown once)."""
    with reported_errors():
        issued = create_user_key(load_settings(), user_ref=user, description=description)
    if as_json:
        body = {"user": issued.user, "key_id": issued.key_id, "api_key": issued.api_key}
        typer.echo(json.dumps(body))
        return
    typer.echo(f"API key for {issued.user} ({issued.username}), shown once:")
    typer.echo(f"  {issued.api_key}")


@app.command()
def explain(
    principal: Annotated[
        str, typer.Option(help="user:<username or email>, service_account:<name> or anonymous.")
    ],
    permission: Annotated[str, typer.Option(help="A permission such as project:read.")],
    project: Annotated[str, typer.Option(help="The project, as ENTITY/NAME.")],
    org: Annotated[str | None, typer.Option(help="The organization (multi-org mode).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Explain whether a principal has a permission on a project (exit 0 allow, 2 deny)."""
    with reported_errors():
        decision = explain_decision(
            load_settings(),
            principal=principal,
            permission=permission,
            project=project,
            org_name=org,
        )
    if as_json:
        typer.echo(json.dumps(decision.as_dict()))
    else:
        verdict = "ALLOW" if decision.allowed else "DENY"
        typer.echo(f"{verdict} {decision.permission} for {principal} on {project}")
        typer.echo(f"deciding rule: {decision.deciding_rule}")
        for n, step in enumerate(decision.trace, 1):
            typer.echo(f"  {n}. {step.rule} [{step.outcome}] {step.detail}")
    if not decision.allowed:
        raise typer.Exit(EXIT_DENIED)


@app.command()
def login(
    host: Annotated[str, typer.Option("--host", help="The server's base URL.")],
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="The API key (else ROLECALL_API_KEY / WANDB_API_KEY)."),
    ] = None,
    identity_token_file: Annotated[
        str | None,
        typer.Option(
            "--identity-token-file",
            help="Sign in with a JWT file instead (exchanged for access tokens).",
        ),
    ] = None,
) -> None:
    """Check a credential against the server and store it for later commands (mode 0600)."""
    if api_key and identity_token_file:
        # Alternatives: the key won, and a token file that was not even there went unnoticed.
        raise typer.BadParameter(
            "give --api-key or --identity-token-file, not both",
            param_hint="'--identity-token-file'",
        )
    host = host.rstrip("/")
    key = api_key or _env_key()
    with server_errors():
        from rolecall.sdk import Api

        with Api(base_url=host, api_key=key, identity_token_file=identity_token_file) as api:
            if api.api_key is None and api.auth is None:
                raise fail("give --api-key or --identity-token-file (or set ROLECALL_API_KEY)")
            viewer = api.viewer()
    login = {"host": host}
    if api.api_key:
        login["api_key"] = api.api_key
    else:
        login["identity_token_file"] = str(api.auth.identity_token_file)  # type: ignore[union-attr]
    path = store_login(login)
    typer.echo(f"Logged in to {host} as {viewer.name} ({viewer.credential}); saved in {path}")


def _env_key() -> str | None:
    import os

    for name in ("ROLECALL_API_KEY", "WANDB_API_KEY"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    return None


if __name__ == "__main__":
    app()
