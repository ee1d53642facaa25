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
   the value escaped (RFC 4515 §3); none or several entries: refused;
5. **password**: a second bind as that entry's DN. An empty password is refused before any of
   this: RFC 4513 §5.1.2 makes it an "unauthenticated bind", which some servers answer with
   success;
6. **groups**, see ``DirectoryUser.groups``, and the group allow-list.

Every failure is an ``LdapError`` naming its step and a stable code; its ``detail`` is written for
the administrator (the sign-in layer shows end users less) and never holds a password.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ldap3 import ANONYMOUS, BASE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPException,
    LDAPInvalidDnError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from rolecall.sso.ldap_errors import (
    CONFIDENTIALITY_REQUIRED,
    INAPPROPRIATE_AUTHENTICATION,
    INVALID_CREDENTIALS,
    NO_SUCH_OBJECT,
    SIZE_LIMIT_EXCEEDED,
    UNWILLING_TO_PERFORM,
    LdapError,
    lost,
    result_error,
    socket_reason,
    tls_reason,
)

if TYPE_CHECKING:
    from rolecall.sso.config import LdapConfig

log = logging.getLogger("rolecall.sso.ldap")

#: Seconds (whole: ldap3 packs them as integers) to wait for the TCP connection, and then for
#: each answer of the directory.
CONNECT_TIMEOUT = 4
RECEIVE_TIMEOUT = 5
#: Entries a search may return: two are enough to tell "exactly one" from "several".
USER_SIZE_LIMIT = 2
GROUP_SIZE_LIMIT = 1000
DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
#: Object classes a user entry must have (inetOrgPerson, AD's user: both derive from person).
USER_FILTER = "(objectClass=person)"
#: Object classes of group entries (POSIX, RFC 4519 groupOfNames/groupOfUniqueNames, AD).
GROUP_FILTER = (
    "(|(objectClass=posixGroup)(objectClass=groupOfNames)"
    "(objectClass=groupOfUniqueNames)(objectClass=group))"
)
#: Attributes naming a person after the mapped ``name`` one, first found wins.
NAME_ATTRIBUTES = ("displayName", "cn")


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


@dataclass(frozen=True)
class Endpoint:
    """Where the directory is and how to secure the connection."""

    host: str
    port: int
    ldaps: bool
    start_tls: bool


def parse_address(address: str | None, *, tls_enable: bool) -> Endpoint:
    """``ldap://host[:port]`` or ``ldaps://host[:port]``; raises ``LdapError`` (step connect)."""
    text = (address or "").strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme.lower() not in DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.username
    ):
        raise LdapError(
            "connect",
            "ldap_invalid_settings",
            f"the address {text!r} is not ldap://host[:port] or ldaps://host[:port]",
        )
    scheme = parts.scheme.lower()
    ldaps = scheme == "ldaps"
    return Endpoint(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        ldaps=ldaps,
        start_tls=tls_enable and not ldaps,
    )


def email_attribute(config: LdapConfig) -> str:
    return config.attributes.get("email") or "mail"


def group_attribute(config: LdapConfig) -> str | None:
    return config.attributes.get("group") or None


class Directory:
    """One conversation with the directory, step by step (each step raises ``LdapError``).

    Use as a context manager: ``with Directory(config) as directory: directory.connect() ...``;
    the connections it opened are closed on exit.
    """

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.endpoint = parse_address(config.address, tls_enable=config.tls_enable)
        self.base_dn = (config.base_dn or "").strip()
        self._service: Connection | None = None
        #: Whether a TCP connection was made (also when TLS then failed).
        self.reached = False
        self._opened: list[Connection] = []

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self._opened:
            with suppress(LDAPException, OSError):  # already gone: nothing to close
                conn.unbind()
        self._opened.clear()

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
        self._start_tls(self._service)
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
        self._bind(self._service, bind_dn or None, self.config.bind_pw or None, service=True)
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
        wanted = [attribute, *NAME_ATTRIBUTES, "uid"]
        if self.config.attributes.get("name"):
            wanted.append(self.config.attributes["name"])
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
        if not password:
            raise LdapError("password", "ldap_empty_password", "an empty password is refused")
        conn = self._open()
        if self.endpoint.start_tls:
            self._start_tls(conn)
        self._bind(conn, dn, password, service=False)
        return f"password accepted for {dn}"

    def directory_user(self, entry: dict[str, Any], email: str) -> DirectoryUser:
        """Read the found entry: its email, name and groups."""
        values = entry["attributes"]
        attribute = email_attribute(self.config)
        mails = _values(values, attribute)
        typed = email.strip().lower()
        mail = next((m for m in mails if m.lower() == typed), mails[0] if mails else None)
        if not mail:
            raise LdapError(
                "attributes",
                "ldap_attribute_missing",
                f"the entry {entry['dn']} has no {attribute!r} attribute",
            )
        names = (self.config.attributes.get("name"), *NAME_ATTRIBUTES)
        name = next((v for a in names if a for v in _values(values, a)), None)
        raw, groups = self._groups(entry)
        return DirectoryUser(
            dn=entry["dn"],
            email=mail,
            full_name=name,
            groups=groups,
            raw_groups=raw,
            attributes={k: _values(values, k) for k in values},
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
        tls = None
        if endpoint.ldaps or endpoint.start_tls:
            ca_file = self.config.ca_file or None
            try:
                tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
            except LDAPSSLConfigurationError:
                raise LdapError(
                    "tls", "ldap_tls_failed", f"the CA file {ca_file} is missing or unreadable"
                ) from None
        server = Server(
            endpoint.host,
            port=endpoint.port,
            use_ssl=endpoint.ldaps,
            tls=tls,
            get_info=NONE,
            connect_timeout=CONNECT_TIMEOUT,
        )
        conn = Connection(
            server,
            auto_bind=False,
            read_only=True,
            raise_exceptions=False,
            receive_timeout=RECEIVE_TIMEOUT,
            authentication=ANONYMOUS,
        )
        where = f"{endpoint.host}:{endpoint.port}"
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
        self._opened.append(conn)
        return conn

    def _start_tls(self, conn: Connection) -> None:
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            # read_server_info=False: a server refusing unauthenticated reads would fail here.
            done = conn.start_tls(read_server_info=False)
        except LDAPStartTLSError as exc:
            raise LdapError(
                "tls", "ldap_tls_failed", f"StartTLS with {where} failed: {tls_reason(str(exc))}"
            ) from None
        except Exception as exc:  # ldap3 raises more than LDAPException
            raise LdapError(
                "tls", "ldap_tls_failed", f"StartTLS with {where} failed: {exc}"
            ) from None
        if not done:
            reason = conn.result.get("description") or "refused"
            raise LdapError(
                "tls",
                "ldap_tls_failed",
                f"{where} refused StartTLS ({reason}); is TLS set up there?",
            )

    def _bind(
        self, conn: Connection, dn: str | None, password: str | None, *, service: bool
    ) -> None:
        if dn:
            conn.authentication = SIMPLE
            conn.user = dn
            conn.password = password
        try:
            ok = conn.bind()
        except Exception as exc:  # ldap3 raises more than LDAPException
            raise lost("bind" if service else "password", exc) from None
        if ok:
            return
        code = conn.result.get("result")
        if not service:
            if code in (INVALID_CREDENTIALS, INAPPROPRIATE_AUTHENTICATION, UNWILLING_TO_PERFORM):
                raise LdapError("password", "ldap_wrong_password", f"wrong password for {dn}")
            raise result_error("password", "ldap_search_failed", f"binding as {dn}", conn)
        if not dn and code in (INAPPROPRIATE_AUTHENTICATION, UNWILLING_TO_PERFORM):
            raise LdapError(
                "bind",
                "ldap_bind_failed",
                "the directory refuses anonymous binds; set a bind DN and password "
                "(LOCAL_LDAP_BIND_DN, LOCAL_LDAP_BIND_PW)",
            )
        if code == INVALID_CREDENTIALS:
            raise LdapError(
                "bind",
                "ldap_bind_failed",
                f"the directory refused the bind DN {dn} or its password",
            )
        if code == CONFIDENTIALITY_REQUIRED:
            raise LdapError(
                "bind",
                "ldap_bind_failed",
                "the directory requires TLS before binding; use ldaps:// or LOCAL_LDAP_TLS_ENABLE",
            )
        raise result_error("bind", "ldap_bind_failed", "the service bind", conn)

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
            raise result_error(step, "ldap_search_failed", "the search", conn)
        return [r for r in conn.response or () if r.get("type") == "searchResEntry"]

    def _groups(self, entry: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        attribute = group_attribute(self.config)
        values = entry["attributes"]
        if attribute is None:
            return (), self._member_groups(entry["dn"], _values(values, "uid"))
        raw = _values(values, attribute)
        names: list[str] = []
        numbers: list[str] = []
        for value in raw:
            rdn = _first_rdn_value(value)
            if rdn is not None:
                names.append(rdn)
            elif attribute.lower() == "gidnumber" or value.isdigit():
                numbers.append(value)
            else:
                names.append(value)
        if numbers:
            names.extend(self._groups_by_number(numbers))
        return tuple(raw), _unique(names)

    def _groups_by_number(self, numbers: list[str]) -> list[str]:
        wanted = "".join(f"(gidNumber={escape_filter_chars(n)})" for n in numbers)
        entries = self._search(
            "groups",
            f"(&{GROUP_FILTER}(|{wanted}))",
            attributes=["cn", "gidNumber"],
            size_limit=GROUP_SIZE_LIMIT,
            complete=True,
        )
        names: list[str] = []
        found: set[str] = set()
        for group in entries:
            cns = _values(group["attributes"], "cn")
            found.update(_values(group["attributes"], "gidNumber"))
            names.extend(cns[:1])
        # A number no group entry carries stands for itself.
        names.extend(n for n in numbers if n not in found)
        return names

    def _member_groups(self, dn: str, uids: tuple[str, ...]) -> tuple[str, ...]:
        escaped = escape_filter_chars(dn)
        clauses = f"(member={escaped})(uniqueMember={escaped})"
        clauses += "".join(f"(memberUid={escape_filter_chars(u)})" for u in uids)
        entries = self._search(
            "groups",
            f"(&{GROUP_FILTER}(|{clauses}))",
            attributes=["cn"],
            size_limit=GROUP_SIZE_LIMIT,
            complete=True,
        )
        return _unique(cn for group in entries for cn in _values(group["attributes"], "cn")[:1])


def authenticate(config: LdapConfig, *, email: str, password: str) -> DirectoryUser:
    """Check ``email`` and ``password`` against the directory; the entry they sign in as.

    Raises ``LdapError`` (see its codes). The empty-password and empty-email checks come first,
    so such a request never opens a connection.
    """
    if not password:
        raise LdapError("password", "ldap_empty_password", "an empty password is refused")
    if not email.strip() or "\x00" in email:
        raise LdapError("search", "ldap_user_not_found", "no email address given")
    with Directory(config) as directory:
        directory.connect()
        directory.secure()
        directory.bind_service()
        entry = directory.find_user(email)
        directory.check_password(entry["dn"], password)
        user = directory.directory_user(entry, email)
        directory.check_allowed(user)
    log.info("LDAP sign-in checked for %s", user.dn)
    return user


# --- small readers -------------------------------------------------------------------------


def _values(attributes: Any, name: str) -> tuple[str, ...]:
    """An attribute's values as strings (ldap3 dicts ignore case; missing: empty)."""
    try:
        value = attributes[name]
    except KeyError:
        return ()
    if value is None:
        return ()
    items: Iterable[Any] = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        if text:
            out.append(text)
    return tuple(out)


def _first_rdn_value(value: str) -> str | None:
    """``cn=ml-engineers,ou=groups,dc=example,dc=org`` → ``ml-engineers``; not a DN → None."""
    if "=" not in value:
        return None
    try:
        parts = parse_dn(value)
    except (LDAPInvalidDnError, LDAPException, ValueError):
        return None
    return parts[0][1] if parts and parts[0][1] else None


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return tuple(seen.values())
