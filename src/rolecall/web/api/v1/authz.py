"""REST routes: the authorization check (the same decision every guard makes, with its trace).

Its request and response shapes live here: ``authz`` is a capability, not a domain with a
``schemas`` module.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from rolecall.authz import policy
from rolecall.authz.explain import explain
from rolecall.authz.permissions import parse_permission
from rolecall.authz.policy import Decision
from rolecall.errors import InvalidInput
from rolecall.projects.queries import split_path
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import Context, OptionalContextDep, ReadOnly

router = make_router("authz")


class AuthzCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``user:<username or email>``, ``service_account:<name>``, ``anonymous``; null: the caller.
    principal: Annotated[str, Field(min_length=1, max_length=400)] | None = None
    #: ``object:operation`` from the permission catalogue.
    permission: Annotated[str, Field(min_length=1, max_length=64)]
    #: ``entity/project``.
    project: Annotated[str, Field(min_length=3, max_length=260)]


class TraceStepRead(BaseModel):
    rule: str
    outcome: str
    detail: str


class DecisionRead(BaseModel):
    allowed: bool
    permission: str
    #: The rule that decided.
    rule: str
    trace: list[TraceStepRead]

    @classmethod
    def from_decision(cls, decision: Decision) -> DecisionRead:
        return cls.model_validate(decision.as_dict())


@router.post(
    "/authz/check",
    operation_id="authz-check",
    response_model=DecisionRead,
    dependencies=[ReadOnly],
)
async def check(body: AuthzCheck, ctx: OptionalContextDep) -> Any:
    """May this principal (default: the caller) do this on this project, and why."""
    # Async for the access cache's fast path: a caller asking about itself again is answered
    # on the event loop, deciding on the facts ``explain`` loaded the first time.
    wanted = parse_permission(body.permission) if body.principal is None else None
    if wanted is not None:
        try:
            found = ctx.cached_facts(*split_path(body.project))
        except InvalidInput:
            found = None  # ``explain`` refuses it
        if found is not None:
            body_bytes = decision_body(policy.decide(found[1], wanted))
            return Response(body_bytes, media_type="application/json")
    return await ctx.in_thread(lambda: _explain(ctx, body))


@functools.lru_cache(maxsize=4096)
def decision_body(decision: Decision) -> bytes:
    """The body FastAPI sends for a decision's ``DecisionRead``. A decision is a value (equal
    facts give an equal decision), so the same few recur and their bodies are kept."""
    return DecisionRead.from_decision(decision).model_dump_json(by_alias=True).encode()


def _explain(ctx: Context, body: AuthzCheck) -> DecisionRead:
    """``check``'s normal path; keeps the facts for the next request about the same project."""
    decision = explain(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        principal_spec=body.principal,
        permission=body.permission,
        project_path=body.project,
    )
    ctx.remember(*split_path(body.project))  # ``explain`` has accepted the path
    return DecisionRead.from_decision(decision)
