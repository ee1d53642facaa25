"""SCIM /Users: create, get, list with filters and paging, PUT, PATCH, DELETE."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.orgs.models import OrgMembership
from rolecall.runs.models import Run
from rolecall.teams.models import Team
from rolecall.users.models import User
from tests import factories
from tests.scim.conftest import GROUP_URN, USER_URN, assert_scim_error, new_user, patch

USERS = "/scim/v2/Users"


def create(scim, user_name: str = "ada@example.com", **extra) -> dict:
    response = scim.post(USERS, json=new_user(user_name, **extra))
    assert response.status_code == 201, response.text
    return response.json()


def events(db, action: str) -> list[AuditEvent]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- create -------------------------------------------------------------------------------------


def test_create_returns_the_user_with_location_equal_to_meta_location(scim, db, org):
    response = scim.post(USERS, json=new_user("Ada.Lovelace@Example.com", externalId="okta-1"))

    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [USER_URN]
    assert body["userName"] == "Ada.Lovelace@Example.com"
    assert body["externalId"] == "okta-1"
    assert body["name"] == {
        "givenName": "Ada",
        "familyName": "Lovelace",
    }
    # The domain part of an address is case-insensitive: it is stored lower-cased.
    assert body["emails"] == [
        {"value": "Ada.Lovelace@example.com", "type": "work", "primary": True}
    ]
    assert body["active"] is True
    assert body["organizationRole"] == "member"
    assert body["teamRoles"] == [] and body["groups"] == []
    assert response.headers["Location"] == body["meta"]["location"]
    assert body["meta"]["location"] == f"http://testserver:80/scim/v2/Users/{body['id']}"
    assert body["meta"]["resourceType"] == "User"
    assert "password" not in body
    [event] = events(db, "user.create")
    assert event.surface == "scim" and event.actor_id == org.admin.id


def test_location_uses_the_public_url_and_the_prefix_used(make_client, org):
    client = make_client(public_url="https://iam.example.com/")
    response = client.post("/scim/Users", json=new_user(), headers=org.admin_headers)

    assert response.status_code == 201
    body = response.json()
    assert body["meta"]["location"] == f"https://iam.example.com/scim/Users/{body['id']}"
    assert response.headers["Location"] == body["meta"]["location"]


def test_a_valid_username_becomes_the_username(scim, db):
    body = create(scim, "dev-user1", emails=[{"value": "dev-user1@test.com"}])

    assert body["userName"] == "dev-user1"
    user = db.get(User, body["id"])
    assert user.username == "dev-user1" and user.user_name is None


def test_password_unknown_attributes_and_extensions_are_accepted_and_ignored(scim):
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    body = new_user(
        password="S3cret!x",
        locale="en-US",
        title="Engineer",
        phoneNumbers=[{"value": "+1 555", "type": "work"}],
        schemas=[USER_URN, enterprise],
        **{enterprise: {"department": "R&D", "manager": {"value": "x"}}},
    )
    response = scim.post(USERS, json=body)

    assert response.status_code == 201, response.text
    created = response.json()
    assert "password" not in created and "locale" not in created and enterprise not in created
    fetched = scim.get(f"{USERS}/{created['id']}").json()
    assert "password" not in fetched


def test_duplicate_username_is_409_uniqueness_case_insensitively(scim):
    create(scim, "ada@example.com")
    response = scim.post(
        USERS, json=new_user("ADA@EXAMPLE.COM", emails=[{"value": "other@example.com"}])
    )

    assert_scim_error(response, 409, "uniqueness")


def test_duplicate_email_is_409_uniqueness(scim):
    create(scim, "ada@example.com")
    response = scim.post(USERS, json=new_user("ada2", emails=[{"value": "Ada@example.com"}]))

    assert_scim_error(response, 409, "uniqueness")


def test_username_of_an_existing_rest_user_is_taken(scim, db, org):
    factories.user(db, org.org, username="grace")
    response = scim.post(USERS, json=new_user("Grace", emails=[{"value": "g2@example.com"}]))

    assert_scim_error(response, 409, "uniqueness")


def test_a_derived_username_avoids_another_users_login_name(scim, db):
    """A username derived from the email skips a name that is some user's ``userName`` (one
    namespace), instead of refusing the create."""
    grace = create(scim, "grace-smith", emails=[{"value": "grace.smith@example.com"}])
    renamed = scim.patch(
        f"{USERS}/{grace['id']}", json=patch({"op": "replace", "path": "userName", "value": "ada"})
    )
    assert renamed.status_code == 200, renamed.text

    body = create(scim, "ada@example.com")

    assert body["userName"] == "ada@example.com"
    assert db.get(User, body["id"]).username == "ada-2"


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"schemas": [USER_URN], "emails": [{"value": "a@example.com"}]}, "invalidValue"),
        ({"userName": "nobody"}, "invalidValue"),
        ({"userName": "a@example.com", "active": "maybe"}, "invalidValue"),
        ({"userName": 42}, "invalidValue"),
        ({"userName": "x@example.com", "emails": "x"}, "invalidValue"),
        ({"userName": "x@example.com", "organizationRole": "owner"}, "invalidValue"),
        ({"userName": "not an email", "emails": [{"value": "not-an-email"}]}, "invalidValue"),
        ([1, 2], "invalidSyntax"),
    ],
)
def test_bad_create_bodies_are_400_with_scim_type(scim, db, body, scim_type):
    before = db.scalar(select(User.id).order_by(User.created_at.desc()).limit(1))
    response = scim.post(USERS, json=body)

    assert_scim_error(response, 400, scim_type)
    db.expire_all()
    assert db.scalar(select(User.id).order_by(User.created_at.desc()).limit(1)) == before


def test_malformed_json_is_invalid_syntax(scim):
    response = scim.post(USERS, content=b'{"userName": ')

    assert_scim_error(response, 400, "invalidSyntax")


#: A JSON escape of a lone UTF-16 surrogate (RFC 8259 §8.2): no Unicode text.
LONE = rb"\ud800"
#: One level of a path-less PATCH value nested inside the core schema's URN.
_URN_KEYS = b'{"urn:ietf:params:scim:schemas:core:2.0:User": '
#: Bodies no database can store or no stack can parse, by name: (method, path, body).
REFUSED_BODIES = {
    "user": ("POST", USERS, b'{"userName": "a' + LONE + b'@example.com"}'),
    "group": ("POST", "/scim/v2/Groups", b'{"displayName": "g' + LONE + b'"}'),
    "role": ("POST", "/scim/v2/Roles", b'{"name": "r' + LONE + b'", "inheritedFrom": "member"}'),
    "search": ("POST", f"{USERS}/.search", b'{"filter": "displayName co \\"' + LONE + b'\\""}'),
    "bulk": ("POST", "/scim/v2/Bulk", b'{"Operations": [{"data": {"userName": "' + LONE + b'"}}]}'),
    "patch": ("PATCH", f"{USERS}/ID", b'{"Operations": [{"op": "add", "value": "' + LONE + b'"}]}'),
    "put": ("PUT", f"{USERS}/ID", b'{"userName": "x@example.com", "externalId": "' + LONE + b'"}'),
    "deep": ("POST", USERS, b"[" * 50_000),
    "deep-patch": ("PATCH", f"{USERS}/ID", b'{"Operations": [{"value": ' + b"[" * 5_000),
    # JSON that parses, nested past what the readers after the parser walk by recursion: a
    # path-less value inside its schema's URN, again and again (the PATCH and the create
    # were 500s), and a Bulk operation's data (searched for bulkId references: a 500).
    "deep-urn-patch": (
        "PATCH",
        f"{USERS}/ID",
        b'{"Operations": [{"op": "replace", "value": '
        + _URN_KEYS * 700
        + b'{"displayName": "Deep"}'
        + b"}" * 700
        + b"}]}",
    ),
    "deep-urn-create": (
        "POST",
        USERS,
        b'{"userName": "deep@example.com", ' + _URN_KEYS[1:] + _URN_KEYS * 699 + b"{}" + b"}" * 700,
    ),
    "deep-bulk": (
        "POST",
        "/scim/v2/Bulk",
        b'{"Operations": [{"method": "POST", "path": "/Users", "bulkId": "b", "data": '
        + b'{"userName": "deep@example.com", "x": '
        + b"[" * 600
        + b"]" * 600
        + b"}}]}",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BODIES))
def test_text_no_database_stores_and_nesting_too_deep_are_invalid_syntax(scim, db, case):
    """A lone UTF-16 surrogate escape (RFC 8259 §8.2), or arrays and objects nested past the
    stack or past ``strict_json.MAX_DEPTH``: 400 ``invalidSyntax`` that names it, and nothing
    written (most were 500s)."""
    user = create(scim, "kept@example.com", displayName="Kept")
    users_before = db.scalar(select(func.count()).select_from(User))
    method, path, content = REFUSED_BODIES[case]

    response = scim.request(method, path.replace("ID", user["id"]), content=content)

    body = assert_scim_error(response, 400, "invalidSyntax")
    assert "surrogate" in body["detail"] or "deep" in body["detail"]
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(User)) == users_before
    assert db.get(User, user["id"]).full_name == "Kept"


def test_create_inactive_user(scim, db):
    body = create(scim, "off@example.com", active="False")

    assert body["active"] is False
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == body["id"]))
    assert membership.active is False and membership.deactivated_at is not None


# --- get and list -------------------------------------------------------------------------------


def test_get_unknown_user_is_404(scim):
    assert_scim_error(scim.get(f"{USERS}/no-such-id"), 404)


def test_user_of_another_org_is_not_found(scim, db):
    other = factories.bootstrap(db)
    assert_scim_error(scim.get(f"{USERS}/{other.admin.id}"), 404)


def test_no_match_lookup_is_200_with_an_empty_list(scim):
    response = scim.get(USERS, params={"filter": 'userName eq "nobody@example.com"'})

    assert response.status_code == 200
    assert response.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_username_filter_is_case_insensitive(scim):
    created = create(scim, "Ada@Example.com")

    response = scim.get(USERS, params={"filter": 'userName eq "ada@example.COM"'})

    body = response.json()
    assert body["totalResults"] == 1 and body["Resources"][0]["id"] == created["id"]


@pytest.mark.parametrize(
    "filter_text",
    [
        'displayName eq "élise łukasiewicz"',
        'displayName co "ÉLISE Ł"',
        'name.givenName sw "él"',
        'name.familyName ew "WICZ"',
        'name.familyName eq "ŁUKASIEWICZ"',
        'not (name.givenName ne "ÉLISE")',
    ],
)
def test_case_insensitive_filters_fold_every_letter_not_only_ascii(scim, filter_text):
    """Attributes that are not case-exact compare ignoring case in any script (RFC 7643 §2.2):
    "Élise" and "élise" are one name on both backends (SQLite's own ``lower`` and ``LIKE``
    fold ASCII letters only)."""
    created = create(
        scim,
        "elise@example.com",
        displayName="Élise Łukasiewicz",
        name={"givenName": "Élise", "familyName": "Łukasiewicz"},
    )
    create(scim, "other@example.com", displayName="Émile", name={"givenName": "Émile"})

    found = scim.get(USERS, params={"filter": filter_text}).json()

    assert [r["id"] for r in found["Resources"]] == [created["id"]]


def test_external_id_filter_is_case_exact(scim):
    create(scim, "a@example.com", externalId="Abc-1")

    found = scim.get(USERS, params={"filter": 'externalId eq "Abc-1"'}).json()
    missed = scim.get(USERS, params={"filter": 'externalId eq "abc-1"'}).json()
    assert found["totalResults"] == 1 and missed["totalResults"] == 0


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ('userName sw "ALPHA"', {"alpha@example.com"}),
        ('userName ew "@other.org"', {"beta@other.org"}),
        ('userName co "ph"', {"alpha@example.com"}),
        ('userName ne "alpha@example.com"', {"beta@other.org", "gamma"}),
        ('name.givenName eq "Ada" and name.familyName eq "Byron"', {"beta@other.org"}),
        ('name.familyName eq "Byron" or userName eq "gamma"', {"beta@other.org", "gamma"}),
        ('not (userName eq "gamma")', {"alpha@example.com", "beta@other.org"}),
        ("active eq false", {"gamma"}),
        (
            'active eq "true" and (userName sw "a" or userName sw "b")',
            {"alpha@example.com", "beta@other.org"},
        ),
        ("externalId pr", {"alpha@example.com"}),
        ("not (externalId pr)", {"beta@other.org", "gamma"}),
        ('emails[type eq "work" and value ew "example.com"]', {"alpha@example.com", "gamma"}),
        ('emails.value eq "GAMMA@example.com"', {"gamma"}),
        ('emails eq "beta@other.org"', {"beta@other.org"}),
        ('organizationRole eq "Viewer"', {"gamma"}),
        (
            'meta.created gt "2000-01-01T00:00:00Z"',
            {"alpha@example.com", "beta@other.org", "gamma"},
        ),
        ('meta.lastModified lt "2000-01-01T00:00:00Z"', set()),
        ('displayName co "lady"', {"alpha@example.com"}),
        ('USERNAME EQ "GAMMA"', {"gamma"}),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "gamma"', {"gamma"}),
    ],
)
def test_filters(scim, org, filter_text, expected):
    create(scim, "alpha@example.com", externalId="A1", displayName="Lady Ada")
    create(scim, "beta@other.org", name={"givenName": "Ada", "familyName": "Byron"})
    create(
        scim,
        "gamma",
        emails=[{"value": "gamma@example.com"}],
        active=False,
        organizationRole="viewer",
    )

    response = scim.get(USERS, params={"filter": filter_text, "count": "50"})

    assert response.status_code == 200, response.text
    names = {r["userName"] for r in response.json()["Resources"]}
    assert names - {org.admin.username} == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ('groups.value eq "{science}"', {"alpha", "beta"}),
        ('groups[value eq "{ops}"]', {"gamma"}),
        ('groups eq "{ops}"', {"gamma"}),
        ('groups.display eq "DATA SCIENCE"', {"alpha", "beta"}),
        ('groups[display sw "data"] and userName ne "beta"', {"alpha"}),
        ('groups.value eq "{science}" or groups.value eq "{ops}"', {"alpha", "beta", "gamma"}),
        ('groups.value eq "{science}" and groups.value eq "{ops}"', set()),
        ('groups.value ne "{science}"', {"gamma"}),
        ("groups pr", {"alpha", "beta", "gamma"}),
        ('groups.type eq "direct"', {"alpha", "beta", "gamma"}),
        ("not (groups pr)", {"delta"}),
        ('not (groups.value eq "{science}")', {"gamma", "delta"}),
        ('groups.value eq "no-such-group"', set()),
    ],
)
def test_users_filtered_by_their_groups(scim, db, org, filter_text, expected):
    ids = {
        name: create(scim, name, emails=[{"value": f"{name}@example.com"}])["id"]
        for name in ("alpha", "beta", "gamma", "delta")
    }
    science = scim.post(
        "/scim/v2/Groups",
        json={
            "schemas": [GROUP_URN],
            "displayName": "Data Science",
            "members": [{"value": ids["alpha"]}, {"value": ids["beta"]}],
        },
    ).json()["id"]
    ops = scim.post(
        "/scim/v2/Groups",
        json={"schemas": [GROUP_URN], "displayName": "Ops", "members": [{"value": ids["gamma"]}]},
    ).json()["id"]
    # A personal entity is no group: delta's membership of its own does not count.
    personal = db.scalar(select(Team).where(Team.personal_owner_id == ids["delta"]))
    factories.member(db, personal, db.get(User, ids["delta"]), role="admin")

    query = filter_text.replace("{science}", science).replace("{ops}", ops)
    response = scim.get(USERS, params={"filter": query, "count": "50"})

    assert response.status_code == 200, response.text
    names = {r["userName"] for r in response.json()["Resources"]}
    assert names - {org.admin.username} == expected
    assert response.json()["totalResults"] == len(names)


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ('teamRoles[teamName eq "ML" and roleName eq "admin"]', {"alpha"}),
        ('teamRoles[teamName eq "ml" and roleName eq "viewer"]', set()),
        ('teamRoles.teamName eq "ml"', {"alpha", "beta"}),
        ('teamRoles eq "OPS"', {"gamma"}),
        ('teamRoles.roleName eq "Admin"', {"alpha"}),
        ('teamRoles.roleName eq "lead"', {"gamma"}),
        ('teamRoles.roleName sw "mem"', {"beta"}),
        ('teamRoles[roleName eq "admin"] and teamRoles[teamName eq "ops"]', set()),
        ("teamRoles pr", {"alpha", "beta", "gamma"}),
        ("not (teamRoles pr)", {"delta"}),
    ],
)
def test_users_filtered_by_their_team_roles(scim, db, org, filter_text, expected):
    """The seeds' ``teamRoles``: a role in a team, predefined or custom, as a User shows it;
    the team name and the role name compare ignoring case, as the User schema declares."""
    users = {
        name: db.get(User, create(scim, name, emails=[{"value": f"{name}@example.com"}])["id"])
        for name in ("alpha", "beta", "gamma", "delta")
    }
    ml, ops = factories.team(db, org.org, name="ml"), factories.team(db, org.org, name="ops")
    factories.member(db, ml, users["alpha"], role="admin")
    factories.member(db, ml, users["beta"], role="member")
    lead = factories.custom_role(db, org.org, name="Lead")
    factories.member(db, ops, users["gamma"], custom_role=lead)
    # A service account of the team: a membership that names no user.
    factories.service_account(db, org.org, ops)
    shown = scim.get(f"{USERS}/{users['gamma'].id}").json()["teamRoles"]

    response = scim.get(USERS, params={"filter": filter_text, "count": "50"})

    assert shown == [{"teamName": "ops", "roleName": "Lead"}]
    assert response.status_code == 200, response.text
    names = {r["userName"] for r in response.json()["Resources"]}
    assert names - {org.admin.username} == expected


def test_a_group_of_another_organization_matches_no_user(scim, db, org):
    """A user of two organizations, in a team of the other one: listed in this one, it is
    not found by that team, whose id another organization's admin must not learn to match."""
    user = db.get(User, create(scim, "alpha@example.com")["id"])
    other = factories.bootstrap(db)
    db.add(OrgMembership(org_id=other.org.id, user_id=user.id, role="member", active=True))
    elsewhere = factories.team(db, other.org, name="elsewhere")
    factories.member(db, elsewhere, user)
    db.flush()

    by_id = scim.get(USERS, params={"filter": f'groups.value eq "{elsewhere.id}"'})
    by_name = scim.get(USERS, params={"filter": 'groups.display eq "elsewhere"'})
    anyone = scim.get(USERS, params={"filter": "groups pr"})

    for response in (by_id, by_name, anyone):
        assert response.status_code == 200, response.text
        assert response.json()["totalResults"] == 0, response.text


@pytest.mark.parametrize(
    "filter_text",
    [
        "userName eq",
        'userName zz "x"',
        'nosuch eq "x"',
        "active gt true",
        'meta.created gt "yesterday"',
        # In UTC, as stored, beyond the calendar's ends (were 500s: OverflowError).
        'meta.created gt "0001-01-01T00:00:00+00:01"',
        'meta.lastModified lt "9999-12-31T23:59:59-01:00"',
        "userName eq 5",
        'name eq "x"',
        'urn:other:schema:userName eq "x"',
        '(userName eq "x"',
        'groups.nosuch eq "x"',
        "groups.value eq 5",
        "teamRoles.roleName eq true",
        "teamRoles.teamName gt false",
        'teamRoles[nosuch eq "x"]',
    ],
)
def test_bad_filters_are_invalid_filter(scim, filter_text):
    assert_scim_error(scim.get(USERS, params={"filter": filter_text}), 400, "invalidFilter")


def test_caseexact_co_and_sw_are_case_sensitive(scim):
    create(scim, "a@example.com", externalId="ExtAbc")

    for filter_text, total in (
        ('externalId co "tAb"', 1),
        ('externalId co "tab"', 0),
        ('externalId sw "Ext"', 1),
        ('externalId sw "ext"', 0),
        ('externalId ew "Abc"', 1),
        ('externalId ew "abc"', 0),
    ):
        body = scim.get(USERS, params={"filter": filter_text}).json()
        assert body["totalResults"] == total, filter_text


def test_paging_is_stable_and_pages_do_not_overlap(scim):
    for n in range(7):
        create(scim, f"p{n}@example.com")
    total = scim.get(USERS, params={"count": "0"}).json()
    assert total["totalResults"] == 8 and total["Resources"] == []

    seen: list[str] = []
    for start in (1, 4, 7):
        page = scim.get(USERS, params={"startIndex": str(start), "count": "3"}).json()
        assert page["startIndex"] == start and page["totalResults"] == 8
        assert page["itemsPerPage"] == len(page["Resources"])
        seen += [r["id"] for r in page["Resources"]]
    assert len(seen) == 8 and len(set(seen)) == 8
    assert seen == sorted(seen)


def test_start_index_below_one_counts_as_one_and_bad_numbers_are_invalid_value(scim):
    assert scim.get(USERS, params={"startIndex": "0"}).json()["startIndex"] == 1
    assert_scim_error(scim.get(USERS, params={"count": "ten"}), 400, "invalidValue")


def test_attributes_and_excluded_attributes(scim):
    create(scim)

    only = scim.get(USERS, params={"attributes": "userName,name.givenName"}).json()
    resource = only["Resources"][0]
    assert set(resource) == {"schemas", "id", "userName", "name"} or set(resource) == {
        "schemas",
        "id",
        "userName",
    }
    ada = scim.get(
        USERS, params={"filter": 'userName eq "ada@example.com"', "attributes": "name.givenName"}
    ).json()["Resources"][0]
    assert ada["name"] == {"givenName": "Ada"} and "userName" not in ada

    without = scim.get(USERS, params={"excludedAttributes": "groups,teamRoles,emails.type"})
    resource = without.json()["Resources"][0]
    assert "groups" not in resource and "teamRoles" not in resource
    assert "type" not in resource["emails"][0] and "id" in resource


def test_organization_role_and_team_roles_are_shown(scim, db, org):
    team = factories.team(db, org.org, name="team1")
    created = create(scim)
    user = db.get(User, created["id"])
    factories.member(db, team, user, role="admin")

    body = scim.get(f"{USERS}/{created['id']}").json()

    assert body["teamRoles"] == [{"teamName": "team1", "roleName": "admin"}]
    assert body["groups"][0]["value"] == team.id and body["groups"][0]["display"] == "team1"
    assert body["organizationRole"] == "member"


# --- PUT ----------------------------------------------------------------------------------------


def test_put_with_id_meta_groups_and_password_replaces_the_user(scim, db):
    created = create(scim, externalId="x1", displayName="Ada L")
    body = dict(created)
    body.update(
        {
            "userName": "ada.l@example.com",
            "name": {"givenName": "Augusta"},
            "password": "secret",
            "groups": [{"value": "whatever"}],
            "emails": [{"value": "ada.l@example.com", "primary": True}],
        }
    )
    del body["displayName"]

    response = scim.put(f"{USERS}/{created['id']}", json=body)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["userName"] == "ada.l@example.com"
    assert updated["emails"][0]["value"] == "ada.l@example.com"
    assert updated["name"] == {"givenName": "Augusta"}
    assert "displayName" not in updated and updated["externalId"] == "x1"
    assert "password" not in updated
    assert db.get(User, created["id"]).password_hash is None


def test_put_without_username_is_invalid_value(scim):
    created = create(scim)
    response = scim.put(f"{USERS}/{created['id']}", json={"schemas": [USER_URN]})

    assert_scim_error(response, 400, "invalidValue")


def test_put_clears_what_it_leaves_out_but_organization_role_and_team_roles(scim, db, org):
    # An identity provider's PUT carries only the attributes its mapping names: an admin whose
    # role is not mapped must not be demoted by a profile push, nor leave their teams.
    factories.team(db, org.org, name="team1")
    created = create(
        scim,
        organizationRole="admin",
        teamRoles=[{"teamName": "team1", "roleName": "admin"}],
        externalId="okta-1",
        displayName="Ada L",
    )

    response = scim.put(f"{USERS}/{created['id']}", json=new_user(name={"givenName": "Augusta"}))

    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["name"] == {"givenName": "Augusta"}
    assert "externalId" not in replaced and "displayName" not in replaced  # replaced: cleared
    assert replaced["organizationRole"] == "admin"
    assert replaced["teamRoles"] == [{"teamName": "team1", "roleName": "admin"}]


def _in_two_teams(scim, db, org) -> str:
    factories.team(db, org.org, name="team1")
    factories.team(db, org.org, name="team2")
    roles = [
        {"teamName": "team1", "roleName": "member"},
        {"teamName": "team2", "roleName": "admin"},
    ]
    return f"{USERS}/{create(scim, teamRoles=roles)['id']}"


def test_put_with_team_roles_leaves_the_teams_it_does_not_name(scim, db, org):
    # RFC 7644 §3.5.1: PUT replaces; teamRoles, when the body carries it, is all the teams.
    url = _in_two_teams(scim, db, org)

    body = new_user(teamRoles=[{"teamName": "TEAM1", "roleName": "admin"}])
    response = scim.put(url, json=body)

    assert response.status_code == 200, response.text
    assert response.json()["teamRoles"] == [{"teamName": "team1", "roleName": "admin"}]
    assert scim.get(url).json()["teamRoles"] == [{"teamName": "team1", "roleName": "admin"}]
    assert [e.object_name for e in events(db, "team.member.remove")] == ["team2"]


@pytest.mark.parametrize("team_roles", [None, []])
def test_put_with_null_or_empty_team_roles_keeps_them_as_if_left_out(scim, db, org, team_roles):
    # RFC 7643 §2.5: null and [] are the attribute unassigned, which a PUT leaves as it is.
    url = _in_two_teams(scim, db, org)
    before = scim.get(url).json()["teamRoles"]

    response = scim.put(url, json=new_user(teamRoles=team_roles))

    assert response.status_code == 200, response.text
    assert response.json()["teamRoles"] == before and len(before) == 2


@pytest.mark.parametrize(
    ("operation", "teams_left"),
    [
        ({"op": "replace", "path": "teamRoles", "value": None}, 0),
        ({"op": "replace", "path": "teamRoles", "value": []}, 0),
        ({"op": "replace", "value": {"teamRoles": None}}, 0),
        ({"op": "add", "path": "teamRoles", "value": []}, 2),
        ({"op": "remove", "path": "teamRoles", "value": []}, 2),
    ],
)
def test_patch_team_roles_null_or_empty(scim, db, org, operation, teams_left):
    url = _in_two_teams(scim, db, org)

    response = scim.patch(url, json=patch(operation))

    assert response.status_code == 200, response.text
    assert len(response.json()["teamRoles"]) == teams_left


@pytest.mark.parametrize(
    ("attribute", "empty"),
    [
        ("name", None),
        ("emails", None),
        ("emails", []),
        ("active", None),
        ("organizationRole", None),
        ("teamRoles", None),
        ("teamRoles", []),
    ],
)
def test_post_with_a_null_or_empty_attribute_is_as_if_it_were_left_out(scim, attribute, empty):
    # RFC 7643 §2.5: null and [] are the same state as unassigned.
    left_out = new_user("left.out@example.com")
    left_out.pop(attribute, None)
    sent_empty = new_user("sent.empty@example.com")
    sent_empty[attribute] = empty

    expected = scim.post(USERS, json=left_out)
    response = scim.post(USERS, json=sent_empty)

    assert response.status_code == 201, response.text
    assert expected.status_code == 201, expected.text

    def state(resource: dict) -> dict:
        kept = {k: v for k, v in resource.items() if k not in ("id", "meta", "userName")}
        for email in kept.get("emails", []):
            email["value"] = email["value"].split("@")[1]
        return kept

    assert state(response.json()) == state(expected.json())


def test_patch_name_null_clears_it(scim):
    url = f"{USERS}/{create(scim)['id']}"

    response = scim.patch(url, json=patch({"op": "replace", "path": "name", "value": None}))

    assert response.status_code == 200, response.text
    assert "name" not in response.json()


def test_patch_emails_null_or_empty_is_refused_a_user_needs_one(scim):
    url = f"{USERS}/{create(scim)['id']}"
    for empty in (None, []):
        operation = {"op": "replace", "path": "emails", "value": empty}
        body = assert_scim_error(scim.patch(url, json=patch(operation)), 400, "invalidValue")
        assert "needs an email" in body["detail"]


# --- PATCH --------------------------------------------------------------------------------------


def test_patch_organization_role_case_insensitive(scim, db):
    created = create(scim)
    response = scim.patch(
        f"{USERS}/{created['id']}",
        json=patch({"op": "replace", "path": "organizationRole", "value": "ADMIN"}),
    )

    assert response.status_code == 200, response.text
    assert response.json()["organizationRole"] == "admin"
    [event] = events(db, "user.update")
    assert event.surface == "scim" and event.after == {"role": "admin"}


def test_patch_team_roles_sets_predefined_and_custom_roles(scim, db, org):
    factories.team(db, org.org, name="team1")
    factories.team(db, org.org, name="team2")
    factories.custom_role(db, org.org, name="Sample custom role")
    created = create(scim)
    url = f"{USERS}/{created['id']}"

    first = scim.patch(
        url,
        json=patch(
            {
                "op": "replace",
                "path": "teamRoles",
                "value": [{"roleName": "Admin", "teamName": "team1"}],
            }
        ),
    )
    second = scim.patch(
        url,
        json=patch(
            {
                "op": "replace",
                "path": "teamRoles",
                "value": [{"roleName": "Sample custom role", "teamName": "team2"}],
            }
        ),
    )

    assert first.status_code == 200, first.text
    assert first.json()["teamRoles"] == [{"teamName": "team1", "roleName": "admin"}]
    assert second.json()["teamRoles"] == [
        {"teamName": "team1", "roleName": "admin"},
        {"teamName": "team2", "roleName": "Sample custom role"},
    ]
    wrong_case = scim.patch(
        url,
        json=patch(
            {
                "op": "replace",
                "path": "teamRoles",
                "value": [{"roleName": "sample custom role", "teamName": "team2"}],
            }
        ),
    )
    assert_scim_error(wrong_case, 400, "invalidValue")


def test_patch_team_roles_remove_leaves_the_team(scim, db, org):
    factories.team(db, org.org, name="team1")
    created = create(scim)
    url = f"{USERS}/{created['id']}"
    scim.patch(
        url,
        json=patch(
            {
                "op": "add",
                "path": "teamRoles",
                "value": [{"teamName": "team1", "roleName": "member"}],
            }
        ),
    )

    response = scim.patch(
        url, json=patch({"op": "remove", "path": "teamRoles", "value": [{"teamName": "team1"}]})
    )

    assert response.json()["teamRoles"] == []


def test_patch_unknown_team_is_invalid_value(scim):
    created = create(scim)
    response = scim.patch(
        f"{USERS}/{created['id']}",
        json=patch(
            {
                "op": "replace",
                "path": "teamRoles",
                "value": [{"teamName": "nope", "roleName": "admin"}],
            }
        ),
    )
    assert_scim_error(response, 400, "invalidValue")


@pytest.mark.parametrize("op", ["replace", "Replace", "REPLACE", "add"])
@pytest.mark.parametrize("value", [False, "False", "false"])
def test_patch_active_false_deactivates_any_op_case_and_string_booleans(scim, db, op, value):
    created = create(scim)
    response = scim.patch(
        f"{USERS}/{created['id']}", json=patch({"op": op, "value": {"active": value}})
    )

    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == created["id"]))
    db.refresh(membership)
    assert membership.active is False
    [event] = events(db, "user.deactivate")
    assert event.surface == "scim"


def test_patch_active_true_reactivates(scim, db):
    created = create(scim, active=False)
    response = scim.patch(
        f"{USERS}/{created['id']}", json=patch({"op": "replace", "path": "active", "value": "True"})
    )

    assert response.json()["active"] is True
    assert len(events(db, "user.reactivate")) == 1


def test_pathless_replace_with_attribute_path_keys(scim):
    created = create(scim)
    response = scim.patch(
        f"{USERS}/{created['id']}",
        json=patch(
            {
                "op": "Replace",
                "value": {
                    "name.givenName": "Augusta",
                    "name.familyName": "King",
                    "displayName": "Augusta King",
                    'emails[type eq "work"].value': "augusta@example.com",
                    "externalId": "e-9",
                    "active": False,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
                    "preferredLanguage": "en",
                    # A resource sent whole: its read-only parts are ignored here.
                    "schemas": [USER_URN],
                    "meta": {"resourceType": "User"},
                },
            }
        ),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == {
        "givenName": "Augusta",
        "familyName": "King",
    }
    assert body["displayName"] == "Augusta King"
    assert body["emails"][0]["value"] == "augusta@example.com"
    assert body["externalId"] == "e-9" and body["active"] is False


def test_value_filtered_email_path(scim):
    created = create(scim)
    url = f"{USERS}/{created['id']}"

    response = scim.patch(
        url,
        json=patch(
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@example.com"}
        ),
    )
    added = scim.patch(
        url,
        json=patch(
            {"op": "add", "path": 'emails[type eq "work"].value', "value": "new2@example.com"}
        ),
    )
    other_type = scim.patch(
        url,
        json=patch(
            {"op": "add", "path": 'emails[type eq "home"].value', "value": "home@example.com"}
        ),
    )

    assert response.json()["emails"][0]["value"] == "new@example.com"
    assert added.json()["emails"][0]["value"] == "new2@example.com"
    assert other_type.status_code == 200
    assert other_type.json()["emails"] == [
        {"value": "new2@example.com", "type": "work", "primary": True}
    ]


@pytest.mark.parametrize(
    "selection",
    [
        'emails[value eq "ADA@example.com"].value',
        'emails[type eq "work" and value ew "@EXAMPLE.com"].value',
        'emails[not (type eq "home")].value',
        "emails[primary eq true].value",
        "emails[value pr].value",
    ],
)
def test_a_value_filter_that_matches_the_stored_email_writes_it(scim, selection):
    url = f"{USERS}/{create(scim)['id']}"

    response = scim.patch(
        url, json=patch({"op": "replace", "path": selection, "value": "new@example.com"})
    )

    assert response.status_code == 200, response.text
    assert response.json()["emails"][0]["value"] == "new@example.com"


@pytest.mark.parametrize(
    "selection",
    [
        'emails[value eq "someone.else@example.com"].value',
        'emails[type eq "work" and value eq "nope@example.com"].value',
        'emails[display eq "Work"].value',
        'emails[value eq "someone.else@example.com"]',
    ],
)
@pytest.mark.parametrize("op", ["replace", "add", "remove"])
def test_a_value_filter_that_matches_no_email_is_no_target_and_changes_nothing(scim, selection, op):
    created = create(scim)
    url = f"{USERS}/{created['id']}"
    operation = {"op": op, "path": selection}
    if op != "remove":
        operation["value"] = "hijack@example.com"

    assert_scim_error(scim.patch(url, json=patch(operation)), 400, "noTarget")

    assert scim.get(url).json()["emails"] == created["emails"]


@pytest.mark.parametrize(
    ("operation", "accepted"),
    [
        ({"op": "replace", "path": "emails.type", "value": "Work"}, True),
        ({"op": "replace", "path": 'emails[type eq "work"].primary', "value": "true"}, True),
        ({"op": "replace", "path": "emails.type", "value": "home"}, False),
        ({"op": "replace", "path": 'emails[type eq "work"].primary', "value": False}, False),
        ({"op": "remove", "path": "emails.primary"}, False),
    ],
)
def test_the_emails_read_only_parts_take_only_the_value_they_have(scim, operation, accepted):
    # The Schemas document marks emails.type and emails.primary readOnly (RFC 7644 §3.5.2).
    created = create(scim)
    url = f"{USERS}/{created['id']}"

    response = scim.patch(url, json=patch(operation))

    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert "read-only" in assert_scim_error(response, 400, "mutability")["detail"]
    assert scim.get(url).json()["emails"] == created["emails"]


@pytest.mark.parametrize(
    ("operation", "email"),
    [
        # RFC 7644 §3.5.2.1: add joins the user's emails; a home address is not kept, and the
        # work address stays (it was overwritten, and shown as the work one).
        ({"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@x.io"}]}, None),
        ({"op": "add", "value": {"emails": [{"type": "other", "value": "o@x.io"}]}}, None),
        ({"op": "add", "path": "emails", "value": [{"type": "work", "value": "w@x.io"}]}, "w@x.io"),
        ({"op": "add", "path": "emails", "value": [{"value": "u@x.io"}]}, "u@x.io"),
        (
            {
                "op": "add",
                "path": "emails",
                "value": [{"type": "home", "primary": True, "value": "p@x.io"}],
            },
            "p@x.io",
        ),
        # replace states every email the user has: the one kept is the primary, work or first.
        (
            {"op": "replace", "path": "emails", "value": [{"type": "home", "value": "r@x.io"}]},
            "r@x.io",
        ),
    ],
)
def test_adding_an_email_of_another_type_keeps_the_work_one(scim, operation, email):
    created = create(scim, "ada@example.com")

    response = scim.patch(f"{USERS}/{created['id']}", json=patch(operation))

    assert response.status_code == 200, response.text
    expected = email or "ada@example.com"
    assert response.json()["emails"] == [{"value": expected, "type": "work", "primary": True}]


def test_patch_username_to_a_taken_one_is_409_and_changes_nothing(scim, db):
    create(scim, "one@example.com")
    two = create(scim, "two@example.com")

    response = scim.patch(
        f"{USERS}/{two['id']}",
        json=patch({"op": "replace", "path": "userName", "value": "ONE@example.com"}),
    )

    assert_scim_error(response, 409, "uniqueness")
    assert scim.get(f"{USERS}/{two['id']}").json()["userName"] == "two@example.com"


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "remove"}, "noTarget"),
        ({"op": "replace", "path": "userName[", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "nosuchattr", "value": 1}, "invalidPath"),
        ({"op": "remove", "path": "userName"}, "mutability"),
        ({"op": "replace", "path": "id", "value": "other"}, "mutability"),
        # RFC 7643 §3.1: meta is read-only (it was accepted and ignored).
        ({"op": "replace", "path": "meta.created", "value": "2000-01-01T00:00:00Z"}, "mutability"),
        ({"op": "replace", "path": "schemas", "value": ["urn:x"]}, "mutability"),
        ({"op": "add", "path": "groups", "value": [{"value": "x"}]}, "mutability"),
        ({"op": "replace", "path": "active", "value": "yes"}, "invalidValue"),
        ({"op": "replace", "path": "organizationRole", "value": "owner"}, "invalidValue"),
        ({"op": "replace", "value": "not an object"}, "invalidValue"),
        ({"op": "frobnicate", "path": "active", "value": True}, "invalidSyntax"),
        ({"op": "remove", "path": 'emails[type eq "work"]'}, "invalidValue"),
        # RFC 7644 §3.5.2.1, §3.5.2.3: add and replace MUST carry a value (it cleared the
        # attribute).
        ({"op": "replace", "path": "displayName"}, "invalidSyntax"),
        ({"op": "add", "path": "externalId"}, "invalidSyntax"),
        ({"op": "Replace", "path": "name.givenName"}, "invalidSyntax"),
    ],
)
def test_bad_patches_are_refused_with_scim_type_and_change_nothing(scim, db, operation, scim_type):
    created = create(scim)
    before = scim.get(f"{USERS}/{created['id']}").json()

    response = scim.patch(
        f"{USERS}/{created['id']}",
        json=patch({"op": "replace", "path": "displayName", "value": "changed"}, operation),
    )

    assert_scim_error(response, 400, scim_type)
    assert scim.get(f"{USERS}/{created['id']}").json() == before


def test_patch_body_without_operations_is_invalid_syntax(scim):
    created = create(scim)
    response = scim.patch(f"{USERS}/{created['id']}", json={"schemas": []})
    assert_scim_error(response, 400, "invalidSyntax")


def test_patch_unknown_user_is_404(scim):
    response = scim.patch(
        f"{USERS}/nope", json=patch({"op": "replace", "value": {"active": False}})
    )
    assert_scim_error(response, 404)


# --- last admin ---------------------------------------------------------------------------------


def test_last_admin_cannot_be_deactivated_demoted_or_deleted(scim, db, org):
    url = f"{USERS}/{org.admin.id}"

    deactivate = scim.patch(url, json=patch({"op": "replace", "value": {"active": False}}))
    demote = scim.patch(
        url, json=patch({"op": "replace", "path": "organizationRole", "value": "member"})
    )
    delete = scim.delete(url)

    for response in (deactivate, demote, delete):
        body = assert_scim_error(response, 409)
        assert "admin" in body["detail"]
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == org.admin.id))
    db.refresh(membership)
    assert membership.active is True and membership.role == "admin"


@pytest.mark.parametrize("how", ["patch", "put"])
def test_an_admin_that_deactivates_itself_is_answered_and_then_refused(scim, db, org, how):
    # Another active admin: the last-admin rule allows it. The provider cuts its own access,
    # as docs/scim.md warns; the write is done and answered, and later requests are refused.
    factories.user(db, org.org, role="admin")
    url = f"{USERS}/{org.admin.id}"
    if how == "patch":
        response = scim.patch(url, json=patch({"op": "replace", "path": "active", "value": False}))
    else:
        body = scim.get(url).json() | {"active": False}
        response = scim.put(url, json=body)

    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == org.admin.id))
    db.refresh(membership)
    assert membership.active is False
    assert_scim_error(scim.get(url), 401)  # its key is a deactivated user's


# --- DELETE -------------------------------------------------------------------------------------


def test_delete_removes_the_user_from_the_org_and_keeps_its_runs(scim, db, org):
    created = create(scim)
    user = db.get(User, created["id"])
    team = factories.team(db, org.org)
    factories.member(db, team, user)
    project = factories.project(db, team)
    run = Run(project_id=project.id, name="r1", created_by_user_id=user.id)
    db.add(run)
    db.flush()

    response = scim.delete(f"{USERS}/{created['id']}")

    assert response.status_code == 204
    assert_scim_error(scim.get(f"{USERS}/{created['id']}"), 404)
    db.expire_all()
    assert db.get(Run, run.id).created_by_user_id == user.id
    assert db.scalar(select(OrgMembership).where(OrgMembership.user_id == user.id)) is None
    [event] = events(db, "user.delete")
    assert event.surface == "scim"
    again = scim.post(USERS, json=new_user())
    assert again.status_code == 201


def test_delete_unknown_user_is_404(scim):
    assert_scim_error(scim.delete(f"{USERS}/nope"), 404)


def test_remove_team_roles_without_value_leaves_every_team(scim, db, org):
    factories.team(db, org.org, name="team1")
    factories.team(db, org.org, name="team2")
    created = create(scim)
    url = f"{USERS}/{created['id']}"
    roles = [
        {"teamName": "team1", "roleName": "member"},
        {"teamName": "team2", "roleName": "admin"},
    ]
    assert (
        len(
            scim.patch(url, json=patch({"op": "add", "path": "teamRoles", "value": roles})).json()[
                "teamRoles"
            ]
        )
        == 2
    )

    response = scim.patch(url, json=patch({"op": "remove", "path": "teamRoles"}))

    assert response.status_code == 200, response.text
    assert response.json()["teamRoles"] == [] and response.json()["groups"] == []


def test_name_formatted_is_accepted_and_not_returned(scim):
    created = create(scim, name={"givenName": "g", "familyName": "f", "formatted": "Dr g f"})
    assert created["name"] == {"givenName": "g", "familyName": "f"}


def test_post_search_is_the_get_with_a_body(scim):
    create(scim, "alpha@example.com")
    create(scim, "beta@example.com")

    response = scim.post(
        f"{USERS}/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName sw "alpha"',
            "attributes": ["userName"],
            "startIndex": 1,
            "count": 10,
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalResults"] == 1
    assert set(body["Resources"][0]) == {"schemas", "id", "userName"}
    bad = scim.post(f"{USERS}/.search", json={"filter": "userName eq"})
    assert_scim_error(bad, 400, "invalidFilter")
    assert_scim_error(scim.post(f"{USERS}/.search", json={"count": "x"}), 400, "invalidValue")
    assert_scim_error(scim.post("/scim/v2/.search", json={}), 501)


def test_a_deactivated_user_keeps_and_gets_team_roles(scim, db, org):
    factories.team(db, org.org, name="research")

    response = scim.post(
        USERS,
        json=new_user(
            "off@example.com",
            active=False,
            teamRoles=[{"teamName": "research", "roleName": "member"}],
        ),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["active"] is False
    assert body["teamRoles"] == [{"teamName": "research", "roleName": "member"}]


# --- roles mapped in an identity provider --------------------------------------------------------
# docs/scim.md tells admins to map a role attribute; each shape a provider may send it in sets
# the role. Core-URN forms: Entra ID's target attributes named with the schema URN.


@pytest.mark.parametrize(
    "extra",
    [
        {"organizationRole": "Viewer"},
        {USER_URN: {"organizationRole": "viewer"}},
        {f"{USER_URN}:organizationRole": "VIEWER"},
    ],
    ids=["top-level", "nested-under-the-core-urn", "urn-qualified-key"],
)
def test_organization_role_on_create_in_each_shape_a_provider_sends(scim, db, extra):
    created = create(scim, **extra)

    assert created["organizationRole"] == "viewer"
    assert scim.get(f"{USERS}/{created['id']}").json()["organizationRole"] == "viewer"


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Add", "path": f"{USER_URN}:organizationRole", "value": "admin"},
        {"op": "replace", "value": {f"{USER_URN}:organizationRole": "Admin"}},
        {"op": "Replace", "value": {"organizationRole": "admin"}},
    ],
    ids=["urn-qualified-path", "pathless-urn-qualified-key", "pathless-plain-key"],
)
def test_organization_role_on_patch_in_each_shape_a_provider_sends(scim, db, operation):
    created = create(scim)

    response = scim.patch(f"{USERS}/{created['id']}", json=patch(operation))

    assert response.status_code == 200, response.text
    assert response.json()["organizationRole"] == "admin"
    [event] = events(db, "user.update")
    assert event.surface == "scim" and event.after == {"role": "admin"}


def test_a_new_user_was_last_modified_when_it_was_created(scim, db, org):
    """RFC 7643 §3.1: until a change, lastModified equals created; team roles sent with the
    create are part of it."""
    factories.team(db, org.org, name="team1")
    plain = create(scim, "plain@example.com")
    with_roles = create(
        scim, "roles@example.com", teamRoles=[{"teamName": "team1", "roleName": "admin"}]
    )

    for body in (plain, with_roles, scim.get(f"{USERS}/{with_roles['id']}").json()):
        assert body["meta"]["lastModified"] == body["meta"]["created"]
