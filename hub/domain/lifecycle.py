"""Each scheme's lifecycle, derived from the facts the register holds.

The register keeps every accepted event as an immutable fact. What a person's introduction
programme or training looks like on a date is never stored: it is derived here by folding the
facts in the order they happened (`timeline_order`: the fact date, then the role's place in a
day, so that a fact dated on a programme's end day belongs to the programme). The versions of a
registration (the original, its corrections and annulments) count in the order the fagsystem
sent them (`version_order`), never in the order they arrived: the newest word decides whether
the registration stands and what it says, so a correction sent after an annulment restores the
registration (`effective_facts`).

`transition_problem` says whether a new fact fits the timeline: it may lack a predecessor that
has not arrived yet (hold it and try again), contradict what is there, or make a fact registered
after it stop fitting (reject it). A correction is never held: what it corrects is there, so a
problem with it is answered at once.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


class Scheme(enum.Enum):
    INTRODUCTION_PROGRAMME = "introduction_programme"
    NORWEGIAN_AND_SOCIAL_STUDIES = "norwegian_and_social_studies"
    ASYLUM_SEEKER_TRAINING = "asylum_seeker_training"
    CULTURE_AND_VALUES = "culture_and_values"

    @property
    def json_key(self) -> str:
        """The scheme as a key of JSON the hub shows (`hub person show --json`)."""
        return camel_case(self.value)


def camel_case(name: str) -> str:
    """`snake_case` as `camelCase`: the contract's key style, kept by all JSON the hub shows."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


class Role(enum.Enum):
    CLAIM = "claim"
    DECISION = "decision"
    START = "start"
    LEAVE = "leave"
    ABSENCE = "absence"
    STOP = "stop"
    END = "end"
    COMPLAINT = "complaint"
    HOURS = "hours"
    LANGUAGES = "languages"
    FINAL_TEST = "final_test"
    EXEMPTION = "exemption"
    TRACK = "track"
    COMPLETION = "completion"


_IP, _NS = Scheme.INTRODUCTION_PROGRAMME, Scheme.NORWEGIAN_AND_SOCIAL_STUDIES
ROLES: dict[str, tuple[Scheme, Role]] = {
    "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM": (_IP, Role.CLAIM),
    "INTRODUCTION_PROGRAMME_DECISION": (_IP, Role.DECISION),
    "INTRODUCTION_PROGRAMME_STARTED": (_IP, Role.START),
    "INTRODUCTION_PROGRAMME_LEAVE": (_IP, Role.LEAVE),
    "INTRODUCTION_PROGRAMME_ABSENCE": (_IP, Role.ABSENCE),
    "INTRODUCTION_PROGRAMME_STOPPED": (_IP, Role.STOP),
    "INTRODUCTION_PROGRAMME_ENDED": (_IP, Role.END),
    "INTRODUCTION_PROGRAMME_COMPLAINT": (_IP, Role.COMPLAINT),
    "TRAINING_CLAIM": (_NS, Role.CLAIM),
    "TRAINING_DECISION": (_NS, Role.DECISION),
    "TRAINING_LANGUAGES": (_NS, Role.LANGUAGES),
    "TRAINING_STARTED": (_NS, Role.START),
    "TRAINING_HOURS": (_NS, Role.HOURS),
    "TRAINING_FINAL_TEST": (_NS, Role.FINAL_TEST),
    "TRAINING_LEAVE": (_NS, Role.LEAVE),
    "TRAINING_EXEMPTION": (_NS, Role.EXEMPTION),
    "TRAINING_ABSENCE": (_NS, Role.ABSENCE),
    "TRAINING_STOPPED": (_NS, Role.STOP),
    "TRAINING_ENDED": (_NS, Role.END),
    "TRAINING_COMPLAINT": (_NS, Role.COMPLAINT),
    "ASYLUM_SEEKER_TRAINING_HOURS": (Scheme.ASYLUM_SEEKER_TRAINING, Role.HOURS),
    "ASYLUM_SEEKER_TRAINING_TRACK": (Scheme.ASYLUM_SEEKER_TRAINING, Role.TRACK),
    "ASYLUM_SEEKER_FINAL_TEST": (Scheme.ASYLUM_SEEKER_TRAINING, Role.FINAL_TEST),
    "CULTURE_AND_VALUES_TRAINING": (Scheme.CULTURE_AND_VALUES, Role.COMPLETION),
}

# Schemes with decisions and a start: the others only collect facts.
_WITH_LIFECYCLE = {_IP, _NS}
# Facts that only make sense while the person takes part (after the start, before the end).
_DURING_PARTICIPATION = {Role.LEAVE, Role.ABSENCE, Role.STOP, Role.END, Role.HOURS}
# The roles whose place in the timeline `transition_problem` checks; any other fits anywhere.
_CHECKED_ROLES = {Role.START, Role.FINAL_TEST, Role.DECISION, *_DURING_PARTICIPATION}
# Roles a person can have many facts of (hours, leaves ...): there, the fact date tells which
# registration a later one is about; of the others a person has one per round.
_REPEATABLE_ROLES = {Role.LEAVE, Role.ABSENCE, Role.HOURS, Role.FINAL_TEST, Role.COMPLAINT}


def is_repeatable(event_type: str) -> bool:
    return event_type in ROLES and ROLES[event_type][1] in _REPEATABLE_ROLES


class Action(enum.Enum):
    REGISTER = "REGISTER"
    CORRECT = "CORRECT"
    ANNUL = "ANNUL"


@dataclass(frozen=True)
class Fact:
    """One accepted registration as the lifecycle sees it.

    `key` is the event id of the registration a correction or annulment refers to (its own id
    for a plain registration); `sequence` orders facts that arrived on the same date.
    """

    key: str
    event_type: str
    fact_date: dt.date
    payload: dict[str, Any]
    sequence: int
    action: Action = Action.REGISTER
    sent_at: dt.datetime | None = None  # when the fagsystem sent this version (`version_order`)

    @property
    def scheme(self) -> Scheme:
        return ROLES[self.event_type][0]

    @property
    def role(self) -> Role:
        return ROLES[self.event_type][1]


# Where a role's facts go among the facts of one day: what opens a programme comes first, what
# closes it last, so that hours, leave or a test dated on the start or the end day belong to it.
_DAY_PLACE = {Role.CLAIM: 0, Role.DECISION: 1, Role.START: 2, Role.STOP: 4, Role.END: 5}
_DAY_PLACE_OTHER = 3


@functools.cache  # the contract's few event types; asked for every fact of every timeline
def _day_place_of(event_type: str) -> int:
    role = ROLES.get(event_type)
    return _DAY_PLACE.get(role[1], _DAY_PLACE_OTHER) if role is not None else _DAY_PLACE_OTHER


def timeline_order(fact: Fact) -> tuple[dt.date, int, str]:
    """A fact's place in the person's timeline: its date, its role's place in that day, then its
    registration (so the order never depends on the order of arrival)."""
    return (fact.fact_date, _day_place_of(fact.event_type), fact.key)


_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


def version_order(fact: Fact) -> tuple[bool, dt.datetime, int]:
    """A version's place among its registration's versions: the original first, then the
    corrections and annulments as the fagsystem sent them (arrival only breaks a tie)."""
    return (fact.action is not Action.REGISTER, fact.sent_at or _NEVER, fact.sequence)


def version_effects(versions: Iterable[Fact]) -> list[tuple[Fact, str]]:
    """The versions of one registration in the order they count, each with what it did:
    `original`, `corrected`, `annulled`, or `restored` (a correction after an annulment)."""
    effects, annulled = [], False
    for fact in sorted(versions, key=version_order):
        if fact.action is Action.REGISTER:
            effect = "original"
        elif fact.action is Action.ANNUL:
            effect, annulled = "annulled", True
        else:
            effect, annulled = ("restored" if annulled else "corrected"), False
        effects.append((fact, effect))
    return effects


def effective_facts(facts: Iterable[Fact]) -> list[Fact]:
    """The facts as they stand, in timeline order: of each registration its newest version,
    unless that is an annulment (a correction sent after an annulment restores it)."""
    newest: dict[str, Fact] = {}
    for fact in facts:
        known = newest.get(fact.key)
        if known is None or version_order(fact) > version_order(known):
            newest[fact.key] = fact
    return sorted((f for f in newest.values() if f.action is not Action.ANNUL), key=timeline_order)


class Status(enum.Enum):
    NOT_STARTED = "not_started"
    CLAIMED = "claimed"
    GRANTED = "granted"
    REFUSED = "refused"
    RUNNING = "running"
    STOPPED = "stopped"  # a permanent stop; a temporary one only pauses a running programme
    ENDED = "ended"


@dataclass(frozen=True)
class SchemeState:
    """What the register knows of one scheme for one person, as derived from the facts."""

    scheme: Scheme
    status: Status = Status.NOT_STARTED
    claimed_on: dt.date | None = None
    decided_on: dt.date | None = None
    decision: str | None = None
    started_on: dt.date | None = None
    paused_until: dt.date | None = None
    stopped_on: dt.date | None = None
    ended_on: dt.date | None = None
    end_reason: str | None = None
    main_activity: str | None = None
    leaves: int = 0
    absent_hours: float = 0.0
    hours: dict[str, float] = field(default_factory=dict)
    final_tests: tuple[dict[str, Any], ...] = ()
    complaints: int = 0
    facts: int = 0

    def as_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, enum.Enum):
                return value.value
            if isinstance(value, tuple):
                return list(value)
            return value

        return {camel_case(name): plain(getattr(self, name)) for name in self.__dataclass_fields__}


_HOUR_FIELDS = ("norwegianHours", "socialStudiesHours", "extraNorwegianHours", "totalHours")


def _state(scheme: Scheme, facts: Iterable[Fact]) -> SchemeState:
    """One scheme's state from its own effective facts, in timeline order."""
    return SchemeState(**_fold(scheme, facts))


@functools.cache
def _initial(scheme: Scheme) -> dict[str, Any]:
    """A scheme's state before any fact, as fields by name (never changed: `_fold` copies it)."""
    return dict(vars(SchemeState(scheme)))


def _fold(scheme: Scheme, facts: Iterable[Fact]) -> dict[str, Any]:
    """One scheme's state as fields by name, folded from its own effective facts in timeline
    order. The lifecycle rules fold a person's history on every event, and a frozen dataclass
    made per fact, or even one per fold, was most of their time: they read the fields."""
    fields = dict(_initial(scheme))
    for fact in facts:
        fields.update(_changes(fields, fact))
    return fields


def _changes(state: dict[str, Any], fact: Fact) -> dict[str, Any]:
    """What one more fact changes of a scheme's state (its fields, by name)."""
    p, d = fact.payload, fact.fact_date
    changes: dict[str, Any] = {"facts": state["facts"] + 1}
    status = state["status"]
    if fact.scheme not in _WITH_LIFECYCLE and status is Status.NOT_STARTED:
        # No claim, decision or start is registered for these: the first fact shows that the
        # person takes part, from its date.
        status = changes["status"] = Status.RUNNING
        changes["started_on"] = d
    match fact.role:
        case Role.CLAIM:
            if status in {Status.NOT_STARTED, Status.ENDED, Status.REFUSED, Status.STOPPED}:
                changes.update(status=Status.CLAIMED, claimed_on=d)
            else:
                changes.update(claimed_on=state["claimed_on"] or d)
        case Role.DECISION:
            changes.update(decided_on=d, decision=p.get("outcome"))
            if status is not Status.RUNNING:
                changes.update(status=Status.GRANTED if p.get("outcome") == "GRANTED" else Status.REFUSED)
        case Role.START:
            changes.update(
                status=Status.RUNNING, started_on=d, ended_on=None, end_reason=None, main_activity=None
            )
        case Role.STOP:
            if p.get("stopKind") == "TEMPORARY":
                changes.update(
                    paused_until=dt.date.fromisoformat(p["stoppedUntil"]) if p.get("stoppedUntil") else d
                )
            else:
                changes.update(status=Status.STOPPED, stopped_on=d)
        case Role.END:
            changes.update(
                status=Status.ENDED,
                ended_on=d,
                end_reason=p.get("endReason"),
                main_activity=p.get("mainActivity"),
            )
        case Role.LEAVE:
            changes.update(leaves=state["leaves"] + 1)
        case Role.ABSENCE:
            changes.update(absent_hours=state["absent_hours"] + float(p["absence"]["absentHours"]))
        case Role.HOURS:
            hours = dict(state["hours"])
            for name in _HOUR_FIELDS:
                if p.get(name) is not None:
                    hours[name] = hours.get(name, 0.0) + float(p[name])
            changes.update(hours=hours)
        case Role.FINAL_TEST:
            changes.update(final_tests=(*state["final_tests"], {"date": d.isoformat(), **p}))
        case Role.COMPLAINT:
            changes.update(complaints=state["complaints"] + 1)
        case Role.COMPLETION if p.get("completed"):
            changes.update(status=Status.ENDED, ended_on=d)
    return changes


def derive(facts: Iterable[Fact], *, on: dt.date | None = None) -> dict[Scheme, SchemeState]:
    """Every scheme's state from the effective facts (only those dated on or before `on`).

    Facts about the person rather than a scheme (residence permits) are left out.
    """
    facts = [f for f in effective_facts(facts) if f.event_type in ROLES and (on is None or f.fact_date <= on)]
    return {scheme: _state(scheme, (f for f in facts if f.scheme is scheme)) for scheme in Scheme}


class Verdict(enum.Enum):
    HOLD = "hold"  # a predecessor may still arrive: keep the event and try again
    REJECT = "reject"  # the event contradicts what the register holds


@dataclass(frozen=True)
class Problem:
    verdict: Verdict
    code: str
    en: str
    nb: str


_SCHEME_NAMES = {
    _IP: ("the introduction programme", "introduksjonsprogrammet"),
    _NS: ("the training in Norwegian and social studies", "opplæringen i norsk og samfunnskunnskap"),
    Scheme.ASYLUM_SEEKER_TRAINING: (
        "the Norwegian training for asylum seekers",
        "norskopplæringen for asylsøkere",
    ),
    Scheme.CULTURE_AND_VALUES: (
        "the training in Norwegian culture and values",
        "opplæringen i norsk kultur og verdier",
    ),
}


@functools.cache  # asked by several rules for every event; the event types are the contract's few
def has_lifecycle(event_type: str) -> bool:
    """Whether `transition_problem` may have anything to say about events of this type: those of
    the schemes with decisions and a start (a claim moved after its decision breaks it too)."""
    return event_type in ROLES and ROLES[event_type][0] in _WITH_LIFECYCLE


@functools.cache
def is_checked(event_type: str) -> bool:
    """Whether a fact of this type must itself find its place in the timeline (a start, a
    decision, a test, what happens during participation); any other fits anywhere."""
    if event_type not in ROLES:
        return False
    scheme, role = ROLES[event_type]
    return scheme in _WITH_LIFECYCLE and role in _CHECKED_ROLES


def transition_problem(history: Sequence[Fact], new: Fact) -> Problem | None:
    """Whether `new` fits the timeline the `history` describes (None if it does): its own place
    in it (`_own_problem`), then what it does to the facts registered after it (`_breaks_later`).
    A correction's predecessors are there (it corrects a fact that fitted), so what would hold
    an original rejects a correction: it is answered at once, never held for ever."""
    if not has_lifecycle(new.event_type):
        return None
    checked, place = is_checked(new.event_type), _place(new)
    if not checked and not any(
        f.event_type in ROLES and f.scheme is new.scheme and _place(f) > place for f in history
    ):
        return None  # it fits anywhere, and nothing comes after it to break
    current = [f for f in effective_facts(history) if f.event_type in ROLES and f.scheme is new.scheme]
    others = [f for f in current if f.key != new.key]
    problem = _own_problem(others, new) if checked else None
    if problem is None:
        problem = _breaks_later(current, others, new)
    if problem is not None and problem.verdict is Verdict.HOLD and new.action is Action.CORRECT:
        return Problem(
            Verdict.REJECT,
            "NIR-DATE-004",
            f"{problem.en}; a correction is not held for it",
            f"{problem.nb}; en retting holdes ikke tilbake i påvente av det",
        )
    return problem


def _place(fact: Fact) -> tuple[dt.date, int]:
    """Where a fact stands in the timeline: its date and its role's place in the day. A fact
    `f` is in the timeline up to `fact` when `_place(f) <= _place(fact)`."""
    return (fact.fact_date, _day_place_of(fact.event_type))


def _own_problem(facts: Sequence[Fact], new: Fact) -> Problem | None:
    """Whether `new` fits among the scheme's other effective `facts` (in timeline order)."""
    en, nb = _SCHEME_NAMES[new.scheme]
    place = _place(new)
    before = SimpleNamespace(**_fold(new.scheme, (f for f in facts if _place(f) <= place)))
    later = [f for f in facts if _place(f) > place]
    date = new.fact_date.isoformat()

    if new.role is Role.START:
        if before.status is Status.RUNNING:
            return Problem(
                Verdict.REJECT,
                "NIR-LIFE-002",
                f"{en} is already running since {before.started_on}",
                f"{nb} er allerede i gang siden {before.started_on}",
            )
        if before.status is Status.GRANTED:
            return None
        if any(f.role is Role.DECISION and f.payload.get("outcome") == "GRANTED" for f in later):
            return Problem(
                Verdict.REJECT,
                "NIR-DATE-004",
                f"the start {date} is before the decision granting {en}",
                f"starten {date} er før vedtaket om {nb}",
            )
        return Problem(
            Verdict.HOLD,
            "NIR-LIFE-001",
            f"no decision granting {en} has arrived",
            f"det har ikke kommet noe vedtak om {nb}",
        )

    if new.role in _DURING_PARTICIPATION:
        if before.status is Status.RUNNING:
            return None
        if before.status is Status.STOPPED and new.role is Role.END:
            return None  # a stopped participant's end records why and where they went
        if before.status is Status.STOPPED:
            return Problem(
                Verdict.REJECT,
                "NIR-LIFE-003",
                f"{en} was stopped on {before.stopped_on}, and no new decision has come since",
                f"{nb} ble stanset {before.stopped_on}, og det har ikke kommet nytt vedtak siden",
            )
        if before.status is Status.ENDED:
            return Problem(
                Verdict.REJECT,
                "NIR-LIFE-004",
                f"{en} ended on {before.ended_on}",
                f"{nb} ble avsluttet {before.ended_on}",
            )
        if any(f.role is Role.START for f in later):
            return Problem(
                Verdict.REJECT,
                "NIR-DATE-004",
                f"{date} is before the start of {en}",
                f"{date} er før starten på {nb}",
            )
        return Problem(
            Verdict.HOLD,
            "NIR-LIFE-001",
            f"no start of {en} has arrived",
            f"det har ikke kommet noen start på {nb}",
        )

    if new.role is Role.FINAL_TEST and before.started_on is None and any(f.role is Role.START for f in later):
        return Problem(
            Verdict.REJECT,
            "NIR-DATE-004",
            f"the test {date} is before the start of {en}",
            f"prøven {date} er før starten på {nb}",
        )
    if new.role is Role.DECISION and before.claimed_on is None and any(f.role is Role.CLAIM for f in later):
        return Problem(
            Verdict.REJECT,
            "NIR-DATE-004",
            f"the decision {date} is before the claim or offer",
            f"vedtaket {date} er før kravet eller tilbudet",
        )
    return None


# How a message names a fact of each role ("the hours of 2026-03-02").
_ROLE_NAMES = {
    Role.CLAIM: ("the claim or offer", "kravet eller tilbudet"),
    Role.DECISION: ("the decision", "vedtaket"),
    Role.START: ("the start", "starten"),
    Role.LEAVE: ("the leave", "permisjonen"),
    Role.ABSENCE: ("the absence", "fraværet"),
    Role.STOP: ("the stop", "stansen"),
    Role.END: ("the end", "avslutningen"),
    Role.HOURS: ("the hours", "timene"),
    Role.FINAL_TEST: ("the test", "prøven"),
}


def _breaks_later(current: Sequence[Fact], others: Sequence[Fact], new: Fact) -> Problem | None:
    """Whether a fact registered after `new`'s place, which fits the timeline now, would stop
    fitting with `new` in it (an end moved before hours already there, a start moved after its
    end). Events mostly arrive in date order, so there is mostly nothing after it to check."""
    place = _place(new)
    later = [f for f in others if _place(f) > place and is_checked(f.event_type)]
    if not later:
        return None
    proposed = sorted([*others, new], key=timeline_order)
    for fact in later:
        if _own_problem([f for f in proposed if f.key != fact.key], fact) is None:
            continue
        if _own_problem([f for f in current if f.key != fact.key], fact) is not None:
            continue  # it did not fit before either: not this event's doing
        en, nb = _SCHEME_NAMES[new.scheme]
        what_en, what_nb = _ROLE_NAMES.get(fact.role, ("a fact", "en opplysning"))
        date, then = new.fact_date.isoformat(), fact.fact_date.isoformat()
        return Problem(
            Verdict.REJECT,
            "NIR-DATE-004",
            f"{date} does not fit the facts registered after it: {what_en} of {then} would no longer fit {en}",
            f"{date} passer ikke med opplysningene registrert etter den: {what_nb} {then} ville ikke "
            f"lenger passe med {nb}",
        )
    return None
