"""The LDAP client (ldap3): check an email and password against a directory, read its groups.

One sign-in is, in this order (RFC 4513 §5.1 for the binds):

1. **connect** to ``ldap://`` or ``ldaps://`` (``LOCAL_LDAP_ADDRESS``) with short timeouts;
2. **tls**: ``ldaps://`` speaks TLS from the first byte (LDAPS); ``ldap://`` with
   ``LOCAL_LDAP_TLS_ENABLE`` upgrades with StartTLS (RFC 4511 §4.14). Certificates are always
   verified (``CERT_REQUIRED``) against ``ROLECALL_LDAP_CA_FILE`` or the system's CA bundle;
3. **bind** as the service account (``LOCAL_LDAP_BIND_DN``/``BIND_PW``) or anonymously when no
   bind DN is set;
4. **search** under ``LOCAL_LDAP_BASE_DN`` for the one person entry whose email attribute
   (``email=`` of ``LOCAL_LDAP_ATTRIBUTES``, default ``mail``) equals the address typed, with
   the value escaped (RFC 4515 §3); none or several entries: refused (none only after a bind
   as a DN that names nobody, so that an unknown email takes as long as a wrong password).
   Referrals are not followed (RFC 4511 §4.1.10, §4.5.3): parts of the tree held by another
   directory are left out of the answer, and a base DN held elsewhere is an error;
5. **password**: a second bind as that entry's DN. An empty password is refused before any of
   this: RFC 4513 §5.1.2 makes it an "unauthenticated bind", which some servers answer with
   success. So is a password SASLprep refuses (RFC 4013 §2.3: NUL, tab, private-use
   characters...), which ldap3 would not send: it is no directory failure, and refusing it
   before any connection treats every email alike;
6. **groups**, see ``DirectoryUser.groups``, and the group allow-list.

Every failure is an ``LdapError`` naming its step and a stable code; its ``detail`` is written for
the administrator (the sign-in layer shows end users less) and never holds a password.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ldap3 import BASE, SUBTREE, Connection
from ldap3.core.exceptions import (
    LDAPException,
    LDAPInvalidDnError,
)
from ldap3.core.results import RESULT_REFERRAL
from ldap3.utils.conv import escape_filter_chars

from rolecall.federation.destinations import DestinationRefused
from rolecall.sso.ldap_connection import (
    bind,
    make_connection,
    parse_address,
    password_refusal,
    start_tls,
    unusable_password,
)
from rolecall.sso.ldap_errors import (
    NO_SUCH_OBJECT,
    SIZE_LIMIT_EXCEEDED,
    LdapError,
    lost,
    result_error,
    socket_reason,
    tls_reason,
)
from rolecall.sso.ldap_groups import groups_of, values_of

if TYPE_CHECKING:
    from rolecall.sso.config import LdapConfig

log = logging.getLogger("rolecall.sso.ldap")

#: Seconds (whole: ldap3 packs them as integers) to wait for the TCP connection, and then for
#: each answer of the directory.
CONNECT_TIMEOUT = 4
RECEIVE_TIMEOUT = 5
#: Seconds one conversation (a sign-in, a settings test: every step) may take in all. ldap3's
#: timeouts bound each read alone: a directory sending a byte every few seconds kept a sign-in,
#: and the worker thread serving it, waiting 90 s in a fuzzing run.
DEADLINE = 15.0
#: Entries a search may return: two are enough to tell "exactly one" from "several".
USER_SIZE_LIMIT = 2
#: Object classes a user entry must have (inetOrgPerson, AD's user: both derive from person).
USER_FILTER = "(objectClass=person)"


@dataclass(frozen=True)
class DirectoryUser:
    """The entry an email and password signed in as.

    ``groups``: group names. With a mapped ``group`` attribute (``group=gidNumber``,
    ``group=memberOf``...) its values decide: a DN stands for its first RDN's value
    (``cn=ml-engineers,ou=groups,...`` → ``ml-engineers``), a ``gidNumber`` for the ``cn`` of the
    group entries under the base DN carrying that number (the number itself when there is none),
    any other value for itself. Without a mapped ``group`` attribute: the ``cn`` of the group
    entries that list the user in ``member``/``uniqueMember`` (by DN) or ``memberUid`` (by uid).
    ``raw_groups`` keeps the values before resolution (the allow-list accepts both).
    """

    dn: str
    email: str
    full_name: str | None
    groups: tuple[str, ...]
    raw_groups: tuple[str, ...] = ()
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)


def email_attribute(config: LdapConfig) -> str:
    return config.attributes.get("email") or "mail"


def group_attribute(config: LdapConfig) -> str | None:
    return config.attributes.get("group") or None


class Directory:
    """One conversation with the directory, step by step (each step raises ``LdapError``).

    Use as a context manager: ``with Directory(config) as directory: directory.connect() ...``;
    the connections it opened are closed on exit. The conversation ends ``DEADLINE`` seconds
    after it began: then its connections are cut (from a timer thread: a blocked read returns
    at once), and the failure that follows, whichever step it hit, leaves the ``with`` block as
    ``ldap_unreachable`` saying so (unless it is a refusal of the credentials, answered before).
    """

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.endpoint = parse_address(config.address, tls_enable=config.tls_enable)
        self.base_dn = (config.base_dn or "").strip()
        self._service: Connection | None = None
        #: Whether a TCP connection was made (also when TLS then failed).
        self.reached = False
        self._opened: list[Connection] = []
        self._watchdog = threading.Timer(DEADLINE, self._cut_off)
        self._watchdog.daemon = True
        #: Whether the deadline passed and the connections were cut.
        self.cut_off = False

    def __enter__(self) -> Directory:
        self._watchdog.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: object, trace: object) -> None:
        self._watchdog.cancel()
        for conn in self._opened:
            with suppress(LDAPException, OSError):  # already gone: nothing to close
                conn.unbind()
        self._opened.clear()
        # A refusal of the credentials was the directory's answer, in time: it stands.
        if self.cut_off and isinstance(error, LdapError) and not error.is_credentials:
            where = f"{self.endpoint.host}:{self.endpoint.port}"
            raise LdapError(
                error.step,
                "ldap_unreachable",
                f"{where} did not finish answering within {DEADLINE:g} s (all steps together)",
            ) from None

    def _cut_off(self) -> None:
        """The deadline passed: shut every connection's socket down, which wakes the read
        waiting on it (closing alone would not). Runs on the timer's thread."""
        self.cut_off = True
        for conn in list(self._opened):
            sock = getattr(conn, "socket", None)
            if sock is not None:
                with suppress(OSError):  # closed already, or never connected
                    # socket.socket's own shutdown: an SSLSocket's would drop its TLS state
                    # under the reading thread.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    # --- steps -------------------------------------------------------------------------------

    def connect(self) -> str:
        """Open the service connection (TCP, and TLS for LDAPS; StartTLS is ``secure``)."""
        self._service = self._open()
        return f"connected to {self.endpoint.host}:{self.endpoint.port}"

    def secure(self) -> str:
        """StartTLS on the service connection (when configured)."""
        assert self._service is not None
        if self.endpoint.ldaps:
            return "LDAPS (TLS from the start), certificate verified"
        if not self.endpoint.start_tls:
            return "TLS not used (plain ldap:// without LOCAL_LDAP_TLS_ENABLE)"
        start_tls(self._service, self.endpoint)
        return "StartTLS done, certificate verified"

    def bind_service(self) -> str:
        """Bind as the service account, or anonymously when no bind DN is set."""
        assert self._service is not None
        bind_dn = (self.config.bind_dn or "").strip()
        if bind_dn and not self.config.bind_pw:
            raise LdapError(
                "bind",
                "ldap_bind_failed",
                f"a bind DN ({bind_dn}) is set without a bind password; set LOCAL_LDAP_BIND_PW "
                "or clear the bind DN for an anonymous bind",
            )
        bind(self._service, bind_dn or None, self.config.bind_pw or None, service=True)
        return f"bound as {bind_dn}" if bind_dn else "bound anonymously"

    def check_base_dn(self) -> str:
        """The base DN names an entry the service account can read."""
        assert self._service is not None
        if not self.base_dn:
            raise LdapError("base_dn", "ldap_invalid_settings", "no base DN is set")
        conn = self._service
        try:
            conn.search(self.base_dn, "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
        except LDAPInvalidDnError:
            raise LdapError(
                "base_dn", "ldap_invalid_settings", f"the base DN {self.base_dn!r} is not a DN"
            ) from None
        except Exception as exc:  # ldap3 raises more than LDAPException
            raise lost("base_dn", exc) from None
        code = conn.result.get("result")
        if code == NO_SUCH_OBJECT:
            raise LdapError(
                "base_dn",
                "ldap_base_dn_not_found",
                f"the base DN {self.base_dn} does not exist (or the bind cannot see it)",
            )
        if code == RESULT_REFERRAL:
            raise self._referred("base_dn")
        if code != 0:
            raise result_error("base_dn", "ldap_search_failed", "reading the base DN", conn)
        if not conn.entries:
            raise LdapError(
                "base_dn",
                "ldap_base_dn_not_found",
                f"the base DN {self.base_dn} cannot be read with this bind",
            )
        return f"base DN {self.base_dn} found"

    def check_attributes(self) -> str:
        """Some person entry under the base DN carries the email attribute."""
        attribute = email_attribute(self.config)
        found = self._search(
            "attributes",
            f"(&{USER_FILTER}({escape_filter_chars(attribute)}=*))",
            attributes=["1.1"],
            size_limit=1,
        )
        if not found:
            raise LdapError(
                "attributes",
                "ldap_attribute_missing",
                f"no person entry under {self.base_dn} has the email attribute {attribute!r}; "
                "check LOCAL_LDAP_ATTRIBUTES (email=...)",
            )
        return f"person entries carry the email attribute {attribute!r}"

    def find_user(self, email: str) -> dict[str, Any]:
        """The one person entry whose email attribute is ``email`` (matched by the server)."""
        attribute = email_attribute(self.config)
        wanted = [attribute, *self.config.name_attributes, "uid"]
        if group_attribute(self.config):
            wanted.append(group_attribute(self.config))  # type: ignore[arg-type]
        value = escape_filter_chars(email.strip())
        entries = self._search(
            "search",
            f"(&{USER_FILTER}({escape_filter_chars(attribute)}={value}))",
            attributes=wanted,
            size_limit=USER_SIZE_LIMIT,
        )
        if not entries:
            raise LdapError(
                "search", "ldap_user_not_found", f"no person entry has {attribute}={email.strip()}"
            )
        if len(entries) > 1:
            raise LdapError(
                "search",
                "ldap_user_ambiguous",
                f"several entries have {attribute}={email.strip()}; refusing to pick one",
            )
        return entries[0]

    def check_password(self, dn: str, password: str) -> str:
        """Bind as ``dn`` with ``password`` on a connection of its own."""
        refuse_unsendable(password, dn)
        conn = self._open()
        if self.endpoint.start_tls:
            start_tls(conn, self.endpoint)
        bind(conn, dn, password, service=False)
        return f"password accepted for {dn}"

    def spend_a_password_check(self, password: str) -> None:
        """Bind as a DN that names nobody, with the password given, and forget the answer. An
        email the directory does not hold then costs the connection and bind a wrong password
        costs, so that how long a refusal takes does not tell which emails it holds."""
        nobody = f"cn=rolecall-nobody-{secrets.token_hex(8)}"
        with suppress(LdapError):
            self.check_password(f"{nobody},{self.base_dn}" if self.base_dn else nobody, password)

    def directory_user(self, entry: dict[str, Any], email: str) -> DirectoryUser:
        """Read the found entry: its email, name and groups."""
        values = entry["attributes"]
        attribute = email_attribute(self.config)
        mails = values_of(values, attribute)
        typed = email.strip().lower()
        mail = next((m for m in mails if m.lower() == typed), mails[0] if mails else None)
        if not mail:
            raise LdapError(
                "attributes",
                "ldap_attribute_missing",
                f"the entry {entry['dn']} has no {attribute!r} attribute",
            )
        names = self.config.name_attributes
        name = next((v for a in names for v in values_of(values, a)), None)
        raw, groups = groups_of(entry, group_attribute(self.config), self._search)
        return DirectoryUser(
            dn=entry["dn"],
            email=mail,
            full_name=name,
            groups=groups,
            raw_groups=raw,
            attributes={k: values_of(values, k) for k in values},
        )

    def check_allowed(self, user: DirectoryUser) -> str:
        """With ``LOCAL_LDAP_GROUP_ALLOW_LIST``: the user must be in one of its groups."""
        allowed = {g.strip().lower() for g in self.config.group_allow_list if g.strip()}
        if not allowed:
            return "no group allow-list"
        mine = {g.lower() for g in (*user.groups, *user.raw_groups)}
        if not mine & allowed:
            raise LdapError(
                "groups",
                "ldap_group_not_allowed",
                f"{user.dn} is not in an allowed LDAP group "
                f"(allowed: {', '.join(sorted(allowed))})",
            )
        return f"in allowed group(s) {', '.join(sorted(mine & allowed))}"

    # --- helpers -----------------------------------------------------------------------------

    def _open(self) -> Connection:
        endpoint = self.endpoint
        where = f"{endpoint.host}:{endpoint.port}"
        try:
            # Looked up once: the connection goes to these addresses, not to a second answer.
            addresses = self.config.destinations.addresses(endpoint.host, endpoint.port)
        except DestinationRefused as exc:
            raise LdapError(
                "connect", "ldap_destination_refused", f"will not connect: {exc}"
            ) from None
        except OSError as exc:
            raise LdapError(
                "connect",
                "ldap_unreachable",
                f"cannot reach {where}: {socket_reason(str(exc), CONNECT_TIMEOUT)}",
            ) from None
        conn = make_connection(
            endpoint,
            addresses,
            self.config.ca_file or None,
            connect_timeout=CONNECT_TIMEOUT,
            receive_timeout=RECEIVE_TIMEOUT,
        )
        self._opened.append(conn)  # before it opens: the deadline cuts a slow opening too
        try:
            conn.open()
        except LDAPException as exc:
            text = str(exc)
            if endpoint.ldaps and ("ssl" in text.lower() or "certificate" in text.lower()):
                self.reached = True  # TCP worked; the handshake did not
                raise LdapError(
                    "tls", "ldap_tls_failed", f"TLS with {where} failed: {tls_reason(text)}"
                ) from None
            raise LdapError(
                "connect",
                "ldap_unreachable",
                f"cannot reach {where}: {socket_reason(text, CONNECT_TIMEOUT)}",
            ) from None
        except Exception as exc:  # ldap3 lets some socket errors through as other types
            raise LdapError(
                "connect", "ldap_unreachable", f"cannot reach {where}: {type(exc).__name__}"
            ) from None
        self.reached = True
        return conn

    def _search(
        self, step: str, search_filter: str, *, attributes: list[str], size_limit: int,
        complete: bool = False,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Entries under the base DN; ``complete``: a result cut short by a size limit (ours
        or the server's) is an error, not a partial answer (team sync would act on it)."""
        assert self._service is not None
        conn = self._service
        try:
            conn.search(
                self.base_dn,
                search_filter,
                search_scope=SUBTREE,
                attributes=attributes,
                size_limit=size_limit,
            )
        except Exception as exc:  # ldap3 raises more than LDAPException
            raise lost(step, exc) from None
        code = conn.result.get("result")
        if code == SIZE_LIMIT_EXCEEDED and complete:
            raise LdapError(
                step, "ldap_search_failed", f"more than {size_limit} entries match {search_filter}"
            )
        # sizeLimitExceeded still returns the entries found so far.
        if code not in (0, SIZE_LIMIT_EXCEEDED):
            if code == NO_SUCH_OBJECT:
                raise LdapError(
                    step, "ldap_base_dn_not_found", f"the base DN {self.base_dn} does not exist"
                )
            if code == RESULT_REFERRAL:
                raise self._referred(step)
            raise result_error(step, "ldap_search_failed", "the search", conn)
        # Entries only: a continuation reference (searchResRef) says part of the tree is held
        # by another directory, which is not asked (see ``_referred``).
        return [r for r in conn.response or () if r.get("type") == "searchResEntry"]

    def _referred(self, step: str) -> LdapError:
        """The base DN is held by another directory (a referral result). It is not followed:
        the directory would choose the host, outside ``federation.destinations``, and ldap3
        would bind there with the service account's credentials."""
        assert self._service is not None
        where = ", ".join(self._service.result.get("referrals") or ()) or "another directory"
        return LdapError(
            step,
            "ldap_search_failed",
            f"the directory refers the base DN {self.base_dn} to {where}; referrals are not "
            "followed: set the base DN to an entry this directory holds",
        )


def refuse_unsendable(password: str, dn: str | None = None) -> None:
    """Raise ``LdapError`` for a password no bind may carry: an empty one
    (``ldap_empty_password``) or one SASLprep refuses (``ldap_unusable_password``)."""
    if not password:
        raise LdapError("password", "ldap_empty_password", "an empty password is refused")
    reason = password_refusal(password)
    if reason is not None:
        raise unusable_password(dn, reason)


def authenticate(config: LdapConfig, *, email: str, password: str) -> DirectoryUser:
    """Check ``email`` and ``password`` against the directory; the entry they sign in as.

    Raises ``LdapError`` (see its codes). The checks of the password (empty, or refused by
    SASLprep) and of the email come first, so such a request never opens a connection, whether
    the directory holds the email or not.
    """
    refuse_unsendable(password)
    if not email.strip() or "\x00" in email:
        raise LdapError("search", "ldap_user_not_found", "no email address given")
    with Directory(config) as directory:
        directory.connect()
        directory.secure()
        directory.bind_service()
        try:
            entry = directory.find_user(email)
        except LdapError as exc:
            if exc.code == "ldap_user_not_found":
                directory.spend_a_password_check(password)
            raise
        directory.check_password(entry["dn"], password)
        user = directory.directory_user(entry, email)
        directory.check_allowed(user)
    log.info("LDAP sign-in checked for %s", user.dn)
    return user


# --- small readers -------------------------------------------------------------------------
