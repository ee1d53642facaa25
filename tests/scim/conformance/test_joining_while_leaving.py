"""A user added to a group while it leaves the organization (``teams.writes``, "Joining and
leaving"), on PostgreSQL, with the race made certain (``held_audit``): whichever write takes
the user's org membership first, the user ends outside both the organization and the group,
never in a team of an organization it left, and both requests are answered as they would be
a moment apart.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rolecall.db.engine import make_engine
from rolecall.projects.models import ProjectMembership
from rolecall.teams.models import TeamMembership
from tests.scim.conformance.conftest import LiveServer, runs_again
from tests.scim.conformance.held_audit import audit_table_held
from tests.scim.conftest import GROUP_URN, SCIM_JSON, new_user, patch

pytestmark = pytest.mark.postgres_only


def _client(server: LiveServer) -> httpx.Client:
    """SCIM and REST paths alike, from the server's root."""
    headers = {"Authorization": server.basic_auth, "Content-Type": SCIM_JSON}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=60)


def _user_and_group(server: LiveServer, name: str, *, joined: bool = False) -> tuple[str, str]:
    """A new user and a new group (with the user and the admin as its members, if
    ``joined``)."""
    with _client(server) as client:
        user = client.post("/scim/v2/Users", json=new_user(f"{name}@example.com"))
        group = {"schemas": [GROUP_URN], "displayName": f"{name}-team"}
        if joined:
            admin = client.get("/api/v1/viewer").json()["id"]
            group["members"] = [{"value": user.json()["id"]}, {"value": admin}]
        group = client.post("/scim/v2/Groups", json=group)
    assert user.status_code == group.status_code == 201, (user.text, group.text)
    return user.json()["id"], group.json()["id"]


def _in_order(server: LiveServer, database_url: str, requests: list[tuple[str, str, dict | None]]):
    """Send ``requests`` one after the other while the audit table is held, each once the one
    before waits for a lock (at the audit table, or at a row the one before holds); then let
    go. Returns their answers, in the order sent."""
    answers: list[httpx.Response | None] = [None] * len(requests)

    def send(index: int, method: str, path: str, body: dict | None) -> None:
        with _client(server) as own:
            answers[index] = own.request(method, path, json=body)

    threads = [
        threading.Thread(target=send, args=(i, *request)) for i, request in enumerate(requests)
    ]
    with audit_table_held(database_url) as until_waiting:
        for waiting, thread in enumerate(threads, start=1):
            thread.start()
            assert until_waiting(waiting) == waiting
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    return answers


def _rows_of(
    database_url: str, model: type[TeamMembership | ProjectMembership], user_id: str
) -> int:
    """How many of ``model``'s rows (memberships) name the user."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            query = select(func.count()).select_from(model).where(model.user_id == user_id)
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


def test_a_deletion_after_an_addition_under_way_waits_and_takes_the_user_out_of_the_group(
    live_server: LiveServer, live_database_url: str
) -> None:
    """The group's PATCH has added the user (not committed) when the deletion comes. The
    deletion waits for it at the user's org membership, then finds a team it did not hold
    and runs again from its start (``ChangedMeanwhile``), this time holding the group, and
    takes the user out of it. Before, the deletion did not see the uncommitted member, and
    the user stayed in the group after leaving the organization."""
    user_id, group_id = _user_and_group(live_server, "joining-first")
    again_before = runs_again(live_server, "ChangedMeanwhile")
    add = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
    added, deleted = _in_order(
        live_server,
        live_database_url,
        [
            ("PATCH", f"/scim/v2/Groups/{group_id}", add),
            ("DELETE", f"/scim/v2/Users/{user_id}", None),
        ],
    )
    assert added is not None and added.status_code in (200, 204), added and added.text
    assert deleted is not None and deleted.status_code == 204, deleted and deleted.text
    with _client(live_server) as client:
        members = client.get(f"/scim/v2/Groups/{group_id}").json().get("members", [])
    assert members == []
    assert _rows_of(live_database_url, TeamMembership, user_id) == 0
    assert runs_again(live_server, "ChangedMeanwhile") == again_before + 1
    assert "Traceback" not in live_server.log.read_text()


def test_an_addition_after_a_deletion_under_way_waits_and_finds_the_user_gone(
    live_server: LiveServer, live_database_url: str
) -> None:
    """The deletion holds the user's org membership (not committed) when the group's PATCH
    adds it. The PATCH waits for the deletion there, then finds the user gone and is
    refused as for any user outside the organization. Before, it found the membership still
    committed and added the user to the group after it left the organization."""
    user_id, group_id = _user_and_group(live_server, "leaving-first")
    add = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
    deleted, added = _in_order(
        live_server,
        live_database_url,
        [
            ("DELETE", f"/scim/v2/Users/{user_id}", None),
            ("PATCH", f"/scim/v2/Groups/{group_id}", add),
        ],
    )
    assert deleted is not None and deleted.status_code == 204, deleted and deleted.text
    # A user outside the organization is no user here (404, as an unknown id is).
    assert added is not None and added.status_code == 404, added and added.text
    assert f"no user {user_id!r} in this organization" in added.json()["detail"]
    with _client(live_server) as client:
        members = client.get(f"/scim/v2/Groups/{group_id}").json().get("members", [])
    assert members == []
    assert _rows_of(live_database_url, TeamMembership, user_id) == 0
    assert "Traceback" not in live_server.log.read_text()


def test_a_project_invitation_after_a_deletion_under_way_finds_the_user_gone(
    live_server: LiveServer, live_database_url: str
) -> None:
    """The same for a project of the user's team (REST): the invitation waits for the
    deletion at the user's org membership, then answers 404 as for anyone outside the
    organization. Before, it invited the user after it had left."""
    user_id, group_id = _user_and_group(live_server, "invited", joined=True)
    with _client(live_server) as client:
        group = client.get(f"/scim/v2/Groups/{group_id}").json()
        body = {"entity": group["displayName"], "name": "models", "visibility": "restricted"}
        created = client.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    invite = {"principal": "invited@example.com"}
    deleted, invited = _in_order(
        live_server,
        live_database_url,
        [
            ("DELETE", f"/scim/v2/Users/{user_id}", None),
            ("POST", "/api/v1/projects/invited-team/models/members", invite),
        ],
    )
    assert deleted is not None and deleted.status_code == 204, deleted and deleted.text
    assert invited is not None and invited.status_code == 404, invited and invited.text
    assert _rows_of(live_database_url, ProjectMembership, user_id) == 0
    assert "Traceback" not in live_server.log.read_text()
