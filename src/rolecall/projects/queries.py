"""Project lookups used by several domains."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.errors import InvalidInput
from rolecall.projects.models import Project
from rolecall.teams.models import Team


def split_path(path: str) -> tuple[str, str]:
    """``entity/name`` -> (entity, name); ``InvalidInput`` for anything else."""
    entity, sep, name = path.strip().partition("/")
    if not sep or not entity or not name or "/" in name:
        raise InvalidInput(f"project must be written entity/name, got {path!r}", field="project")
    return entity, name


def find_project(
    session: Session, entity: str, name: str, org_id: str | None = None
) -> Project | None:
    # The team comes along into the session (its identity map): every caller goes on to need it.
    query = (
        select(Project, Team)
        .join(Team, Team.id == Project.team_id)
        .where(Team.name_key == entity.strip().lower(), Project.name_key == name.strip().lower())
    )
    if org_id is not None:
        query = query.where(Team.org_id == org_id)
    row = session.execute(query).first()
    return row[0] if row is not None else None
