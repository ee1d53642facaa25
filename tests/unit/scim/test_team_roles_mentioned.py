"""Which teams a SCIM user write holds before the user's own row (``teams.writes``' lock
order): ``scim.users._mentions_team_roles`` reads them off the body, however it is sent."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.scim.users import _mentions_team_roles

ROLE = {"teamName": "vision", "roleName": "admin"}


@pytest.mark.parametrize(
    ("body", "mentions", "named"),
    [
        ({"Operations": [{"op": "add", "path": "teamRoles", "value": [ROLE]}]}, True, {"vision"}),
        ({"Operations": [{"op": "Replace", "value": {"TeamRoles": [ROLE]}}]}, True, {"vision"}),
        ({"Operations": [{"op": "remove", "path": "teamRoles"}]}, True, set()),
        (
            {"Operations": [{"op": "remove", "path": 'teamRoles[teamName eq "nlp"]'}]},
            True,
            set(),
        ),
        ({"userName": "ada", "teamRoles": [ROLE, {"teamName": "nlp"}]}, True, {"vision", "nlp"}),
        ({"Operations": [{"op": "replace", "path": "active", "value": False}]}, False, set()),
        ({"userName": "ada", "name": {"givenName": "Ada"}}, False, set()),
        ([[[[{"teamRoles": []}]]]], True, set()),
        (None, False, set()),
    ],
)
def test_the_teams_a_body_may_change_are_found(body: Any, mentions: bool, named: set) -> None:
    found: set[str] = set()
    assert _mentions_team_roles(body, found) is mentions
    assert found == named


def test_a_body_nested_deeper_than_the_stack_is_walked() -> None:
    body: Any = {"teamRoles": []}
    for _ in range(100_000):
        body = [body]
    assert _mentions_team_roles(body, set())
