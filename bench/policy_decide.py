"""In-process timing of ``policy.decide`` (facts already loaded): issue 2 asks < 5 µs median.

Run: ``.venv/bin/python bench/policy_decide.py [--calls N] [--batch B]``. Prints one row per
scenario: how many calls were timed, and the median and p99 of the per-call time in µs, measured
with ``time.perf_counter_ns`` over batches (one sample = the mean over one batch). Each decision
builds its full trace; ``--with-trace-dict`` also renders the trace as the API does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from rolecall.authz.facts import (
    CredentialKind,
    DecisionFacts,
    MembershipFacts,
    OrgFacts,
    PrincipalFacts,
    PrincipalKind,
    ProjectFacts,
    RoleFacts,
    TeamFacts,
)
from rolecall.authz.permissions import Permission
from rolecall.authz.policy import Decision, decide
from rolecall.authz.roles import MEMBER, OrgRole, TeamRole, Visibility

GOAL_MEDIAN_US = 5.0
ORG = OrgFacts(id="org", name="bench")
TEAM = TeamFacts(id="team", org_id="org", name="ml")
MEMBER_ROLE = RoleFacts("member", MEMBER, TeamRole.MEMBER)


def _user(name: str, role: OrgRole = OrgRole.MEMBER) -> PrincipalFacts:
    return PrincipalFacts(
        kind=PrincipalKind.USER,
        id=name,
        name=name,
        credential=CredentialKind.API_KEY,
        org_role=role,
    )


def _project(visibility: Visibility) -> ProjectFacts:
    return ProjectFacts(
        id=f"p-{visibility}", name=f"p-{visibility}", visibility=visibility, team=TEAM
    )


def scenarios() -> list[tuple[str, DecisionFacts, Permission]]:
    """The decisions timed: common allows, a restricted denial, org-admin extras, anonymous."""
    return [
        (
            "team member run:read, team project",
            DecisionFacts(
                principal=_user("alice"),
                org=ORG,
                team=TEAM,
                project=_project(Visibility.TEAM),
                membership=MembershipFacts(team_role=MEMBER_ROLE),
            ),
            Permission.RUN_READ,
        ),
        (
            "restricted project, not invited (deny)",
            DecisionFacts(
                principal=_user("bob"),
                org=ORG,
                team=TEAM,
                project=_project(Visibility.RESTRICTED),
                membership=MembershipFacts(team_role=MEMBER_ROLE),
            ),
            Permission.RUN_READ,
        ),
        (
            "org admin project:update (extras)",
            DecisionFacts(
                principal=_user("root", OrgRole.ADMIN),
                org=ORG,
                team=TEAM,
                project=_project(Visibility.TEAM),
            ),
            Permission.PROJECT_UPDATE,
        ),
        (
            "anonymous run:read, open project",
            DecisionFacts(
                principal=PrincipalFacts(kind=PrincipalKind.ANONYMOUS),
                org=ORG,
                team=TEAM,
                project=_project(Visibility.OPEN),
            ),
            Permission.RUN_READ,
        ),
    ]


def time_calls(call: Callable[[], object], calls: int, batch: int) -> tuple[float, float]:
    """Median and p99 per-call time in µs, one sample per batch of ``batch`` calls."""
    for _ in range(batch):  # warm up
        call()
    samples: list[float] = []
    for _ in range(max(1, calls // batch)):
        started = time.perf_counter_ns()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter_ns() - started) / batch / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls timed per scenario")
    parser.add_argument("--batch", type=int, default=100, help="calls per timing sample")
    parser.add_argument(
        "--with-trace-dict", action="store_true", help="also render the trace (as the API does)"
    )
    args = parser.parse_args()

    print(f"{'scenario':42} {'calls':>9} {'median µs':>10} {'p99 µs':>8}  rule")
    medians = []
    for name, facts, permission in scenarios():
        if args.with_trace_dict:

            def call(facts: DecisionFacts = facts, permission: Permission = permission) -> object:
                return decide(facts, permission).as_dict()
        else:

            def call(facts: DecisionFacts = facts, permission: Permission = permission) -> object:
                return decide(facts, permission)

        median, p99 = time_calls(call, args.calls, args.batch)
        medians.append(median)
        decision: Decision = decide(facts, permission)
        outcome = "allow" if decision.allowed else "deny"
        print(
            f"{name:42} {args.calls:>9} {median:>10.2f} {p99:>8.2f}  "
            f"{outcome} by {decision.deciding_rule}"
        )
    verdict = "met" if max(medians) < GOAL_MEDIAN_US else "NOT met"
    print(f"goal (issue 2): median < {GOAL_MEDIAN_US:g} µs in every scenario: {verdict}")


if __name__ == "__main__":
    main()
