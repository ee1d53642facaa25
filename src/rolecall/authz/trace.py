"""Decisions and their traces: what ``policy.decide`` returns.

A ``TraceStep`` names the rule applied, what it did and why; a ``Decision`` carries the answer
and the steps, and finds the step that decided.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from rolecall.authz.permissions import PERMISSION_BITS, Permission, permissions_of

#: The closing step of every decision.
RULE_RESULT = "result"


def _render(value: object) -> str:
    """A trace-detail argument as text: permission masks and sets become sorted names."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = permissions_of(value)
    if isinstance(value, frozenset):
        return ", ".join(sorted(value)) if value else "nothing"
    return str(value)


class TraceStep(NamedTuple):
    """One step of a decision: which rule, what it did (``outcome``), and why (``detail``).

    ``detail`` is rendered from ``template`` and ``args`` only when read (``str.format``; masks
    and permission sets in ``args`` render as names), so deciding does no string work.
    ``affects`` is the mask of the permissions the step granted (grant), removed (cap, deny) or
    withheld (skip); ``Decision.deciding_rule`` uses it to find the step that decided.
    """

    rule: str
    outcome: str  # grant | cap | deny | allow | skip
    template: str
    args: tuple[object, ...] = ()
    affects: int = 0

    @property
    def detail(self) -> str:
        if not self.args:
            return self.template
        return self.template.format(*(_render(arg) for arg in self.args))

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "outcome": self.outcome, "detail": self.detail}


class Decision(NamedTuple):
    """The answer to ``can(principal, permission, target)`` with the trace that produced it."""

    allowed: bool
    permission: Permission
    trace: tuple[TraceStep, ...]

    @property
    def deciding_rule(self) -> str:
        """The rule that decided.

        Allowed: the last step that granted the permission. Denied: the last step that removed or
        withheld it (a project-role override may do so while granting others). When no step
        touched it, the first step, which says what role the principal had to begin with.
        """
        bit = PERMISSION_BITS.get(self.permission, 0)
        for step in reversed(self.trace):
            if step.affects & bit and (step.outcome == "grant" or not self.allowed):
                return step.rule
        return self.trace[0].rule if self.trace else RULE_RESULT

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "permission": str(self.permission),
            "rule": self.deciding_rule,
            "trace": [step.as_dict() for step in self.trace],
        }


# Building the NamedTuples through tuple.__new__ skips their Python-level __new__ (a measurable
# share of a decision). Arguments are one tuple in field order.
_step = partial(tuple.__new__, TraceStep)
_decision = partial(tuple.__new__, Decision)
