"""Changes made at once to one document, against a live ``rolecall serve``: a custom role's
permission list and an organization's settings are each written back whole, so two writers
that read them at the same time (PostgreSQL) kept only their own change. Every change answered
200 must be there afterwards."""

from __future__ import annotations

import uuid

from tests.scim.conformance.conftest import LiveServer
from tests.threads import send_at_once

API = "/api/v1"
EXTRA = [
    "project:update",
    "project:delete",
    "run:delete",
    "run:move",
    "artifact:delete",
    "report:delete",
    "launchagent:create",
    "team:update",
    "project:manage_access",
    "team:manage_members",
]


def _headers(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def test_permissions_added_to_a_role_at_once_are_all_kept(live_server: LiveServer):
    name = f"r{uuid.uuid4().hex[:8]}"
    headers = _headers(live_server)
    created = send_at_once(
        live_server.base_url,
        headers,
        [("POST", f"{API}/roles", {"name": name, "inherited_from": "member"})],
    )
    assert created[0].status_code == 201, created[0].text

    answers = send_at_once(
        live_server.base_url,
        headers,
        [("PATCH", f"{API}/roles/{name}", {"add": [p]}) for p in EXTRA],
    )

    assert [a.status_code for a in answers] == [200] * len(EXTRA), [a.text for a in answers]
    [read] = send_at_once(live_server.base_url, headers, [("GET", f"{API}/roles/{name}", None)])
    assert sorted(read.json()["custom_permissions"]) == sorted(EXTRA)


def test_settings_changed_at_once_are_all_kept(live_server: LiveServer):
    tag = uuid.uuid4().hex[:8]
    headers = _headers(live_server)
    changes = [
        ("PATCH", f"{API}/sso/oidc", {"client_id": f"cid-{tag}"}),
        ("PATCH", f"{API}/sso/ldap", {"base_dn": f"dc={tag}"}),
        ("PATCH", f"{API}/sso/ldap", {"bind_dn": f"cn={tag}"}),
        ("PATCH", f"{API}/org", {"settings": {"session_length_hours": 17}}),
        ("PATCH", f"{API}/org", {"settings": {"disable_admin_team_access": True}}),
    ]

    answers = send_at_once(live_server.base_url, headers, changes)

    assert [a.status_code for a in answers] == [200] * len(changes), [a.text for a in answers]
    sso, org = send_at_once(
        live_server.base_url, headers, [("GET", f"{API}/sso", None), ("GET", f"{API}/org", None)]
    )
    if "oidc" not in sso.json():
        sso, org = org, sso  # answered in the order they arrived
    assert sso.json()["oidc"]["client_id"] == f"cid-{tag}"
    assert sso.json()["ldap"]["base_dn"] == f"dc={tag}"
    assert sso.json()["ldap"]["bind_dn"] == f"cn={tag}"
    assert org.json()["settings"]["session_length_hours"] == 17
    assert org.json()["settings"]["disable_admin_team_access"] is True
