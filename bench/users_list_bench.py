"""Lists of a large organization's users: prints a table; not a test.

An admin pages through the REST API's users (``GET /api/v1/users``, in the order they joined)
and an identity provider's import pages through SCIM's (``GET /scim/v2/Users``, by id),
counting the directory on every page. This loads ``--users`` users (rows inserted in bulk, by
``scim_bench.py``'s loader), then times against one ``rolecall serve`` the first page and a page
at half the directory's depth, a substring search, SCIM's filters that read beyond an index
(``sw``, ``co``, ``active``, ``meta.lastModified``, a sort), and ``/healthz`` as the floor:
what an HTTP round trip to this server costs on this machine in the same run.

One client, one request at a time: each latency is the server's work.

    python bench/users_list_bench.py [--users 100000] [--requests 15] [--backend sqlite]
        [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from scim_bench import rolecall_target, user_body  # noqa: E402


def cases(users: int) -> list[tuple[str, str]]:
    """(label, path) of each request timed."""
    half = users // 2
    someone = str(user_body(users // 3)["userName"])
    prefix = someone[: len(someone) - 2]
    return [
        ("floor: GET /healthz", "/healthz"),
        ("REST users, first page (50)", "/api/v1/users?limit=50"),
        (f"REST users, offset {half:,}", f"/api/v1/users?limit=50&offset={half}"),
        ("REST users, q (substring)", f"/api/v1/users?limit=50&q={prefix}"),
        ("SCIM Users, first page (100)", "/scim/v2/Users?count=100"),
        (f"SCIM Users, startIndex {half:,}", f"/scim/v2/Users?count=100&startIndex={half}"),
        ("SCIM userName eq", f'/scim/v2/Users?filter=userName eq "{someone}"'),
        ("SCIM userName sw", f'/scim/v2/Users?count=100&filter=userName sw "{prefix}"'),
        ("SCIM userName co", f'/scim/v2/Users?count=100&filter=userName co "{prefix[1:]}"'),
        ("SCIM active eq true", "/scim/v2/Users?count=100&filter=active eq true"),
        (
            "SCIM meta.lastModified gt",
            '/scim/v2/Users?count=100&filter=meta.lastModified gt "2000-01-01T00:00:00Z"',
        ),
        ("SCIM sortBy=userName", "/scim/v2/Users?count=100&sortBy=userName"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", help="an empty database (default: a fresh server)")
    args = parser.parse_args()

    pg = None
    workdir = tempfile.TemporaryDirectory()
    if args.backend == "sqlite":
        url = f"sqlite:///{Path(workdir.name) / 'list.db'}"
    elif args.postgres_url:
        url = args.postgres_url
    else:
        from tests.pgserver import PostgresServer

        pg = PostgresServer().start()
        url = pg.create_database("lists")
    try:
        # scim_bench's rolecall: an initialised organization served by one `rolecall serve`.
        with rolecall_target("rolecall", url, n_teams=0) as target:
            started = time.perf_counter()
            target.bulk_load(0, args.users)
            target.settle()
            print(f"{args.users:,} users loaded in {time.perf_counter() - started:.0f} s")
            with httpx.Client(base_url=target.base_url, headers=target.headers) as client:
                rows = [time_case(client, path, args.requests) for _, path in cases(args.users)]
    finally:
        if pg is not None:
            pg.stop()
        workdir.cleanup()
    floor = rows[0][0]
    print(f"\n{args.backend}, {args.users:,} users, {args.requests} requests each, one client")
    print(f"{'request':34s} {'p50 ms':>8s} {'max ms':>8s} {'p50 / floor':>12s}")
    for (label, _), (p50, worst) in zip(cases(args.users), rows, strict=True):
        print(f"{label:34s} {p50:8.1f} {worst:8.1f} {p50 / floor:11.0f}x")


def time_case(client: httpx.Client, path: str, requests: int) -> tuple[float, float]:
    """p50 and maximum latency in ms of ``requests`` GETs of ``path`` (after one unmeasured)."""
    client.get(path, timeout=120).raise_for_status()
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path, timeout=120)
        took.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code} {answer.text[:200]}")
    return statistics.median(took), max(took)


if __name__ == "__main__":
    main()
