"""Many writers at once, through SCIM and the REST API, on the same users and teams, against a
live ``rolecall serve``: every request is answered as a lone request would be (2xx, or a 4xx
that says why: a user deleted meanwhile, a member already there), never with a 500 or a dropped
connection, and the memberships left are consistent.

An identity provider provisions with several workers (Entra ID and Okta both do), while admins
and scripts use the REST API. On PostgreSQL, writers that take the same rows in different
orders deadlock and PostgreSQL fails one of them; a membership one writer found missing is
inserted by another; a row one read is deleted by another. rolecall runs such a request again
(``web.deps._in_transaction``). Each client follows its own fixed script (seeded), so the run
is the same every time but for how the requests interleave.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rolecall.db.engine import make_engine
from rolecall.teams.models import TeamMembership
from tests.scim.conformance.conftest import LiveServer
from tests.scim.conftest import GROUP_URN, SCIM_JSON, new_user, patch
from tests.threads import run_together

CLIENTS = 8
REQUESTS_EACH = 40
USERS = 16
TEAMS = ("mixed-a", "mixed-b", "mixed-c")
ROLES = ("member", "admin", "viewer")


class World:
    """What the clients share: the users' and groups' ids, and the answers so far."""

    def __init__(self, user_ids: list[str], group_ids: dict[str, str]) -> None:
        self.user_ids = user_ids
        self.group_ids = group_ids
        self.answers: list[tuple[str, int]] = []
        self.broken: list[str] = []
        self.lock = threading.Lock()


#: What a step did (for the failure message) and the answer.
Answer = tuple[str, httpx.Response]
Step = Callable[[httpx.Client, httpx.Client, random.Random, World], Answer]


def _group_members(
    scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World
) -> Answer:
    team = rng.choice(TEAMS)
    chosen = rng.sample(world.user_ids, 3)
    op = rng.choice(["add", "remove"])
    body = patch({"op": op, "path": "members", "value": [{"value": u} for u in chosen]})
    return f"PATCH group {op}", scim.patch(f"/Groups/{world.group_ids[team]}", json=body)


def _group_replace(
    scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World
) -> Answer:
    team = rng.choice(TEAMS)
    members = [{"value": u} for u in rng.sample(world.user_ids, rng.randrange(0, 5))]
    body = {"schemas": [GROUP_URN], "displayName": team, "members": members}
    return "PUT group", scim.put(f"/Groups/{world.group_ids[team]}", json=body)


def _own_team_role(
    scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World
) -> Answer:
    op = rng.choice(["add", "remove"])
    value = [{"teamName": rng.choice(TEAMS), "roleName": rng.choice(ROLES)}]
    body = patch({"op": op, "path": "teamRoles", "value": value})
    return f"PATCH user teamRoles {op}", scim.patch(
        f"/Users/{rng.choice(world.user_ids)}", json=body
    )


def _user_fields(scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World) -> Answer:
    value = {"active": rng.choice([True, False]), "displayName": f"Mixed {rng.randrange(9)}"}
    body = patch({"op": "replace", "value": value})
    return "PATCH user", scim.patch(f"/Users/{rng.choice(world.user_ids)}", json=body)


def _rest_add(scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World) -> Answer:
    body = {"user": rng.choice(world.user_ids), "role": rng.choice(ROLES)}
    return "REST add member", api.post(f"/teams/{rng.choice(TEAMS)}/members", json=body)


def _rest_role(scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World) -> Answer:
    path = f"/teams/{rng.choice(TEAMS)}/members/{rng.choice(world.user_ids)}"
    return "REST member role", api.patch(path, json={"role": rng.choice(ROLES)})


def _rest_remove(scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World) -> Answer:
    path = f"/teams/{rng.choice(TEAMS)}/members/{rng.choice(world.user_ids)}"
    return "REST remove member", api.delete(path)


def _delete_user(scim: httpx.Client, api: httpx.Client, rng: random.Random, world: World) -> Answer:
    return "DELETE user", scim.delete(f"/Users/{rng.choice(world.user_ids)}")


#: Each step with its weight: deletions are rare, as they are in a directory.
STEPS: list[tuple[Step, int]] = [
    (_group_members, 6),
    (_group_replace, 2),
    (_own_team_role, 4),
    (_user_fields, 3),
    (_rest_add, 3),
    (_rest_role, 2),
    (_rest_remove, 2),
    (_delete_user, 1),
]


def _clients(server: LiveServer) -> tuple[httpx.Client, httpx.Client]:
    headers = {"Authorization": server.basic_auth}
    scim = httpx.Client(
        base_url=server.scim_url, headers={**headers, "Content-Type": SCIM_JSON}, timeout=120
    )
    api = httpx.Client(base_url=f"{server.base_url}/api/v1", headers=headers, timeout=120)
    return scim, api


def _run_client(server: LiveServer, world: World, seed: int, start: threading.Barrier) -> None:
    rng = random.Random(seed)
    steps, weights = zip(*STEPS, strict=True)
    scim, api = _clients(server)
    with scim, api:
        start.wait(timeout=60)
        for _ in range(REQUESTS_EACH):
            step = rng.choices(steps, weights)[0]
            try:
                what, response = step(scim, api, rng, world)
            except httpx.HTTPError as exc:
                with world.lock:
                    world.broken.append(f"{step.__name__}: {type(exc).__name__}: {exc}")
                continue
            with world.lock:
                world.answers.append((what, response.status_code))
                if response.status_code >= 500:
                    world.broken.append(f"{what}: {response.status_code} {response.text[:300]}")


def test_mixed_writers_through_scim_and_rest_are_all_answered(
    live_server: LiveServer, live_database_url: str
) -> None:
    scim, api = _clients(live_server)
    with scim, api:
        user_ids = []
        for i in range(USERS):
            created = scim.post("/Users", json=new_user(f"mixed-{i}@example.com"))
            assert created.status_code == 201, created.text
            user_ids.append(created.json()["id"])
        group_ids = {}
        for team in TEAMS:
            created = scim.post(
                "/Groups", json={"schemas": [GROUP_URN], "displayName": team, "members": []}
            )
            assert created.status_code == 201, created.text
            group_ids[team] = created.json()["id"]

        world = World(user_ids, group_ids)
        start = threading.Barrier(CLIENTS)
        threads = [
            threading.Thread(target=_run_client, args=(live_server, world, seed, start))
            for seed in range(CLIENTS)
        ]
        run_together(threads, timeout=600)

        assert world.broken == []
        assert len(world.answers) == CLIENTS * REQUESTS_EACH
        # Each kind of write went through at least once: the run raced real writes.
        succeeded = {" ".join(what.split()[:2]) for what, status in world.answers if status < 300}
        assert {"PATCH group", "PATCH user", "REST add", "DELETE user"} <= succeeded

        # What the groups show is what is stored, each membership once.
        engine = make_engine(live_database_url)
        try:
            with Session(engine) as session:
                for team, group_id in group_ids.items():
                    shown = scim.get(f"/Groups/{group_id}")
                    assert shown.status_code == 200, shown.text
                    rows = session.execute(
                        select(TeamMembership.user_id, func.count())
                        .where(TeamMembership.team_id == group_id)
                        .group_by(TeamMembership.user_id)
                    ).all()
                    assert all(count == 1 for _, count in rows), team
                    stored = sorted(user_id for user_id, _ in rows if user_id is not None)
                    assert sorted(m["value"] for m in shown.json()["members"]) == stored
        finally:
            engine.dispose()
    assert "Traceback" not in live_server.log.read_text()
