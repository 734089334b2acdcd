"""The decision stage: what becomes of each registration, decided over a snapshot of the register.

`decide` is a pure function of one event and the `Snapshot` of its batch: the event is a
duplicate, or the rules run over what the register knows of the person, and the event is
rejected, held, or accepted (the person created, completed or merged; a correction or annulment
keyed to its original; held events and case tickets it settles released and closed). The
decision is folded into the snapshot, so the next event of the batch sees it.

`decide_batch` decides a batch in order and then tries again the events held for the persons it
wrote to, until a pass accepts none. A batch of one is a batch: there is no other path.

Pure: this module imports only `hub.domain` and `hub.rules`, builds every outcome itself (the
`_rejected`, `_failed`, `_accepted` builders and the three-line ones beside them, each given the hold
it decides again), and never changes a `Decision` once built. What it cannot know is handed in:
how a held event is read again (`read_held`) and how a fault is explained (`fault`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from hub.domain.calendar import norwegian_date
from hub.domain.events import Origin, Registration
from hub.domain.lifecycle import Action, Fact
from hub.domain.residence import Residence
from hub.domain.snapshot import (
    Change,
    Conflict,
    HeldEntry,
    Note,
    OpenTicket,
    PersonState,
    PersonView,
    Release,
    Snapshot,
    Target,
    identifiers_of,
)
from hub.domain.sources import SourceRegistry, SourceState
from hub.domain.transfer import Failure, Message, ReceiptOutcome
from hub.rules import EVENT_ID_REUSED, LATE_REGISTRATION, RuleContext, Severity, Violation, check, evaluate

ACCEPTED = {ReceiptOutcome.ACCEPTED, ReceiptOutcome.ACCEPTED_WITH_WARNINGS}


@dataclass(frozen=True)
class Pending:
    """An event to decide: fresh from its topic, or tried again from the hold (`held`)."""

    message: Message
    event: Registration
    source: str  # the source whose topic the message came from
    held: HeldEntry | None = None


@dataclass(frozen=True)
class Decision:
    """What becomes of one message: the answer its source gets, and what the register changes.

    `outcome` is None for a held event tried again and still waiting: its HELD receipt went out
    when it was first held, so there is nothing to answer."""

    message: Message
    event: Registration | None
    outcome: ReceiptOutcome | None
    violations: list[Violation] = field(default_factory=list)
    failure: Failure | None = None  # a rejection's dead-letter reason
    registered_at: dt.datetime | None = None
    changes: list[Change] = field(default_factory=list, compare=False)
    person: PersonView | None = field(default=None, compare=False)  # the person written to
    held: HeldEntry | None = None  # the hold it was decided again from (a retry or an expiry)

    @property
    def releases(self) -> list[str]:
        """Held events that leave the hold once this decision is answered."""
        return [c.event_id for c in self.changes if isinstance(c, Release)]


# How a held event is read again (its bytes decoded), and how a fault is explained.
ReadHeld: TypeAlias = Callable[[HeldEntry], Pending]
Fault: TypeAlias = Callable[[Exception, Origin], Failure]


@dataclass(frozen=True)
class Circumstances:
    """What decisions consult besides the event and the register: the time, the sources."""

    now: dt.datetime
    registry: SourceRegistry
    allow_synthetic_identifiers: bool = False
    # The sources revoked now, read in the batch's transaction (`RegisterRepository.revoked_sources`).
    revoked: Mapping[str, SourceState] = field(default_factory=dict)

    @functools.cached_property  # the same for every event of the batch
    def today(self) -> dt.date:
        return norwegian_date(self.now)

    def rule_context(
        self,
        source: str,
        history: tuple[Fact, ...] = (),
        target: Target | None = None,
        residences: tuple[Residence, ...] = (),
        person_states: tuple[PersonState, ...] = (),
        received_at: dt.datetime | None = None,
        *,
        identity: Conflict | None = None,
        approved: frozenset[str] = frozenset(),
        reused_id: str | None = None,
    ) -> RuleContext:
        """What the rules see of an event from `source`'s topic: its person's register."""
        return RuleContext(
            today=self.today,
            now=self.now,
            topic_source=source,
            registry=self.registry,
            allow_synthetic_identifiers=self.allow_synthetic_identifiers,
            history=history,
            target=target,
            residences=residences,
            person_states=person_states,
            received_at=received_at,
            identity=identity,
            approved=approved,
            reused_id=reused_id,
            source_revoked=self.revoked.get(source),
        )


def received_at(pending: Pending, ticket: OpenTicket | None, now: dt.datetime) -> dt.datetime:
    """When the hub received the event (sentAt is the fagsystem's clock, and kept only for
    information): the broker's append time, or `now` when the topic keeps producers' times. A
    held event was received when its message was appended (kept with the hold), else when it was
    held. An event that failed before keeps the day it
    first came: put right later (replayed by support, or sent again with its event id), it was
    still registered on that day; how long the fix took is the ticket's to tell."""
    times = [pending.message.received_at or now]
    if pending.held is not None:
        times.append(pending.held.held_at)
    if ticket is not None and ticket.first_failed_at is not None:
        times.append(ticket.first_failed_at)
    return min(times)


def counted_from(event: Registration, target: Target | None, received: dt.datetime) -> dt.datetime:
    """What the deadlines count to: when the hub received the event, but for a correction
    (or a restoration) when it first received the original, whose fact it puts right."""
    if target is not None and target.received_at is not None and event.action == Action.CORRECT.value:
        return target.received_at
    return received


def decide(pending: Pending, snapshot: Snapshot, circumstances: Circumstances) -> Decision:
    """The decision of one event over the snapshot, folded into it. Every outcome it builds
    carries the hold the event was tried again from (`pending.held`)."""
    event, message, now, held_from = pending.event, pending.message, circumstances.now, pending.held
    event_id, topic = str(event.event_id), message.origin.topic
    previous = snapshot.registered(event_id)
    if previous is not None:
        # In the register already. The very message again (after a crash before its offset was
        # committed) repeats its outcome; the same event sent again is a duplicate, which
        # answers only its own ticket; another event with this id is refused.
        redelivered = previous.origin == message.origin
        if not redelivered and not previous.same_event(event, topic):
            return _rejected(message, event, [_reused_id(event, circumstances, "registered")], [], held_from)
        changes = snapshot.release(event_id) + snapshot.close_own_ticket(event_id, topic, now)
        if redelivered:
            warnings = [_violation(n) for n in previous.warnings]
            return _accepted(pending, warnings, previous.accepted_at, changes)
        return _duplicate(pending, previous.accepted_at, changes)
    held = snapshot.held_entry(event_id)
    if held is not None and held.origin.topic != topic:  # another source's event, waiting
        return _rejected(message, event, [_reused_id(event, circumstances, "held")], [], held_from)

    resolution = snapshot.resolve(identifiers_of(event.national_id, event.duf_number))
    persons = list(resolution.persons) if resolution.conflict is None else []
    target = snapshot.target(event, persons)
    ticket = snapshot.ticket_of(event_id, topic)  # its own, if it failed before
    received = received_at(pending, ticket, now)
    history, residences = snapshot.history(persons)
    states = snapshot.states(persons) + tuple(s for p in resolution.pending if (s := p.state()) is not None)
    context = circumstances.rule_context(
        pending.source,
        history,
        target,
        residences,
        states,
        counted_from(event, target, received),
        identity=resolution.conflict,
        approved=_approved(pending, ticket),
    )
    violations = evaluate(event, context)
    if any(v.severity is Severity.REJECT for v in violations):
        return _rejected(message, event, violations, snapshot.release(event_id), held_from)
    holds = [v for v in violations if v.severity is Severity.HOLD]
    if holds:
        if held_from is not None:  # tried again, still waiting: its HELD receipt went out before
            return _still_held(pending, holds, snapshot.hold(held_from, tried_again=True))
        return _held(pending, holds, snapshot.hold(_held_entry(message, event, holds[0], now)))

    warnings = [v for v in violations if v.severity is Severity.WARNING]
    person, changes = snapshot.accept(
        event,
        message.origin,
        tuple(Note(w.code, w.message, w.message_nb) for w in warnings),
        late=any(w.code == LATE_REGISTRATION for w in warnings),
        at=now,
        received_at=received,
        registration_key=target.key if target is not None else event_id,
        resolution=resolution,
    )
    changes += snapshot.release(event_id) + snapshot.close_tickets(event, topic, now)
    return _accepted(pending, warnings, now, changes, person)


def _reused_id(event: Registration, circumstances: Circumstances, where: str) -> Violation:
    """The rule an event id met that the register already holds (or holds back) for another event."""
    found = check(EVENT_ID_REUSED, event, circumstances.rule_context("", reused_id=where))
    assert found is not None  # the rule fires whenever it is told the id is taken
    return found


def _approved(pending: Pending, ticket: OpenTicket | None) -> frozenset[str]:
    """The rules IMDi's support staff approved setting aside for this very message (a replay
    of its ticket, byte for byte; `hub.support.approval`)."""
    if ticket is None or ticket.approved_code is None or pending.message.value is None:
        return frozenset()
    if ticket.approved_digest != hashlib.sha256(pending.message.value).hexdigest():
        return frozenset()
    return frozenset({ticket.approved_code})


def decide_batch(
    batch: Sequence[Pending],
    snapshot: Snapshot,
    circumstances: Circumstances,
    read_held: ReadHeld,
    fault: Fault,
) -> list[Decision]:
    """Decide the batch in order, each event followed by the held events it let go: after an
    event writes to a person, their held events are tried again, again and again while a pass
    accepts one (an end held for its start, held for its decision). So a batch decides exactly
    as its events would one by one."""
    decisions = []
    for pending in batch:
        if pending.held is not None and snapshot.held_entry(pending.held.event_id) is None:
            continue  # a held event an earlier decision of the batch already let go
        decision = _decided(pending, snapshot, circumstances, fault)
        decisions.append(decision)
        written = decision.person
        while written is not None:
            retried = [
                _decided_held(e, snapshot, circumstances, read_held, fault) for e in snapshot.waiting([written])
            ]
            decisions += retried
            written = written if any(d.person is not None for d in retried) else None
    return decisions


def expired(entry: HeldEntry, read_held: ReadHeld, waited: str) -> Decision:
    """A held event that waited past the hold limit: rejected for what it waited for."""
    violation = Violation(
        entry.reason_code, Severity.REJECT, f"{entry.reason} ({waited})", f"{entry.reason_nb} ({waited})"
    )
    try:
        event: Registration | None = read_held(entry).event
    except Exception:  # its bytes no longer decode: the reason it waited still stands
        event = None
    return _rejected(held_message(entry), event, [violation], [Release(entry.event_id)], entry)


def held_message(entry: HeldEntry) -> Message:
    """The message a held event came in, as the hold keeps it."""
    return Message(entry.origin, entry.key, entry.value, received_at=entry.received_at)


def failed(
    message: Message,
    event: Registration | None,
    failure: Failure,
    changes: list[Change],
    message_nb: str = "",
    held: HeldEntry | None = None,
) -> Decision:
    """A message that could not be decided (undecodable, a fault, or set aside unread), with why."""
    violation = Violation(failure.code, Severity.REJECT, failure.message, message_nb)
    return Decision(message, event, ReceiptOutcome.REJECTED, [violation], failure, changes=changes, held=held)


def _decided(pending: Pending, snapshot: Snapshot, circumstances: Circumstances, fault: Fault) -> Decision:
    """`decide`, with a fault in it (a bug) turned into a rejection of this event alone."""
    try:
        return decide(pending, snapshot, circumstances)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        release = snapshot.release(str(pending.event.event_id))
        failure = fault(exc, pending.message.origin)
        return failed(pending.message, pending.event, failure, release, held=pending.held)


def _decided_held(
    entry: HeldEntry, snapshot: Snapshot, circumstances: Circumstances, read_held: ReadHeld, fault: Fault
) -> Decision:
    try:
        pending = read_held(entry)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # its bytes no longer decode (a schema withdrawn meanwhile)
        release = snapshot.release(entry.event_id)
        return failed(held_message(entry), None, fault(exc, entry.origin), release, held=entry)
    return _decided(pending, snapshot, circumstances, fault)


# --- the outcomes, each built whole ------------------------------------------------------------


def _rejected(
    message: Message,
    event: Registration | None,
    violations: list[Violation],
    changes: list[Change],
    held: HeldEntry | None,
) -> Decision:
    """A rejection by the rules, with its dead-letter reason naming every rule that rejected."""
    rejects = [v for v in violations if v.severity is Severity.REJECT]
    text = "; ".join(f"{v.code}: {v.message}" for v in rejects)
    text_nb = "; ".join(f"{v.code}: {v.message_nb}" for v in rejects)
    failure = Failure("rule", rejects[0].code, text, text_nb)
    return Decision(message, event, ReceiptOutcome.REJECTED, violations, failure, changes=changes, held=held)


def _accepted(
    pending: Pending,
    warnings: list[Violation],
    registered_at: dt.datetime,
    changes: list[Change],
    person: PersonView | None = None,
) -> Decision:
    """Accepted (again, for the very message redelivered), with its warnings; `person`: the one
    written to, whose held events are tried again."""
    outcome = ReceiptOutcome.ACCEPTED_WITH_WARNINGS if warnings else ReceiptOutcome.ACCEPTED
    return Decision(
        pending.message, pending.event, outcome, warnings, None, registered_at, changes, person, pending.held
    )


def _duplicate(pending: Pending, registered_at: dt.datetime, changes: list[Change]) -> Decision:
    """The same event sent again: answered as a duplicate, with when it was registered."""
    return Decision(
        pending.message, pending.event, ReceiptOutcome.DUPLICATE, [], None, registered_at, changes, held=pending.held
    )


def _held(pending: Pending, holds: list[Violation], changes: list[Change]) -> Decision:
    """Held, waiting for what it depends on: its source is told so once."""
    return Decision(pending.message, pending.event, ReceiptOutcome.HELD, holds, changes=changes)


def _still_held(pending: Pending, holds: list[Violation], changes: list[Change]) -> Decision:
    """Tried again and still waiting: nothing to answer."""
    return Decision(pending.message, pending.event, None, holds, changes=changes, held=pending.held)


def _violation(note: Note) -> Violation:
    return Violation(note.code, Severity.WARNING, note.message, note.message_nb)


def _held_entry(message: Message, event: Registration, reason: Violation, now: dt.datetime) -> HeldEntry:
    return HeldEntry(
        event_id=str(event.event_id),
        national_id=event.national_id,
        duf_number=event.duf_number,
        fact_date=event.fact_date,
        origin=message.origin,
        key=message.key,
        value=message.value or b"",
        reason_code=reason.code,
        reason=reason.message,
        reason_nb=reason.message_nb,
        held_at=now,
        corrects_event_id=str(event.corrects_event_id) if event.corrects_event_id is not None else None,
        received_at=message.received_at,
    )
