"""The rule catalogue: every validation rule with its stable code, severity and message.

Adding a rule is one function in `catalogue.py` decorated with `@rule(...)`, and one test.
"""

from hub.rules import catalogue as _catalogue  # noqa: F401  (registers the rules)
from hub.rules.base import RULES, Advice, Rule, RuleContext, Severity, Tier, Violation, check, evaluate
from hub.rules.catalogue import EVENT_ID_REUSED, IDENTITY_CONFLICT, LATE_REGISTRATION

__all__ = [
    "EVENT_ID_REUSED",
    "IDENTITY_CONFLICT",
    "LATE_REGISTRATION",
    "RULES",
    "Advice",
    "Rule",
    "RuleContext",
    "Severity",
    "Tier",
    "Violation",
    "check",
    "evaluate",
    "rule_for",
]


def rule_for(code: str | None) -> Rule | None:
    """The catalogue's rule with this code, if it is a rule's."""
    return next((r for r in RULES if r.code == code), None)
