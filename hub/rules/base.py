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
from hub.domain.snapshot import Conflict, PersonState, Target
from hub.domain.sources import SourceRegistry, SourceState


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
    # What the deadlines count to (see `decide.counted_from`): when the hub received the event,
    # or for a correction the original. None means now.
    received_at: dt.datetime | None = None
    # Why the event's numbers cannot be tied to one person (`Snapshot.resolve`), if they cannot.
    identity: Conflict | None = None
    # Rules IMDi's support staff approved setting aside for this very message (a replay).
    approved: frozenset[str] = frozenset()
    # "registered" or "held": the event id is taken by another event (`decide`).
    reused_id: str | None = None
    # The topic's source's revocation, if IMDi has revoked it (`hub sources revoke`).
    source_revoked: SourceState | None = None

    @functools.cached_property  # asked by several rules of one event
    def received_on(self) -> dt.date:
        """The Norwegian day the hub received the event."""
        return norwegian_date(self.received_at) if self.received_at is not None else self.today


# A check returns None when the event passes, or why it failed.
Check = Callable[[Registration, RuleContext], Explanation | None]


class Tier(enum.IntEnum):
    """When a rule is asked. `evaluate` asks a tier at a time, and a tier that rejects the event
    is the last asked, so each tier's rules only ever see what the tiers before it let through."""

    SHAPE = 0  # the form of the values (alphabet, length, range)
    PERSON = 1  # whom the event is about: the numbers, and that they name one person
    REGISTER = 2  # everything else, with the person's register


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    title: str  # English
    title_nb: str
    check: Check
    advice: Advice
    tier: Tier = Tier.REGISTER
    # A rule `evaluate` never asks: the decision asks it where it applies (`check`).
    on_demand: bool = False


RULES: list[Rule] = []
# The same rules by tier, as `evaluate` asks them, in catalogue order: split once, not per event.
_TIERS: dict[Tier, list[Rule]] = {tier: [] for tier in Tier}

# The longest a violation's message may be, in characters (a receipt carries one per rule).
VIOLATION_MESSAGE_LIMIT = 500


def rule(
    code: str,
    title: str,
    title_nb: str,
    severity: Severity = Severity.REJECT,
    *,
    advice: Advice,
    tier: Tier = Tier.REGISTER,
    on_demand: bool = False,
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
            tier=tier,
            on_demand=on_demand,
        )
        RULES.append(declared)
        if not on_demand:
            _TIERS[tier].append(declared)
        return check

    return register


def evaluate(event: Registration, context: RuleContext) -> list[Violation]:
    """Every violation of every rule, in catalogue order, a tier at a time (`Tier`); a tier that
    rejects the event is the last asked. Messages are cleaned (`hub.domain.redaction`): whatever
    a rule quotes of the event, no identifier and no control character reaches a receipt."""
    violations: list[Violation] = []
    for rules in _TIERS.values():
        found = _violations(event, context, rules)
        if found:
            violations += found
            if any(v.severity is Severity.REJECT for v in found):
                break
    return violations


def check(code: str, event: Registration, context: RuleContext) -> Violation | None:
    """One rule's verdict on the event (for a rule the decision asks on demand)."""
    found = _violations(event, context, [r for r in RULES if r.code == code])
    return found[0] if found else None


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
