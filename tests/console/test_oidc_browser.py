"""One whole OIDC sign-in in a real browser (headless Chromium through Playwright): rolecall's
sign-in page, the identity provider's own login form (the password typed in), back to
rolecall's home page naming the user, and the session cookie working for the API.

A live ``rolecall serve`` (its own process and database, initialised with ``rolecall init``)
and the real node oidc-provider showing its login form (``OP_AUTO_LOGIN=0``). Chromium is
Debian's (``/usr/bin/chromium``); Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from sqlalchemy.engine import make_url

from tests.idp.oidc_op import free_port, running_provider
from tests.live_server import START_TIMEOUT, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Settings a developer's shell might carry; the live server starts without them.
SERVER_ENV = ("LOCAL_RESTORE", "ROLECALL_MODE", "ROLECALL_HOST", "ROLECALL_PORT", "OIDC_SECRET")


@pytest.fixture(scope="module")
def live_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database for the live server: a SQLite file, or a new PostgreSQL database on the
    harness's server."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('browser') / 'rolecall.db'}"
        return
    import psycopg

    server = make_url(request.getfixturevalue("database_url"))
    name = f"rolecall_browser_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql", database="postgres")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Stack:
    rolecall: str
    op: str


@pytest.fixture(scope="module")
def stack(live_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``rolecall serve`` signing in through the provider; both start side by side."""
    port, op_port = free_port(), free_port()
    base_url, op = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{op_port}"
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
    env |= {
        "ROLECALL_DATABASE_URL": live_database_url,
        "ROLECALL_PUBLIC_URL": base_url,
        "ROLECALL_LOG_LEVEL": "warning",
        "OIDC_ISSUER": op,
        "OIDC_CLIENT_ID": "rolecall-pkce",
        "OIDC_AUTH_METHOD": "pkce",
    }
    cli = [sys.executable, "-m", "rolecall.cli"]
    init = subprocess.Popen(
        [*cli, "init", "--org", "acme", "--admin-email", "admin@example.com", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with running_provider(op_port, OP_AUTO_LOGIN="0"):
        _, errors = init.communicate(timeout=START_TIMEOUT)
        assert init.returncode == 0, errors
        log: Path = tmp_path_factory.mktemp("serve") / "serve.log"
        with serving(env, log, port=port):
            yield Stack(base_url, op)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


def test_a_person_signs_in_and_out_through_the_identity_provider(browser, stack):
    rolecall, op = stack.rolecall, stack.op
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{rolecall}/login")
    page.click("a#sso")
    # The identity provider's own form: a wrong password first, then the right one.
    page.wait_for_url(f"{op}/interaction/**")
    page.fill("#username", "alice@example.org")
    page.fill("#password", "not-her-password")
    page.click("#submit")
    expect(page.locator("#error")).to_contain_text("Wrong email or password")
    page.fill("#password", "alice-pw")
    page.click("#submit")
    page.wait_for_url(f"{rolecall}/")
    expect(page.locator("#viewer")).to_have_text("alice")
    viewer = context.request.get(f"{rolecall}/api/v1/viewer")
    assert viewer.status == 200
    assert viewer.json()["email"] == "alice@example.org"
    cookie = next(c for c in context.cookies(rolecall) if c["name"] == "rolecall_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # Signing out ends the session here and at the provider, which sends the browser back to
    # the host root (and so to the sign-in page).
    page.click("#sign-out")
    page.wait_for_url(f"{rolecall}/login**")
    assert context.request.get(f"{rolecall}/api/v1/viewer").status == 401
    page.click("a#sso")
    page.wait_for_url(f"{op}/interaction/**")  # no provider session left: its form again
    expect(page.locator("#password")).to_be_visible()
    context.close()
