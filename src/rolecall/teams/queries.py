"""Team lookups used by several domains."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.teams.models import Team, TeamMembership


def find_entity(session: Session, name: str, org_id: str | None = None) -> Team | None:
    """A team or personal entity by name (case-insensitive) or id."""
    query = select(Team).where((Team.name_key == name.strip().lower()) | (Team.id == name))
    if org_id is not None:
        query = query.where(Team.org_id == org_id)
    return session.scalar(query)


def user_team_membership(session: Session, team_id: str, user_id: str) -> TeamMembership | None:
    return session.scalar(
        select(TeamMembership).where(
            TeamMembership.team_id == team_id, TeamMembership.user_id == user_id
        )
    )


def team_ids_of_user(session: Session, *, org_id: str, user_id: str) -> list[str]:
    """The ids of ``org_id``'s teams that ``user_id`` is a member of."""
    query = (
        select(TeamMembership.team_id)
        .join(Team, Team.id == TeamMembership.team_id)
        .where(TeamMembership.user_id == user_id, Team.org_id == org_id)
    )
    return list(session.scalars(query))
