"""SCIM writes to large groups: prints a table; not a test.

A company's "everyone" group holds tens of thousands of members, and identity providers send
each change of it as a PATCH. This times, against one ``rolecall serve`` on SQLite, a group of
each size (``--sizes``, members inserted in bulk as ``scim_bench.py`` does):

- ``PATCH`` adding then removing one member (alternately), answered 204 as Entra ID and Okta
  send it (no ``attributes``): a write's cost should not grow with the group;
- the same ``PATCH`` with ``excludedAttributes=members`` (answered 200, the group without
  members);
- ``GET /Groups/{id}?excludedAttributes=members`` (Entra ID's read) and a ``GET`` with all the
  members, which is the one request here that has to grow with the group;
- ``--batch`` (500) members leaving in one ``PATCH`` of a removal operation each, as Okta sends
  them, and coming back in one ``PATCH`` of one operation: a cost per member, not per request.

One client (``lean_client.py``), one request at a time, so each latency is the server's work.

    python bench/scim_group_bench.py [--sizes 1000,20000] [--requests 200] [--batch 500]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import lean_client  # noqa: E402
from lean_client import Request  # noqa: E402
from scim_bench import Phase, rolecall_bulk_load, run_phase  # noqa: E402
from server_bench import free_port, start_server  # noqa: E402

PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


def expect(*statuses: int) -> lean_client.Check:
    def check(status: int, answer: bytes) -> str | None:
        return None if status in statuses else f"{status}: {answer[:200]!r}"

    return check


def timed(base: str, requests: list[Request]) -> tuple[float, float]:
    """p50 and p99 in ms of ``requests`` sent one at a time."""
    phase = run_phase("group", base, requests, 1)
    if phase.failures:
        raise SystemExit(f"failed: {phase.failures[:3]}")
    return phase.pct(0.5), phase.pct(0.99)


def bench_size(size: int, count: int, batch: int, workdir: Path) -> dict[str, tuple[float, float]]:
    from sqlalchemy.orm import Session

    from rolecall.db.engine import make_engine
    from rolecall.db.migrate import upgrade
    from rolecall.orgs.bootstrap import initialize
    from rolecall.teams.models import Team

    url = f"sqlite:///{workdir / f'groups-{size}.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        boot = initialize(session, org_name="bench", admin_email="admin@bench.example")
        team = Team(org_id=boot.org.id, name="everyone", name_key="everyone")
        session.add(team)
        session.flush()
        org_id, team_id, key = boot.org.id, team.id, boot.api_key
        session.commit()
    engine.dispose()
    rolecall_bulk_load(url, org_id, [team_id], 0, size)
    port = free_port()
    server = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{key}".encode()).decode()}
    try:
        newcomer = _create_user(base, auth)
        group = f"/scim/v2/Groups/{team_id}"

        def patch(operations: list[dict[str, object]], query: str, status: int) -> Request:
            body = {"schemas": [PATCH_URN], "Operations": operations}
            wire = lean_client.encode(
                "PATCH", base, group + query, auth, json.dumps(body).encode(),
                "application/scim+json",
            )  # fmt: skip
            return Request(wire, expect(status))

        def patches(query: str, status: int) -> list[Request]:
            value = [{"value": newcomer}]
            ops = [{"op": op, "path": "members", "value": value} for op in ("add", "remove")]
            return [patch([ops[i % 2]], query, status) for i in range(count)]

        # Okta's way: a removal operation per member; then all of them back in one operation.
        moving = _first_members(url, team_id, batch)
        out = patch([{"op": "remove", "path": f'members[value eq "{m}"]'} for m in moving], "", 204)
        back = patch(
            [{"op": "add", "path": "members", "value": [{"value": m} for m in moving]}], "", 204
        )
        moves = run_phase("moves", base, [out, back] * max(5, count // 20), 1)
        if moves.failures:
            raise SystemExit(f"failed: {moves.failures[:3]}")

        def get(query: str, n: int) -> list[Request]:
            wire = lean_client.encode("GET", base, group + query, auth)
            return [Request(wire, expect(200))] * n

        return {
            "PATCH (204)": timed(base, patches("", 204)),
            "PATCH, excludedAttributes=members": timed(
                base, patches("?excludedAttributes=members", 200)
            ),
            "GET, excludedAttributes=members": timed(
                base, get("?excludedAttributes=members", count)
            ),
            "GET with every member": timed(base, get("", max(10, count // 10))),
            f"PATCH, {batch} removal operations": pcts(moves.latencies_ms[0::2]),
            f"PATCH adding {batch} in one operation": pcts(moves.latencies_ms[1::2]),
        }
    finally:
        server.terminate()
        server.wait(10)


def pcts(latencies_ms: list[float]) -> tuple[float, float]:
    phase = Phase("", len(latencies_ms), 0.0, latencies_ms)
    return phase.pct(0.5), phase.pct(0.99)


def _first_members(url: str, team_id: str, count: int) -> list[str]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from rolecall.db.engine import make_engine
    from rolecall.teams.models import TeamMembership

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            query = select(TeamMembership.user_id).where(TeamMembership.team_id == team_id)
            return [str(user_id) for user_id in session.scalars(query.limit(count))]
    finally:
        engine.dispose()


def _create_user(base: str, auth: dict[str, str]) -> str:
    import httpx

    body = {"schemas": [USER_URN], "userName": "newcomer", "emails": [{"value": "n@bench.example"}]}
    made = httpx.post(f"{base}/scim/v2/Users", json=body, headers=auth, timeout=30)
    made.raise_for_status()
    return str(made.json()["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,20000", help="members per group, comma-separated")
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--batch", type=int, default=500, help="members moved by one PATCH")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        results = {
            size: bench_size(size, args.requests, args.batch, Path(workdir)) for size in sizes
        }
    names = list(results[sizes[0]])
    head = f"{'request (p50 / p99 ms)':36}" + "".join(f"{f'{s:,} members':>22}" for s in sizes)
    print(head)
    print("-" * len(head))
    for name in names:
        cells = "".join(
            f"{f'{results[s][name][0]:.1f} / {results[s][name][1]:.1f}':>22}" for s in sizes
        )
        print(f"{name:36}{cells}")


if __name__ == "__main__":
    main()
