"""Users created at the same moment for one email or one name (issue 3, "Scale and
concurrency"): each request is answered as it would be alone.

On PostgreSQL two creates can both find an email or a username free, and the second insert
then meets the first's unique key. That request runs again from its start
(``db.session.runs_again_after``) and sees the first one's user: it joins it (multi-org mode),
takes the next free username, or is refused for the taken email or name in the usual words,
never with "taken at the same moment; retry". On SQLite the writers take turns, so the same
tests show the answers a lone request gets.
"""

from __future__ import annotations

import re

import httpx

from tests.scim.conformance.conftest import LiveServer
from tests.scim.conftest import SCIM_JSON, new_user
from tests.threads import send_at_once

CLIENTS = 8


BULK_URN = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _create_at_once(
    server: LiveServer, bodies: list[dict], path: str = "/scim/v2/Users"
) -> list[httpx.Response]:
    """POST each of ``bodies`` to ``path`` from a client of its own, released together."""
    headers = {"Authorization": server.basic_auth, "Content-Type": SCIM_JSON}
    return send_at_once(server.base_url, headers, [("POST", path, body) for body in bodies])


#: What a lone create of an existing user is told: its email is in the organization, or (when
#: the other create committed between the email's check and the name's) its userName is taken.
EXISTING = re.compile(r"already a user of this organization|the userName '[^']+' is taken")


def _assert_created_once_else_refused_as_existing(answers: list[tuple[str, dict]]) -> None:
    """One (status, SCIM body) is a 201; every other is a 409 a lone create of an existing
    user gets, never "taken at the same moment; retry"."""
    assert sorted(status for status, _ in answers) == ["201"] + ["409"] * (CLIENTS - 1), answers
    for status, error in answers:
        if status == "409":
            assert error["scimType"] == "uniqueness"
            assert EXISTING.search(error["detail"]), error


def test_simultaneous_creates_of_one_user_give_one_201_and_the_usual_409s(
    live_server: LiveServer,
) -> None:
    for round_ in range(3):
        body = new_user(f"twice-{round_}@example.com")
        responses = _create_at_once(live_server, [body] * CLIENTS)
        answers = [(str(r.status_code), r.json()) for r in responses]
        _assert_created_once_else_refused_as_existing(answers)
    assert "Traceback" not in live_server.log.read_text()


def test_simultaneous_rest_creates_of_one_user_give_one_201_and_the_usual_409s(
    live_server: LiveServer,
) -> None:
    body = {"email": "rest-twice@example.com"}
    responses = _create_at_once(live_server, [body] * CLIENTS, path="/api/v1/users")
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (CLIENTS - 1), [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        assert "already a user of this organization" in refused.text, refused.text
    assert "Traceback" not in live_server.log.read_text()


def test_simultaneous_bulk_creates_of_one_user_answer_each_operation_as_if_alone(
    live_server: LiveServer,
) -> None:
    """A Bulk request whose create lost to another request's runs again as a whole (nothing of
    it is committed yet), and its operation is then refused for the existing user."""
    operation = {"method": "POST", "path": "/Users", "bulkId": "u", "data": new_user("bulk@x.io")}
    body = {"schemas": [BULK_URN], "Operations": [operation]}
    responses = _create_at_once(live_server, [body] * CLIENTS, path="/scim/v2/Bulk")
    assert [r.status_code for r in responses] == [200] * CLIENTS, [r.text for r in responses]
    results = [r.json()["Operations"][0] for r in responses]
    answers = [(result["status"], result.get("response", {})) for result in results]
    _assert_created_once_else_refused_as_existing(answers)
    assert "Traceback" not in live_server.log.read_text()


def test_simultaneous_creates_whose_usernames_collide_all_succeed(
    live_server: LiveServer,
) -> None:
    """Entra ID sends the user principal name as ``userName``; people of different domains
    with one local part derive the same username, and each gets a free one of its own."""
    bodies = [new_user(f"jsmith@d{i}.example.com") for i in range(CLIENTS)]
    responses = _create_at_once(live_server, bodies)
    assert [r.status_code for r in responses] == [201] * CLIENTS, [r.text for r in responses]
    headers = {"Authorization": live_server.basic_auth}
    with httpx.Client(base_url=f"{live_server.base_url}/api/v1", headers=headers) as api:
        usernames = [api.get(f"/users/{r.json()['id']}").json()["username"] for r in responses]
    assert len(set(usernames)) == CLIENTS and "jsmith" in usernames, usernames
    assert "Traceback" not in live_server.log.read_text()
