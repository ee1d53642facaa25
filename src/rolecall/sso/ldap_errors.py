"""The failures of talking to a directory, and messages an administrator can act on."""

from __future__ import annotations

from typing import Any

#: LDAP result codes (RFC 4511 §4.1.9) the messages tell apart.
INVALID_CREDENTIALS = 49
INAPPROPRIATE_AUTHENTICATION = 48
NO_SUCH_OBJECT = 32
UNWILLING_TO_PERFORM = 53
CONFIDENTIALITY_REQUIRED = 13
SIZE_LIMIT_EXCEEDED = 4


class LdapError(Exception):
    """A step of talking to the directory failed.

    ``step`` is one of connect, tls, bind, base_dn, attributes, search, password, groups;
    ``code`` is stable (``ldap_unreachable``, ``ldap_tls_failed``, ``ldap_bind_failed``,
    ``ldap_base_dn_not_found``, ``ldap_attribute_missing``, ``ldap_search_failed``,
    ``ldap_user_not_found``, ``ldap_user_ambiguous``, ``ldap_wrong_password``,
    ``ldap_empty_password``, ``ldap_unusable_password``: a password SASLprep refuses, see
    ``ldap_connection.password_refusal``, ``ldap_group_not_allowed``, ``ldap_invalid_settings``,
    ``ldap_destination_refused``: the address is one ``federation.destinations`` refuses).
    """

    def __init__(self, step: str, code: str, detail: str) -> None:
        super().__init__(detail)
        self.step = step
        self.code = code
        self.detail = detail

    #: Codes that mean "these credentials do not sign in" rather than "the directory is broken".
    CREDENTIAL_CODES = frozenset(
        {
            "ldap_user_not_found",
            "ldap_user_ambiguous",
            "ldap_wrong_password",
            "ldap_empty_password",
            "ldap_unusable_password",
        }
    )

    @property
    def is_credentials(self) -> bool:
        return self.code in self.CREDENTIAL_CODES


def socket_reason(text: str, timeout: float) -> str:
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return f"no answer within {timeout:g} s"
    if "name or service not known" in lowered or "nodename" in lowered:
        return "unknown host name"
    if "unreachable" in lowered:
        return "network unreachable"
    return "connection failed"


def tls_reason(text: str) -> str:
    lowered = text.lower()
    if "certificate verify failed" in lowered:
        detail = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip()
        reason = detail or "verify failed"
        return f"the server's certificate is not trusted ({reason}); check ROLECALL_LDAP_CA_FILE"
    if "hostname" in lowered or "doesn't match" in lowered or "not match" in lowered:
        return "the certificate does not name this host"
    if "eof" in lowered or "wrong version" in lowered or "unexpected" in lowered:
        return "the server does not speak TLS on this port"
    if "no such file" in lowered or "errno 2" in lowered:
        return "the CA file cannot be read"
    if "x509" in lowered or "pem" in lowered:
        return "the CA file holds no usable certificate"
    return "handshake failed"


def lost(step: str, exc: Exception) -> LdapError:
    return LdapError(
        step, "ldap_unreachable", f"the directory stopped answering ({type(exc).__name__})"
    )


def result_error(step: str, code: str, what: str, conn: Any) -> LdapError:
    result = conn.result or {}
    return LdapError(
        step,
        code,
        f"{what} failed: {result.get('description') or 'error'} "
        f"(LDAP result {result.get('result')}) {result.get('message') or ''}".strip(),
    )
