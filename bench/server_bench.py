"""Server benchmark (issue 2, section 9): prints a table; not a test.

For each backend (SQLite, then PostgreSQL), on loopback, against one ``rolecall serve``:
loads 1,000 users, 100 teams and 2,000 projects, then measures requests/s and p50/p99 of
(a) ``GET /healthz`` (the floor), (b) an API-key-authenticated, permission-checked project GET,
(c) ``POST /api/v1/authz/check``; and (d) the policy engine's in-process decision time.

Load comes from ``wrk`` (Debian package ``wrk``) when installed, else from a Python client.

    python bench/server_bench.py [--duration 10] [--connections 16] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy.orm import Session  # noqa: E402

from rolecall.db.engine import make_engine  # noqa: E402
from rolecall.db.migrate import upgrade  # noqa: E402

N_USERS, N_TEAMS, N_PROJECTS = 1_000, 100, 2_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_data(url: str) -> dict[str, str]:
    """Bulk-load the organization; return what the requests need."""
    from rolecall.api_keys.issue import issue_key
    from rolecall.orgs.bootstrap import initialize
    from rolecall.orgs.models import OrgMembership
    from rolecall.projects.models import Project
    from rolecall.teams.models import Team, TeamMembership
    from rolecall.users.models import User

    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(7)
    with Session(engine) as session:
        boot = initialize(session, org_name="bench", admin_email="admin@bench.example")
        org = boot.org
        users = []
        for i in range(N_USERS):
            user = User(
                email=f"u{i}@bench.example",
                email_key=f"u{i}@bench.example",
                username=f"u{i}",
                username_key=f"u{i}",
            )
            users.append(user)
        session.add_all(users)
        session.flush()
        rows: list[object] = []
        for user in users:
            rows.append(
                Team(
                    org_id=org.id,
                    name=user.username,
                    name_key=user.username,
                    kind="personal",
                    personal_owner_id=user.id,
                )
            )
            rows.append(OrgMembership(org_id=org.id, user_id=user.id, role="member"))
        teams = [Team(org_id=org.id, name=f"t{i}", name_key=f"t{i}") for i in range(N_TEAMS)]
        session.add_all(rows + teams)
        session.flush()
        memberships = []
        for user in users:
            for team in rng.sample(teams, 3):
                memberships.append(
                    TeamMembership(
                        team_id=team.id,
                        user_id=user.id,
                        role=rng.choice(["member", "admin", "viewer"]),
                    )
                )
        session.add_all(memberships)
        visibilities = ["team", "team", "team", "restricted", "open", "public"]
        projects = [
            Project(
                team_id=teams[i % N_TEAMS].id,
                name=f"p{i}",
                name_key=f"p{i}",
                visibility=rng.choice(visibilities),
            )
            for i in range(N_PROJECTS)
        ]
        session.add_all(projects)
        session.flush()
        # The benchmark caller: a member of team t0, reading a team-visible project of t0.
        caller = users[0]
        target = next(p for p in projects if p.team_id == teams[0].id)
        target.visibility = "team"
        if not any(m.user_id == caller.id and m.team_id == teams[0].id for m in memberships):
            session.add(TeamMembership(team_id=teams[0].id, user_id=caller.id, role="member"))
        _, key = issue_key(session, user_id=caller.id, description="bench")
        session.commit()
        info = {"key": key, "project": f"t0/{target.name}", "username": caller.username}
    engine.dispose()
    return info


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ROLECALL_DATABASE_URL=url, ROLECALL_LOG_LEVEL="warning")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "rolecall"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


WRK_LUA = """
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


def run_wrk(
    url: str, *, method: str, body: str | None, auth: str | None, duration: int, connections: int
) -> tuple[float, float, float]:
    script = WRK_LUA.format(
        method=method,
        body=json.dumps(body) if body else "nil",
        auth=f'wrk.headers["Authorization"] = "{auth}"' if auth else "",
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", handle.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(handle.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return rps, pct("50"), pct("99")


def run_python(
    url: str, *, method: str, body: str | None, auth: str | None, duration: int, connections: int
) -> tuple[float, float, float]:
    import concurrent.futures

    import httpx

    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth

    def worker() -> list[float]:
        latencies = []
        with httpx.Client(headers=headers) as client:
            end = time.monotonic() + duration
            while time.monotonic() < end:
                started = time.perf_counter()
                response = client.request(method, url, content=body)
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        results = [f.result() for f in [pool.submit(worker) for _ in range(connections)]]
    latencies = sorted(x for r in results for x in r)
    return (
        len(latencies) / duration,
        latencies[len(latencies) // 2],
        latencies[int(len(latencies) * 0.99)],
    )


def decide_timing(calls: int = 200_000) -> tuple[float, float]:
    """Median and p99 of one in-process ``policy.decide`` (facts already loaded), in µs."""
    from rolecall.authz.facts import (
        CredentialKind,
        DecisionFacts,
        MembershipFacts,
        OrgFacts,
        PrincipalFacts,
        PrincipalKind,
        ProjectFacts,
        RoleFacts,
        TeamFacts,
    )
    from rolecall.authz.permissions import Permission
    from rolecall.authz.policy import decide
    from rolecall.authz.roles import MEMBER, OrgRole, TeamRole, Visibility

    team = TeamFacts(id="t", org_id="o", name="t0")
    facts = DecisionFacts(
        principal=PrincipalFacts(
            kind=PrincipalKind.USER,
            id="u",
            name="u0",
            credential=CredentialKind.API_KEY,
            org_role=OrgRole.MEMBER,
        ),
        org=OrgFacts(id="o", name="bench"),
        team=team,
        project=ProjectFacts(id="p", name="p0", visibility=Visibility.TEAM, team=team),
        membership=MembershipFacts(team_role=RoleFacts("member", MEMBER, TeamRole.MEMBER)),
    )
    batch = 1000
    samples = []
    for _ in range(calls // batch):
        started = time.perf_counter_ns()
        for _ in range(batch):
            decide(facts, Permission.PROJECT_READ)
        samples.append((time.perf_counter_ns() - started) / batch / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def bench_backend(
    name: str, url: str, args: argparse.Namespace
) -> list[tuple[str, float, float, float]]:
    info = load_data(url)
    port = free_port()
    server = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    auth = "Basic " + base64.b64encode(f"api:{info['key']}".encode()).decode()
    load = run_wrk if shutil.which("wrk") and not args.python_client else run_python
    check_body = json.dumps(
        {"principal": None, "permission": "run:read", "project": info["project"]}
    )
    cases = [
        ("(a) GET /healthz", f"{base}/healthz", "GET", None, None),
        (
            "(b) GET project (key + policy)",
            f"{base}/api/v1/projects/{info['project']}",
            "GET",
            None,
            auth,
        ),
        ("(c) POST /authz/check", f"{base}/api/v1/authz/check", "POST", check_body, auth),
    ]
    rows = []
    try:
        for label, target, method, body, header in cases:
            load(
                target,
                method=method,
                body=body,
                auth=header,
                duration=2,
                connections=args.connections,
            )  # warm-up
            rps, p50, p99 = load(
                target,
                method=method,
                body=body,
                auth=header,
                duration=args.duration,
                connections=args.connections,
            )
            rows.append((f"{name}: {label}", rps, p50, p99))
    finally:
        server.terminate()
        server.wait(10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--python-client", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, float]] = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            workdir = Path(tempfile.mkdtemp(prefix="rolecall-bench-"))
            rows += bench_backend("sqlite", f"sqlite:///{workdir / 'bench.db'}", args)
            shutil.rmtree(workdir, ignore_errors=True)
        elif backend == "postgres":
            from tests.pgserver import PostgresServer

            server = PostgresServer().start()
            try:
                rows += bench_backend("postgres", server.create_database("bench"), args)
            finally:
                server.stop()
    median, p99 = decide_timing()
    print(f"\n{'case':48} {'req/s':>9} {'vs floor':>9} {'p50 ms':>8} {'p99 ms':>8}")
    floor = 0.0
    for label, rps, p50, p99_ in rows:
        if "(a)" in label:
            floor = rps
        ratio = f"{rps / floor:.0%}" if floor else "-"
        print(f"{label:48} {rps:9.0f} {ratio:>9} {p50:8.2f} {p99_:8.2f}")
    print(
        f"{'(d) policy.decide in-process':48} {'':>9} {'':>9} "
        f"{median:6.2f}µs {p99:6.2f}µs  (median, p99)"
    )


if __name__ == "__main__":
    main()
