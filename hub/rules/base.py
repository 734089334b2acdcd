"""How rules are declared and evaluated."""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hub.domain.calendar import norwegian_date
from hub.domain.events import Registration
from hub.domain.identifiers import CLASSIC_RULE, CheckDigitRule
from hub.domain.lifecycle import Fact
from hub.domain.redaction import clean
from hub.domain.residence import Residence
from hub.domain.snapshot import PersonState, Target
from hub.sources import SourceRegistry


class Severity(enum.Enum):
    REJECT = "REJECT"  # not written, dead-lettered
    HOLD = "HOLD"  # kept and tried again: something it depends on may still arrive
    WARNING = "WARNING"  # written, with the warning on the receipt


@dataclass(frozen=True)
class Explanation:
    """Why a rule fired, in English and Norwegian (bokmål). Never names an identifier."""

    en: str
    nb: str


@dataclass(frozen=True)
class Advice:
    """What support staff or the municipality can do when the rule fires, in English and
    Norwegian (bokmål): shown beside the error on a case ticket."""

    en: str
    nb: str


@dataclass(frozen=True)
class Violation:
    code: str
    severity: Severity
    message: str  # English; never contains an identifier in clear text
    message_nb: str = ""


@dataclass(frozen=True)
class RuleContext:
    """What a rule may consult besides the event itself."""

    today: dt.date
    now: dt.datetime
    topic_source: str  # the source id of the topic the event came from
    registry: SourceRegistry
    allow_synthetic_identifiers: bool = False
    check_digit_rule: CheckDigitRule = CLASSIC_RULE
    # What the register already holds about the person (their accepted facts), and the
    # registration a correction or annulment refers to, looked up by the caller.
    history: tuple[Fact, ...] = ()
    target: Target | None = None
    # Where the person has lived, from Folkeregisteret's address changes.
    residences: tuple[Residence, ...] = ()
    # What Folkeregisteret said of the person: dead, ceased as a duplicate (`Snapshot.states`).
    person_states: tuple[PersonState, ...] = ()
    # When the hub received the event (see `decide.received_at`): the deadlines count to it.
    # None means now.
    received_at: dt.datetime | None = None

    @functools.cached_property  # asked by several rules of one event
    def received_on(self) -> dt.date:
        """The Norwegian day the hub received the event."""
        return norwegian_date(self.received_at) if self.received_at is not None else self.today


# A check returns None when the event passes, or why it failed.
Check = Callable[[Registration, RuleContext], Explanation | None]


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    title: str  # English
    title_nb: str
    check: Check
    advice: Advice
    # A rule on the form of the values (alphabet, length, range). When one of these rejects an
    # event, the other rules are not asked: they only ever see well-formed values.
    shape: bool = False


RULES: list[Rule] = []
# The same rules split as `evaluate` asks them, in catalogue order: split once, not per event.
_SHAPE_RULES: list[Rule] = []
_OTHER_RULES: list[Rule] = []

# The longest a violation's message may be, in characters (a receipt carries one per rule).
VIOLATION_MESSAGE_LIMIT = 500


def rule(
    code: str,
    title: str,
    title_nb: str,
    severity: Severity = Severity.REJECT,
    *,
    advice: Advice,
    shape: bool = False,
) -> Callable[[Check], Check]:
    """Register `check` in the catalogue under a stable `code`, with what to do when it fires."""

    def register(check: Check) -> Check:
        if any(r.code == code for r in RULES):
            raise ValueError(f"rule code {code} is used twice")
        declared = Rule(
            code=code,
            severity=severity,
            title=title,
            title_nb=title_nb,
            check=check,
            advice=advice,
            shape=shape,
        )
        RULES.append(declared)
        (_SHAPE_RULES if shape else _OTHER_RULES).append(declared)
        return check

    return register


def evaluate(event: Registration, context: RuleContext) -> list[Violation]:
    """Every violation of every rule, in catalogue order; only the shape rules' when one of them
    rejects the event. Messages are cleaned (`hub.domain.redaction`): whatever a rule quotes of
    the event, no identifier and no control character reaches a receipt."""
    return _violations(event, context, _SHAPE_RULES) or _violations(event, context, _OTHER_RULES)


def _violations(event: Registration, context: RuleContext, rules: Iterable[Rule]) -> list[Violation]:
    violations = []
    for r in rules:
        explanation = r.check(event, context)
        if explanation is not None:
            violations.append(
                Violation(
                    r.code,
                    r.severity,
                    clean(explanation.en, VIOLATION_MESSAGE_LIMIT),
                    clean(explanation.nb, VIOLATION_MESSAGE_LIMIT),
                )
            )
    return violations
