"""REST API v1: one module per resource."""

from rolecall.web.api.v1 import (
    api_keys,
    audit,
    auth,
    authz,
    federation,
    orgs,
    projects,
    roles,
    runs,
    service_accounts,
    sso,
    teams,
    users,
    viewer,
)

#: In matching order: the two hottest routes (a project's read, the authorization check) are
#: tried first. No two routers have paths that can both match one request.
ROUTERS = [
    authz.router,
    projects.router,
    viewer.router,
    auth.router,
    orgs.router,
    users.router,
    teams.router,
    roles.router,
    service_accounts.router,
    api_keys.router,
    runs.router,
    audit.router,
    federation.router,
    sso.router,
]
