"""The register as the decisions of one batch see it, and what those decisions change.

A `Snapshot` holds all the register knows that the decisions of a batch of events may need:
each person's identifiers, facts (residence permits among them), residences and states from
Folkeregisteret (`PersonState`: dead, ceased as a duplicate); the registrations the events may
repeat or correct; the events held for those persons; and the open case tickets they may answer.
An identifier is (kind, value) with kind `national_id` or `duf`, the contract's two fields: what
a number is (fødselsnummer, D-number, H-number) the register keeps beside it
(`person_identifiers.number_kind`) and never compares, so a new kind cannot split a person. The repository reads it in a fixed number of statements
(`hub.register.repository`); the fake in `tests/fakes.py` builds it from memory.

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

from hub.domain.events import Origin, Registration
from hub.domain.lifecycle import Action, Fact, is_repeatable
from hub.domain.residence import Residence

NATIONAL_ID = "national_id"
DUF = "duf"
Identifier = tuple[str, str]  # (kind, value)

# Facts this batch adds sort after every fact read: their rows' ids are not known yet.
_NEW_FACTS_FROM = 2**40


def identifiers_of(national_id: str | None, duf_number: str | None) -> list[Identifier]:
    return [(kind, value) for kind, value in ((NATIONAL_ID, national_id), (DUF, duf_number)) if value]


@dataclass(frozen=True)
class PersonState:
    """What Folkeregisteret said of the person (`hub.register.person_events`): `dead` or
    `ceased_as_duplicate`, since `on`, from feed item `sequence_number`."""

    state: str
    on: dt.date
    sequence_number: int


@dataclass(eq=False)
class PersonView:
    """One person as the batch sees them. `id` is None for a person this batch creates;
    `merged_into` is set once the batch found them to be the same as another."""

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
    """A registration the register holds, or that this batch accepted."""

    event_id: str
    registration_key: str  # the event id of the registration it corrects or annuls, else its own
    event_type: str
    person: PersonView
    origin: Origin
    accepted_at: dt.datetime
    warnings: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Target:
    """The registration a CORRECT or ANNUL event refers to, as the register has it."""

    key: str  # the event id of the original registration
    event_type: str
    same_person: bool
    annulled: bool


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

    def answered_by(self, event: Registration) -> bool:
        """Whether accepting `event` settles this ticket: it is the ticket's own event (a
        successful replay), or the same person's event of the same type from the same source
        (the fagsystem sent a fixed one after the failed one; for repeatable types, for the same
        date). An event sent before the failed one is no fix for it, however late it arrives."""
        if self.event_id == str(event.event_id):
            return True
        values = {event.national_id, event.duf_number} - {None}
        return (
            self.event_type == event.event_type
            and self.source_system == event.source_system
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
    """Two persons of the register are one: `other`'s rows move to `keeper`, `other` goes."""

    keeper: PersonView
    other: PersonView


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


Change = Identify | Merge | Write | Hold | HoldAgain | CloseTicket | Release


class Snapshot:
    def __init__(
        self,
        persons: Iterable[PersonView] = (),
        registered: Iterable[Registered] = (),
        annulled: Iterable[str] = (),
        held: Iterable[HeldEntry] = (),
        tickets: Iterable[OpenTicket] = (),
    ) -> None:
        self._by_identifier: dict[Identifier, PersonView] = {}
        for person in persons:
            self._index(person)
        self._registered = {r.event_id: r for r in registered}
        self._annulled = set(annulled)  # registration keys
        self._held = {h.event_id: h for h in held}
        self._tickets = {t.id: t for t in tickets}
        self._sequence = itertools.count(_NEW_FACTS_FROM)
        self._new_persons = itertools.count()

    @classmethod
    def assemble(
        cls,
        identifiers: Iterable[tuple[int, str, str]],
        facts: Iterable[tuple[int, Fact]],
        residences: Iterable[tuple[int, Residence]],
        registered: Iterable[tuple[int, Registered]],
        annulled: Iterable[str] = (),
        held: Iterable[HeldEntry] = (),
        tickets: Iterable[OpenTicket] = (),
        states: Iterable[tuple[int, PersonState]] = (),
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
        rows = [
            Registered(
                r.event_id, r.registration_key, r.event_type, person(i), r.origin, r.accepted_at, r.warnings
            )
            for i, r in registered
        ]
        return cls(known, rows, annulled, held, tickets)

    # --- what decisions read -------------------------------------------------------------

    def persons(self, identifiers: Iterable[Identifier]) -> list[PersonView]:
        """The persons these identifiers belong to, oldest first (more than one: to be merged)."""
        found = {
            id(p): p
            for p in (self._by_identifier[i].final() for i in identifiers if i in self._by_identifier)
        }
        return sorted(found.values(), key=PersonView.rank)

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

    def target(self, event: Registration, persons: Sequence[PersonView]) -> Target | None:
        """The registration a correction or annulment refers to, if the register has it."""
        if event.corrects_event_id is None:
            return None
        original = self._registered.get(str(event.corrects_event_id))
        if original is None:
            return None
        return Target(
            key=original.registration_key,
            event_type=original.event_type,
            same_person=any(original.person.final() is p for p in persons),
            annulled=original.registration_key in self._annulled,
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
    ) -> tuple[PersonView, list[Change]]:
        """Write the event to its person (created, completed or merged as needed)."""
        person, changes = self.person_for(identifiers_of(event.national_id, event.duf_number), at)
        action = Action(event.action)
        person.facts.append(
            Fact(
                registration_key,
                event.event_type,
                event.fact_date,
                event.payload,
                next(self._sequence),
                action,
            )
        )
        if action is Action.ANNUL:
            self._annulled.add(registration_key)
        event_id = str(event.event_id)
        self._registered[event_id] = Registered(
            event_id, registration_key, event.event_type, person, origin, at, warnings
        )
        changes.append(Write(person, event, origin, registration_key, warnings, late, at, received_at))
        return person, changes

    def person_for(self, wanted: list[Identifier], at: dt.datetime) -> tuple[PersonView, list[Change]]:
        """The person these identifiers belong to; when they belong to two, the two are merged
        into the older one (a DUF-only record and a fødselsnummer record of one person)."""
        changes: list[Change] = []
        found = self.persons(wanted)
        if not found:
            keeper = PersonView(None, created_at=at, _order=next(self._new_persons))
        else:
            keeper = found[0]
            for other in found[1:]:
                keeper.identifiers |= other.identifiers
                keeper.facts += other.facts
                keeper.residences += other.residences
                keeper.states += other.states
                other.merged_into = keeper
                if other.id is not None:
                    changes.append(Merge(keeper, other))
        for identifier in wanted:
            if identifier not in keeper.identifiers:
                changes.append(Identify(keeper, identifier, at))
        self._index(keeper, wanted)
        return keeper, changes

    def _index(self, person: PersonView, identifiers: Iterable[Identifier] = ()) -> None:
        person.identifiers.update(identifiers)
        for identifier in person.identifiers:
            self._by_identifier[identifier] = person

    def hold(self, entry: HeldEntry) -> list[Change]:
        """Hold an event; one already held (its message delivered again) counts an attempt."""
        if entry.event_id in self._held:
            return [HoldAgain(entry.event_id)]
        entry = replace(entry, order=next(self._sequence))  # after those held before
        self._held[entry.event_id] = entry
        return [Hold(entry)]

    def release(self, event_id: str) -> list[Change]:
        """The event leaves the hold, if it is there."""
        return [Release(event_id)] if self._held.pop(event_id, None) is not None else []

    def ticket_of(self, event_id: str) -> OpenTicket | None:
        """The open ticket of this very event, if it failed before."""
        return next((t for t in self._tickets.values() if t.event_id == event_id), None)

    def close_tickets(self, event: Registration, at: dt.datetime) -> list[Change]:
        """Close the open tickets that accepting `event` settles."""
        settled = [t for t in self._tickets.values() if t.answered_by(event)]
        for ticket in settled:
            del self._tickets[ticket.id]
        return [CloseTicket(t.id, str(event.event_id), at) for t in settled]
