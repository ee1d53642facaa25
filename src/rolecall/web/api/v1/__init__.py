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
    teams,
    users,
    viewer,
)

ROUTERS = [
    viewer.router,
    auth.router,
    orgs.router,
    users.router,
    teams.router,
    projects.router,
    roles.router,
    service_accounts.router,
    api_keys.router,
    runs.router,
    audit.router,
    authz.router,
    federation.router,
]
