"""Concurrent writers of the same groups and users: prints a table; not a test.

Identity providers push from several workers at once, and a group's change meets its members'
own changes: a PATCH adding and removing members (as Entra ID sends them, one operation of
each), a member's ``teamRoles``, its deletion and re-creation, its organization role, and the
REST API's member writes beside them. ``--clients`` threads send such writes, chosen from a
seeded script, to a few groups of a few users for ``--seconds`` against one ``rolecall serve``
(``--workers`` processes) on PostgreSQL, where writers do not take turns for the whole
database as on SQLite, and so can deadlock when they take rows in different orders
(``src/rolecall/teams/writes.py``).

Printed: requests answered per second, latency percentiles, answers by status (none may be a
5xx) and, from ``/metrics``, how many requests were run again and why (each deadlock costs its
request PostgreSQL's ``deadlock_timeout``, 1 s by default).

    python bench/scim_contention_bench.py [--clients 12] [--seconds 60] [--workers 2]
        [--postgres-url URL] [--seed 7]
"""

from __future__ import annotations

import argparse
import base64
import collections
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from server_bench import free_port, start_server  # noqa: E402

SCIM_JSON = "application/scim+json"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUPS = 4
PEOPLE = 40


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_URN], "Operations": list(operations)}


def user_body(n: int) -> dict:
    email = f"person{n}@contention.example"
    return {
        "schemas": [USER_URN],
        "userName": email,
        "emails": [{"value": email, "type": "work", "primary": True}],
        "name": {"givenName": "Person", "familyName": str(n)},
        "active": True,
    }


class World:
    """The groups, and the people's current ids (a deleted person is created again)."""

    def __init__(self, client: httpx.Client) -> None:
        self.lock = threading.Lock()
        self.groups = {}
        for i in range(GROUPS):
            body = {"schemas": [GROUP_URN], "displayName": f"group{i}", "members": []}
            self.groups[f"group{i}"] = client.post("/scim/v2/Groups", json=body).json()["id"]
        self.people = {}
        for n in range(PEOPLE):
            self.people[n] = client.post("/scim/v2/Users", json=user_body(n)).json()["id"]

    def someone(self, rng: random.Random) -> tuple[int, str]:
        with self.lock:
            n = rng.randrange(PEOPLE)
            return n, self.people[n]


def one_write(client: httpx.Client, world: World, rng: random.Random) -> tuple[str, int]:
    """One write, chosen by ``rng``: its kind and the status it got."""
    n, user_id = world.someone(rng)
    team = rng.choice(list(world.groups))
    group_id = world.groups[team]
    kind = rng.choice(["group", "group", "team_roles", "delete", "role", "rest_add", "rest_remove"])
    if kind == "group":
        others = [world.someone(rng)[1] for _ in range(3)]
        body = patch(
            {"op": "add", "path": "members", "value": [{"value": u} for u in others[:2]]},
            {"op": "remove", "path": "members", "value": [{"value": others[2]}]},
        )
        status = client.patch(f"/scim/v2/Groups/{group_id}", json=body).status_code
    elif kind == "team_roles":
        role = rng.choice(["member", "admin", None])
        entry = {"teamName": team} | ({"roleName": role} if role else {})
        op = {"op": "add" if role else "remove", "path": "teamRoles", "value": [entry]}
        status = client.patch(f"/scim/v2/Users/{user_id}", json=patch(op)).status_code
    elif kind == "delete":
        status = client.delete(f"/scim/v2/Users/{user_id}").status_code
        created = client.post("/scim/v2/Users", json=user_body(n))
        if created.status_code == 201:
            with world.lock:
                world.people[n] = created.json()["id"]
    elif kind == "role":
        role = rng.choice(["admin", "member"])
        op = {"op": "replace", "path": "organizationRole", "value": role}
        status = client.patch(f"/scim/v2/Users/{user_id}", json=patch(op)).status_code
    elif kind == "rest_add":
        status = client.post(f"/api/v1/teams/{team}/members", json={"user": user_id}).status_code
    else:
        status = client.delete(f"/api/v1/teams/{team}/members/{user_id}").status_code
    return kind, status


def run_again(base: str, headers: dict[str, str]) -> dict[str, float]:
    """``rolecall_transactions_run_again_total`` by cause (empty on a server without it)."""
    text = httpx.get(f"{base}/metrics", headers=headers, timeout=30).text
    prefix = 'rolecall_transactions_run_again_total{cause="'
    counts = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            cause, value = line[len(prefix) :].split('"} ')
            counts[cause] = float(value)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", help="an empty database (default: a fresh server)")
    args = parser.parse_args()

    from sqlalchemy.orm import Session

    from rolecall.db.engine import make_engine
    from rolecall.db.migrate import upgrade
    from rolecall.orgs.bootstrap import initialize

    pg = None
    url = args.postgres_url
    if url is None:
        from tests.pgserver import PostgresServer

        pg = PostgresServer().start()
        url = pg.create_database("contention")
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        key = initialize(session, org_name="bench", admin_email="admin@bench.example").api_key
        session.commit()
    engine.dispose()
    port = free_port()
    server = start_server(url, port, args.workers)
    base = f"http://127.0.0.1:{port}"
    token = base64.b64encode(f"admin:{key}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": SCIM_JSON}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            world = World(client)
        before = run_again(base, headers)
        statuses: collections.Counter[tuple[str, int]] = collections.Counter()
        latencies: list[float] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def client_loop(index: int) -> None:
            rng = random.Random(args.seed * 1000 + index)
            with httpx.Client(base_url=base, headers=headers, timeout=120) as own:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    try:
                        kind, status = one_write(own, world, rng)
                    except httpx.HTTPError as exc:
                        kind, status = f"dropped: {type(exc).__name__}", 0
                    took = time.perf_counter() - started
                    with lock:
                        statuses[(kind, status)] += 1
                        latencies.append(took)

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        after = run_again(base, headers)
    finally:
        server.terminate()
        server.wait(10)
        if pg is not None:
            pg.stop()

    latencies.sort()
    total = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(total - 1, int(q * total))] * 1000

    failed = sum(c for (_, status), c in statuses.items() if status >= 500 or status == 0)
    print(f"{args.clients} clients, {args.workers} workers, PostgreSQL, {elapsed:.0f} s")
    print(f"writes answered: {total} ({total / elapsed:.1f}/s); 5xx or dropped: {failed}")
    print(
        f"latency ms: p50 {pct(0.5):.1f}  p90 {pct(0.9):.1f}  p99 {pct(0.99):.1f}  max {pct(1):.1f}"
    )
    causes = sorted(set(before) | set(after))
    shown = ", ".join(f"{c} {after.get(c, 0) - before.get(c, 0):.0f}" for c in causes)
    print(f"run again: {shown or 'none counted (or a server without the metric)'}")
    for (kind, status), count in sorted(statuses.items()):
        print(f"  {kind:12s} {status}  {count}")


if __name__ == "__main__":
    main()
