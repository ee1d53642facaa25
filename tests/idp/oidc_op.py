"""The real OpenID Provider (node oidc-provider, ``oidc_provider/provider.mjs``) for the tests,
and a user agent that walks its redirects the way a browser does."""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.live_server import free_port

HERE = Path(__file__).resolve().parent / "oidc_provider"
#: Every confidential client's secret at the provider.
SECRET = "test-secret"


def _install() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node (>= 20) and npm are needed for the oidc-provider tests")
    if not (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE, check=True, timeout=300,
        )  # fmt: skip


@contextmanager
def running_provider(port: int | None = None, **env: str) -> Iterator[str]:
    """Start the provider (on ``port``, or a free one) with ``OP_*`` settings ``env``; yields
    its issuer URL once it answers."""
    _install()
    port = port or free_port()
    process = subprocess.Popen(
        ["node", "provider.mjs"], cwd=HERE, env={**os.environ, **env, "OP_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("oidc-provider did not start")
            time.sleep(0.05)
        yield issuer
    finally:
        process.terminate()
        process.wait(timeout=10)


class AppTransport(httpx.BaseTransport):
    """Sends requests to an app under test through its ``TestClient`` (whose own transport
    answers with a stream a plain ``httpx.Client`` does not take)."""

    def __init__(self, client: httpx.Client) -> None:
        self.inner = client._transport  # type: ignore[attr-defined]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        content = b"".join(response.stream)  # type: ignore[union-attr]
        return httpx.Response(response.status_code, headers=response.headers.raw, content=content)


class AutoForm(html.parser.HTMLParser):
    """The form of a page that submits itself (``response_mode=form_post``, the provider's
    logout confirmation): what a browser's script would post."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = found.get("action") or ""
        elif tag == "input" and found.get("name"):
            self.fields[found["name"] or ""] = found.get("value") or ""

    @classmethod
    def of(cls, response: httpx.Response) -> AutoForm | None:
        if not response.headers.get("content-type", "").startswith("text/html"):
            return None
        form = cls()
        form.feed(response.text)
        return form if form.action is not None else None


def walk(
    agent: httpx.Client,
    response: httpx.Response,
    *,
    until: str,
    deliver: bool = True,
    prompts: list[str] | None = None,
) -> httpx.Response:
    """Follow redirects and self-submitting forms from ``response`` as a browser does, up to
    the answer of a URL starting with ``until``; with ``deliver=False``, up to the response that
    would send the browser there (a redirect, or a form to post), without going.

    The provider's interaction steps (``x-test-prompt``: login, consent) go to ``prompts``.
    """
    for _ in range(20):
        url = str(response.request.url)
        if prompts is not None and "x-test-prompt" in response.headers:
            prompts.append(response.headers["x-test-prompt"])
        if url.startswith(until):
            return response
        form = None if response.is_redirect else AutoForm.of(response)
        if response.is_redirect:
            target = urljoin(url, response.headers["location"])
        elif form is not None:
            target = urljoin(url, form.action or url)
        else:
            return response
        if not deliver and target.startswith(until):
            return response
        response = agent.post(target, data=form.fields) if form else agent.get(target)
    raise AssertionError("too many redirects")


def query_of(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(urlsplit(url).query))
