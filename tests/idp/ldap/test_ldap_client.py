"""The LDAP client (``rolecall.sso.ldap``) against a real slapd: binds, search, TLS, groups."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress

import pytest

from rolecall.federation.destinations import Destinations
from rolecall.settings import Settings
from rolecall.sso import ldap, ldap_groups
from rolecall.sso.config import LdapConfig
from rolecall.sso.ldap import Directory, LdapError, authenticate
from rolecall.sso.ldap_check import run_checks
from tests.idp.ldap.conftest import GROUPS, SERVICE_DN, Slapd, settings_values, user_dn
from tests.resolver import Names


def config(server: Slapd, **overrides: object) -> LdapConfig:
    return LdapConfig(**settings_values(server, **overrides))


def refused(cfg: LdapConfig, email: str, password: str) -> LdapError:
    with pytest.raises(LdapError) as caught:
        authenticate(cfg, email=email, password=password)
    return caught.value


def test_right_password_signs_in_with_the_directorys_identity(slapd: Slapd) -> None:
    user = authenticate(config(slapd), email="alice@example.org", password="alice-pw")
    assert user.dn == user_dn("alice")
    assert user.email == "alice@example.org"
    assert user.full_name == "Alice Anders"


def test_wrong_password_is_refused(slapd: Slapd) -> None:
    error = refused(config(slapd), "alice@example.org", "bob-pw")
    assert (error.step, error.code) == ("password", "ldap_wrong_password")
    assert error.is_credentials
    assert "bob-pw" not in error.detail


def test_empty_password_is_refused_before_any_connection_or_bind(slapd: Slapd) -> None:
    before = slapd.counters()
    error = refused(config(slapd), "alice@example.org", "")
    after = slapd.counters()
    assert error.code == "ldap_empty_password"
    # Reading the counters costs one connection and one bind; the sign-in attempt cost none.
    assert after["binds"] - before["binds"] == 1
    assert after["connections"] - before["connections"] == 1


@pytest.mark.parametrize("password", ["wrong\u0000", "wrong\t", "wrong\ue000"])
def test_a_password_saslprep_refuses_is_refused_before_any_connection(
    slapd: Slapd, password: str
) -> None:
    """ldap3 refuses to send it (SASLprep, RFC 4013 §2.3): a refusal of the credentials, the
    same for an email the directory holds and one it does not, not an unreachable directory."""
    before = slapd.counters()
    known = refused(config(slapd), "alice@example.org", password)
    unknown = refused(config(slapd), "nobody@example.org", password)
    after = slapd.counters()
    for error in (known, unknown):
        assert (error.step, error.code) == ("password", "ldap_unusable_password")
        assert error.is_credentials and "SASLprep" in error.detail
        assert password not in error.detail
    assert known.detail == unknown.detail
    # Reading the counters costs one connection and one bind; the sign-ins cost none.
    assert after["connections"] - before["connections"] == 1
    assert after["binds"] - before["binds"] == 1


def test_a_sign_in_costs_two_binds_service_then_user(slapd: Slapd) -> None:
    """The counting check the empty-password test relies on does see sign-in binds."""
    before = slapd.counters()
    authenticate(config(slapd), email="bob@example.org", password="bob-pw")
    after = slapd.counters()
    assert after["binds"] - before["binds"] == 1 + 2


def test_unknown_email_is_refused(slapd: Slapd) -> None:
    error = refused(config(slapd), "nobody@example.org", "x-pw")
    assert (error.step, error.code) == ("search", "ldap_user_not_found")
    assert error.is_credentials


def test_an_unknown_email_costs_the_directory_what_a_wrong_password_costs(slapd: Slapd) -> None:
    """No timing tells which emails the directory holds: a refused unknown email opens the same
    connections and makes the same binds (the last one as a DN that names nobody) as a refused
    password."""

    def cost(email: str) -> tuple[int, int, str]:
        before = slapd.counters()
        error = refused(config(slapd), email, "x-pw")
        after = slapd.counters()
        spent = (after["binds"] - before["binds"], after["connections"] - before["connections"])
        return (*spent, error.code)

    wrong_password = cost("alice@example.org")
    unknown_email = cost("nobody@example.org")
    assert wrong_password[2] == "ldap_wrong_password"
    assert unknown_email[2] == "ldap_user_not_found"
    # One of each reads the counters; the sign-in: the service bind, then the password bind.
    assert unknown_email[:2] == wrong_password[:2] == (1 + 2, 1 + 2)


def test_an_entry_without_mail_cannot_sign_in(slapd: Slapd) -> None:
    # dave has no mail attribute: no address finds him, whatever the password.
    for email in ("dave@example.org", "dave"):
        assert refused(config(slapd), email, "dave-pw").code == "ldap_user_not_found"


def test_filter_metacharacters_are_escaped(slapd: Slapd) -> None:
    # Unescaped, "*" would match every entry with a mail and ")(" would rewrite the filter.
    for email in ("*", "*)(uid=alice", "alice@example.org)(|(mail=*"):
        assert refused(config(slapd), email, "alice-pw").code == "ldap_user_not_found"


def test_mixed_case_email_is_matched_by_the_server(slapd: Slapd) -> None:
    user = authenticate(config(slapd), email="eve.smith@example.org", password="eve-pw")
    assert user.dn == user_dn("eve")
    assert user.email == "Eve.Smith@Example.ORG"  # the directory's spelling


def test_several_entries_with_the_address_are_refused(slapd: Slapd) -> None:
    slapd.modify(f"dn: {user_dn('carol')}\nchangetype: modify\nadd: mail\nmail: bob@example.org\n")
    try:
        error = refused(config(slapd), "bob@example.org", "bob-pw")
    finally:
        slapd.modify(
            f"dn: {user_dn('carol')}\nchangetype: modify\ndelete: mail\nmail: bob@example.org\n"
        )
    assert error.code == "ldap_user_ambiguous"


# --- groups --------------------------------------------------------------------------------


def test_gid_number_resolves_to_the_group_entrys_cn(slapd: Slapd) -> None:
    cfg = config(slapd, attributes={"email": "mail", "group": "gidNumber"})
    user = authenticate(cfg, email="bob@example.org", password="bob-pw")
    assert user.groups == ("researchers",)
    assert user.raw_groups == ("5002",)


def test_dn_valued_group_attribute_gives_the_first_rdn(slapd: Slapd) -> None:
    cfg = config(slapd, attributes={"email": "mail", "group": "memberOf"})
    user = authenticate(cfg, email="alice@example.org", password="alice-pw")
    assert sorted(user.groups) == ["admins", "ml-engineers"]


def test_without_a_group_attribute_membership_entries_decide(slapd: Slapd) -> None:
    user = authenticate(config(slapd), email="alice@example.org", password="alice-pw")
    assert sorted(user.groups) == ["admins", "ml-engineers"]


def test_allow_list_admits_a_member(slapd: Slapd) -> None:
    cfg = config(slapd, group_allow_list=("ml-engineers", "researchers"))
    assert authenticate(cfg, email="bob@example.org", password="bob-pw").groups == ("researchers",)


def test_allow_list_accepts_the_raw_gid_number_too(slapd: Slapd) -> None:
    cfg = config(
        slapd, attributes={"email": "mail", "group": "gidNumber"}, group_allow_list=("5003",)
    )
    assert authenticate(cfg, email="carol@example.org", password="carol-pw").groups == (
        "contractors",
    )


def test_allow_list_refuses_others_with_a_clear_message(slapd: Slapd) -> None:
    cfg = config(slapd, group_allow_list=("ml-engineers",))
    error = refused(cfg, "carol@example.org", "carol-pw")
    assert (error.step, error.code) == ("groups", "ldap_group_not_allowed")
    assert "not in an allowed LDAP group" in error.detail


def test_allow_list_is_checked_only_after_the_password(slapd: Slapd) -> None:
    cfg = config(slapd, group_allow_list=("ml-engineers",))
    assert refused(cfg, "carol@example.org", "wrong").code == "ldap_wrong_password"


# --- binds and TLS ---------------------------------------------------------------------------


def test_anonymous_bind_where_the_directory_allows_it(slapd_anon: Slapd) -> None:
    cfg = config(slapd_anon, bind_dn=None, bind_pw=None)
    assert authenticate(cfg, email="bob@example.org", password="bob-pw").dn == user_dn("bob")


def test_anonymous_bind_refused_by_a_strict_directory(slapd: Slapd) -> None:
    error = refused(config(slapd, bind_dn=None, bind_pw=None), "bob@example.org", "bob-pw")
    assert (error.step, error.code) == ("bind", "ldap_bind_failed")
    assert "anonymous" in error.detail


def test_wrong_service_password(slapd: Slapd) -> None:
    error = refused(config(slapd, bind_pw="not-it"), "bob@example.org", "bob-pw")
    assert (error.step, error.code) == ("bind", "ldap_bind_failed")
    assert SERVICE_DN in error.detail and "not-it" not in error.detail


def test_a_service_password_saslprep_refuses_is_a_bind_failure(slapd: Slapd) -> None:
    """Refused by ldap3 before anything is sent: the settings are wrong, the directory is fine."""
    error = refused(config(slapd, bind_pw="svc-pw\ue000"), "bob@example.org", "bob-pw")
    assert (error.step, error.code) == ("bind", "ldap_bind_failed")
    assert "SASLprep" in error.detail and "LOCAL_LDAP_BIND_PW" in error.detail
    assert "svc-pw" not in error.detail


def test_ldaps_with_the_ca_file(slapd: Slapd) -> None:
    cfg = config(slapd, address=slapd.ldaps_url, tls_enable=True)
    assert authenticate(cfg, email="bob@example.org", password="bob-pw").dn == user_dn("bob")


def test_start_tls_with_the_ca_file(slapd: Slapd) -> None:
    cfg = config(slapd, tls_enable=True)
    assert authenticate(cfg, email="bob@example.org", password="bob-pw").dn == user_dn("bob")


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_a_certificate_from_another_ca_fails_tls(slapd: Slapd, slapd_anon: Slapd, tls: str) -> None:
    address = slapd.ldaps_url if tls == "ldaps" else slapd.url
    cfg = config(slapd, address=address, tls_enable=True, ca_file=slapd_anon.ca_file)
    error = refused(cfg, "bob@example.org", "bob-pw")
    assert (error.step, error.code) == ("tls", "ldap_tls_failed")
    assert "not trusted" in error.detail


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_an_unusable_ca_file_fails_tls(slapd: Slapd, tmp_path, tls: str) -> None:
    address = slapd.ldaps_url if tls == "ldaps" else slapd.url
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for ca_file, says in ((tmp_path / "missing.pem", "missing"), (garbage, "certificate")):
        cfg = config(slapd, address=address, tls_enable=True, ca_file=str(ca_file))
        error = refused(cfg, "bob@example.org", "bob-pw")
        assert (error.step, error.code) == ("tls", "ldap_tls_failed"), error.detail
        assert says in error.detail


def test_ldaps_against_the_plain_port_fails_tls(slapd: Slapd) -> None:
    address = f"ldaps://127.0.0.1:{slapd.port}"
    error = refused(config(slapd, address=address), "bob@example.org", "bob-pw")
    assert (error.step, error.code) == ("tls", "ldap_tls_failed")


def test_unreachable_directory(slapd: Slapd, unreachable_url: str) -> None:
    error = refused(config(slapd, address=unreachable_url), "bob@example.org", "bob-pw")
    assert (error.step, error.code) == ("connect", "ldap_unreachable")
    assert "connection refused" in error.detail


def test_a_directory_name_that_does_not_resolve_is_unreachable(slapd: Slapd) -> None:
    error = refused(config(slapd, address="ldap://no-such-host.invalid"), "bob@example.org", "x")
    assert (error.step, error.code) == ("connect", "ldap_unreachable")
    assert "no-such-host.invalid:389: unknown host name" in error.detail


# --- the address checked is the address connected to (DNS rebinding) -----------------------


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Names:
    return Names(monkeypatch)


def test_a_connection_goes_to_the_address_checked_not_to_a_later_answer(
    slapd: Slapd, names: Names
) -> None:
    """The directory's name answers 127.0.0.1 (which the operator allows) to the lookup that is
    checked, then 127.0.0.2 (refused in multi-org mode, as a metadata address would be in any
    mode): the connection goes to slapd at 127.0.0.1, and the next connection's own lookup is
    checked and refused; nothing ever connects to 127.0.0.2."""
    names.answer("directory.test", ["127.0.0.1"], ["127.0.0.2"])
    rule = Destinations.of(Settings(mode="multi", outbound_allow="127.0.0.1"))
    cfg = config(slapd, address=f"ldap://directory.test:{slapd.port}", destinations=rule)
    with socket.socket() as rebound, Directory(cfg) as directory:
        rebound.bind(("127.0.0.2", slapd.port))
        rebound.listen()
        rebound.setblocking(False)
        directory.connect()
        assert directory.bind_service() == f"bound as {SERVICE_DN}"  # slapd answered
        with pytest.raises(LdapError) as caught:
            directory.check_password(user_dn("bob"), "bob-pw")
        with pytest.raises(BlockingIOError):
            rebound.accept()  # no connection came
    assert (caught.value.step, caught.value.code) == ("connect", "ldap_destination_refused")
    assert "directory.test (127.0.0.2) is not a public address" in caught.value.detail
    assert names.lookups["directory.test"] == 2  # once for each connection


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_tls_checks_the_certificate_against_the_directorys_name(
    slapd: Slapd, names: Names, tls: str
) -> None:
    """Connected by address, TLS still wants the certificate to name the configured host:
    slapd's names localhost (and 127.0.0.1), not directory.test, though both lead there."""
    scheme, port = ("ldaps", slapd.ldaps_port) if tls == "ldaps" else ("ldap", slapd.port)
    names.answer("localhost", ["127.0.0.1"])
    names.answer("directory.test", ["127.0.0.1"])
    named = config(slapd, address=f"{scheme}://localhost:{port}", tls_enable=True)
    assert authenticate(named, email="bob@example.org", password="bob-pw").dn == user_dn("bob")
    other = config(slapd, address=f"{scheme}://directory.test:{port}", tls_enable=True)
    error = refused(other, "bob@example.org", "bob-pw")
    assert (error.step, error.code) == ("tls", "ldap_tls_failed")
    assert "the certificate does not name this host" in error.detail


def test_base_dn_that_does_not_exist(slapd: Slapd) -> None:
    error = refused(config(slapd, base_dn="dc=nowhere,dc=org"), "bob@example.org", "bob-pw")
    assert error.code == "ldap_base_dn_not_found"


# --- the settings test (run_checks) ----------------------------------------------------------


def steps(cfg: LdapConfig, **kwargs: str) -> list[tuple[str, bool]]:
    return [(s.step, s.ok) for s in run_checks(cfg, **kwargs)]


def test_settings_test_walks_every_step(slapd: Slapd) -> None:
    result = run_checks(
        config(slapd, tls_enable=True, attributes={"email": "mail", "group": "gidNumber"}),
        email="alice@example.org",
        password="alice-pw",
    )
    assert [(s.step, s.ok) for s in result] == [
        ("connect", True),
        ("tls", True),
        ("bind", True),
        ("base_dn", True),
        ("attributes", True),
        ("search", True),
        ("groups", True),
        ("password", True),
    ]
    assert "ml-engineers" in result[6].detail


def test_settings_test_names_the_failing_step(slapd: Slapd, unreachable_url: str) -> None:
    assert steps(config(slapd, address=unreachable_url)) == [("connect", False)]
    assert steps(config(slapd, bind_dn=None, bind_pw=None))[-1] == ("bind", False)
    assert steps(config(slapd, base_dn=f"ou=nothing,{GROUPS}"))[-1] == ("base_dn", False)
    missing = run_checks(config(slapd, attributes={"email": "emailAddress"}))
    assert (missing[-1].step, missing[-1].ok) == ("attributes", False)
    assert "emailAddress" in missing[-1].detail
    assert steps(config(slapd), email="dave@example.org")[-1] == ("search", False)
    assert steps(config(slapd), email="bob@example.org", password="x")[-1] == ("password", False)
    unsendable = run_checks(config(slapd), email="bob@example.org", password="x\x00")
    assert (unsendable[-1].step, unsendable[-1].ok) == ("password", False)
    assert "SASLprep" in unsendable[-1].detail and user_dn("bob") in unsendable[-1].detail


def test_settings_test_of_a_bad_address(slapd: Slapd) -> None:
    result = run_checks(config(slapd, address="http://127.0.0.1/"))
    assert [(s.step, s.ok) for s in result] == [("connect", False)]
    assert "ldap://" in result[0].detail


# --- limits -------------------------------------------------------------------------------------


def test_a_cut_short_group_list_is_an_error_not_a_partial_answer(slapd: Slapd, monkeypatch) -> None:
    # Team sync acts on the list: half a list would remove the user from teams it is in.
    monkeypatch.setattr(ldap_groups, "GROUP_SIZE_LIMIT", 1)
    error = refused(config(slapd), "alice@example.org", "alice-pw")  # alice is in two groups
    assert (error.step, error.code) == ("groups", "ldap_search_failed")


def test_a_directory_that_never_answers_times_out(slapd: Slapd, monkeypatch) -> None:
    monkeypatch.setattr(ldap, "RECEIVE_TIMEOUT", 1)  # whole seconds (ldap3)
    with socket.socket() as silent:  # the kernel accepts connections; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        error = refused(config(slapd, address=address), "bob@example.org", "bob-pw")
    assert time.monotonic() - started < 5
    assert (error.step, error.code) == ("bind", "ldap_unreachable")
    assert "stopped answering" in error.detail


class DrippingRelay:
    """A TCP relay in front of the real slapd: what the client sends goes through at once,
    what the directory answers comes back a byte every ``interval`` seconds (a directory slow
    in every answer, each byte well within ldap3's per-read timeout)."""

    def __init__(self, target: tuple[str, int], interval: float) -> None:
        self.target = target
        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"ldap://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(upstream, client, self.interval), daemon=True
            ).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, interval: float) -> None:
        with suppress(OSError):
            while data := source.recv(4096):
                for n in range(len(data) if interval else 1):
                    sink.sendall(data[n : n + 1] if interval else data)
                    time.sleep(interval)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_a_directory_answering_a_byte_at_a_time_is_cut_off_at_the_deadline(
    slapd: Slapd, monkeypatch
) -> None:
    """ldap3's timeouts bound each read; ``ldap.DEADLINE`` the whole conversation. Before, a
    directory dripping its answers held a sign-in for as long as it went on (90 s in a fuzzing
    run; here a sign-in's answers take about 15 s)."""
    target = ("127.0.0.1", slapd.port)
    quick = DrippingRelay(target, 0.0)
    slow = DrippingRelay(target, 0.05)
    try:
        through = authenticate(
            config(slapd, address=quick.address), email="alice@example.org", password="alice-pw"
        )
        assert through.dn == user_dn("alice")  # the relay itself changes nothing
        monkeypatch.setattr(ldap, "DEADLINE", 1.0)
        started = time.monotonic()
        error = refused(config(slapd, address=slow.address), "alice@example.org", "alice-pw")
        assert time.monotonic() - started < 3
        assert error.code == "ldap_unreachable"
        assert "did not finish answering within 1 s (all steps together)" in error.detail
        started = time.monotonic()
        result = run_checks(config(slapd, address=slow.address), email="alice@example.org")
        assert time.monotonic() - started < 3
        assert not result[-1].ok and "within 1 s (all steps together)" in result[-1].detail
    finally:
        quick.close()
        slow.close()


@pytest.mark.parametrize(
    ("code", "stands"), [("ldap_wrong_password", True), ("ldap_search_failed", False)]
)
def test_past_the_deadline_only_a_refusal_of_the_credentials_stands(slapd: Slapd, code, stands):
    """A wrong password answered just before the deadline is still a wrong password; any
    other failure once the connections were cut is the deadline's."""
    with pytest.raises(LdapError) as caught, Directory(config(slapd)) as directory:
        directory.cut_off = True  # as the timer leaves it
        raise LdapError("password", code, "the directory's answer")
    assert (caught.value.code == code) is stands
    assert ("all steps together" in caught.value.detail) is not stands
