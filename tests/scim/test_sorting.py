"""SCIM sorting (RFC 7644 §3.4.2.3): ``sortBy`` and ``sortOrder`` on Users, Groups and Roles,
by query string and by ``POST .search``, with filters and paging."""

from __future__ import annotations

import pytest

from tests.scim.conftest import GROUP_URN, ROLE_URN, USER_URN, assert_scim_error

USERS, GROUPS, ROLES = "/scim/v2/Users", "/scim/v2/Groups", "/scim/v2/Roles"
#: The users these tests make (the org's admin is left out by this filter).
OURS = 'userName sw "s-"'


def make_user(scim, name: str, family: str | None = None, external: str | None = None) -> str:
    body: dict = {"schemas": [USER_URN], "userName": name, "emails": [{"value": f"{name}@x.io"}]}
    if family is not None:
        body["name"] = {"givenName": "G", "familyName": family}
    if external is not None:
        body["externalId"] = external
    response = scim.post(USERS, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def listed(scim, path: str = USERS, key: str = "userName", **params: str) -> list:
    response = scim.get(path, params=params)
    assert response.status_code == 200, response.text
    return [resource.get(key) for resource in response.json()["Resources"]]


@pytest.fixture
def people(scim) -> dict[str, str]:
    """Names in mixed case, a missing family name, externalIds that differ in case only."""
    return {
        "s-bob": make_user(scim, "s-bob", "Zed", "b-2"),
        "S-Alice": make_user(scim, "S-Alice", "young", "B-1"),
        "s-carol": make_user(scim, "s-carol", None, "a-3"),
        "s-dave": make_user(scim, "s-dave", "young", None),
    }


def test_user_names_sort_case_insensitively_ascending_by_default(scim, people):
    names = listed(scim, filter=OURS, sortBy="userName")

    assert names == ["S-Alice", "s-bob", "s-carol", "s-dave"]
    assert listed(scim, filter=OURS, sortBy="userName", sortOrder="descending") == names[::-1]


def test_a_case_exact_attribute_sorts_as_stored_by_code_point(scim, people):
    """externalId is case-exact: "B-1" < "a-3" < "b-2" by code point, whatever the locale;
    a user without one comes last ascending, first descending."""
    order = listed(scim, key="externalId", filter=OURS, sortBy="externalId")

    assert order == ["B-1", "a-3", "b-2", None]
    down = listed(scim, key="externalId", filter=OURS, sortBy="externalId", sortOrder="Descending")
    assert down == [None, "b-2", "a-3", "B-1"]


def test_missing_values_come_last_ascending_and_ties_keep_one_order(scim, people):
    up = listed(scim, filter=OURS, sortBy="name.familyName")
    down = listed(scim, filter=OURS, sortBy="name.familyName", sortOrder="descending")

    # "young" twice: the usual order (by id) decides between them, the same both ways.
    young = sorted(["S-Alice", "s-dave"], key=lambda n: people[n])
    assert up == [*young, "s-bob", "s-carol"]
    assert down == ["s-carol", "s-bob", *young]


def test_sort_by_takes_the_schema_qualified_name_in_any_case(scim, people):
    plain = listed(scim, filter=OURS, sortBy="name.familyName", sortOrder="descending")

    qualified = listed(
        scim, filter=OURS, sortBy=f"{USER_URN}:name.familyName", sortOrder="DESCENDING"
    )

    assert qualified == plain
    assert listed(scim, filter=OURS, sortBy="NAME.FAMILYNAME", sortOrder="descending") == plain


def test_a_multi_valued_attribute_sorts_by_its_value(scim, people):
    assert listed(scim, filter=OURS, sortBy="emails") == listed(
        scim, filter=OURS, sortBy="emails.value"
    )
    assert listed(scim, filter=OURS, sortBy="emails")[0] == "S-Alice"


def test_sorted_pages_are_stable_and_do_not_overlap(scim, people):
    for n in range(5):
        make_user(scim, f"s-tie{n}", "same")
    whole = listed(scim, filter=OURS, sortBy="name.familyName", count="100")

    pages = [
        listed(scim, filter=OURS, sortBy="name.familyName", startIndex=str(start), count="3")
        for start in (1, 4, 7)
    ]

    assert [name for page in pages for name in page] == whole
    assert len(whole) == len(set(whole)) == 9


def test_search_by_post_sorts_too(scim, people):
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": OURS,
        "sortBy": "userName",
        "sortOrder": "descending",
    }
    response = scim.post(f"{USERS}/.search", json=body)

    assert response.status_code == 200, response.text
    names = [r["userName"] for r in response.json()["Resources"]]
    assert names == ["s-dave", "s-carol", "s-bob", "S-Alice"]


def test_groups_sort_by_display_name_case_insensitively(scim):
    for name in ("beta", "Alpha", "gamma"):
        made = scim.post(GROUPS, json={"schemas": [GROUP_URN], "displayName": name})
        assert made.status_code == 201, made.text

    names = listed(scim, GROUPS, "displayName", sortBy="displayName")

    assert names == ["Alpha", "beta", "gamma"]
    assert listed(scim, GROUPS, "displayName", sortBy="displayName", sortOrder="descending") == [
        "gamma",
        "beta",
        "Alpha",
    ]


def test_roles_sort_by_their_case_sensitive_name(scim):
    for name in ("b role", "A role", "a role"):
        body = {"schemas": [ROLE_URN], "name": name, "inheritedFrom": "member", "permissions": []}
        made = scim.post(ROLES, json=body)
        assert made.status_code == 201, made.text

    assert listed(scim, ROLES, "name", sortBy="name") == ["A role", "a role", "b role"]


def test_without_sort_by_the_usual_order_stays_and_sort_order_alone_is_ignored(scim, people):
    by_id = sorted(people, key=lambda n: people[n])

    assert listed(scim, filter=OURS) == by_id
    assert listed(scim, filter=OURS, sortOrder="descending") == by_id


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (USERS, {"sortBy": "name"}),  # complex: name a sub-attribute
        (USERS, {"sortBy": "password"}),  # not stored
        (USERS, {"sortBy": "nickName"}),  # not supported
        (USERS, {"sortBy": "userName pr"}),  # not an attribute path
        (USERS, {"sortBy": 'emails[type eq "work"]'}),
        (USERS, {"sortBy": "urn:example:other:userName"}),
        (USERS, {"sortBy": "u" * 300}),
        (USERS, {"sortBy": "userName", "sortOrder": "sideways"}),
        (USERS, {"sortOrder": "up"}),
        (GROUPS, {"sortBy": "members"}),  # several values per group
        (GROUPS, {"sortBy": "members.value"}),
        (USERS, {"sortBy": "groups.display"}),  # several values per user
        (USERS, {"sortBy": "teamRoles.teamName"}),
        (ROLES, {"sortBy": "permissions"}),
    ],
)
def test_what_cannot_be_sorted_on_is_invalid_value(scim, path, params):
    body = assert_scim_error(scim.get(path, params=params), 400, "invalidValue")

    assert "sort" in body["detail"]


def test_a_search_request_with_a_non_string_sort_is_invalid_value(scim):
    for body in ({"sortBy": ["userName"]}, {"sortBy": "userName", "sortOrder": 1}):
        assert_scim_error(scim.post(f"{USERS}/.search", json=body), 400, "invalidValue")


def test_names_sort_ignoring_case_in_any_script(scim):
    """ "élise" < "éric" < "Øystein" whatever their case: every letter is folded before the
    code points are compared, not only ASCII ones."""
    for name, family in [("s-1", "Éric"), ("s-2", "élise"), ("s-3", "øystein"), ("s-4", "Émile")]:
        make_user(scim, name, family)

    families = listed(scim, key="name", filter=OURS, sortBy="name.familyName")

    assert [name["familyName"] for name in families] == ["élise", "Émile", "Éric", "øystein"]


def test_the_service_provider_config_says_sort_is_supported(scim):
    config = scim.get("/scim/v2/ServiceProviderConfig").json()

    assert config["sort"] == {"supported": True}


def test_code_point_order_holds_whatever_the_collation(db, backend):
    """A column (or a database) collated by a locale orders "a" before "B"; ``by_code_point``
    orders by code point all the same: PostgreSQL's ICU root locale, SQLite's NOCASE."""
    from sqlalchemy import column, select, table, text

    from rolecall.db.text import by_code_point

    collation = '"und-x-icu"' if backend == "postgres" else "NOCASE"
    db.execute(text(f"CREATE TEMPORARY TABLE sorted_names (name TEXT COLLATE {collation})"))
    db.execute(text("INSERT INTO sorted_names VALUES ('b-2'), ('a-3'), ('B-1')"))
    names = table("sorted_names", column("name"))

    as_collated = db.scalars(select(names.c.name).order_by(names.c.name, names.c.name.desc()))
    by_code = db.scalars(select(names.c.name).order_by(by_code_point(names.c.name)))

    assert list(as_collated) != ["B-1", "a-3", "b-2"]
    assert list(by_code) == ["B-1", "a-3", "b-2"]
