"""How rules are declared and evaluated."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass

from hub.domain.events import Registration
from hub.domain.identifiers import CLASSIC_RULE, CheckDigitRule
from hub.sources import SourceRegistry


class Severity(enum.Enum):
    REJECT = "REJECT"
    WARNING = "WARNING"


@dataclass(frozen=True)
class Violation:
    code: str
    severity: Severity
    message: str  # never contains an identifier in clear text


@dataclass(frozen=True)
class RuleContext:
    """What a rule may consult besides the event itself."""

    today: dt.date
    now: dt.datetime
    topic_source: str  # the source id of the topic the event came from
    registry: SourceRegistry
    allow_synthetic_identifiers: bool = False
    check_digit_rule: CheckDigitRule = CLASSIC_RULE


# A check returns None when the event passes, or the message explaining the failure.
Check = Callable[[Registration, RuleContext], str | None]


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    title: str
    check: Check


RULES: list[Rule] = []


def rule(code: str, title: str, severity: Severity = Severity.REJECT) -> Callable[[Check], Check]:
    """Register `check` in the catalogue under a stable `code`."""

    def register(check: Check) -> Check:
        if any(r.code == code for r in RULES):
            raise ValueError(f"rule code {code} is used twice")
        RULES.append(Rule(code=code, severity=severity, title=title, check=check))
        return check

    return register


def evaluate(event: Registration, context: RuleContext) -> list[Violation]:
    """Every violation of every rule, in catalogue order."""
    violations = []
    for r in RULES:
        message = r.check(event, context)
        if message is not None:
            violations.append(Violation(code=r.code, severity=r.severity, message=message))
    return violations
