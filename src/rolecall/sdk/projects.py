"""Projects, their members and their runs."""

from __future__ import annotations

from typing import Any

from rolecall.sdk._http import segment
from rolecall.sdk.models import Model, field, principal_ref


def split_project_path(path: str) -> tuple[str, str]:
    """``"entity/name"`` as ``(entity, name)``; raises ``ValueError`` for any other string and
    ``TypeError`` for what is no string."""
    if not isinstance(path, str):
        raise TypeError(f"a project path is a string 'entity/name', not {type(path).__name__}")
    entity, sep, name = path.strip().partition("/")
    if not sep or not entity or not name or "/" in name:
        raise ValueError(f"a project path looks like 'entity/name', not {path!r}")
    return entity, name


class ProjectMember(Model):
    """A principal's standing in a project (``ProjectMemberRead``)."""

    kind = field()
    name = field()
    invited = field()
    team_role = field()
    project_role = field()
    is_override = field()


class Project(Model):
    """A project of a team or personal entity (``ProjectRead``)."""

    entity = field()
    name = field()
    path = field()
    visibility = field()
    owner = field()
    owner_needed = field()
    description = field()
    created_at = field()

    @property
    def _path(self) -> str:
        return f"/projects/{segment(self.entity)}/{segment(self.name)}"

    def _member_path(self, principal: str | Model) -> str:
        return f"{self._path}/members/{segment(principal_ref(principal))}"

    def set_visibility(self, visibility: str) -> Project:
        """Change the visibility: ``open``, ``public``, ``team`` or ``restricted``."""
        body = {"visibility": visibility}
        self._update(self.api._http.request("PATCH", self._path, json=body))
        return self

    @property
    def members(self) -> list[ProjectMember]:
        """Who is in the project: invited members (restricted) or the team's members."""
        body = self.api._http.request("GET", f"{self._path}/members")
        return [ProjectMember(self.api, item) for item in body["items"]]

    def add_member(self, principal: str | Model, role: str | None = None) -> ProjectMember:
        """Invite a user or service account (``"user:alice"``, ``"service_account:ci"``, a
        username, or an SDK object), optionally with a project role."""
        body: dict[str, Any] = {"principal": principal_ref(principal)}
        if role is not None:
            body["role"] = role
        created = self.api._http.request("POST", f"{self._path}/members", json=body)
        return ProjectMember(self.api, created)

    def set_role(self, user: str | Model, role: str | None) -> ProjectMember:
        """Set a member's project role; None (or its team role) makes it track the team role."""
        body = {"role": role}
        return ProjectMember(
            self.api, self.api._http.request("PATCH", self._member_path(user), json=body)
        )

    def remove_member(self, principal: str | Model) -> None:
        """Remove a member from the project (its project-role override is forgotten)."""
        self.api._http.request("DELETE", self._member_path(principal))

    def join(self) -> ProjectMember:
        """Join a restricted project of a team the caller administers."""
        return ProjectMember(self.api, self.api._http.request("POST", f"{self._path}/join"))

    def create_run(self, name: str | None = None) -> Run:
        """Start a run in this project (the server names it when ``name`` is None)."""
        body = {} if name is None else {"name": name}
        return Run(self.api, self.api._http.request("POST", f"{self._path}/runs", json=body))

    def runs(self) -> list[Run]:
        """The project's runs."""
        body = self.api._http.request("GET", f"{self._path}/runs")
        return [Run(self.api, item) for item in body["items"]]

    def delete(self) -> None:
        """Delete the project."""
        self.api._http.request("DELETE", self._path)


class Run(Model):
    """A run (``RunRead``); ``attributed_to`` names the human it counts for."""

    name = field()
    project = field()
    state = field()
    created_by = field()
    attributed_to = field()
    attribution_note = field()
    created_at = field()

    @property
    def _path(self) -> str:
        return f"/runs/{segment(self.id)}"

    def stop(self) -> Run:
        """Stop the run."""
        self._update(self.api._http.request("POST", f"{self._path}/stop"))
        return self

    def delete(self) -> None:
        """Delete the run."""
        self.api._http.request("DELETE", self._path)

    def move(self, project: str) -> Run:
        """Move the run to ``"entity/name"``; never out of a restricted project (``Conflict``)."""
        split_project_path(project)
        body = {"project": project}
        self._update(self.api._http.request("POST", f"{self._path}/move", json=body))
        return self
