"""Users of the organization through /api/v1/users: create, find, list, change, remove."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.identity.models import BrowserSession
from rolecall.orgs.bootstrap import initialize
from rolecall.orgs.models import OrgMembership
from rolecall.projects.models import Project, ProjectMembership
from rolecall.runs.models import Run
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from tests import factories

USERS = "/api/v1/users"


def audit_events(db, action: str) -> list[AuditEvent]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model))


def member_headers(db, org, role: str = "member", **kwargs) -> tuple[User, dict[str, str]]:
    user = factories.user(db, org.org, role=role, **kwargs)
    return user, factories.headers(factories.api_key(db, user))


# --- creating -----------------------------------------------------------------------------------


def test_admin_creates_a_user_with_personal_entity_and_membership(client, db, org):
    response = client.post(
        USERS,
        headers=org.admin_headers,
        json={"email": "ada@example.com", "username": "ada", "full_name": "Ada Lovelace"},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "ada"
    assert body["email"] == "ada@example.com"
    assert body["full_name"] == "Ada Lovelace"
    assert (body["role"], body["models_seat"], body["weave_seat"]) == ("member", "full", "full")
    assert body["active"] is True
    personal = db.scalar(select(Team).where(Team.name_key == "ada"))
    assert personal.kind == "personal" and personal.personal_owner_id == body["id"]
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == body["id"]))
    assert membership.org_id == org.org.id and membership.role == "member"
    [event] = audit_events(db, "user.create")
    assert event.object_id == body["id"] and event.actor_id == org.admin.id
    assert event.after["username"] == "ada" and event.after["role"] == "member"


def test_role_and_seats_are_case_insensitive(client, org):
    response = client.post(
        USERS,
        headers=org.admin_headers,
        json={
            "email": "b@example.com",
            "role": "Admin",
            "models_seat": "VIEWER",
            "weave_seat": "None",
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["role"], body["models_seat"], body["weave_seat"]) == ("admin", "viewer", "none")


def test_username_is_derived_from_the_email_and_avoids_taken_names(client, db, org):
    factories.team(db, org.org, name="grace")

    response = client.post(USERS, headers=org.admin_headers, json={"email": "grace@example.com"})

    assert response.status_code == 201
    assert response.json()["username"] == "grace-2"


@pytest.mark.parametrize("offset", [2**63, 10**30, -1])
def test_an_offset_out_of_range_is_422(client, org, offset):
    """SQLite's integers end at 2**63 - 1 (such an offset was a 500)."""
    response = client.get(USERS, params={"offset": offset}, headers=org.admin_headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "offset"


def test_email_is_unique_case_insensitively(client, db, org):
    factories.user(db, org.org, username="carol", email="carol@example.com")
    users_before = count(db, User)

    response = client.post(USERS, headers=org.admin_headers, json={"email": "CAROL@Example.COM"})

    assert response.status_code == 409
    assert response.json()["error"]["field"] == "email"
    assert count(db, User) == users_before
    assert audit_events(db, "user.create") == []


@pytest.mark.parametrize("taken", ["dave", "DAVE", "research"])
def test_username_must_be_free_among_users_and_teams(client, db, org, taken):
    factories.user(db, org.org, username="dave")
    factories.team(db, org.org, name="research")

    response = client.post(
        USERS, headers=org.admin_headers, json={"email": "new@example.com", "username": taken}
    )

    assert response.status_code == 409
    assert response.json()["error"]["field"] == "username"
    assert db.scalar(select(User).where(User.email_key == "new@example.com")) is None


@pytest.mark.parametrize(
    "body",
    [
        {"email": "e@example.com", "username": "has space"},
        {"email": "e@example.com", "username": "dot.ted"},
        {"email": "e@example.com", "username": ""},
        {"email": "e@example.com", "username": "x" * 65},
        {"email": "not-an-email"},
        {"email": "e@example.com", "role": "owner"},
        {"email": "e@example.com", "role": 5},
        {"email": "e@example.com", "models_seat": "gold"},
        {"email": "e@example.com", "full_name": "line\nbreak"},
        {"email": "e@example.com", "is_admin": True},
        {"username": "nomail"},
        {"email": ["e@example.com"]},
    ],
)
def test_bad_input_is_a_422_and_writes_nothing(client, db, org, body):
    users_before = count(db, User)

    response = client.post(USERS, headers=org.admin_headers, json=body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert count(db, User) == users_before
    assert audit_events(db, "user.create") == []


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_org_admins_create_users(client, db, org, role):
    _, headers = member_headers(db, org, role=role)
    users_before = count(db, User)

    response = client.post(USERS, headers=headers, json={"email": "x@example.com"})

    assert response.status_code == 403
    error = response.json()["error"]
    # Members hold only org:read on the org, so the closing step is what withholds the rest.
    assert error["rule"] == policy.RULE_ORG_MEMBER
    assert count(db, User) == users_before
    assert audit_events(db, "user.create") == []


def test_a_user_of_another_org_joins_with_its_identity(make_client, db, org):
    other = initialize(db, org_name="other-org", admin_email="boss@other.example")
    shared = factories.user(db, other.org, username="shared", email="shared@example.com")
    client = make_client(mode="multi")
    headers = {**org.admin_headers, "X-Rolecall-Org": org.org.name}

    response = client.post(
        USERS, headers=headers, json={"email": "Shared@Example.com", "role": "viewer"}
    )

    assert response.status_code == 201
    assert response.json()["id"] == shared.id
    assert response.json()["username"] == "shared" and response.json()["role"] == "viewer"
    roles = dict(
        db.execute(
            select(OrgMembership.org_id, OrgMembership.role).where(
                OrgMembership.user_id == shared.id
            )
        ).all()
    )
    assert roles == {other.org.id: "member", org.org.id: "viewer"}
    again = client.post(USERS, headers=headers, json={"email": "shared@example.com"})
    assert again.status_code == 409
    renamed = client.post(
        USERS, headers=headers, json={"email": "shared@example.com", "username": "someone"}
    )
    assert renamed.status_code == 409


# --- reading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["id", "erin", "ERIN", "erin@example.com", "Erin@Example.com"])
def test_get_user_by_id_username_or_email(client, db, org, ref):
    erin = factories.user(db, org.org, username="erin", email="erin@example.com")
    _, headers = member_headers(db, org, role="viewer")

    response = client.get(f"{USERS}/{erin.id if ref == 'id' else ref}", headers=headers)

    assert response.status_code == 200
    assert response.json()["id"] == erin.id


def test_unknown_user_is_404(client, org):
    response = client.get(f"{USERS}/nobody", headers=org.admin_headers)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_users_of_another_org_are_not_found(client, db, org):
    other = initialize(db, org_name="elsewhere", admin_email="root@elsewhere.example")
    stranger = factories.user(db, other.org, username="stranger")

    assert client.get(f"{USERS}/{stranger.id}", headers=org.admin_headers).status_code == 404
    listed = client.get(USERS, headers=org.admin_headers).json()["items"]
    assert stranger.id not in {u["id"] for u in listed}


def test_pages_are_stable_and_see_every_user_once(client, db, org):
    for n in range(25):
        factories.user(db, org.org, username=f"pager{n:02d}")
    seen: list[str] = []

    offset = 0
    while True:
        page = client.get(
            USERS, headers=org.admin_headers, params={"offset": offset, "limit": 10}
        ).json()
        assert page["total"] == 26 and page["limit"] == 10 and page["offset"] == offset
        seen += [u["id"] for u in page["items"]]
        if len(page["items"]) < 10:
            break
        offset += 10

    assert len(seen) == 26 and len(set(seen)) == 26
    expected = db.scalars(
        select(User.id)
        .join(OrgMembership, OrgMembership.user_id == User.id)
        .where(OrgMembership.org_id == org.org.id)
    ).all()
    assert set(seen) == set(expected)


def test_search_matches_username_or_email_substrings(client, db, org):
    factories.user(db, org.org, username="frank", email="frank@research.example")
    factories.user(db, org.org, username="gina", email="gina@sales.example")
    factories.user(db, org.org, username="re_search", email="rs@example.com")

    def usernames(q: str) -> set[str]:
        body = client.get(USERS, headers=org.admin_headers, params={"q": q}).json()
        return {u["username"] for u in body["items"]}

    assert usernames("RESEARCH") == {"frank"}
    assert usernames("gin") == {"gina"}
    # LIKE wildcards are literal characters in a search.
    assert usernames("re_") == {"re_search"}
    assert usernames("%") == set()


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}, {"q": "a\x00b"}]
)
def test_bad_paging_is_a_422(client, org, params):
    response = client.get(USERS, headers=org.admin_headers, params=params)

    assert response.status_code == 422


def test_user_teams_lists_teams_not_personal_entities(client, db, org):
    hank = factories.user(db, org.org, username="hank")
    alpha = factories.team(db, org.org, name="alpha")
    beta = factories.team(db, org.org, name="beta")
    factories.team(db, org.org, name="gamma")
    factories.member(db, beta, hank, role="admin")
    factories.member(db, alpha, hank)
    hanks = factories.headers(factories.api_key(db, hank))

    response = client.get(f"{USERS}/hank/teams", headers=org.admin_headers)

    assert response.status_code == 200
    assert [t["name"] for t in response.json()["items"]] == ["alpha", "beta"]
    assert all(t["kind"] == "team" for t in response.json()["items"])
    assert [
        t["name"] for t in client.get(f"{USERS}/hank/teams", headers=hanks).json()["items"]
    ] == [
        "alpha",
        "beta",
    ]
    assert client.get(f"{USERS}/nobody/teams", headers=org.admin_headers).status_code == 404


def test_user_teams_shows_only_teams_whose_members_the_caller_may_see(client, db, org):
    # Otherwise a team's roster could be pieced together user by user.
    hank = factories.user(db, org.org, username="hank")
    alpha = factories.team(db, org.org, name="alpha")
    beta = factories.team(db, org.org, name="beta")
    factories.member(db, alpha, hank)
    factories.member(db, beta, hank)
    outsider, headers = member_headers(db, org)
    factories.member(db, alpha, outsider, role="viewer")

    response = client.get(f"{USERS}/hank/teams", headers=headers)

    assert response.status_code == 200
    assert [t["name"] for t in response.json()["items"]] == ["alpha"]
    assert client.get("/api/v1/teams/beta/members", headers=headers).status_code == 403


# --- changing -----------------------------------------------------------------------------------


def test_admin_changes_role_seats_and_full_name(client, db, org):
    ivy = factories.user(db, org.org, username="ivy")

    response = client.patch(
        f"{USERS}/ivy",
        headers=org.admin_headers,
        json={"role": "VIEWER", "models_seat": "viewer", "full_name": "Ivy I."},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["role"], body["models_seat"], body["weave_seat"]) == ("viewer", "viewer", "full")
    assert body["full_name"] == "Ivy I."
    [event] = audit_events(db, "user.update")
    assert event.object_id == ivy.id
    assert event.before == {"role": "member", "models_seat": "full", "full_name": None}
    assert event.after == {"role": "viewer", "models_seat": "viewer", "full_name": "Ivy I."}
    cleared = client.patch(f"{USERS}/ivy", headers=org.admin_headers, json={"full_name": None})
    assert cleared.json()["full_name"] is None


def test_a_patch_that_changes_nothing_records_nothing(client, db, org):
    factories.user(db, org.org, username="jack")

    response = client.patch(f"{USERS}/jack", headers=org.admin_headers, json={"role": "member"})

    assert response.status_code == 200
    assert audit_events(db, "user.update") == []


@pytest.mark.parametrize(
    "body",
    [{"role": "owner"}, {"weave_seat": "half"}, {"username": "renamed"}, {"role": None, "x": 1}],
)
def test_bad_changes_are_422_and_change_nothing(client, db, org, body):
    kim = factories.user(db, org.org, username="kim")

    response = client.patch(f"{USERS}/kim", headers=org.admin_headers, json=body)

    assert response.status_code == 422
    db.expire_all()
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == kim.id))
    assert (membership.role, membership.weave_seat) == ("member", "full")


def test_members_cannot_change_users(client, db, org):
    _, headers = member_headers(db, org)
    factories.user(db, org.org, username="lee")

    response = client.patch(f"{USERS}/lee", headers=headers, json={"role": "admin"})

    assert response.status_code == 403
    assert response.json()["error"]["rule"] == policy.RULE_ORG_MEMBER
    assert audit_events(db, "user.update") == []


# --- the last active admin ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("patch", "", {"role": "member"}),
        ("patch", "", {"role": "viewer"}),
        ("post", "/deactivate", None),
        ("delete", "", None),
    ],
)
def test_last_active_admin_cannot_be_demoted_deactivated_or_deleted(
    client, db, org, method, suffix, body
):
    # A second admin who is deactivated does not count.
    factories.user(db, org.org, username="sleeping-admin", role="admin", active=False)
    kwargs = {"json": body} if body is not None else {}

    response = client.request(
        method.upper(), f"{USERS}/{org.admin.username}{suffix}", headers=org.admin_headers, **kwargs
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "last_admin"
    assert "last active admin" in error["message"]
    db.expire_all()
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == org.admin.id))
    assert (membership.role, membership.active) == ("admin", True)
    assert (
        db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("user.%"))
        )
        == 0
    )


def test_an_admin_may_step_down_when_another_active_admin_remains(client, db, org):
    factories.user(db, org.org, username="second-admin", role="admin")

    response = client.patch(
        f"{USERS}/{org.admin.username}", headers=org.admin_headers, json={"role": "member"}
    )

    assert response.status_code == 200 and response.json()["role"] == "member"
    # Now second-admin is the last one.
    last = client.post(f"{USERS}/second-admin/deactivate", headers=org.admin_headers)
    assert last.status_code == 403  # the caller is no longer an admin


def test_an_admin_may_deactivate_itself_when_not_the_last(client, db, org):
    factories.user(db, org.org, username="backup-admin", role="admin")

    response = client.post(f"{USERS}/{org.admin.username}/deactivate", headers=org.admin_headers)

    assert response.status_code == 200 and response.json()["active"] is False
    # Its own key stops working with its deactivation.
    assert client.get("/api/v1/viewer", headers=org.admin_headers).status_code == 401


# --- deactivation ---------------------------------------------------------------------------------


def test_deactivated_user_stays_listed_and_its_key_is_refused_until_reactivated(client, db, org):
    mia, headers = member_headers(db, org)
    assert client.get("/api/v1/org", headers=headers).status_code == 200

    response = client.post(f"{USERS}/{mia.username}/deactivate", headers=org.admin_headers)

    assert response.status_code == 200 and response.json()["active"] is False
    listed = {u["id"]: u for u in client.get(USERS, headers=org.admin_headers).json()["items"]}
    assert listed[mia.id]["active"] is False
    refused = client.get("/api/v1/org", headers=headers)
    assert refused.status_code == 401
    db.expire_all()
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == mia.id))
    assert membership.deactivated_at is not None
    [event] = audit_events(db, "user.deactivate")
    assert (event.before, event.after) == ({"active": True}, {"active": False})

    again = client.post(f"{USERS}/{mia.username}/reactivate", headers=org.admin_headers)

    assert again.status_code == 200 and again.json()["active"] is True
    assert client.get("/api/v1/org", headers=headers).status_code == 200
    assert len(audit_events(db, "user.reactivate")) == 1


def test_deactivating_twice_changes_nothing_more(client, db, org):
    nora = factories.user(db, org.org, username="nora", active=False)

    response = client.post(f"{USERS}/nora/deactivate", headers=org.admin_headers)

    assert response.status_code == 200 and response.json()["active"] is False
    assert audit_events(db, "user.deactivate") == []
    assert client.post(f"{USERS}/{nora.id}/reactivate", headers=org.admin_headers).json()["active"]


def test_deactivation_ends_the_users_browser_sessions(client, db, org):
    client.post(
        "/api/v1/auth/login",
        json={"email": org.admin.email, "password": factories.ADMIN_PASSWORD},
    )
    factories.user(db, org.org, username="other-admin", role="admin")
    other_key = factories.api_key(db, db.scalar(select(User).where(User.username == "other-admin")))
    assert client.get("/api/v1/viewer").status_code == 200

    client.post(f"{USERS}/{org.admin.username}/deactivate", headers=factories.headers(other_key))

    db.expire_all()
    sessions = db.scalars(select(BrowserSession).where(BrowserSession.user_id == org.admin.id))
    assert all(s.revoked_at is not None for s in sessions)
    assert client.get("/api/v1/viewer").status_code == 401


def test_members_cannot_deactivate_or_delete(client, db, org):
    _, headers = member_headers(db, org)
    olga = factories.user(db, org.org, username="olga")

    assert client.post(f"{USERS}/olga/deactivate", headers=headers).status_code == 403
    denied = client.delete(f"{USERS}/olga", headers=headers)
    assert denied.status_code == 403
    assert denied.json()["error"]["rule"] == policy.RULE_ORG_MEMBER
    assert db.scalar(select(OrgMembership).where(OrgMembership.user_id == olga.id)).active


# --- removal ------------------------------------------------------------------------------------


def test_delete_removes_memberships_but_keeps_the_user_and_its_runs(client, db, org):
    pat, headers = member_headers(db, org)
    team = factories.team(db, org.org, name="vision")
    factories.member(db, team, pat)
    open_project = factories.project(db, team, name="detector", owner=pat)
    secret_project = factories.project(db, team, name="secret", visibility="restricted", owner=pat)
    factories.project_member(db, secret_project, pat)
    run = Run(project_id=open_project.id, name="run-1", created_by_user_id=pat.id)
    db.add(run)
    db.flush()

    response = client.delete(f"{USERS}/{pat.username}", headers=org.admin_headers)

    assert response.status_code == 204
    db.expire_all()
    assert db.get(User, pat.id) is not None
    assert db.scalar(select(OrgMembership).where(OrgMembership.user_id == pat.id)) is None
    assert db.scalar(select(TeamMembership).where(TeamMembership.user_id == pat.id)) is None
    assert db.scalar(select(ProjectMembership).where(ProjectMembership.user_id == pat.id)) is None
    assert db.get(Run, run.id).created_by_user_id == pat.id
    assert db.get(Project, secret_project.id).owner_needed is True
    assert db.get(Project, open_project.id).owner_needed is False
    assert client.get(f"{USERS}/{pat.id}", headers=org.admin_headers).status_code == 404
    listed = client.get(USERS, headers=org.admin_headers).json()["items"]
    assert pat.id not in {u["id"] for u in listed}
    # It belongs to no other org, so its keys were revoked.
    assert client.get("/api/v1/viewer", headers=headers).status_code == 401
    [event] = audit_events(db, "user.delete")
    assert event.object_id == pat.id and event.before["role"] == "member"
    assert "1 API key(s) revoked" in event.detail


def test_delete_keeps_the_keys_of_a_user_in_another_org(make_client, db, org):
    other = initialize(db, org_name="second-org", admin_email="chief@second.example")
    quinn = factories.user(db, org.org, username="quinn")
    db.add(OrgMembership(org_id=other.org.id, user_id=quinn.id, role="member"))
    db.flush()
    key = factories.api_key(db, quinn)
    client = make_client(mode="multi")

    response = client.delete(
        f"{USERS}/quinn", headers={**org.admin_headers, "X-Rolecall-Org": org.org.name}
    )

    assert response.status_code == 204
    still = client.get(
        "/api/v1/viewer", headers={**factories.headers(key), "X-Rolecall-Org": other.org.name}
    )
    assert still.status_code == 200


def test_a_removed_user_can_be_added_again(client, db, org):
    factories.user(db, org.org, username="ruth", email="ruth@example.com")
    assert client.delete(f"{USERS}/ruth", headers=org.admin_headers).status_code == 204

    response = client.post(USERS, headers=org.admin_headers, json={"email": "ruth@example.com"})

    assert response.status_code == 201 and response.json()["username"] == "ruth"


def test_deleting_an_unknown_user_is_404_and_records_nothing(client, db, org):
    response = client.delete(f"{USERS}/ghost", headers=org.admin_headers)

    assert response.status_code == 404
    assert audit_events(db, "user.delete") == []


# --- issue checks through HTTP only -------------------------------------------------------------


def test_the_same_email_in_another_case_is_a_conflict_through_the_api(client, db, org):
    first = client.post(USERS, headers=org.admin_headers, json={"email": "A@x.io"})
    assert first.status_code == 201

    second = client.post(USERS, headers=org.admin_headers, json={"email": "a@X.io"})

    assert second.status_code == 409
    assert second.json()["error"]["field"] == "email"
    assert count(db, User) == 2  # the bootstrap admin and A@x.io
    assert len(audit_events(db, "user.create")) == 1
    assert (
        client.get(f"{USERS}/a@x.IO", headers=org.admin_headers).json()["id"]
        == (first.json()["id"])
    )


@pytest.mark.parametrize("role", ["Ops", "service", "owner", ""])
def test_a_custom_or_team_only_role_is_not_an_org_role(client, db, org, role):
    factories.custom_role(db, org.org, name="Ops")
    factories.user(db, org.org, username="quinn")

    created = client.post(
        USERS, headers=org.admin_headers, json={"email": "ops@example.com", "role": role}
    )
    changed = client.patch(f"{USERS}/quinn", headers=org.admin_headers, json={"role": role})

    assert (created.status_code, changed.status_code) == (422, 422)
    assert created.json()["error"]["code"] == "invalid_input"
    db.expire_all()
    assert db.scalar(select(User).where(User.email_key == "ops@example.com")) is None
    quinn = db.scalar(select(User).where(User.username_key == "quinn"))
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == quinn.id))
    assert membership.role == "member"


def test_deactivated_user_holds_no_permission_even_on_its_own_team(client, db, org):
    team = factories.team(db, org.org)
    project = factories.project(db, team)
    rita, headers = member_headers(db, org)
    factories.member(db, team, rita, role="admin")
    path = f"/api/v1/projects/{team.name}/{project.name}"
    assert client.get(path, headers=headers).status_code == 200

    client.post(f"{USERS}/{rita.username}/deactivate", headers=org.admin_headers)

    refused = client.get(path, headers=headers)
    assert refused.status_code == 401
    assert "deactivated" in refused.json()["error"]["message"]
    # The org admin asking the policy about rita sees the deactivation rule deciding.
    check = client.post(
        "/api/v1/authz/check",
        headers=org.admin_headers,
        json={
            "principal": f"user:{rita.username}",
            "permission": "project:read",
            "project": f"{team.name}/{project.name}",
        },
    )
    assert check.status_code == 200
    assert check.json()["allowed"] is False
    assert check.json()["trace"][0]["rule"] == policy.RULE_DEACTIVATED
    # Still listed, flagged.
    listed = client.get(USERS, headers=org.admin_headers, params={"q": rita.username}).json()
    assert [(u["id"], u["active"]) for u in listed["items"]] == [(rita.id, False)]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("patch", "", {"role": "viewer"}), ("post", "/deactivate", None), ("delete", "", None)],
)
def test_with_two_active_admins_either_may_go_but_then_the_other_is_the_last(
    client, db, org, method, suffix, body
):
    second = factories.user(db, org.org, username="second", role="admin")
    second_headers = factories.headers(factories.api_key(db, second))
    kwargs = {"json": body} if body is not None else {}

    first_goes = client.request(
        method.upper(), f"{USERS}/{org.admin.username}{suffix}", headers=second_headers, **kwargs
    )
    assert first_goes.status_code in (200, 204)

    last = client.request(
        method.upper(), f"{USERS}/second{suffix}", headers=second_headers, **kwargs
    )
    assert last.status_code == 409
    assert last.json()["error"]["code"] == "last_admin"
    assert "last active admin" in last.json()["error"]["message"]


def test_a_refused_identity_change_leaves_the_user_as_it_was(db, org):
    """Rule ``user.shared_identity`` is checked before anything is set: the refused change
    leaves no trace on the user (in the session, nor flushed by the check's own query)."""
    from rolecall.authz.facts import CredentialKind, PrincipalKind
    from rolecall.errors import Conflict
    from rolecall.identity.principal import Principal
    from rolecall.users import service as users

    user = factories.user(db, org.org, username="shared", email="shared@example.org")
    db.add(OrgMembership(org_id=factories.bootstrap(db).org.id, user_id=user.id, role="member"))
    db.flush()
    admin = Principal(
        PrincipalKind.USER, org.admin.username, CredentialKind.API_KEY, user_id=org.admin.id
    )

    with pytest.raises(Conflict) as refused:
        users.update_user(
            db, actor=admin, org=org.org, ref=user.id, email="new@example.org", full_name="New"
        )

    assert refused.value.code == "shared_identity"
    assert (user.email, user.email_key, user.full_name) == (
        "shared@example.org",
        "shared@example.org",
        None,
    )
