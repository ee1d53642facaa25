"""The CLI's server commands over real HTTP: ``login``, ``federation set-issuer|show|verify``
and ``service-account create``, with the login stored in the config directory."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from rolecall.cli.main import app
from tests import factories
from tests.idp.jwt_issuer import JwtIssuer


@pytest.fixture(scope="module")
def issuer():
    issuer = JwtIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("ROLECALL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CREDENTIALS_FILE", str(tmp_path / "credentials.json"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_login_stores_the_host_and_key_for_later_commands(cli, base_url, org, issuer, tmp_path):
    done = cli("login", "--host", base_url, "--api-key", org.admin_key)
    assert done.exit_code == 0, done.output
    stored = tmp_path / "config" / "cli.json"
    assert json.loads(stored.read_text()) == {"host": base_url, "api_key": org.admin_key}
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert cli("federation", "show").stdout.strip() == "no JWT issuer registered"
    assert cli("federation", "set-issuer", issuer.issuer).exit_code == 0
    assert cli("federation", "show").stdout.strip() == issuer.issuer
    assert cli("federation", "set-issuer", "none").stdout.strip() == "JWT issuer removed"


def test_login_with_a_bad_key_stores_nothing(cli, base_url, org, tmp_path):
    done = cli("login", "--host", base_url, "--api-key", "rc_wrong")
    assert done.exit_code == 1 and "error:" in done.stderr
    assert not (tmp_path / "config" / "cli.json").exists()


def test_login_with_an_identity_token_file(cli, base_url, db, org, issuer, tmp_path, api):
    api.set_jwt_issuer(issuer.issuer)
    factories.user(db, org.org, username="alice", email="alice@example.org")
    token_file = tmp_path / "jwt"
    token_file.write_text(issuer.mint(sub="alice@example.org", aud=org.org.name))
    done = cli("login", "--host", base_url, "--identity-token-file", str(token_file))
    assert done.exit_code == 0, done.output
    assert "as alice (access_token)" in done.stdout
    assert json.loads((tmp_path / "credentials.json").read_text())["credentials"][base_url]


def test_verify_explains_a_refusal(cli, base_url, org, issuer, tmp_path, api):
    api.set_jwt_issuer(issuer.issuer)
    token_file = tmp_path / "jwt"
    token_file.write_text(issuer.mint(sub="nobody@example.org", aud="elsewhere"))
    result = cli("federation", "verify", "--token-file", str(token_file), "--host", base_url)
    assert result.exit_code == 1  # no credential yet
    assert cli("login", "--host", base_url, "--api-key", org.admin_key).exit_code == 0
    result = cli("federation", "verify", "--token-file", str(token_file))
    assert result.exit_code == 2, result.output
    assert result.stdout.startswith("REFUSED at aud")
    assert "FAIL sub" in result.stdout and "expected:" in result.stdout
    as_json = json.loads(
        cli("federation", "verify", "--token-file", str(token_file), "--json").stdout
    )
    assert as_json["failed_check"] == "aud"
    missing = cli("federation", "verify", "--token-file", str(tmp_path / "none"))
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    binary = cli("federation", "verify", "--token-file", str(tmp_path / "binary"))
    assert binary.exit_code == 1 and "is not text" in binary.stderr  # it was a traceback


def test_service_account_create_external(cli, base_url, org, api):
    api.create_team("vision")
    assert cli("login", "--host", base_url, "--api-key", org.admin_key).exit_code == 0
    result = cli(
        "service-account", "create", "--team", "vision", "--description", "ci",
        "--subject", "repo:x", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["name"], body["subject"], body["api_key"]) == ("ci", "repo:x", None)
    builtin = cli("service-account", "create", "--team", "vision", "--description", "nightly")
    assert "API key (shown once): rc_" in builtin.stdout
    assert cli("service-account", "create", "--team", "nope", "--description", "x").exit_code == 1
