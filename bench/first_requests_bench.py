"""The first requests a freshly started server answers: prints a table; not a test.

A server's first request to a route may pay for work done once per process (routes built,
statements compiled, connections opened). For each of a few routes of different surfaces, and
``--rounds`` times, this starts ``rolecall serve`` on a new SQLite database, waits until
``/healthz`` answers, then times one request to that route (the server's first after
``/healthz``), then the same request ``--repeat`` times more. The repeated requests' median is
the floor the first request is read against.

    python bench/first_requests_bench.py [--rounds 5] [--repeat 20]
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
from scim_bench import rolecall_target  # noqa: E402

#: (label, path): one route of each surface.
CASES = [
    ("SCIM Users list", "/scim/v2/Users?count=1"),
    ("GraphQL viewer", "/graphql"),
    ("REST audit list", "/api/v1/audit?limit=1"),
]
GRAPHQL_BODY = {"query": "{ viewer { username } }"}


def timed(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    answer = client.post(path, json=GRAPHQL_BODY) if path == "/graphql" else client.get(path)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"{path}: {answer.status_code} {answer.text[:200]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    first: dict[str, list[float]] = {label: [] for label, _ in CASES}
    later: dict[str, list[float]] = {label: [] for label, _ in CASES}
    for label, path in CASES:
        for _ in range(args.rounds):
            work = tempfile.mkdtemp(prefix="rolecall-first-")
            with (
                rolecall_target(label, f"sqlite:///{work}/first.db", 1) as target,
                httpx.Client(base_url=target.base_url, headers=target.headers) as client,
            ):
                first[label].append(timed(client, path))
                later[label].extend(timed(client, path) for _ in range(args.repeat))
    print(f"{args.rounds} server starts per route; ms; 'later': median of {args.repeat} repeats")
    print(f"{'route':<20} {'first (median)':>15} {'first (max)':>12} {'later':>8} {'ratio':>7}")
    for label, _ in CASES:
        one, floor = statistics.median(first[label]), statistics.median(later[label])
        print(
            f"{label:<20} {one * 1000:>15.1f} {max(first[label]) * 1000:>12.1f}"
            f" {floor * 1000:>8.1f} {one / floor:>6.1f}x"
        )


if __name__ == "__main__":
    main()
