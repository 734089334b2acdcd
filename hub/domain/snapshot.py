"""The register as the decisions of one batch see it, and what those decisions change.

A `Snapshot` holds all the register knows that the decisions of a batch of events may need:
each person's identifiers, facts (residence permits among them), residences and states from
Folkeregisteret (`PersonState`: dead, ceased as a duplicate); Folkeregisteret's events about
numbers no person had when they came (`PendingPersonEvent`); the registrations the events may
repeat or correct; the events held for those persons; and the open case tickets they may answer.
An identifier is (kind, value) with kind `national_id` or `duf`, the contract's two fields; what
a number is (fødselsnummer, D-number, H-number, DUF number) is read from its shape
(`identifier_kind`). The repository reads it in a fixed number of statements
(`hub.register.repository`); the fake in `tests/fakes.py` builds it from memory.

**Identity never guesses** (`resolve`). Numbers name the same person only on proof: the same
number, or Folkeregisteret's identity change. An event whose numbers name two persons the
register knows, or that would give a person a second number of a kind it has one of (a second
DUF number, a second fødselsnummer), is a conflict: it is not applied, and a person decides
(`hub.register.identity`, merge and split). A D-number and a later fødselsnummer are different
kinds: a person may have both.

Deciding an event folds its consequences into the snapshot (`accept`, `hold`, `release`,
`close_tickets`), so that later events of the same batch see earlier ones, and returns them as
`Change`s for the repository to write, all of a kind in one statement. Nothing here touches a
database, and nothing here knows the rules: a warning is a plain `Note`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hub.domain.calendar import norwegian_date
from hub.domain.events import Origin, Registration
from hub.domain.identifiers import DUF_NUMBER, number_kind
from hub.domain.lifecycle import Action, Fact, is_repeatable
from hub.domain.residence import Residence

NATIONAL_ID = "national_id"
DUF = "duf"
Identifier = tuple[str, str]  # (kind, value)

# Facts this batch adds sort after every fact read: their rows' ids are not known yet.
_NEW_FACTS_FROM = 2**40

# Folkeregisteret's person events (`hub.register.person_events`), and the states two of them give.
IDENTITY_CHANGED = "IDENTITY_CHANGED"
PERSON_DIED = "PERSON_DIED"
PERSON_CEASED_AS_DUPLICATE = "PERSON_CEASED_AS_DUPLICATE"
STATES = {PERSON_DIED: "dead", PERSON_CEASED_AS_DUPLICATE: "ceased_as_duplicate"}
# Who joined two persons when Folkeregisteret's word did it (a merge's `by`).
FOLKEREGISTERET = "folkeregisteret"


def identifiers_of(national_id: str | None, duf_number: str | None) -> list[Identifier]:
    return [(kind, value) for kind, value in ((NATIONAL_ID, national_id), (DUF, duf_number)) if value]


def identifier_kind(identifier: Identifier) -> str:
    """What the number is: `duf`, or a national id's kind (fødselsnummer, D- or H-number). A
    person has at most one of each, unless Folkeregisteret or a person said otherwise."""
    kind, value = identifier
    return DUF_NUMBER if kind == DUF else number_kind(value)


@dataclass(frozen=True)
class PersonState:
    """What Folkeregisteret said of the person (`hub.register.person_events`): `dead` or
    `ceased_as_duplicate`, since `on`, from feed item `sequence_number`."""

    state: str
    on: dt.date
    sequence_number: int


@dataclass(frozen=True)
class PendingPersonEvent:
    """A person event from Folkeregisteret about numbers the register did not know when it came:
    kept until a person with one of them appears, and then theirs (`Snapshot.person_for`).

    `numbers` are every national id it names (an identity change: the number in use and the
    ceased ones, which are one person); `ceased` those it ceases."""

    id: int  # its row
    sequence_number: int
    event_type: str
    numbers: frozenset[str]
    ceased: frozenset[str]
    event_date: dt.date | None
    recorded_at: dt.datetime

    def state(self) -> PersonState | None:
        if self.event_type not in STATES:
            return None
        on = self.event_date or norwegian_date(self.recorded_at)
        return PersonState(STATES[self.event_type], on, self.sequence_number)


@dataclass(eq=False)
class PersonView:
    """One person as the batch sees them. `id` is None for a person this batch creates;
    `merged_into` is set once Folkeregisteret's word showed them to be the same as another."""

    id: int | None
    identifiers: set[Identifier] = field(default_factory=set)
    facts: list[Fact] = field(default_factory=list)
    residences: list[Residence] = field(default_factory=list)
    states: list[PersonState] = field(default_factory=list)
    created_at: dt.datetime | None = None  # for a person this batch creates
    merged_into: PersonView | None = None
    _order: int = 0  # a new person's place among the batch's new persons

    def final(self) -> PersonView:
        """The person this one is now, after the batch's merges."""
        person = self
        while person.merged_into is not None:
            person = person.merged_into
        return person

    def rank(self) -> tuple[int, int]:
        """The older person keeps a merge: those in the register by id, then the batch's new ones."""
        return (0, self.id) if self.id is not None else (1, self._order)


@dataclass(frozen=True)
class Note:
    """A warning as the register keeps it with a registration."""

    code: str
    message: str
    message_nb: str = ""


@dataclass(frozen=True)
class Registered:
    """A registration the register holds, or that this batch accepted, with what the event said
    (`content`, `named`): only a redelivery of the same event may repeat its outcome."""

    event_id: str
    registration_key: str  # the event id of the registration it corrects or annuls, else its own
    event_type: str
    person: PersonView
    origin: Origin
    accepted_at: dt.datetime
    warnings: tuple[Note, ...] = ()
    municipality: str = ""
    received_at: dt.datetime | None = None
    content: tuple[Any, ...] = ()  # `content_key` of the event
    named: tuple[str | None, str | None] | None = None  # its numbers; None: not kept (before 0015)

    def same_event(self, event: Registration, topic: str) -> bool:
        """Whether `event` is this registration's event sent again: the same source (its topic),
        the same content, the same numbers."""
        return (
            self.origin.topic == topic
            and self.content == content_of(event)
            and (self.named is None or self.named == (event.national_id, event.duf_number))
        )


def content_key(
    action: str, event_type: str, fact_date: dt.date, municipality: str, payload: dict[str, Any]
) -> tuple[Any, ...]:
    """What makes two events with one event id the same event (sentAt and the schema it was
    written with may differ between a send and its retry), from an event or its row."""
    return (action, event_type, fact_date, municipality, payload)


def content_of(event: Registration) -> tuple[Any, ...]:
    return content_key(event.action, event.event_type, event.fact_date, event.municipality, event.payload)


@dataclass(frozen=True)
class Target:
    """The registration a CORRECT or ANNUL event refers to, as the register has it: the key of
    its versions, and the original's type, owner and first arrival."""

    key: str  # the event id of the original registration
    event_type: str
    same_person: bool
    municipality: str = ""  # the municipality that registered the original
    received_at: dt.datetime | None = None  # when the hub first received the original


@dataclass(frozen=True)
class Conflict:
    """Why an event's numbers cannot be tied to one person (`Snapshot.resolve`): they name two
    persons the register knows, or would give a person a second number of one kind."""

    kind: str  # TWO_PERSONS or SECOND_NUMBER
    number_kind: str | None = None  # for SECOND_NUMBER: duf, fodselsnummer, d-number, h-number


TWO_PERSONS, SECOND_NUMBER = "two_persons", "second_number"


@dataclass(frozen=True)
class Resolution:
    """Whom an event's numbers name: the known persons (oldest first; several only when
    Folkeregisteret's word joins them, or in conflict), the pending Folkeregister events about
    them, and the conflict if there is one."""

    persons: tuple[PersonView, ...]
    pending: tuple[PendingPersonEvent, ...] = ()
    conflict: Conflict | None = None


@dataclass(frozen=True)
class HeldEntry:
    """An event held until what it depends on arrives, with the message it came in."""

    event_id: str
    national_id: str | None
    duf_number: str | None
    fact_date: dt.date
    origin: Origin
    key: bytes | None
    value: bytes
    reason_code: str
    reason: str
    reason_nb: str
    held_at: dt.datetime
    order: int = 0  # the hold's own order (its row id): events of one date are retried in it
    corrects_event_id: str | None = None  # a held correction's or annulment's original
    # When the broker appended the message (None: the topic keeps producers' times, or held
    # before this was kept): a held event was received then, not when it was held, so the same
    # message held again (after a restore, `hub recover`) is registered as received the same day.
    received_at: dt.datetime | None = None

    @property
    def identifiers(self) -> list[Identifier]:
        return identifiers_of(self.national_id, self.duf_number)


@dataclass(frozen=True)
class OpenTicket:
    """A case ticket still waiting for a fix (open or replayed)."""

    id: int
    event_id: str | None
    event_type: str | None
    source_system: str | None
    fact_date: dt.date | None
    national_id: str | None
    duf_number: str | None
    sent_at: dt.datetime | None = None  # when the failed event was sent, if it could be read
    first_failed_at: dt.datetime | None = None  # when the hub first received and failed it
    topic: str | None = None  # the topic its event came on (its source's)
    # What IMDi's support staff approved for this event, bound to the message they replay
    # (`hub.support.approval`): the rule code, and the SHA-256 of the message's value.
    approved_code: str | None = None
    approved_digest: str | None = None

    def is_of(self, event_id: str, topic: str) -> bool:
        """Whether this is the ticket of that very event: event ids are a source's own."""
        return self.event_id == event_id and self.topic == topic

    def answered_by(self, event: Registration, topic: str) -> bool:
        """Whether accepting `event` (from `topic`) settles this ticket: it is the ticket's own
        event (a successful replay), or the same person's event of the same type from the same
        source (the fagsystem sent a fixed one after the failed one; for repeatable types, for
        the same date). An event sent before the failed one is no fix for it, however late it
        arrives."""
        if self.is_of(str(event.event_id), topic):
            return True
        values = {event.national_id, event.duf_number} - {None}
        return (
            self.event_type == event.event_type
            and self.source_system == event.source_system
            and self.topic == topic
            and bool({self.national_id, self.duf_number} & values)
            and (not is_repeatable(event.event_type) or self.fact_date == event.fact_date)
            and (self.sent_at is None or event.sent_at > self.sent_at)
        )


# --- what decisions change; the repository writes each kind together ------------------------


@dataclass(frozen=True)
class Identify:
    """The person gains an identifier (a new person gains all of theirs)."""

    person: PersonView
    identifier: Identifier
    at: dt.datetime


@dataclass(frozen=True)
class Merge:
    """Two persons of the register are one: `other`'s rows move to `keeper`, `other` goes. The
    repository records what moved, so that `hub person split` can put it back."""

    keeper: PersonView
    other: PersonView
    reason: str
    by: str
    at: dt.datetime


@dataclass(frozen=True)
class AttachPersonEvent:
    """A pending Folkeregister event becomes the person's (their numbers it ceases, marked)."""

    event: PendingPersonEvent
    person: PersonView


@dataclass(frozen=True)
class Write:
    """An accepted registration's row."""

    person: PersonView
    event: Registration
    origin: Origin
    registration_key: str
    warnings: tuple[Note, ...]
    late: bool
    at: dt.datetime
    received_at: dt.datetime  # when the hub received it (`decide.received_at`)


@dataclass(frozen=True)
class Hold:
    entry: HeldEntry


@dataclass(frozen=True)
class HoldAgain:
    """A held event tried again and still waiting: one more attempt."""

    event_id: str


@dataclass(frozen=True)
class CloseTicket:
    ticket_id: int
    event_id: str  # the accepted event that settled it
    at: dt.datetime


@dataclass(frozen=True)
class Release:
    """A held event leaves the hold. Written only once its answer is confirmed: its own offset
    was committed when it was held, so the hold is all that remembers it."""

    event_id: str


Change = Identify | Merge | AttachPersonEvent | Write | Hold | HoldAgain | CloseTicket | Release


class Snapshot:
    def __init__(
        self,
        persons: Iterable[PersonView] = (),
        registered: Iterable[Registered] = (),
        held: Iterable[HeldEntry] = (),
        tickets: Iterable[OpenTicket] = (),
        pending: Iterable[PendingPersonEvent] = (),
    ) -> None:
        self._by_identifier: dict[Identifier, PersonView] = {}
        for person in persons:
            self._index(person)
        self._registered = {r.event_id: r for r in registered}
        self._held = {h.event_id: h for h in held}
        self._tickets = {t.id: t for t in tickets}
        self._pending = {p.id: p for p in pending}
        self._sequence = itertools.count(_NEW_FACTS_FROM)
        self._new_persons = itertools.count()

    @classmethod
    def assemble(
        cls,
        identifiers: Iterable[tuple[int, str, str]],
        facts: Iterable[tuple[int, Fact]],
        residences: Iterable[tuple[int, Residence]],
        registered: Iterable[tuple[int, Registered]],
        held: Iterable[HeldEntry] = (),
        tickets: Iterable[OpenTicket] = (),
        states: Iterable[tuple[int, PersonState]] = (),
        pending: Iterable[PendingPersonEvent] = (),
    ) -> Snapshot:
        """From the register's rows, each with its person's id. A registration's person is
        a `PersonView` of its own when the snapshot knows nothing else of them."""
        persons: dict[int, PersonView] = {}

        def person(person_id: int) -> PersonView:
            return persons.setdefault(person_id, PersonView(person_id))

        for person_id, kind, value in identifiers:
            person(person_id).identifiers.add((kind, value))
        known = list(persons.values())  # only these can be found by an identifier
        for person_id, fact in facts:
            person(person_id).facts.append(fact)
        for person_id, residence in residences:
            person(person_id).residences.append(residence)
        for person_id, state in states:
            person(person_id).states.append(state)
        rows = [replace(r, person=person(i)) for i, r in registered]
        return cls(known, rows, held, tickets, pending)

    # --- what decisions read -------------------------------------------------------------

    def persons(self, identifiers: Iterable[Identifier]) -> list[PersonView]:
        """The persons these identifiers belong to, oldest first."""
        found = {
            id(p): p
            for p in (self._by_identifier[i].final() for i in identifiers if i in self._by_identifier)
        }
        return sorted(found.values(), key=PersonView.rank)

    def resolve(self, wanted: Iterable[Identifier]) -> Resolution:
        """Whom these numbers name, on proof only (see the module's docstring): the persons that
        hold them, joined by Folkeregisteret's pending word about them; or why they cannot be
        tied to one person."""
        named = set(wanted)
        proven, pending = self._proven(named) if self._pending else (named, ())
        direct = self.persons(named)
        if len(direct) > 1:
            return Resolution(tuple(direct), pending, Conflict(TWO_PERSONS))
        joined = direct if proven is named else self.persons(proven)
        if not joined:
            return Resolution((), pending)
        held = joined[0].identifiers if len(joined) == 1 else set().union(*(p.identifiers for p in joined))
        gained = proven - held  # mostly nothing: the event names numbers the person has
        if gained:
            kinds = {identifier_kind(i) for i in held}
            # The event's own numbers first: the conflict names the kind it sent twice.
            for identifier in sorted(gained, key=lambda i: (i not in named, i)):
                if identifier_kind(identifier) in kinds:
                    return Resolution(
                        tuple(joined), pending, Conflict(SECOND_NUMBER, identifier_kind(identifier))
                    )
        return Resolution(tuple(joined), pending)

    def _proven(self, named: set[Identifier]) -> tuple[set[Identifier], tuple[PendingPersonEvent, ...]]:
        """The numbers Folkeregisteret's pending events link to these (transitively), and those
        events, oldest first."""
        proven, found = set(named), {}
        while True:
            values = {v for k, v in proven if k == NATIONAL_ID}
            more = [
                p for p in self._pending.values() if p.id not in found and not p.numbers.isdisjoint(values)
            ]
            if not more:
                break
            for p in more:
                found[p.id] = p
                if p.event_type == IDENTITY_CHANGED:
                    proven |= {(NATIONAL_ID, n) for n in p.numbers}
        return proven, tuple(sorted(found.values(), key=lambda p: p.sequence_number))

    def history(self, persons: Sequence[PersonView]) -> tuple[tuple[Fact, ...], tuple[Residence, ...]]:
        """The facts and residences of these persons, together."""
        return (
            tuple(f for p in persons for f in p.facts),
            tuple(r for p in persons for r in p.residences),
        )

    def states(self, persons: Sequence[PersonView]) -> tuple[PersonState, ...]:
        """What Folkeregisteret said of these persons (for rules that warn about it)."""
        return tuple(s for p in persons for s in p.states)

    def registered(self, event_id: str) -> Registered | None:
        return self._registered.get(event_id)

    def held_entry(self, event_id: str) -> HeldEntry | None:
        return self._held.get(event_id)

    def target(self, event: Registration, persons: Sequence[PersonView]) -> Target | None:
        """The registration a correction or annulment refers to, if the register has it: any of
        its versions may be named (a correction of an annulment restores it)."""
        if event.corrects_event_id is None:
            return None
        named = self._registered.get(str(event.corrects_event_id))
        if named is None:
            return None
        original = self._registered.get(named.registration_key, named)
        return Target(
            key=named.registration_key,
            event_type=original.event_type,
            same_person=any(named.person.final() is p.final() for p in persons),
            municipality=original.municipality,
            received_at=original.received_at,
        )

    def waiting(self, persons: Iterable[PersonView]) -> list[HeldEntry]:
        """The events held for these persons, in the order they are tried again."""
        # A person's identifiers include those of everyone merged into them, so an event is held
        # for one of `persons` exactly when it names one of their identifiers.
        wanted: set[Identifier] = set().union(*(p.final().identifiers for p in persons))
        return sorted(
            (h for h in self._held.values() if not wanted.isdisjoint(h.identifiers)),
            key=lambda h: (h.fact_date, h.order),
        )

    # --- what decisions change -----------------------------------------------------------

    def accept(
        self,
        event: Registration,
        origin: Origin,
        warnings: tuple[Note, ...],
        late: bool,
        at: dt.datetime,
        received_at: dt.datetime,
        registration_key: str,
        resolution: Resolution | None = None,
    ) -> tuple[PersonView, list[Change]]:
        """Write the event to its person (created or completed as needed; its numbers must not
        be in conflict, see `resolve`, whose answer for them the caller may give)."""
        wanted = identifiers_of(event.national_id, event.duf_number)
        person, changes = self.person_for(wanted, at, resolution=resolution)
        action = Action(event.action)
        person.facts.append(
            Fact(
                registration_key,
                event.event_type,
                event.fact_date,
                event.payload,
                next(self._sequence),
                action,
                event.sent_at,
            )
        )
        event_id = str(event.event_id)
        self._registered[event_id] = Registered(
            event_id,
            registration_key,
            event.event_type,
            person,
            origin,
            at,
            warnings,
            event.municipality,
            received_at,
            content_of(event),
            (event.national_id, event.duf_number),
        )
        changes.append(Write(person, event, origin, registration_key, warnings, late, at, received_at))
        return person, changes

    def person_for(
        self,
        wanted: list[Identifier],
        at: dt.datetime,
        *,
        proof: str | None = None,
        resolution: Resolution | None = None,
    ) -> tuple[PersonView, list[Change]]:
        """The person these numbers belong to: created, or completed with the numbers they lack
        and Folkeregisteret's pending events about them. Persons are merged only on
        Folkeregisteret's word: `proof` (an identity change naming these numbers) or a pending
        identity change. Numbers in conflict without proof are a caller's error. `resolution` is
        `resolve(wanted)` if the caller has it (nothing changed the snapshot since)."""
        resolution = resolution or self.resolve(wanted)
        if resolution.conflict is not None and proof is None:
            raise ValueError(f"numbers in conflict ({resolution.conflict.kind}) are not joined without proof")
        changes: list[Change] = []
        if not resolution.persons:
            keeper = PersonView(None, created_at=at, _order=next(self._new_persons))
        else:
            keeper, *others = resolution.persons
            reason = proof or _identity_change(resolution.pending)
            for other in others:
                merge = self._merge(keeper, other, reason, at)
                if other.id is not None:  # a person this batch created is folded in unrecorded
                    changes.append(merge)
        numbers = list(dict.fromkeys(wanted))
        for pending in resolution.pending:
            if pending.event_type == IDENTITY_CHANGED:
                numbers += [(NATIONAL_ID, n) for n in sorted(pending.numbers)]
        for identifier in dict.fromkeys(numbers):
            if identifier not in keeper.identifiers:
                changes.append(Identify(keeper, identifier, at))
        self._index(keeper, numbers)
        for pending in resolution.pending:
            del self._pending[pending.id]
            state = pending.state()
            if state is not None:
                keeper.states.append(state)
            changes.append(AttachPersonEvent(pending, keeper))
        return keeper, changes

    def _merge(self, keeper: PersonView, other: PersonView, reason: str, at: dt.datetime) -> Merge:
        keeper.identifiers |= other.identifiers
        keeper.facts += other.facts
        keeper.residences += other.residences
        keeper.states += other.states
        other.merged_into = keeper
        return Merge(keeper, other, reason, FOLKEREGISTERET, at)

    def _index(self, person: PersonView, identifiers: Iterable[Identifier] = ()) -> None:
        person.identifiers.update(identifiers)
        for identifier in person.identifiers:
            self._by_identifier[identifier] = person

    def hold(self, entry: HeldEntry, *, tried_again: bool = False) -> list[Change]:
        """Hold an event. One already held counts an attempt when it is tried again or comes in
        another message (the fagsystem sent it again); the very message it was held from,
        delivered again (after a crash, or read again after `hub recover`), is the same hold and
        changes nothing, as the very message failing again is one failure of its ticket."""
        held = self._held.get(entry.event_id)
        if held is not None:
            if not tried_again and held.origin == entry.origin:
                return []
            return [HoldAgain(entry.event_id)]
        entry = replace(entry, order=next(self._sequence))  # after those held before
        self._held[entry.event_id] = entry
        return [Hold(entry)]

    def release(self, event_id: str) -> list[Change]:
        """The event leaves the hold, if it is there."""
        return [Release(event_id)] if self._held.pop(event_id, None) is not None else []

    def ticket_of(self, event_id: str, topic: str) -> OpenTicket | None:
        """The open ticket of this very event (this id from this source), if it failed before."""
        if not self._tickets:  # mostly: a batch's persons have no open tickets
            return None
        return next((t for t in self._tickets.values() if t.is_of(event_id, topic)), None)

    def close_tickets(self, event: Registration, topic: str, at: dt.datetime) -> list[Change]:
        """Close the open tickets that accepting `event` settles."""
        if not self._tickets:
            return []
        settled = [t for t in self._tickets.values() if t.answered_by(event, topic)]
        return self._close(settled, str(event.event_id), at)

    def close_own_ticket(self, event_id: str, topic: str, at: dt.datetime) -> list[Change]:
        """Close the ticket of this very event: a duplicate of an accepted event answers only its
        own ticket, never another's."""
        own = self.ticket_of(event_id, topic)
        return self._close([own] if own is not None else [], event_id, at)

    def _close(self, tickets: list[OpenTicket], event_id: str, at: dt.datetime) -> list[Change]:
        for ticket in tickets:
            del self._tickets[ticket.id]
        return [CloseTicket(t.id, event_id, at) for t in tickets]


def _identity_change(pending: Sequence[PendingPersonEvent]) -> str:
    """Why persons were merged by a pending identity change: the feed items that joined them."""
    items = ", ".join(str(p.sequence_number) for p in pending if p.event_type == IDENTITY_CHANGED)
    return f"Folkeregisteret: identity change (feed item {items})"
