"""Concurrent SCIM writes against a live ``rolecall serve`` (issue 3, "Scale and concurrency").

Identity providers push group memberships in parallel: Okta and Entra ID each run several
provisioning workers, and a burst of assignments lands as simultaneous PATCHes of one group.
Here 8 clients, released together by a barrier, each add a different user to the same group,
round after round; afterwards every one of them is a member (no lost update), as the group
(GET) and the database both show, and no request failed. On SQLite the writers queue for the
one write lock; waiting must never turn into an error.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from rolecall.db.engine import make_engine
from rolecall.teams.models import TeamMembership
from tests.scim.conformance.conftest import LiveServer, runs_again
from tests.scim.conftest import GROUP_URN, SCIM_JSON, new_user, patch
from tests.threads import run_together, send_at_once

CLIENTS = 8
ROUNDS = 4


def _client(server: LiveServer) -> httpx.Client:
    headers = {"Authorization": server.basic_auth, "Content-Type": SCIM_JSON}
    return httpx.Client(base_url=server.scim_url, headers=headers, timeout=60)


def _create_users(client: httpx.Client, count: int, prefix: str = "burst") -> list[str]:
    ids = []
    for i in range(count):
        response = client.post("/Users", json=new_user(f"{prefix}-{i}@example.com"))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _add_concurrently(server: LiveServer, group_id: str, ids: list[str]) -> list[str]:
    """Each of CLIENTS threads adds its share of ``ids`` one PATCH at a time, every round's
    PATCHes sent at the same moment; returns what went wrong (status and body)."""
    barrier = threading.Barrier(CLIENTS)
    failures: list[str] = []
    lock = threading.Lock()

    def run(worker: int) -> None:
        mine = ids[worker::CLIENTS]
        with _client(server) as client:
            for user_id in mine:
                body = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
                barrier.wait(timeout=60)
                try:
                    response = client.patch(f"/Groups/{group_id}", json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{user_id}: {type(exc).__name__}: {exc}")
                    continue
                if response.status_code not in (200, 204):
                    with lock:
                        failures.append(f"{user_id}: {response.status_code} {response.text}")

    threads = [threading.Thread(target=run, args=(w,)) for w in range(CLIENTS)]
    run_together(threads, timeout=300)
    return failures


def test_simultaneous_member_adds_to_one_group_lose_none(
    live_server: LiveServer, live_database_url: str
) -> None:
    with _client(live_server) as client:
        ids = _create_users(client, CLIENTS * ROUNDS)
        group = {"schemas": [GROUP_URN], "displayName": "Burst Team", "members": []}
        created = client.post("/Groups", json=group)
        assert created.status_code == 201, created.text
        group_id = created.json()["id"]

        failures = _add_concurrently(live_server, group_id, ids)

        assert failures == []
        shown = client.get(f"/Groups/{group_id}")
        assert shown.status_code == 200, shown.text
        assert sorted(m["value"] for m in shown.json()["members"]) == sorted(ids)

    engine = make_engine(live_database_url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(TeamMembership.user_id, func.count())
                .where(TeamMembership.team_id == group_id)
                .group_by(TeamMembership.user_id)
            ).all()
    finally:
        engine.dispose()
    assert sorted(user_id for user_id, _ in rows) == sorted(ids)
    assert all(count == 1 for _, count in rows)
    assert "Traceback" not in live_server.log.read_text()


def test_simultaneous_adds_of_the_same_member_are_no_ops(live_server: LiveServer) -> None:
    """Re-adding a member is a no-op (issue 3), also when the same add arrives from every
    client at once: one of them adds it, the others find it there (even when it was added
    while they were at it); all succeed, and there is one membership."""
    with _client(live_server) as client:
        response = client.post("/Users", json=new_user("same-burst@example.com"))
        assert response.status_code == 201, response.text
        user_id = response.json()["id"]
        created = client.post(
            "/Groups", json={"schemas": [GROUP_URN], "displayName": "Repeated Adds", "members": []}
        )
        assert created.status_code == 201, created.text
        group_id = created.json()["id"]

        barrier = threading.Barrier(CLIENTS)
        statuses: list[int] = []
        lock = threading.Lock()

        def run() -> None:
            body = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
            with _client(live_server) as own:
                barrier.wait(timeout=60)
                status = own.patch(f"/Groups/{group_id}", json=body).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=run) for _ in range(CLIENTS)]
        run_together(threads, timeout=120)

        assert len(statuses) == CLIENTS
        assert set(statuses) <= {200, 204}, statuses
        members = client.get(f"/Groups/{group_id}").json()["members"]
        assert [m["value"] for m in members] == [user_id]


def test_simultaneous_writes_with_one_version_let_exactly_one_through(
    live_server: LiveServer,
) -> None:
    """``If-Match`` (RFC 7644 §3.14) holds under concurrency: 8 clients that read the same
    version of a group each add a different member with that version as precondition, at the
    same moment. One write goes through; the others find the group changed (412) and add
    nothing. Without the row lock, on PostgreSQL, several would pass the check together."""
    with _client(live_server) as client:
        ids = _create_users(client, CLIENTS, prefix="guarded")
        group = {"schemas": [GROUP_URN], "displayName": "Guarded Team", "members": []}
        created = client.post("/Groups", json=group)
        assert created.status_code == 201, created.text
        group_id = created.json()["id"]

        for round_number in range(ROUNDS):
            tag = client.get(f"/Groups/{group_id}").headers["ETag"]
            barrier = threading.Barrier(CLIENTS)
            statuses: dict[str, int] = {}
            lock = threading.Lock()

            def run(user_id: str, tag: str = tag) -> None:
                body = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
                with _client(live_server) as own:
                    barrier.wait(timeout=60)
                    response = own.patch(
                        f"/Groups/{group_id}", json=body, headers={"If-Match": tag}
                    )
                with lock:
                    statuses[user_id] = response.status_code

            threads = [threading.Thread(target=run, args=(u,)) for u in ids]
            run_together(threads, timeout=120)

            assert sorted(statuses.values()) == [204] + [412] * (CLIENTS - 1), statuses
            members = {m["value"] for m in client.get(f"/Groups/{group_id}").json()["members"]}
            winners = {u for u, status in statuses.items() if status == 204}
            assert winners <= members, round_number
            # Start the next round from an empty group again.
            reset = client.put(
                f"/Groups/{group_id}",
                json={"schemas": [GROUP_URN], "displayName": "Guarded Team", "members": []},
            )
            assert reset.status_code == 200, reset.text
            assert reset.json()["members"] == []
    assert "Traceback" not in live_server.log.read_text()


@pytest.mark.postgres_only
def test_a_member_another_writer_adds_meanwhile_makes_the_batch_add_a_no_op(
    live_server: LiveServer, live_database_url: str
) -> None:
    """SCIM writers to one group take turns (its row lock), but a REST write does not: here a
    transaction outside SCIM has inserted the same membership and not committed when a PATCH
    adds three members at once. PostgreSQL holds the PATCH's insert on the unique membership
    until that transaction commits, then refuses it; the PATCH undoes its batch and adds the
    members one at a time, the one already there a no-op. 204, each member once."""
    with _client(live_server) as client:
        ids = _create_users(client, 3, prefix="raced")
        group = {"schemas": [GROUP_URN], "displayName": "Raced Team", "members": []}
        created = client.post("/Groups", json=group)
        assert created.status_code == 201, created.text
        group_id = created.json()["id"]

        engine = make_engine(live_database_url)
        try:
            with engine.connect() as other:
                other.execute(
                    insert(TeamMembership).values(
                        id=str(uuid.uuid4()),
                        team_id=group_id,
                        user_id=ids[1],
                        role="member",
                        created_at=datetime.now(UTC),
                    )
                )
                outcome: list[httpx.Response] = []
                body = patch({"op": "add", "path": "members", "value": [{"value": u} for u in ids]})
                sender = threading.Thread(
                    target=lambda: outcome.append(client.patch(f"/Groups/{group_id}", json=body))
                )
                sender.start()
                _wait_until_a_lock_is_awaited(engine)
                other.commit()
            sender.join(timeout=60)
        finally:
            engine.dispose()

        assert [response.status_code for response in outcome] == [204], outcome
        members = [m["value"] for m in client.get(f"/Groups/{group_id}").json()["members"]]
        assert sorted(members) == sorted(ids)
    assert "Traceback" not in live_server.log.read_text()


def _wait_until_a_lock_is_awaited(engine: Engine) -> None:
    """Returns once some session of the database waits for a lock (the PATCH, held by the
    uncommitted membership); fails after 30 s."""
    deadline = time.monotonic() + 30
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the PATCH never waited for the other transaction's membership")


@pytest.mark.postgres_only
def test_a_group_patch_and_the_member_s_own_patch_at_once_both_succeed(
    live_server: LiveServer,
) -> None:
    """An identity provider pushes a group membership and, from another worker, the same
    user's ``teamRoles`` for that team, at the same moment. Both writes touch the group's row
    and the user's (each one's ``meta.lastModified``). Both take them in one order
    (``teams.writes``): the user's PATCH holds the team it joins before its own row, so the
    pair takes turns instead of deadlocking (they did, before: PostgreSQL failed one of each
    such pair after a second, and rolecall ran it again). Every pair succeeds, round after
    round, none was run again for a deadlock, and each user is a member once."""
    deadlocks_before = runs_again(live_server, "DeadlockDetected")
    with _client(live_server) as client:
        ids = _create_users(client, CLIENTS * ROUNDS, prefix="crossed")
        group = {"schemas": [GROUP_URN], "displayName": "crossed", "members": []}
        created = client.post("/Groups", json=group)
        assert created.status_code == 201, created.text
        group_id = created.json()["id"]

        barrier = threading.Barrier(2 * CLIENTS)
        failures: list[str] = []
        lock = threading.Lock()

        def send(user_id: str, path: str, body: dict) -> None:
            with _client(live_server) as own:
                barrier.wait(timeout=60)
                response = own.patch(path, json=body)
            if response.status_code not in (200, 204):
                with lock:
                    failures.append(f"{path}: {response.status_code} {response.text}")

        for round_number in range(ROUNDS):
            mine = ids[round_number * CLIENTS : (round_number + 1) * CLIENTS]
            threads = []
            for user_id in mine:
                join = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
                role = {"teamName": "crossed", "roleName": "member"}
                own_role = patch({"op": "add", "path": "teamRoles", "value": [role]})
                threads.append(
                    threading.Thread(target=send, args=(user_id, f"/Groups/{group_id}", join))
                )
                threads.append(
                    threading.Thread(target=send, args=(user_id, f"/Users/{user_id}", own_role))
                )
            run_together(threads, timeout=120)

        assert failures == []
        assert runs_again(live_server, "DeadlockDetected") == deadlocks_before
        members = [m["value"] for m in client.get(f"/Groups/{group_id}").json()["members"]]
        assert sorted(members) == sorted(ids)
    assert "Traceback" not in live_server.log.read_text()


@pytest.mark.postgres_only
def test_rest_writes_racing_for_one_membership_are_answered_never_500(
    live_server: LiveServer,
) -> None:
    """The REST API's team writes race too: 8 clients add the same user to a team at once (on
    PostgreSQL each may find it missing, and all but one insert then meets the unique
    membership), then change its role while others remove it. Every answer is the one a lone
    request would get (201 once and 409 "already a member" otherwise; 200 or 204, or 404 for a
    membership already gone), never a 500, and the user is in the team once, then not at all."""
    with _client(live_server) as client:
        ids = _create_users(client, ROUNDS, prefix="rest-raced")
        group = {"schemas": [GROUP_URN], "displayName": "restraced", "members": []}
        assert client.post("/Groups", json=group).status_code == 201
    headers = {"Authorization": live_server.basic_auth}
    api = httpx.Client(base_url=f"{live_server.base_url}/api/v1", headers=headers, timeout=60)
    with api:
        for user_id in ids:
            added = _at_once(
                live_server,
                [("POST", "/teams/restraced/members", {"user": user_id})] * CLIENTS,
            )
            assert sorted(added) == [201] + [409] * (CLIENTS - 1), added
            members = api.get("/teams/restraced/members").json()["items"]
            assert [m["id"] for m in members].count(user_id) == 1
            path = f"/teams/restraced/members/{user_id}"
            raced = _at_once(
                live_server,
                [("PATCH", path, {"role": "admin"}), ("DELETE", path, None)] * (CLIENTS // 2),
            )
            assert set(raced) <= {200, 204, 404} and raced.count(204) == 1, raced
            members = api.get("/teams/restraced/members").json()["items"]
            assert user_id not in [m["id"] for m in members]
    assert "Traceback" not in live_server.log.read_text()


def _at_once(server: LiveServer, requests: list[tuple[str, str, dict | None]]) -> list[int]:
    """Send ``requests`` (method, REST path, JSON body) from a client each, released together;
    returns their statuses."""
    headers = {"Authorization": server.basic_auth}
    answers = send_at_once(f"{server.base_url}/api/v1", headers, requests)
    return [response.status_code for response in answers]


def _send_together(server: LiveServer, requests: list[tuple[str, str, dict | None]]) -> list[str]:
    """Send SCIM ``requests`` (method, path, body) from a client each, released together;
    returns what went wrong (an answer other than 200 or 204)."""
    headers = {"Authorization": server.basic_auth, "Content-Type": SCIM_JSON}
    answers = send_at_once(server.scim_url, headers, requests)
    return [
        f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
        for r in answers
        if r.status_code not in (200, 204)
    ]


@pytest.mark.postgres_only
def test_a_group_patch_and_its_member_s_deletion_at_once_take_turns(
    live_server: LiveServer,
) -> None:
    """A provider removes a user from a group and, from another worker, deletes the user. The
    deletion holds the user's teams before its own row (``teams.writes``), as the group's PATCH
    does, so the pair takes turns (before, they deadlocked). Both succeed, none is run again
    for a deadlock, and the group keeps exactly the members it should."""
    deadlocks_before = runs_again(live_server, "DeadlockDetected")
    with _client(live_server) as client:
        leaving = _create_users(client, CLIENTS, prefix="leaving")
        joining = _create_users(client, CLIENTS, prefix="joining")
        members = [{"value": user_id} for user_id in leaving]
        group = {"schemas": [GROUP_URN], "displayName": "leavers", "members": members}
        created = client.post("/Groups", json=group)
        assert created.status_code == 201, created.text
        path = f"/Groups/{created.json()['id']}"
        requests: list[tuple[str, str, dict | None]] = []
        for gone, new in zip(leaving, joining, strict=True):
            body = patch(
                {"op": "add", "path": "members", "value": [{"value": new}]},
                {"op": "remove", "path": f'members[value eq "{gone}"]'},
            )
            requests += [("PATCH", path, body), ("DELETE", f"/Users/{gone}", None)]
        assert _send_together(live_server, requests) == []
        assert runs_again(live_server, "DeadlockDetected") == deadlocks_before
        shown = [m["value"] for m in client.get(path).json()["members"]]
        assert sorted(shown) == sorted(joining)


@pytest.mark.postgres_only
def test_admins_demoted_at_once_take_turns_at_the_last_admin_check(
    live_server: LiveServer,
) -> None:
    """The last-admin check (ACCESS.md) counts the admins once its turn on the organization
    comes, holding only its own admin's row: demotions sent at once all succeed (the caller
    stays admin), and none is run again for a deadlock (before, each locked every admin's row
    while holding its own, and they deadlocked)."""
    deadlocks_before = runs_again(live_server, "DeadlockDetected")
    with _client(live_server) as client:
        admins = []
        for i in range(CLIENTS):
            body = new_user(f"admin-{i}@example.com", organizationRole="admin")
            response = client.post("/Users", json=body)
            assert response.status_code == 201, response.text
            admins.append(response.json()["id"])
        demote = patch({"op": "replace", "path": "organizationRole", "value": "member"})
        requests = [("PATCH", f"/Users/{user_id}", demote) for user_id in admins]
        assert _send_together(live_server, requests) == []
        assert runs_again(live_server, "DeadlockDetected") == deadlocks_before
        roles = [client.get(f"/Users/{user_id}").json()["organizationRole"] for user_id in admins]
        assert roles == ["member"] * CLIENTS
