"""``rolecall federation ...`` and ``rolecall service-account ...``: identity federation over
the REST API, with the stored login (see ``cli.remote``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rolecall.cli.groups import HelpGroup
from rolecall.cli.remote import remote_api, server_errors

federation_app = typer.Typer(
    help="Identity federation: the organization's JWT issuer, explaining refusals.",
    cls=HelpGroup,
    no_args_is_help=True,
)
service_account_app = typer.Typer(
    help="Service accounts, through the server.", cls=HelpGroup, no_args_is_help=True
)

HostOption = Annotated[str | None, typer.Option("--host", help="The server's base URL.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
#: Exit code of ``verify`` for a JWT an exchange would refuse.
EXIT_REFUSED = 2


@federation_app.command("set-issuer")
def set_issuer(
    url: Annotated[str, typer.Argument(help="The issuer URL; 'none' removes it.")],
    host: HostOption = None,
) -> None:
    """Register the organization's JWT issuer (org admins); the server runs discovery first."""
    issuer = None if url.strip().lower() == "none" else url
    with server_errors(), remote_api(host) as api:
        registered = api.set_jwt_issuer(issuer)
    typer.echo(f"JWT issuer: {registered}" if registered else "JWT issuer removed")


@federation_app.command("show")
def show(host: HostOption = None) -> None:
    """Print the organization's JWT issuer (org admins)."""
    with server_errors(), remote_api(host) as api:
        issuer = api.jwt_issuer()
    typer.echo(issuer or "no JWT issuer registered")


def _print_report(report: dict[str, Any]) -> None:
    verdict = "VALID" if report["valid"] else f"REFUSED at {report['failed_check']}"
    typer.echo(verdict)
    if report.get("subject"):
        subject = report["subject"]
        typer.echo(f"would issue an access token for {subject['kind']} {subject['name']}")
    for check in report["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        typer.echo(f"  {mark} {check['check']:<9} {check['detail']}")
        typer.echo(f"       expected: {check['expected']}")
        typer.echo(f"       found:    {check['found']}")


@federation_app.command("verify")
def verify(
    token_file: Annotated[
        Path, typer.Option("--token-file", help="A file holding the JWT.", dir_okay=False)
    ],
    host: HostOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run every check of the token exchange on a JWT, issuing nothing (exit 0 valid, 2 not)."""
    try:
        assertion = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        typer.echo(f"error: cannot read {token_file}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    except UnicodeDecodeError:
        typer.echo(f"error: {token_file} is not text (a JWT is ASCII)", err=True)
        raise typer.Exit(1) from None
    if not assertion:
        typer.echo(f"error: {token_file} is empty", err=True)
        raise typer.Exit(1)
    with server_errors(), remote_api(host) as api:
        report = api.verify_jwt(assertion)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print_report(report)
    if not report["valid"]:
        raise typer.Exit(EXIT_REFUSED)


@service_account_app.command("create")
def create_service_account(
    team: Annotated[str, typer.Option("--team", help="The parent team.")],
    description: Annotated[str, typer.Option("--description", help="What the account does.")],
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="External account: the JWT sub it signs in with."),
    ] = None,
    host: HostOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a team-scoped service account: built-in (API key) or external (--subject)."""
    with server_errors(), remote_api(host) as api:
        found = api.team(team)
        if found is None:
            typer.echo(f"error: no team {team!r}", err=True)
            raise typer.Exit(1)
        member = found.create_service_account(description, subject=subject)
    body = {"id": member.id, "name": member.name, "team": team, "subject": subject}
    body["api_key"] = member.api_key
    if as_json:
        typer.echo(json.dumps(body))
        return
    kind = f"external (subject {subject})" if subject else "built-in"
    typer.echo(f"Created {kind} service account {member.name} in team {team}.")
    if member.api_key:
        typer.echo(f"Its API key (shown once): {member.api_key}")
