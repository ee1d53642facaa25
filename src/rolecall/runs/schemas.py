"""REST shapes of runs (docs/rest-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rolecall.runs.service import RunView

#: Run names are display names: any printable text (no control characters).
RunName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: ``entity/name``, or a bare project name in the caller's default entity.
ProjectRef = Annotated[str, Field(min_length=1, max_length=260)]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectRef
    name: RunName | None = None


class RunCreateInProject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RunName | None = None


class RunMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The destination, ``entity/name``.
    project: ProjectRef


class RunCreator(BaseModel):
    kind: str
    name: str


class RunRead(BaseModel):
    id: str
    name: str
    project: str
    state: str
    #: ``null`` once the creating user or service account is gone (its runs stay).
    created_by: RunCreator | None
    attributed_to: str | None
    attribution_note: str | None
    created_at: datetime

    @classmethod
    def from_view(cls, view: RunView) -> RunRead:
        run = view.run
        creator = None
        if view.creator_kind and view.creator_name:
            creator = RunCreator(kind=view.creator_kind, name=view.creator_name)
        return cls(
            id=run.id,
            name=run.name,
            project=view.project,
            state=run.state,
            created_by=creator,
            attributed_to=view.attributed_to,
            attribution_note=run.attribution_note,
            created_at=run.created_at,
        )


class RunList(BaseModel):
    items: list[RunRead]
