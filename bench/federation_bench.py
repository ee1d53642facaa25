"""Federation benchmark: JWT bearer exchanges per second against the ``/healthz`` floor, in the
same run, on one ``rolecall serve`` per backend; prints a table, not a test.

Cases: (a) ``GET /healthz`` (the floor); (b) ``POST /oidc/token`` with a valid RS256 JWT from a
loopback issuer (signature check against the cached JWKS, subject lookup, token row and audit
record written); (c) ``GET /api/v1/viewer`` authenticated with the access token it returned;
(d) the same with an API key, for comparison.

    python bench/federation_bench.py [--duration 10] [--connections 16] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from server_bench import free_port, run_python, run_wrk_script, start_server  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from tests.idp.jwt_issuer import JwtIssuer  # noqa: E402

from rolecall.db.engine import make_engine  # noqa: E402
from rolecall.db.migrate import upgrade  # noqa: E402

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"

WRK_LUA = """
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "{content_type}"
{auth}
"""


def run_wrk(
    url: str,
    *,
    method: str,
    body: str | None,
    auth: str | None,
    duration: int,
    connections: int,
    content_type: str = "application/json",
) -> tuple[float, float, float]:
    script = WRK_LUA.format(
        method=method,
        body=json.dumps(body) if body else "nil",
        content_type=content_type,
        auth=f'wrk.headers["Authorization"] = "{auth}"' if auth else "",
    )
    return run_wrk_script(script, url, duration=duration, connections=connections)


def run_python_form(
    url: str, *, method: str, body: str | None, auth: str | None, duration: int, connections: int,
    content_type: str = "application/json",
) -> tuple[float, float, float]:  # fmt: skip
    if content_type == FORM:
        # run_python sends JSON's content type; the form body is the same bytes either way,
        # so post it through a client whose content type is the form's.
        import concurrent.futures
        import time

        def worker() -> list[float]:
            latencies = []
            with httpx.Client(headers={"Content-Type": FORM}) as client:
                end = time.monotonic() + duration
                while time.monotonic() < end:
                    started = time.perf_counter()
                    client.post(url, content=body).raise_for_status()
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
    return run_python(
        url, method=method, body=body, auth=auth, duration=duration, connections=connections
    )


def load_data(url: str) -> dict[str, str]:
    from rolecall.orgs.bootstrap import initialize

    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        boot = initialize(session, org_name="bench", admin_email="admin@bench.example")
        session.commit()
        info = {"key": boot.api_key, "email": "admin@bench.example", "org": "bench"}
    engine.dispose()
    return info


def bench_backend(
    name: str, url: str, args: argparse.Namespace, issuer: JwtIssuer
) -> list[tuple[str, float, float, float]]:
    info = load_data(url)
    port = free_port()
    server = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    key_auth = "Basic " + base64.b64encode(f"api:{info['key']}".encode()).decode()
    load = run_wrk if shutil.which("wrk") and not args.python_client else run_python_form
    rows = []
    try:
        registered = httpx.put(
            f"{base}/api/v1/federation/issuer",
            json={"issuer": issuer.issuer},
            headers={"Authorization": key_auth},
        )
        registered.raise_for_status()
        jwt = issuer.mint(sub=info["email"], aud=info["org"], ttl=3600)
        form = urlencode({"grant_type": GRANT, "assertion": jwt})
        exchanged = httpx.post(f"{base}/oidc/token", content=form, headers={"Content-Type": FORM})
        exchanged.raise_for_status()
        token_auth = f"Bearer {exchanged.json()['access_token']}"
        cases = [
            ("(a) GET /healthz", f"{base}/healthz", "GET", None, None, "application/json"),
            ("(b) POST /oidc/token (exchange)", f"{base}/oidc/token", "POST", form, None, FORM),
            ("(c) GET /viewer, access token", f"{base}/api/v1/viewer", "GET", None, token_auth,
             "application/json"),
            ("(d) GET /viewer, API key", f"{base}/api/v1/viewer", "GET", None, key_auth,
             "application/json"),
        ]  # fmt: skip
        for label, target, method, body, header, content_type in cases:
            common = dict(method=method, body=body, auth=header, content_type=content_type)
            load(target, duration=2, connections=args.connections, **common)  # warm-up
            rps, p50, p99 = load(
                target, duration=args.duration, connections=args.connections, **common
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
    issuer = JwtIssuer().start()
    rows: list[tuple[str, float, float, float]] = []
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                workdir = Path(tempfile.mkdtemp(prefix="rolecall-fed-bench-"))
                rows += bench_backend("sqlite", f"sqlite:///{workdir / 'bench.db'}", args, issuer)
                shutil.rmtree(workdir, ignore_errors=True)
            elif backend == "postgres":
                from tests.pgserver import PostgresServer

                server = PostgresServer().start()
                try:
                    rows += bench_backend(
                        "postgres", server.create_database("fedbench"), args, issuer
                    )
                finally:
                    server.stop()
    finally:
        issuer.stop()
    print(f"\n{'case':48} {'req/s':>9} {'vs floor':>9} {'p50 ms':>8} {'p99 ms':>8}")
    floor = 0.0
    for label, rps, p50, p99 in rows:
        if "(a)" in label:
            floor = rps
        ratio = f"{rps / floor:.0%}" if floor else "-"
        print(f"{label:48} {rps:9.0f} {ratio:>9} {p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    main()
