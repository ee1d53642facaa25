"""Rules of the code base that a reviewer would otherwise have to remember (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from rolecall.authz.permissions import Permission

SRC = Path(__file__).resolve().parent.parent / "src" / "rolecall"
CATALOGUE = SRC / "authz" / "permissions.py"
PERMISSION_VALUES = {p.value for p in Permission}


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_permission_literal_outside_the_catalogue():
    offenders = [
        f"{path.relative_to(SRC)}:{line}: {value!r}"
        for path in SRC.rglob("*.py")
        if path != CATALOGUE and "migrations" not in path.parts and "sdk" not in path.parts
        for line, value in _string_constants(path)
        if value in PERMISSION_VALUES
    ]
    assert offenders == [], "use rolecall.authz.permissions.Permission instead:\n" + "\n".join(
        offenders
    )


def test_services_never_commit():
    """One transaction per request, owned by the web layer: services flush, never commit."""
    offenders = [
        f"{path.relative_to(SRC)}"
        for path in SRC.rglob("service.py")
        if ".commit()" in path.read_text()
    ]
    assert offenders == []
