"""Referrals are never followed: the directory names where to go, and going there would skip
the outbound-address rule (``federation.destinations``) and bind there with the same
credentials. Against the real slapd, with a referral entry under ``ou=people`` that points at a
listener on 127.0.0.2, an address the multi-org rule of these tests refuses."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest
from ldap3 import SUBTREE, Connection, Server

from rolecall.federation.destinations import Destinations
from rolecall.settings import Settings
from rolecall.sso.config import LdapConfig
from rolecall.sso.ldap import LdapError, authenticate
from rolecall.sso.ldap_check import run_checks
from tests.idp.ldap.conftest import (
    ADMIN_DN,
    ADMIN_PW,
    BASE,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PW,
    Slapd,
    settings_values,
    user_dn,
)

#: The referral entry: ``ou=people`` says part of it is held by another directory.
REFERRAL_DN = f"ou=partners,{PEOPLE}"


def manage(server: Slapd, ldif: str) -> None:
    """``ldapmodify`` as the root DN with ManageDsaIT (``-M``): a referral entry is then an
    entry to add or delete, not a pointer slapd answers with."""
    subprocess.run(
        ["ldapmodify", "-x", "-M", "-H", server.url, "-D", ADMIN_DN, "-w", ADMIN_PW],
        input=ldif, text=True, check=True, capture_output=True, timeout=10,
    )  # fmt: skip


@pytest.fixture
def elsewhere(slapd: Slapd) -> Iterator[socket.socket]:
    """A listener on 127.0.0.2 that nobody answers on (a connection would wait in its queue),
    and the referral entry pointing at it, removed afterwards so other tests see the pristine
    directory."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        manage(
            slapd,
            f"dn: {REFERRAL_DN}\nchangetype: add\nobjectClass: referral\n"
            f"objectClass: extensibleObject\nou: partners\n"
            f"ref: ldap://127.0.0.2:{port}/ou=people,dc=partners,dc=example\n",
        )
        try:
            yield listener
        finally:
            manage(slapd, f"dn: {REFERRAL_DN}\nchangetype: delete\n")


def config(server: Slapd, **overrides: object) -> LdapConfig:
    """Multi-org mode with loopback's 127.0.0.1 allowed (slapd), so 127.0.0.2 is refused."""
    rule = Destinations.of(Settings(mode="multi", outbound_allow="127.0.0.1"))
    return LdapConfig(**settings_values(server, destinations=rule, **overrides))


def assert_nothing_came(listener: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_the_user_search_does_meet_the_referral(slapd: Slapd, elsewhere: socket.socket) -> None:
    """What the tests below rely on: a subtree search from the base DN answers the referral
    entry with a continuation reference (searchResRef) beside the entries."""
    conn = Connection(
        Server(slapd.url), SERVICE_DN, SERVICE_PW, auto_bind=True, auto_referrals=False
    )
    try:
        conn.search(BASE, "(objectClass=person)", search_scope=SUBTREE, attributes=["1.1"])
        kinds = {r["type"] for r in conn.response}
    finally:
        conn.unbind()
    assert kinds == {"searchResEntry", "searchResRef"}
    assert_nothing_came(elsewhere)


def test_a_search_meeting_a_referral_still_signs_in_and_follows_nothing(
    slapd: Slapd, elsewhere: socket.socket
) -> None:
    # No group attribute: the group search runs under the base DN too, and meets it as well.
    user = authenticate(config(slapd), email="alice@example.org", password="alice-pw")
    assert user.dn == user_dn("alice")
    assert sorted(user.groups) == ["admins", "ml-engineers"]
    assert_nothing_came(elsewhere)


@pytest.mark.parametrize("base_dn", [REFERRAL_DN, f"ou=staff,{REFERRAL_DN}"])
def test_a_base_dn_held_elsewhere_is_a_clear_error(
    slapd: Slapd, elsewhere: socket.socket, base_dn: str
) -> None:
    """The base DN is the referral entry or lies under it: slapd answers the search with a
    referral result, which is refused, naming where it pointed."""
    with pytest.raises(LdapError) as caught:
        authenticate(config(slapd, base_dn=base_dn), email="bob@example.org", password="bob-pw")
    assert_nothing_came(elsewhere)
    assert (caught.value.step, caught.value.code) == ("search", "ldap_search_failed")
    assert "referrals are not followed" in caught.value.detail
    assert "ldap://127.0.0.2:" in caught.value.detail


def test_the_settings_test_names_a_referred_base_dn(slapd: Slapd, elsewhere: socket.socket) -> None:
    steps = run_checks(config(slapd, base_dn=REFERRAL_DN))
    assert_nothing_came(elsewhere)
    assert [(s.step, s.ok) for s in steps] == [
        ("connect", True),
        ("tls", True),
        ("bind", True),
        ("base_dn", False),
    ]
    assert "referrals are not followed" in steps[-1].detail
