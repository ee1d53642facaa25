"""SCIM benchmark (issue 3): prints a table; not a test.

For each target, on loopback, with one client (the lean asyncio client of ``lean_client.py``,
the same for every target):

1. provision users through ``POST /scim/Users`` (10,000 by default): the first 1,000, then
2. ``GET /scim/Users?filter=userName eq "..."`` lookups of random existing names at 1,000 users,
3. the other 9,000 creates (create throughput is over all 10,000),
4. 90,000 more users inserted directly in bulk (not through SCIM; for rolecall each also joins
   one of 100 teams, as in a company, so that a scan of team memberships would show), then
5. the same lookups at 100,000 users, and
6. the same lookups again, paired: rolecall's lookups at 100,000 users alternate, in rounds of
   ``--pair-size`` (25), with lookups to its twin, a second rolecall server on a database of
   its own that holds only the first 1,000 users (created through SCIM before the timed
   phases). Steps 2 and 5 run minutes apart, so a change in the machine's load between them
   moves their p99 ratio; the paired lookups share every moment's load, and their ratio is the
   one the goal reads (both are printed).

The client (``lean_client.py``): ``--concurrency`` connections (8) for creates, each a
keep-alive HTTP/1.1 connection sending one request at a time, from one asyncio loop with the
requests encoded before the clock starts; every target gets the same client, requests and
bodies. It spends well under a millisecond of CPU per request, so that on a machine of few cores
the server, not the client, sets the pace. Lookups are timed with ``--lookup-clients`` (1): a
lookup's latency then is the server's work, not the time it queued behind other clients'
requests on a busy machine, which is what the p99 goal compares.
The machine may be shared: every phase runs in rounds (``--round-size`` requests), and each
round visits every target in turn (the order alternating from round to round), so that the
load other work puts on the machine falls on all of them alike. The table gives each figure
over the whole phase and, for creates, the median of the rounds' rates and of their ratios to
the reference in the same round.

Targets: ``rolecall serve`` on SQLite or PostgreSQL (``--backend``; a throwaway cluster of
Debian's package, started and removed by the script, or ``--postgres-url`` of an empty database
to use), and the reference ``scim2-server`` twice:

- its ``scim2-server`` command, as its users run it (wsgiref's threaded server), untouched;
  its bulk users are sent to it as SCIM creates (untimed);
- its in-memory storage and ASGI application, served by the same uvicorn as rolecall: the
  reference's own work without its server's; its bulk users are created in its process,
  straight through its storage.

rolecall's bulk users are rows inserted in batches through the same models (what a SCIM create
leaves), not HTTP calls.

The floor: a server that answers every request at once with nothing (the same uvicorn), sent
the same creates by the same client in the same rounds. It is the most this client can send on
this machine, whatever the server; every target's creates are also given as a share of it.

CPU per create: the CPU time (user and system, from Linux's ``/proc``) of each target's
processes and their descendants over its create rounds, divided by its creates: rolecall's
workers and, on a PostgreSQL cluster this script started, the database's processes too. It
tells how much work a create is, apart from how a server waits: the reference command serves
one connection per request with threads, and leaves part of a core idle between them. Each
comparison with a reference is also given per CPU second.

    python bench/scim_bench.py [--backend sqlite|postgres] [--postgres-url URL]
                               [--users 10000] [--bulk 90000] [--lookups 2000]
                               [--concurrency 8] [--round-size 500] [--workers 1]
                               [--pair-size 25] [--no-twin]
                               [--no-reference] [--no-floor]

Goals: rolecall's create throughput at least 2x the reference's (both are reported);
rolecall's lookup p99 at 100,000 users within 1.5x of its p99 at 1,000 (paired, step 6).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import lean_client  # noqa: E402
from lean_client import Request  # noqa: E402
from server_bench import free_port, start_server  # noqa: E402

#: Every phase of requests stops by itself after this long, finished or not.
PHASE_TIMEOUT = 900.0
FIRST = 1_000


def user_name(i: int) -> str:
    return f"bench-u{i:06d}"


def user_body(i: int) -> dict[str, object]:
    """What an identity provider sends to create a user (Okta's shape)."""
    name = user_name(i)
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "externalId": f"ext-{i:06d}",
        "name": {"givenName": "Bench", "familyName": f"User{i}"},
        "displayName": f"Bench User{i}",
        "emails": [{"value": f"{name}@bench.example", "type": "work", "primary": True}],
        "active": True,
    }


# --- the client -----------------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    count: int
    seconds: float
    latencies_ms: list[float]
    failures: list[str] = field(default_factory=list)
    #: CPU time (user + system) the target's processes spent while the phase ran.
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def run_phase(label: str, base_url: str, jobs: list[Request], concurrency: int) -> Phase:
    """Send ``jobs`` over ``concurrency`` keep-alive connections (the lean client). Stops by
    itself after PHASE_TIMEOUT."""
    outcome = lean_client.run(base_url, jobs, concurrency, timeout=30, deadline_s=PHASE_TIMEOUT)
    failures = list(outcome.failures)
    if len(outcome.latencies_ms) < len(jobs):
        failures.append(f"timed out after {len(outcome.latencies_ms)} of {len(jobs)} requests")
    return Phase(label, len(outcome.latencies_ms), outcome.seconds, outcome.latencies_ms, failures)


def create_job(t: Target, i: int) -> Request:
    body = json.dumps(user_body(i)).encode()
    wire = lean_client.encode(
        "POST", t.base_url, f"{t.prefix}/Users", t.headers, body, "application/scim+json"
    )

    def check(status: int, answer: bytes) -> str | None:
        if status != 201:
            return f"create {i}: {status} {answer[:200]!r}"
        return None

    return Request(wire, check)


def lookup_job(t: Target, i: int) -> Request:
    name = user_name(i)
    query = urlencode({"filter": f'userName eq "{name}"'}, quote_via=quote)
    wire = lean_client.encode("GET", t.base_url, f"{t.prefix}/Users?{query}", t.headers)

    def check(status: int, answer: bytes) -> str | None:
        if status != 200:
            return f"lookup {name}: {status} {answer[:200]!r}"
        found = json.loads(answer)
        names = [r.get("userName") for r in found.get("Resources", [])]
        if found.get("totalResults") != 1 or names != [name]:
            return f"lookup {name}: found {names} (totalResults {found.get('totalResults')})"
        return None

    return Request(wire, check)


# --- the targets ----------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    base_url: str
    prefix: str
    headers: dict[str, str]
    bulk_load: Callable[[int, int], None]
    note: str = ""
    #: Run before each lookup phase (PostgreSQL: ANALYZE, as autovacuum would in time).
    settle: Callable[[], None] = lambda: None
    #: The floor: a server that does nothing, to show what the client and machine allow.
    floor: bool = False
    #: A reference rolecall's creates are compared with.
    reference: bool = False
    #: rolecall's twin: the same server on a database that keeps the first 1,000 users only.
    twin: Target | None = None
    #: The processes whose CPU time is the target's (with their descendants: workers, and
    #: for PostgreSQL started by this script, the database's own processes).
    cpu_pids: list[int] = field(default_factory=list)


@contextmanager
def rolecall_target(name: str, url: str, n_teams: int, workers: int = 1) -> Iterator[Target]:
    from sqlalchemy.orm import Session

    from rolecall.db.engine import make_engine
    from rolecall.db.migrate import upgrade
    from rolecall.orgs.bootstrap import initialize
    from rolecall.teams.models import Team

    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        boot = initialize(session, org_name="bench", admin_email="admin@bench.example")
        org_id = boot.org.id
        key = boot.api_key
        teams = [Team(org_id=org_id, name=f"t{i}", name_key=f"t{i}") for i in range(n_teams)]
        session.add_all(teams)
        session.flush()
        team_ids = [t.id for t in teams]
        session.commit()
    engine.dispose()
    port = free_port()
    server = start_server(url, port, workers)
    token = base64.b64encode(f"admin:{key}".encode()).decode()
    try:
        yield Target(
            name=name,
            base_url=f"http://127.0.0.1:{port}",
            prefix="/scim",
            headers={"Authorization": f"Basic {token}"},
            bulk_load=lambda start, count: rolecall_bulk_load(url, org_id, team_ids, start, count),
            settle=(lambda: vacuum_analyze(url)) if url.startswith("postgresql") else lambda: None,
            cpu_pids=[server.pid],
            note=(
                "VACUUM ANALYZE before each lookup phase (statistics for the fresh tables, and"
                " nothing left for autovacuum to do while lookups are timed)"
                if url.startswith("postgresql")
                else ""
            ),
        )
    finally:
        server.terminate()
        server.wait(10)


def twin_database(url: str) -> str:
    """A new, empty database beside ``url``'s, on the same PostgreSQL server, for the twin
    (``<name>_twin``, dropped first if it is left from an earlier run)."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"{parsed.database}_twin"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def vacuum_analyze(url: str) -> None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def rolecall_bulk_load(url: str, org_id: str, team_ids: list[str], start: int, count: int) -> None:
    """Insert users as rows, in batches, the way a SCIM create leaves them: the user (its
    userName is a valid username, so it is the username), its personal entity, its org
    membership with the externalId; and, as in a company, a membership of one of the teams
    (none with ``--teams 0``)."""
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from rolecall.db.engine import make_engine
    from rolecall.orgs.models import OrgMembership
    from rolecall.teams.models import Team, TeamMembership
    from rolecall.users.models import User

    engine = make_engine(url)
    batch = 5_000
    with Session(engine) as session:
        for first in range(start, start + count, batch):
            users, teams, memberships, joined = [], [], [], []
            for i in range(first, min(first + batch, start + count)):
                body = user_body(i)
                user_id = str(uuid.uuid4())
                name = str(body["userName"])
                email = f"{name}@bench.example"
                users.append(
                    {
                        "id": user_id,
                        "email": email,
                        "email_key": email,
                        "username": name,
                        "username_key": name.lower(),
                        "full_name": body["displayName"],
                        "given_name": "Bench",
                        "family_name": f"User{i}",
                    }
                )
                teams.append(
                    {
                        "id": str(uuid.uuid4()),
                        "org_id": org_id,
                        "name": name,
                        "name_key": name.lower(),
                        "kind": "personal",
                        "personal_owner_id": user_id,
                    }
                )
                memberships.append(
                    {
                        "id": str(uuid.uuid4()),
                        "org_id": org_id,
                        "user_id": user_id,
                        "external_id": body["externalId"],
                    }
                )
                if team_ids:
                    joined.append(
                        {
                            "id": str(uuid.uuid4()),
                            "team_id": team_ids[i % len(team_ids)],
                            "user_id": user_id,
                        }
                    )
            session.execute(insert(User), users)
            session.execute(insert(Team), teams)
            session.execute(insert(OrgMembership).values(role="member"), memberships)
            if joined:
                session.execute(insert(TeamMembership).values(role="member"), joined)
        session.commit()
    engine.dispose()


def serve_this_script(flag: str, ready_path: str, what: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start this script as a server (``flag PORT``) and wait until ``ready_path`` answers 200;
    the process and its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, flag, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{base_url}{ready_path}", what)
    return proc, base_url


def wait_until_up(proc: subprocess.Popen[bytes], url: str, what: str) -> None:
    """Wait until ``url`` answers below 300; kill ``proc`` if it never does."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 300:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


@contextmanager
def reference_target() -> Iterator[Target]:
    proc, base_url = serve_this_script(
        "--serve-reference", "/v2/ServiceProviderConfig", "scim2-server"
    )

    def bulk_load(start: int, count: int) -> None:
        response = httpx.post(
            f"{base_url}/_bench/preload", json={"start": start, "count": count}, timeout=900
        )
        response.raise_for_status()

    try:
        yield Target(
            name="scim2-server app, uvicorn",
            base_url=base_url,
            prefix="/v2",
            headers={},
            bulk_load=bulk_load,
            note="the reference's ASGI application under rolecall's uvicorn; bulk users created"
            " in its process through its storage",
            reference=True,
            cpu_pids=[proc.pid],
        )
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def shipped_reference_target(concurrency: int) -> Iterator[Target]:
    """The reference as its users run it: the ``scim2-server`` command (wsgiref's threaded
    server, one connection per request, a log line per request), untouched. Its bulk users are
    sent to it as SCIM creates, since its storage lives in its memory."""
    command = Path(sys.executable).parent / "scim2-server"
    port = free_port()
    proc = subprocess.Popen(
        [str(command), "--hostname", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{base_url}/v2/ServiceProviderConfig", "the scim2-server command")
    target = Target(
        name="scim2-server command",
        base_url=base_url,
        prefix="/v2",
        headers={},
        bulk_load=lambda start, count: None,
        note="the reference's own `scim2-server` command; bulk users sent to it as SCIM creates"
        " (untimed)",
        reference=True,
        cpu_pids=[proc.pid],
    )

    def bulk_load(start: int, count: int) -> None:
        for first in range(start, start + count, 5_000):
            last = min(start + count, first + 5_000)
            jobs = [create_job(target, i) for i in range(first, last)]
            failures = run_phase("bulk", base_url, jobs, concurrency).failures
            if failures:
                raise RuntimeError(f"bulk creates failed: {failures[0]}")

    target.bulk_load = bulk_load
    try:
        yield target
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def floor_target() -> Iterator[Target]:
    """A server that answers every request at once, under the same uvicorn: the most creates
    per second this client can send on this machine, whatever the server."""
    proc, base_url = serve_this_script("--serve-floor", "/", "the floor server")
    try:
        yield Target(
            "floor (no-op server)",
            base_url,
            "/floor",
            {},
            lambda a, b: None,
            floor=True,
            cpu_pids=[proc.pid],
        )
    finally:
        proc.terminate()
        proc.wait(10)


def serve_floor(port: int) -> None:
    import uvicorn

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve_reference(port: int) -> None:
    """The reference server: scim2-server's ASGI application over its in-memory storage, under
    uvicorn, plus ``POST /_bench/preload`` that creates users straight through the storage."""
    import uvicorn
    from scim2_server.applications.asgi import ASGIApplication
    from scim2_server.memory import AsyncInMemoryStorage, InMemoryStorage
    from scim2_server.utils import load_default_provider

    provider = load_default_provider()
    storage = InMemoryStorage()
    scim = ASGIApplication(AsyncInMemoryStorage(storage), provider)
    user_type = next(rt for rt in provider.resource_types if rt.name == "User")
    user_model = provider.model_for_endpoint("/Users")

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] == "/_bench/preload":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            job = json.loads(body)
            for i in range(job["start"], job["start"] + job["count"]):
                storage.create(user_type, user_model.model_validate(user_body(i)))
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await scim(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- the run --------------------------------------------------------------------------------


@dataclass
class Result:
    target: Target
    creates: list[Phase]
    lookups_small: Phase
    lookups_large: Phase
    bulk_seconds: float
    #: Step 6: lookups to the twin at 1,000 users and to the target at 100,000, alternating.
    paired: tuple[Phase, Phase] | None = None

    @property
    def create_rate(self) -> float:
        count = sum(p.count for p in self.creates)
        return count / sum(p.seconds for p in self.creates)

    @property
    def median_create_rate(self) -> float:
        return statistics.median(p.rate for p in self.creates)

    @property
    def create_cpu_ms(self) -> float:
        """The target's CPU time per create (its processes', over every create round)."""
        count = sum(p.count for p in self.creates)
        return 1000 * sum(p.cpu_seconds for p in self.creates) / count if count else 0.0

    def failures(self) -> list[str]:
        phases = [*self.creates, self.lookups_small, self.lookups_large, *(self.paired or ())]
        return [f for p in phases for f in p.failures]


def bench(targets: list[Target], args: argparse.Namespace) -> list[Result]:
    """Run each phase in rounds; each round visits every target in turn, in an order that
    alternates from round to round, so that the load other work puts on the machine falls on
    all of them alike."""

    def phase(
        label: str,
        jobs_for: Callable[[Target, int, int], list[Request]],
        count: int,
        concurrency: int,
    ) -> dict[str, list[Phase]]:
        # The floor answers creates only (it stores nothing to look up).
        active = [t for t in targets if not (t.floor and label.startswith("lookups"))]
        merged: dict[str, list[Phase]] = {t.name: [] for t in targets}
        size = max(1, args.round_size)
        for n, first in enumerate(range(0, count, size)):
            last = min(count, first + size)
            order = active if n % 2 == 0 else list(reversed(active))
            for t in order:
                jobs = jobs_for(t, first, last)
                before = cpu_seconds(t.cpu_pids)
                done = run_phase(label, t.base_url, jobs, concurrency)
                done.cpu_seconds = cpu_seconds(t.cpu_pids) - before
                merged[t.name].append(done)
        for t in active if count else []:
            whole = combine(label, merged[t.name])
            print(
                f"  {t.name}: {label}: {whole.count} in {whole.seconds:.1f}s "
                f"({whole.rate:.0f}/s, p50 {whole.pct(0.5):.1f} ms, p99 {whole.pct(0.99):.1f} ms"
                f", {len(merged[t.name])} rounds)"
                + (f", {len(whole.failures)} failures" if whole.failures else "")
                + f"; {machine_load()}",
                flush=True,
            )
        return merged

    first = min(FIRST, args.users)
    total = args.users + args.bulk
    rng = random.Random(args.seed)
    small_names = [rng.randrange(first) for _ in range(args.lookups)]
    large_names = [rng.randrange(total) for _ in range(args.lookups)]
    bulk: dict[str, float] = {}

    def creates(offset: int) -> Callable[[Target, int, int], list[Request]]:
        return lambda t, a, b: [create_job(t, offset + i) for i in range(a, b)]

    def lookups(names: list[int]) -> Callable[[Target, int, int], list[Request]]:
        return lambda t, a, b: [lookup_job(t, i) for i in names[a:b]]

    for t in targets:
        if t.twin is not None:
            provision_twin(t.twin, first, args.concurrency)
    creates_first = phase(f"create 1..{first}", creates(0), first, args.concurrency)
    for t in targets:
        t.settle()
    small = phase("lookups at 1,000", lookups(small_names), len(small_names), args.lookup_clients)
    creates_rest = phase(
        f"create {first + 1}..{args.users}", creates(first), args.users - first, args.concurrency
    )
    for t in targets:
        started = time.perf_counter()
        t.bulk_load(args.users, args.bulk)
        bulk[t.name] = time.perf_counter() - started
        print(f"  {t.name}: bulk-loaded {args.bulk} users in {bulk[t.name]:.1f}s", flush=True)
    for t in targets:
        t.settle()
    large = phase(
        f"lookups at {total:,}", lookups(large_names), len(large_names), args.lookup_clients
    )
    paired = {
        t.name: paired_lookups(t, t.twin, small_names, large_names, args)
        for t in targets
        if t.twin is not None
    }
    return [
        Result(
            t,
            creates_first[t.name] + creates_rest[t.name],
            combine("lookups", small[t.name]),
            combine("lookups", large[t.name]),
            bulk[t.name],
            paired.get(t.name),
        )
        for t in targets
    ]


def provision_twin(twin: Target, count: int, concurrency: int) -> None:
    """The twin's users: the first ``count``, created through SCIM as the target's are
    (untimed). Its database then stays at that size."""
    twin.settle()
    created = run_phase(
        "twin creates", twin.base_url, [create_job(twin, i) for i in range(count)], concurrency
    )
    if created.failures:
        raise SystemExit(f"{twin.name}: {created.failures[0]}")
    twin.settle()
    print(f"  {twin.name}: {count} users created ({created.rate:.0f}/s, untimed)", flush=True)


def paired_lookups(
    target: Target,
    twin: Target,
    small_names: list[int],
    large_names: list[int],
    args: argparse.Namespace,
) -> tuple[Phase, Phase]:
    """Step 6: the same lookups as steps 2 and 5, in alternating rounds of ``--pair-size``
    (which goes first alternates too), so that both sizes meet the same machine load."""
    at_small: list[Phase] = []
    at_large: list[Phase] = []
    size = max(1, args.pair_size)
    for n, first in enumerate(range(0, len(large_names), size)):
        rounds = [
            (twin, small_names[first : first + size], at_small),
            (target, large_names[first : first + size], at_large),
        ]
        for t, names, into in rounds if n % 2 == 0 else reversed(rounds):
            jobs = [lookup_job(t, i) for i in names]
            into.append(run_phase("paired lookups", t.base_url, jobs, args.lookup_clients))
    small, large = combine("paired at 1,000", at_small), combine("paired lookups", at_large)
    print(
        f"  {target.name}: paired lookups, p99 {small.pct(0.99):.2f} ms at 1,000 (twin) and "
        f"{large.pct(0.99):.2f} ms at {args.users + args.bulk:,}, {len(at_large)} rounds of "
        f"{size} each; {machine_load()}",
        flush=True,
    )
    return small, large


def combine(label: str, phases: list[Phase]) -> Phase:
    """The rounds of one phase as one: their requests, time, failures and CPU time."""
    return Phase(
        label,
        sum(p.count for p in phases),
        sum(p.seconds for p in phases),
        [x for p in phases for x in p.latencies_ms],
        [f for p in phases for f in p.failures],
        sum(p.cpu_seconds for p in phases),
    )


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, all threads) of these processes and their live descendants so
    far, from Linux's ``/proc``; 0 elsewhere. A process that ends takes its time with it, so
    this is read around phases in which the targets' processes all live."""
    proc = Path("/proc")
    if not pids or not (proc / "self" / "stat").exists():
        return 0.0
    times: dict[int, float] = {}
    children: dict[int, list[int]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the command's closing parenthesis: state, ppid, ... utime, stime.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        pid = int(entry.name)
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo, seen = 0.0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            total += times.get(pid, 0.0)
            todo.extend(children.get(pid, []))
    return total


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    total = args.users + args.bulk
    print(
        f"\n{args.users:,} creates through SCIM, {args.lookups:,} userName-eq lookups per size, "
        f"{args.concurrency} clients for creates, {args.lookup_clients} for lookups, rounds of "
        f"{args.round_size} requests"
    )
    header = (
        f"{'target':32} {'creates/s':>10} {'median rnd':>11} {'create p50':>11} "
        f"{'create p99':>11} {'lookup p50 @1k':>15} {'p99 @1k':>9} "
        f"{f'p50 @{total // 1000}k':>10} {f'p99 @{total // 1000}k':>10} {'p99 ratio':>10} "
        f"{'CPU/create':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        merged = combine("creates", r.creates)
        if r.target.floor:
            print(
                f"{r.target.name:32} {r.create_rate:10.0f} {r.median_create_rate:9.0f}/s "
                f"{merged.pct(0.5):9.1f}ms {merged.pct(0.99):9.1f}ms {'':58}"
                f" {r.create_cpu_ms:9.2f}ms"
            )
            continue
        ratio = r.lookups_large.pct(0.99) / r.lookups_small.pct(0.99)
        print(
            f"{r.target.name:32} {r.create_rate:10.0f} {r.median_create_rate:9.0f}/s "
            f"{merged.pct(0.5):9.1f}ms {merged.pct(0.99):9.1f}ms "
            f"{r.lookups_small.pct(0.5):13.2f}ms {r.lookups_small.pct(0.99):7.2f}ms "
            f"{r.lookups_large.pct(0.5):8.2f}ms {r.lookups_large.pct(0.99):8.2f}ms {ratio:9.2f}x "
            f"{r.create_cpu_ms:9.2f}ms"
        )
    references = [r for r in results if r.target.reference]
    floor = next((r for r in results if r.target.floor), None)
    for r in results:
        if r in references or r is floor:
            continue
        ratio = r.lookups_large.pct(0.99) / r.lookups_small.pct(0.99)
        print(f"{r.target.name}: lookup p99 {total // 1000}k/1k = {ratio:.2f}x, steps 2 and 5")
        if r.paired is not None:
            small, large = r.paired
            print(
                f"  paired (step 6): p50 {small.pct(0.5):.2f} / {large.pct(0.5):.2f} ms, p99 "
                f"{small.pct(0.99):.2f} / {large.pct(0.99):.2f} ms at 1k / {total // 1000}k: "
                f"p99 {large.pct(0.99) / small.pct(0.99):.2f}x (goal <= 1.5x)"
            )
        for reference in references:
            overall = r.create_rate / reference.create_rate
            # Round by round: the two ran one after the other, under the same machine load.
            per_round = statistics.median(
                ours.rate / theirs.rate
                for ours, theirs in zip(r.creates, reference.creates, strict=True)
            )
            print(
                f"  creates {overall:.2f}x those of {reference.target.name} overall, median of "
                f"rounds {per_round:.2f}x (goal >= 2x)"
            )
            if r.create_cpu_ms and reference.create_cpu_ms:
                print(
                    f"    per CPU second: {1000 / r.create_cpu_ms:.0f} creates against "
                    f"{1000 / reference.create_cpu_ms:.0f}, "
                    f"{reference.create_cpu_ms / r.create_cpu_ms:.2f}x"
                )
    if floor is not None:
        print(
            f"floor: the same client against a server that does nothing: {floor.create_rate:.0f} "
            "creates/s; the others as shares of it, median of rounds (each round's own floor):"
        )
        for r in results:
            if r is not floor:
                share = statistics.median(
                    ours.rate / low.rate for ours, low in zip(r.creates, floor.creates, strict=True)
                )
                print(f"  {r.target.name}: {share:.0%} of the floor")
        for reference in references:
            goal = statistics.median(
                2 * theirs.rate / low.rate
                for theirs, low in zip(reference.creates, floor.creates, strict=True)
            )
            print(
                f"  2x {reference.target.name} would be {goal:.0%} of the floor"
                + (": more than this client can send to any server" if goal > 1 else "")
            )
    for r in results:
        if r.target.note:
            print(f"{r.target.name}: {r.target.note}")
        failures = r.failures()
        if failures:
            print(f"{r.target.name}: {len(failures)} failed requests, first: {failures[0]}")
    print(f"machine: {machine_load()} (at the end of the run)")


def named(backend: str, args: argparse.Namespace) -> str:
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    return f"rolecall ({backend}{workers})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="creates through SCIM")
    parser.add_argument("--bulk", type=int, default=90_000, help="users inserted in bulk after")
    parser.add_argument("--lookups", type=int, default=2_000, help="lookups per size")
    parser.add_argument("--concurrency", type=int, default=8, help="clients sending creates")
    parser.add_argument(
        "--lookup-clients",
        type=int,
        default=1,
        help="clients sending lookups (1: each lookup's own latency, without queueing)",
    )
    parser.add_argument("--round-size", type=int, default=500, help="requests per target per round")
    parser.add_argument(
        "--backend",
        default="sqlite",
        help="rolecall's database: sqlite, postgres, or both (sqlite,postgres)",
    )
    parser.add_argument(
        "--postgres-url",
        help="an empty PostgreSQL database to use instead of a throwaway cluster (its tables "
        "are created and filled)",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="leave out the reference scim2-server"
    )
    parser.add_argument(
        "--teams", type=int, default=100, help="rolecall: teams the bulk users join, one each"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="rolecall: server processes (ROLECALL_WORKERS)"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="leave out the floor (a server doing nothing)"
    )
    parser.add_argument(
        "--pair-size", type=int, default=25, help="lookups per round of the paired step 6"
    )
    parser.add_argument(
        "--no-twin", action="store_true", help="leave out rolecall's twin and step 6"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--serve-reference", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_reference:
        serve_reference(args.serve_reference)
        return
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return
    if args.users < FIRST:
        parser.error(f"--users must be at least {FIRST}")
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown or not backends:
        parser.error(f"unknown backend {', '.join(sorted(unknown)) or '(none)'}")
    print(f"machine at start: {machine_load()}", flush=True)
    with ExitStack() as stack:
        targets = []
        if "sqlite" in backends:
            workdir = Path(tempfile.mkdtemp(prefix="rolecall-scim-bench-"))
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            url = f"sqlite:///{workdir / 'bench.db'}"
            target = rolecall_target(named("SQLite", args), url, args.teams, args.workers)
            targets.append(stack.enter_context(target))
            if not args.no_twin:
                twin_url = f"sqlite:///{workdir / 'twin.db'}"
                twin = rolecall_target(
                    f"{targets[-1].name} twin", twin_url, args.teams, args.workers
                )
                targets[-1].twin = stack.enter_context(twin)
        if "postgres" in backends:
            url = args.postgres_url
            if url is None:
                from tests.pgserver import PostgresServer

                pg = PostgresServer().start()
                stack.callback(pg.stop)
                url = pg.create_database("bench")
            target = rolecall_target(named("PostgreSQL", args), url, args.teams, args.workers)
            targets.append(stack.enter_context(target))
            if args.postgres_url is None and pg.proc is not None:
                # The database's work for rolecall is rolecall's (the reference has none).
                targets[-1].cpu_pids.append(pg.proc.pid)
                targets[-1].note += "; its CPU time includes PostgreSQL's processes"
            else:
                targets[-1].note += "; its CPU time leaves out the PostgreSQL server's"
            if not args.no_twin:
                twin_url = twin_database(url)
                twin = rolecall_target(
                    f"{targets[-1].name} twin", twin_url, args.teams, args.workers
                )
                targets[-1].twin = stack.enter_context(twin)
        if not args.no_reference:
            targets.append(stack.enter_context(shipped_reference_target(args.concurrency)))
            targets.append(stack.enter_context(reference_target()))
        if not args.no_floor:
            targets.append(stack.enter_context(floor_target()))
        results = bench(targets, args)
    print_table(results, args)


if __name__ == "__main__":
    main()
