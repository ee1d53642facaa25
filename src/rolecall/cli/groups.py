"""Command groups whose name alone on the command line shows their help and exits 0.

Typer's ``no_args_is_help`` raises a usage error for it, which exits 1 with no ``error:`` line:
neither a failure (README: failures print ``error: ...``) nor ``--help``'s success.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup


class HelpGroup(TyperGroup):
    """A group that answers its bare name (``rolecall``, ``rolecall db``) as ``--help``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> Any:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            help_text = ctx.get_help()  # Typer's rich help is printed here, and "" returned
            if help_text:
                typer.echo(help_text)
            ctx.exit(0)
        return super().parse_args(ctx, args)
