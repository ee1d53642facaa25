"""The README's configuration table names every setting the server reads, with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from rolecall.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def env_name(name: str) -> str:
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def table_rows() -> dict[str, str]:
    """``variable`` -> the row's default cell, from the server configuration table."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            names = re.findall(r"`([A-Z_]+)`", cells[0])
            defaults = re.findall(r"`([^`]*)`", cells[1])
            for n, var in enumerate(names):
                rows[var] = defaults[min(n, len(defaults) - 1)] if defaults else ""
    return rows


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_with_its_default(name):
    rows = table_rows()
    variable = env_name(name)
    assert variable in rows, f"{variable} is missing from the README's configuration table"
    default = Settings.model_fields[name].default
    if default is None:
        return  # documented in words (e.g. the public URL defaults to the serve address)
    shown = str(default).lower() if isinstance(default, bool) else str(default)
    assert rows[variable] == shown
