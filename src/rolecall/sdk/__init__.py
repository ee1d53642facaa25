"""The admin SDK: a small httpx client of the REST API, importing nothing else from rolecall.

from rolecall import Api

api = Api()  # ROLECALL_BASE_URL / ROLECALL_API_KEY, else WANDB_BASE_URL / WANDB_API_KEY
team = api.create_team("research", admin_user_name="alice")
member = team.create_service_account("nightly training")
print(member.api_key)
"""

from rolecall.sdk.client import Api
from rolecall.sdk.errors import (
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    LastAdmin,
    NotFound,
    PermissionDenied,
    RolecallError,
)
from rolecall.sdk.models import (
    AuditEvent,
    Decision,
    Member,
    Role,
    ServiceAccount,
    Team,
    TraceStep,
    User,
    Viewer,
)
from rolecall.sdk.projects import Project, ProjectMember, Run

__all__ = [
    "Api",
    "AuditEvent",
    "AuthenticationError",
    "Conflict",
    "ConnectionFailed",
    "Decision",
    "InvalidInput",
    "LastAdmin",
    "Member",
    "NotFound",
    "PermissionDenied",
    "Project",
    "ProjectMember",
    "Role",
    "RolecallError",
    "Run",
    "ServiceAccount",
    "Team",
    "TraceStep",
    "User",
    "Viewer",
]
