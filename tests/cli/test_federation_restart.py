"""Federated access tokens are persisted: issued by one ``rolecall serve`` process, they work on
another one sharing the database (a replica) and after every process has been restarted."""

from __future__ import annotations

import httpx

from tests.cli.test_serve import served
from tests.idp.jwt_issuer import JwtIssuer

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_access_token_works_on_a_replica_and_after_a_restart(cli_env, initialised, tmp_path):
    issuer = JwtIssuer().start()
    admin = {"Authorization": f"Bearer {initialised['api_key']}"}
    try:
        with (
            served(tmp_path / "a.log", **cli_env) as first,
            served(tmp_path / "b.log", **cli_env) as replica,
        ):
            registered = httpx.put(
                f"{first}/api/v1/federation/issuer", json={"issuer": issuer.issuer}, headers=admin
            )
            assert registered.status_code == 200, registered.text
            jwt = issuer.mint(sub=initialised["admin"], aud="acme")
            response = httpx.post(
                f"{first}/oidc/token", data={"grant_type": GRANT, "assertion": jwt}
            )
            assert response.status_code == 200, response.text
            token = {"Authorization": f"Bearer {response.json()['access_token']}"}
            viewer = httpx.get(f"{replica}/api/v1/viewer", headers=token)
            assert viewer.status_code == 200, viewer.text
            assert viewer.json()["credential"] == "access_token"
        with served(tmp_path / "c.log", **cli_env) as restarted:
            viewer = httpx.get(f"{restarted}/api/v1/viewer", headers=token)
            assert viewer.status_code == 200, viewer.text
            assert viewer.json()["email"] == initialised["admin"]
    finally:
        issuer.stop()
