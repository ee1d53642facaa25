"""Authorization: the permission catalogue, roles as data, the pure policy and its loader.

Services call ``authz.require(session, principal, Permission.X, target)`` before acting.
"""

from rolecall.authz.load import check, require
from rolecall.authz.permissions import Permission
from rolecall.authz.policy import Decision

__all__ = ["Decision", "Permission", "check", "require"]
