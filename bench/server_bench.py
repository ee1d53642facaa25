"""Server benchmark (issue 2, section 9): prints a table; not a test.

For each backend (SQLite, then PostgreSQL), on loopback, against one ``rolecall serve``:
loads 1,000 users, 100 teams and 2,000 projects, then measures requests/s and p50/p99 of
(a) ``GET /healthz`` (the floor), (b) an API-key-authenticated, permission-checked project GET,
(c) ``POST /api/v1/authz/check``; and (d) the policy engine's in-process decision time.

(b) and (c) rotate over the API keys of ``N_CALLERS`` users and, for each, up to
``PROJECTS_PER_CALLER`` projects it may read (of its three teams, and open or public ones of
other teams); (c) also rotates over permissions, so its answers are allows and denies. Each case
runs for a short warm-up first: the access cache then holds the working set, as it would on a
server in use.

Load comes from ``wrk`` (Debian package ``wrk``) when installed, else from a Python client.

    python bench/server_bench.py [--duration 6] [--rounds 5] [--connections 16]
                                 [--backends sqlite,postgres]
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
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy.orm import Session  # noqa: E402

from rolecall.db.engine import make_engine  # noqa: E402
from rolecall.db.migrate import upgrade  # noqa: E402

N_USERS, N_TEAMS, N_PROJECTS = 1_000, 100, 2_000
N_CALLERS, PROJECTS_PER_CALLER = 8, 50
CHECK_PERMISSIONS = ("run:read", "run:create", "project:update", "run:delete", "artifact:read")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_data(url: str) -> dict[str, list[dict[str, object]]]:
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
        # The callers: users with API keys, each reading projects it may read.
        teams_of: dict[str, set[str]] = {}
        for m in memberships:
            teams_of.setdefault(m.user_id, set()).add(m.team_id)
        team_names = {team.id: team.name for team in teams}
        callers = []
        for caller in rng.sample(users, N_CALLERS):
            mine = teams_of[caller.id]
            readable = [
                f"{team_names[p.team_id]}/{p.name}"
                for p in projects
                if (p.team_id in mine and p.visibility != "restricted")
                or p.visibility in ("open", "public")
            ]
            _, key = issue_key(session, user_id=caller.id, description="bench")
            callers.append({"key": key, "projects": rng.sample(readable, PROJECTS_PER_CALLER)})
        session.commit()
        info = {"callers": callers}
    engine.dispose()
    return info


def start_server(url: str, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        ROLECALL_DATABASE_URL=url,
        ROLECALL_LOG_LEVEL="warning",
        ROLECALL_WORKERS=str(workers),
    )
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
local requests = {{}}
local next_one = 1
local cases = {cases}

function init(args)
  for i, case in ipairs(cases) do
    local headers = {{["Content-Type"] = "application/json"}}
    if case.auth then headers["Authorization"] = case.auth end
    requests[i] = wrk.format(case.method, case.path, headers, case.body)
  end
  next_one = math.random(#requests)
end

function request()
  next_one = next_one % #requests + 1
  return requests[next_one]
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


Case = tuple[str, str, "str | None", "str | None"]  # method, path, body, Authorization


def run_wrk(
    base: str, cases: list[Case], *, duration: int, connections: int
) -> tuple[float, float, float]:
    def entry(method: str, path: str, body: str | None, auth: str | None) -> str:
        fields = {
            "method": _lua_string(method),
            "path": _lua_string(path),
            "body": _lua_string(body) if body else "nil",
            "auth": _lua_string(auth) if auth else "nil",
        }
        return "{" + ", ".join(f"{name}={value}" for name, value in fields.items()) + "}"

    table = ",\n".join(entry(*case) for case in cases)
    return run_wrk_script(
        WRK_LUA.format(cases="{" + table + "}"), base, duration=duration, connections=connections
    )


def run_wrk_script(
    script: str, url: str, *, duration: int, connections: int
) -> tuple[float, float, float]:
    """Run wrk with the Lua ``script`` against ``url``: (requests/s, p50 ms, p99 ms)."""
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
    base: str, cases: list[Case], *, duration: int, connections: int
) -> tuple[float, float, float]:
    import concurrent.futures

    import httpx

    def worker(start: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=base) as client:
            end = time.monotonic() + duration
            i = start
            while time.monotonic() < end:
                method, path, body, auth = cases[i % len(cases)]
                i += 1
                headers = {"Content-Type": "application/json"}
                if auth:
                    headers["Authorization"] = auth
                started = time.perf_counter()
                response = client.request(method, path, content=body, headers=headers)
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        futures = [pool.submit(worker, n * 97) for n in range(connections)]
        results = [f.result() for f in futures]
    latencies = sorted(x for r in results for x in r)
    return (
        len(latencies) / duration,
        latencies[len(latencies) // 2],
        latencies[int(len(latencies) * 0.99)],
    )


def warm_up(base: str, cases: list[Case]) -> None:
    """Send every request of ``cases`` once (the server's access cache then holds them)."""
    import httpx

    with httpx.Client(base_url=base) as client:
        for method, path, body, auth in cases:
            headers = {"Content-Type": "application/json"}
            if auth:
                headers["Authorization"] = auth
            client.request(method, path, content=body, headers=headers).raise_for_status()


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


def bench_backend(name: str, url: str, args: argparse.Namespace) -> list[Row]:
    info = load_data(url)
    port = free_port()
    server = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    load = run_wrk if shutil.which("wrk") and not args.python_client else run_python
    reads: list[Case] = []
    checks: list[Case] = []
    for n, caller in enumerate(info["callers"]):
        auth = "Basic " + base64.b64encode(f"api:{caller['key']}".encode()).decode()
        for i, path in enumerate(caller["projects"]):  # type: ignore[arg-type]
            reads.append(("GET", f"/api/v1/projects/{path}", None, auth))
            permission = CHECK_PERMISSIONS[(n + i) % len(CHECK_PERMISSIONS)]
            body = {"principal": None, "permission": permission, "project": path}
            checks.append(("POST", "/api/v1/authz/check", json.dumps(body), auth))
    random.Random(11).shuffle(reads)
    random.Random(13).shuffle(checks)
    cases: list[tuple[str, list[Case]]] = [
        ("(a) GET /healthz", [("GET", "/healthz", None, None)]),
        ("(b) GET project (key + policy)", reads),
        ("(c) POST /authz/check", checks),
    ]
    # Rounds: (a), (b), (c) one after another, again and again, so that load from outside the
    # benchmark (other work on the machine) weighs on every case alike; each round's (b) and (c)
    # are compared with that round's floor.
    rounds: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _ in cases}
    loadavg = [os.getloadavg()[0]]
    try:
        for _label, requests in cases:
            warm_up(base, requests)
            load(base, requests, duration=2, connections=args.connections)
        for _ in range(args.rounds):
            for label, requests in cases:
                rounds[label].append(
                    load(base, requests, duration=args.duration, connections=args.connections)
                )
        loadavg.append(os.getloadavg()[0])
    finally:
        server.terminate()
        server.wait(10)
    floors = [rps for rps, _, _ in rounds[cases[0][0]]]
    rows = []
    for label, results in rounds.items():
        ratios = sorted(rps / floor for (rps, _, _), floor in zip(results, floors, strict=True))
        by_rps = sorted(results)
        rps, p50, p99 = by_rps[len(by_rps) // 2]
        rows.append(Row(f"{name}: {label}", rps, statistics.median(ratios), min(ratios), p50, p99))
    print(f"{name}: 1-minute load average {loadavg[0]:.1f} before, {loadavg[-1]:.1f} after")
    return rows


class Row(NamedTuple):
    label: str
    #: Median over the rounds.
    rps: float
    #: Median and lowest over the rounds of requests/s as a share of the same round's floor.
    ratio: float
    lowest_ratio: float
    p50: float
    p99: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--python-client", action="store_true")
    args = parser.parse_args()
    rows: list[Row] = []
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
    print(f"\n{'case':40} {'req/s':>8} {'vs floor':>9} {'lowest':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for row in rows:
        print(
            f"{row.label:40} {row.rps:8.0f} {row.ratio:9.0%} {row.lowest_ratio:7.0%} "
            f"{row.p50:7.2f} {row.p99:7.2f}"
        )
    print(
        f"{'(d) policy.decide in-process':40} {'':>8} {'':>9} {'':>7} "
        f"{median:5.2f}µs {p99:5.2f}µs  (median, p99)"
    )
    print(
        f"req/s, p50, p99: the median of {args.rounds} rounds of {args.duration} s "
        f"({args.connections} connections); vs floor: the median of each round's share of the "
        "same round's (a); lowest: the lowest round's share"
    )


if __name__ == "__main__":
    main()
