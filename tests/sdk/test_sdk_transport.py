"""The SDK's configuration and wire format: environment, headers, error decoding, isolation."""

from __future__ import annotations

import ast
import base64
import json
import socket
from pathlib import Path

import httpx
import pytest

from rolecall import Api
from rolecall.sdk import (
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    LastAdmin,
    NotFound,
    PermissionDenied,
    RolecallError,
)
from rolecall.sdk.client import account_name

SDK_SOURCE = Path(__file__).resolve().parents[2] / "src" / "rolecall" / "sdk"


class Recorder:
    """An httpx transport that records requests and answers with a canned response."""

    def __init__(self, status: int = 200, body: object = None, text: str | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body, self.text = status, body, text

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.text is not None:
            return httpx.Response(self.status, text=self.text)
        return httpx.Response(self.status, json=self.body if self.body is not None else {})

    def api(self, **kwargs: object) -> Api:
        client = httpx.Client(transport=httpx.MockTransport(self))
        return Api(client=client, **kwargs)  # type: ignore[arg-type]


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"api:{secret}".encode()).decode()


# --- environment ------------------------------------------------------------------------------


def test_rolecall_variables_win_over_wandb(monkeypatch):
    monkeypatch.setenv("ROLECALL_BASE_URL", "http://rolecall.example:8080/")
    monkeypatch.setenv("ROLECALL_API_KEY", "rc_rolecall")
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.example")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-key")
    api = Api()
    assert (api.base_url, api.api_key) == ("http://rolecall.example:8080", "rc_rolecall")


def test_wandb_variables_are_the_fallback(monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.example")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-key")
    monkeypatch.setenv("WANDB_USERNAME", "alice")
    monkeypatch.setenv("WANDB_USER_EMAIL", "alice@example.com")
    api = Api()
    assert (api.base_url, api.api_key) == ("http://wandb.example", "wandb-key")
    assert (api.username, api.user_email) == ("alice", "alice@example.com")


def test_arguments_win_over_environment_and_empty_values_mean_unset(monkeypatch):
    monkeypatch.setenv("ROLECALL_BASE_URL", "")
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.example")
    monkeypatch.setenv("ROLECALL_API_KEY", "rc_env")
    monkeypatch.setenv("WANDB_USERNAME", "  ")
    api = Api(api_key="rc_arg", username=None)
    assert (api.base_url, api.api_key, api.username) == ("http://wandb.example", "rc_arg", None)
    assert Api(base_url="http://arg.example").base_url == "http://arg.example"


def test_default_base_url_is_the_serve_address():
    assert Api().base_url == "http://127.0.0.1:8080"


# --- headers ----------------------------------------------------------------------------------


def test_credentials_attribution_and_org_headers_are_sent(monkeypatch):
    monkeypatch.setenv("WANDB_USERNAME", "alice")
    monkeypatch.setenv("WANDB_USER_EMAIL", "alice@example.com")
    recorder = Recorder(body={"kind": "service_account", "id": "x", "name": "bot"})
    recorder.api(base_url="http://srv.example/", api_key="rc_secret", org="acme").viewer()
    (request,) = recorder.requests
    assert str(request.url) == "http://srv.example/api/v1/viewer"
    assert request.headers["Authorization"] == _basic("rc_secret")
    assert request.headers["X-Wandb-Username"] == "alice"
    assert request.headers["X-Wandb-User-Email"] == "alice@example.com"
    assert request.headers["X-Rolecall-Org"] == "acme"


def test_no_key_no_attribution_no_headers():
    recorder = Recorder(body={})
    recorder.api(base_url="http://srv.example").viewer()
    headers = recorder.requests[0].headers
    for name in ("Authorization", "X-Wandb-Username", "X-Wandb-User-Email", "X-Rolecall-Org"):
        assert name not in headers


def test_path_segments_are_escaped():
    recorder = Recorder(body={"id": "u"})
    recorder.api(base_url="http://srv.example").user("a+b/c@example.com")
    assert recorder.requests[0].url.raw_path == b"/api/v1/users/a%2Bb%2Fc@example.com"


def test_audit_filters_become_query_parameters_and_pages_are_followed():
    from datetime import UTC, datetime

    pages = [
        {"items": [{"id": "1", "seq": 1}], "next_cursor": 1},
        {"items": [{"id": "2", "seq": 2}], "next_cursor": None},
    ]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[len(seen) - 1])

    api = Api(
        base_url="http://srv.example", client=httpx.Client(transport=httpx.MockTransport(answer))
    )
    since = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = api.audit_log(action="user.create", since=since)
    assert [e.seq for e in events] == [1, 2]
    assert seen[0].url.params["since"] == since.isoformat()
    assert seen[0].url.params["action"] == "user.create"
    assert "cursor" not in seen[0].url.params
    assert seen[1].url.params["cursor"] == "1"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (422, InvalidInput),
        (500, RolecallError),
    ],
)
def test_error_envelope_becomes_the_typed_exception(status, cls):
    body = {
        "error": {
            "code": "some_code",
            "message": "the server's words",
            "field": "name",
            "rule": "some.rule",
            "trace": [{"rule": "some.rule", "outcome": "deny", "detail": "why"}],
        }
    }
    with pytest.raises(cls) as raised:
        Recorder(status, body).api().create_team("x")
    error = raised.value
    assert isinstance(error, RolecallError)
    assert (error.status, error.code, error.message) == (status, "some_code", "the server's words")
    assert (error.field, error.rule, error.trace) == ("name", "some.rule", body["error"]["trace"])
    assert str(error) == "the server's words (rule some.rule)"


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (409, "last_admin", LastAdmin),
        (409, "duplicate", Conflict),
        (422, "last_admin", InvalidInput),
    ],
)
def test_last_admin_code_has_its_own_conflict_class(status, code, cls):
    body = {"error": {"code": code, "message": "the last active admin cannot be removed"}}
    with pytest.raises(RolecallError) as raised:
        Recorder(status, body).api().viewer()
    assert type(raised.value) is cls
    assert raised.value.message == "the last active admin cannot be removed"


def test_str_names_the_rule_once():
    error = {"code": "permission_denied", "message": "no (base.none)", "rule": "base.none"}
    body = {"error": error}
    with pytest.raises(PermissionDenied) as raised:
        Recorder(403, body).api().viewer()
    assert str(raised.value) == "no (base.none)"


def test_a_non_json_error_keeps_the_status_and_text():
    with pytest.raises(RolecallError) as raised:
        Recorder(502, text="<html>Bad gateway</html>").api().viewer()
    assert raised.value.status == 502
    assert "Bad gateway" in raised.value.message


def test_lookups_return_none_only_on_404():
    assert Recorder(404, {"error": {"code": "not_found", "message": "no"}}).api().user("x") is None
    with pytest.raises(PermissionDenied):
        Recorder(403, {"error": {"code": "permission_denied", "message": "no"}}).api().team("x")


def test_unreachable_server_raises_connection_failed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        pytest.raises(ConnectionFailed) as raised,
        Api(f"http://127.0.0.1:{port}", timeout=2) as api,
    ):
        api.viewer()
    assert raised.value.status == 0


# --- naming and isolation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "name"),
    [
        ("Nightly training (GPU)", "nightly-training-gpu"),
        ("  CI_bot  ", "ci_bot"),
        ("émoji ✨ runner", "moji-runner"),
        ("!!!", "service-account"),
        ("x" * 100, "x" * 48),
    ],
)
def test_account_names_derived_from_descriptions_are_valid(description, name):
    assert account_name(description) == name


def test_sdk_imports_nothing_else_from_rolecall():
    imported = set()
    for path in SDK_SOURCE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.split(".")[0] == "rolecall"}
    assert ours and all(name.startswith("rolecall.sdk") for name in ours), ours


def test_created_objects_keep_their_json_and_api():
    recorder = Recorder(201, {"id": "t1", "name": "lab", "private_only": False})
    api = recorder.api()
    team = api.create_team("lab")
    assert team.api is api
    assert team.json == {"id": "t1", "name": "lab", "private_only": False}
    assert json.loads(recorder.requests[0].content) == {"name": "lab"}
    assert repr(team) == "<Team 'lab'>"
