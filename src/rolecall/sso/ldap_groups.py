"""A directory user's groups, read the way ``LOCAL_LDAP_ATTRIBUTES`` says (``group=``).

- A group attribute on the user's entry (``memberOf``, ``gidNumber``, ...): a DN value gives its
  first RDN's value (``cn=ml-engineers,ou=groups,...`` → ``ml-engineers``); a number
  (``gidNumber``) gives the ``cn`` of the group entry carrying it, or the number itself when
  none does; any other value is the group's name.
- No group attribute: the group entries naming the user, by ``member`` or ``uniqueMember``
  (RFC 4519, its DN) or ``memberUid`` (POSIX, its ``uid``).

Group names are kept once each, compared case-insensitively (as team names are). The searches
are the directory's own (``Directory._search``), so a failure names the ``groups`` step, and a
result cut short by a size limit is an error, never a partial list (team sync would act on it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

#: Object classes of group entries (POSIX, RFC 4519 groupOfNames/groupOfUniqueNames, AD).
GROUP_FILTER = (
    "(|(objectClass=posixGroup)(objectClass=groupOfNames)"
    "(objectClass=groupOfUniqueNames)(objectClass=group))"
)
GROUP_SIZE_LIMIT = 1000

#: ``Directory._search``: (step, filter, *, attributes, size_limit, complete) -> entries.
Search = Callable[..., list[dict[str, Any]]]


def groups_of(
    entry: dict[str, Any], attribute: str | None, search: Search
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The raw values of the group attribute (none without one) and the group names."""
    values = entry["attributes"]
    if attribute is None:
        return (), _member_groups(entry["dn"], values_of(values, "uid"), search)
    raw = values_of(values, attribute)
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
        names.extend(_groups_by_number(numbers, search))
    return tuple(raw), _unique(names)


def _groups_by_number(numbers: list[str], search: Search) -> list[str]:
    wanted = "".join(f"(gidNumber={escape_filter_chars(n)})" for n in numbers)
    entries = search(
        "groups",
        f"(&{GROUP_FILTER}(|{wanted}))",
        attributes=["cn", "gidNumber"],
        size_limit=GROUP_SIZE_LIMIT,
        complete=True,
    )
    names: list[str] = []
    found: set[str] = set()
    for group in entries:
        cns = values_of(group["attributes"], "cn")
        found.update(values_of(group["attributes"], "gidNumber"))
        names.extend(cns[:1])
    # A number no group entry carries stands for itself.
    names.extend(n for n in numbers if n not in found)
    return names


def _member_groups(dn: str, uids: tuple[str, ...], search: Search) -> tuple[str, ...]:
    escaped = escape_filter_chars(dn)
    clauses = f"(member={escaped})(uniqueMember={escaped})"
    clauses += "".join(f"(memberUid={escape_filter_chars(u)})" for u in uids)
    entries = search(
        "groups",
        f"(&{GROUP_FILTER}(|{clauses}))",
        attributes=["cn"],
        size_limit=GROUP_SIZE_LIMIT,
        complete=True,
    )
    return _unique(cn for group in entries for cn in values_of(group["attributes"], "cn")[:1])


def values_of(attributes: Any, name: str) -> tuple[str, ...]:
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
