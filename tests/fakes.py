"""Stand-ins in tests of the pipeline's decisions: a publisher for the broker side, and the
register in memory (never for the broker or the database in end-to-end tests); and the support
desk's users and audit log in memory, for the tests of sign-in's lockout and of who manages whom."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from hub.domain.events import Origin, Registration
from hub.domain.lifecycle import Action, Fact
from hub.domain.snapshot import (
    AttachPersonEvent,
    Change,
    CloseTicket,
    HeldEntry,
    Hold,
    HoldAgain,
    Identify,
    Merge,
    OpenTicket,
    PendingPersonEvent,
    PersonState,
    PersonView,
    Snapshot,
    Write,
    identifiers_of,
)
from hub.domain.sources import SourceState
from hub.errors import BrokerUnavailable
from hub.pipeline.deadletter import read_headers
from hub.pipeline.ports import Outgoing
from hub.register.marks import Mark, NewMark
from hub.register.models import PendingSignIn, SignInAttempt, User
from hub.register.repository import registered_of, registration_values

# The topic the unit tests' events come on (`tests.unit.test_decisions`).
TOPIC_OF_TESTS = "nir.source.oslo-fagsystem.registrations"


class RecordingPublisher:
    """Records what would have been published; can be told to fail the next sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, dict[str, str]]] = []
        self.failures_left = 0

    async def send_many(self, messages: Sequence[Outgoing]) -> None:
        for m in messages:
            if self.failures_left:
                self.failures_left -= 1
                raise BrokerUnavailable("broker hiccup")
            self.sent.append((m.topic, m.key, m.value, read_headers(m.headers)))

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes, dict[str, str]]]:
        return [s for s in self.sent if s[0] == topic]


class FakeRegister:
    """The register in memory, with the repository's interface (`hub.register.repository`).

    Its snapshot is simply everything it holds: a decision may not need more than the real
    repository reads, and `tests/integration/test_batch.py` proves that both give the same
    register for the same stream."""

    def __init__(self) -> None:
        self.persons: dict[int, dt.datetime] = {}
        self.identifiers: list[tuple[int, str, str]] = []  # person id, kind, value
        self.rows: list[dict[str, Any]] = []  # registrations, as the repository writes them
        self.held: dict[str, tuple[HeldEntry, int]] = {}  # with its attempts
        self.tickets: dict[int, dict[str, Any]] = {}
        self.states: list[tuple[int, PersonState]] = []  # Folkeregisteret's word on a person
        self.pending: dict[int, PendingPersonEvent] = {}  # Folkeregisteret's, before its person
        self.merges: list[tuple[int, int, str]] = []  # keeper, other, reason
        self.nudged: set[str] = set()  # held events to try again (their persons changed)
        self.revoked: dict[str, SourceState] = {}  # sources IMDi revoked
        self._ids = itertools.count(1)

    # --- the repository's interface ------------------------------------------------------

    def snapshot(self, events: Sequence[Registration]) -> Snapshot:
        return Snapshot.assemble(
            self.identifiers,
            [(row["person_id"], _fact(row)) for row in self.rows],
            [],
            [(row["person_id"], registered_of(row)) for row in self.rows],
            [entry for entry, _ in self.held.values()],
            [OpenTicket(**t["ticket"]) for t in self.tickets.values() if t["status"] in ("open", "replayed")],
            states=self.states,
            pending=self.pending.values(),
        )

    def person_with(self, national_id: str | None, duf_number: str | None, at: dt.datetime) -> int:
        wanted = identifiers_of(national_id, duf_number)
        person, changes = self.snapshot([]).person_for(wanted, at)
        self.apply(changes)
        return int(person.final().id or 0)

    def apply(self, changes: Iterable[Change]) -> None:
        changes = list(changes)
        for change in changes:
            if isinstance(change, Identify | Write) and change.person.final().id is None:
                person = change.person.final()
                person.id = next(self._ids)
                self.persons[person.id] = person.created_at or change.at
        for change in changes:
            match change:
                case Merge(keeper=keeper, other=other, reason=reason):
                    into, gone = _id(keeper.final()), _id(other)
                    self.identifiers = [(into if p == gone else p, k, v) for p, k, v in self.identifiers]
                    for row in self.rows:
                        row["person_id"] = into if row["person_id"] == gone else row["person_id"]
                    self.states = [(into if p == gone else p, st) for p, st in self.states]
                    del self.persons[gone]
                    self.merges.append((into, gone, reason))
        for change in changes:
            match change:
                case Identify(person=person, identifier=(kind, value)):
                    self.identifiers.append((_id(person.final()), kind, value))
                case Write():
                    self.rows.append({**registration_values(change), "id": next(self._ids)})
                case Hold(entry=entry):
                    self.held[entry.event_id] = (dataclasses.replace(entry, order=next(self._ids)), 1)
                case HoldAgain(event_id=event_id):
                    entry, attempts = self.held[event_id]
                    self.held[event_id] = (entry, attempts + 1)
                    self.nudged.discard(event_id)
                case CloseTicket(ticket_id=ticket_id, event_id=event_id):
                    self.tickets[ticket_id].update(status="resolved", linked_event_id=event_id)
                case AttachPersonEvent(event=pending, person=person):
                    del self.pending[pending.id]
                    if (state := pending.state()) is not None:
                        self.states.append((_id(person.final()), state))

    def release(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            self.held.pop(event_id, None)

    def expired_held(self, held_before: dt.datetime) -> list[HeldEntry]:
        registered = {r["event_id"] for r in self.rows}
        return sorted(
            (e for e, _ in self.held.values() if e.held_at < held_before and e.event_id not in registered),
            key=lambda e: e.order,
        )

    def held_to_try_again(self) -> list[HeldEntry]:
        again = self.nudged | {r["event_id"] for r in self.rows}
        return sorted((e for e, _ in self.held.values() if e.event_id in again), key=lambda e: e.order)

    # --- for tests -------------------------------------------------------------------------

    def facts(self) -> list[Fact]:
        """Every registration as a fact of its person's timeline."""
        return [_fact(row) for row in self.rows]

    def keep_person_event(
        self, event_type: str, numbers: list[str], *, ceased: Sequence[str] = (), **fields: Any
    ) -> None:
        """A Folkeregister event about numbers no person has, kept until one appears."""
        row = next(self._ids)
        defaults = dict(
            event_date=None, recorded_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), sequence_number=row
        )
        self.pending[row] = PendingPersonEvent(
            row,
            event_type=event_type,
            numbers=frozenset(numbers),
            ceased=frozenset(ceased),
            **{**defaults, **fields},
        )

    def open_ticket(self, **fields: Any) -> int:
        ticket_id = next(self._ids)
        defaults = dict(
            event_id=None,
            event_type=None,
            source_system=None,
            fact_date=None,
            sent_at=None,
            topic=TOPIC_OF_TESTS,
        )
        self.tickets[ticket_id] = {
            "ticket": {**defaults, "national_id": None, "duf_number": None, **fields, "id": ticket_id},
            "status": "open",
            "linked_event_id": None,
        }
        return ticket_id

    def register(self) -> Register:
        """What `tests.integration.test_batch.register` reads of a real register."""
        identifiers: dict[int, set[str]] = {}
        for person_id, _, value in self.identifiers:
            identifiers.setdefault(person_id, set()).add(value)
        return register_view(
            ({**row, "identifiers": identifiers[row["person_id"]]} for row in self.rows),
            identifiers.values(),
            self.held,
        )


class FakeUnitOfWork:
    """A unit of work over a `FakeRegister`: changes are kept until `commit`, like a transaction."""

    def __init__(self, store: FakeRegister, marks: FakeMarks | None = None) -> None:
        self._store = store
        self.register = self
        self.marks = marks or FakeMarks()

    def __enter__(self) -> FakeUnitOfWork:
        self._changes: list[Change] = []
        self._released: list[str] = []
        return self

    def __exit__(self, *exc: object) -> None:
        self._changes, self._released = [], []

    def snapshot(self, events: Sequence[Registration]) -> Snapshot:
        return self._store.snapshot(events)

    def revoked_sources(self) -> dict[str, SourceState]:
        return dict(self._store.revoked)

    def expired_held(self, held_before: dt.datetime) -> list[HeldEntry]:
        return self._store.expired_held(held_before)

    def held_to_try_again(self) -> list[HeldEntry]:
        return self._store.held_to_try_again()

    def apply(self, changes: Iterable[Change]) -> None:
        self._changes += changes

    def release(self, event_ids: Sequence[str]) -> None:
        self._released += event_ids

    def commit(self) -> None:
        self._store.apply(self._changes)
        self._store.release(self._released)
        self._changes, self._released = [], []


def _id(person: PersonView) -> int:
    """The id of a person the fake has given one (every person a change names, by then)."""
    assert person.id is not None
    return person.id


# A register as the comparisons see it: each registration (its values, but for when it was
# written and its row's id) with its person's identifiers; the persons; what is held.
Register = tuple[list[tuple[Any, ...]], set[tuple[str, ...]], list[str]]


def register_view(
    rows: Iterable[dict[str, Any]], persons: Iterable[set[str]], held: Iterable[str]
) -> Register:
    return (
        sorted(
            (
                r["event_id"],
                ",".join(sorted(r["identifiers"])),
                r["action"],
                r["registration_key"],
                r["event_type"],
                r["fact_date"],
                _utc(r["sent_at"]),
                r["municipality"],
                json.dumps(r["payload"], sort_keys=True),
                json.dumps(r["warnings"], sort_keys=True),
                r["late"],
                r["writer_schema"],
                r["offset"],
            )
            for r in rows
        ),
        {tuple(sorted(p)) for p in persons},
        sorted(held),
    )


def _utc(moment: dt.datetime) -> dt.datetime:
    """In UTC without a zone, as SQLite gives it back."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _fact(row: dict[str, Any]) -> Fact:
    return Fact(
        row["registration_key"],
        row["event_type"],
        row["fact_date"],
        row["payload"],
        row["id"],
        Action(row["action"]),
        row["sent_at"],
    )


class FakeMarks:
    """The crash guard's marks of unfinished work in memory, with `MarksRepository`'s interface
    (`hub.pipeline.ports.Marks`)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, Mark, int]] = {}  # id: flow, mark, attempts
        self._ids = itertools.count(1)

    def marks_of(self, flow: str, topics: Sequence[str]) -> list[Mark]:
        return [m for f, m, _ in self.rows.values() if f == flow and m.topic in topics]

    def mark(self, flow: str, marks: Sequence[NewMark], now: dt.datetime) -> list[int]:
        ids = []
        for new in marks:
            mark_id = next(self._ids)
            self.rows[mark_id] = (
                flow,
                Mark(mark_id, new.topic, new.partition, new.first_offset, new.last_offset),
                1,
            )
            ids.append(mark_id)
        return ids

    def remove(self, ids: Sequence[int]) -> None:
        for mark_id in ids:
            self.rows.pop(mark_id, None)

    def begin_one(self, flow: str, origin: Origin, now: dt.datetime) -> int:
        for mark_id, (f, m, attempts) in self.rows.items():
            if (f, m.topic, m.partition, m.first_offset, m.last_offset) == (
                flow, origin.topic, origin.partition, origin.offset, origin.offset
            ):  # fmt: skip
                self.rows[mark_id] = (f, m, attempts + 1)
                return attempts + 1
        [mark_id] = self.mark(
            flow, [NewMark(origin.topic, origin.partition, origin.offset, origin.offset)], now
        )
        return 1

    def finish_one(self, flow: str, origin: Origin) -> None:
        self.remove(
            [
                i
                for i, (f, m, _) in self.rows.items()
                if (f, m.topic, m.partition) == (flow, origin.topic, origin.partition)
                and m.last_offset <= origin.offset
            ]
        )


class FakeUsers:
    """The support desk's users in memory, with what sign-in's lockout and the administration of
    users need of `UsersRepository` (`hub.support.access.UserStore`); it also notes whose
    sessions were ended and whose second factor forgotten, which the repository does in SQL."""

    def __init__(self) -> None:
        self.by_name: dict[str, User] = {}
        self.attempts: dict[int, SignInAttempt] = {}
        self.pending: dict[int, PendingSignIn] = {}
        self.sessions_ended: list[str] = []
        self.second_factor_forgotten: list[str] = []
        self._ids = itertools.count(1)

    def add(self, user: User) -> User:
        user.id = next(self._ids)
        self.by_name[user.username] = user
        return user

    def named(self, username: str) -> User | None:
        return self.by_name.get(username)

    def every(self) -> list[User]:
        return sorted(self.by_name.values(), key=lambda u: u.username)

    def of_municipality(self, municipality: str | None, roles: Iterable[str]) -> list[User]:
        wanted = set(roles)
        return [u for u in self.every() if u.municipality == municipality and u.role in wanted]

    def forget_second_factor(self, user: User) -> None:
        user.totp_secret = user.totp_enrolled_at = user.totp_last_step = None
        self.second_factor_forgotten.append(user.username)

    def end_sessions_of(self, user: User) -> None:
        self.pending = {i: p for i, p in self.pending.items() if p.user_id != user.id}
        self.sessions_ended.append(user.username)

    def add_attempt(self, username: str, client_address: str, now: dt.datetime) -> SignInAttempt:
        attempt = SignInAttempt(id=next(self._ids), at=now, username=username, client_address=client_address)
        self.attempts[attempt.id] = attempt
        return attempt

    def attempt(self, attempt_id: int) -> SignInAttempt:
        return self.attempts[attempt_id]

    def forget_attempt(self, attempt: SignInAttempt) -> None:
        self.attempts.pop(attempt.id, None)

    def forget_attempts_before(self, moment: dt.datetime) -> None:
        self.attempts = {i: a for i, a in self.attempts.items() if a.at >= moment}

    def forget_attempts_of(self, username: str, client_address: str | None = None) -> None:
        gone = {a.id for a in self._of(username, client_address)}
        self.attempts = {i: a for i, a in self.attempts.items() if i not in gone}

    def _of(self, username: str | None, client_address: str | None) -> list[SignInAttempt]:
        """Newest first, as the repository orders them."""
        return sorted(
            (
                a
                for a in self.attempts.values()
                if username in (None, a.username) and client_address in (None, a.client_address)
            ),
            key=lambda a: (a.at, a.id),
            reverse=True,
        )

    def failure_times(
        self,
        *,
        username: str | None,
        client_address: str | None,
        other_than: int,
        until: dt.datetime,
        limit: int,
    ) -> list[dt.datetime]:
        found = [a.at for a in self._of(username, client_address) if a.id != other_than and a.at <= until]
        return found[:limit]

    def failure_count(self, *, username: str | None, client_address: str | None, since: dt.datetime) -> int:
        return sum(1 for a in self._of(username, client_address) if a.at > since)

    def attempts_of(self, username: str, since: dt.datetime) -> list[SignInAttempt]:
        return [a for a in self._of(username, None) if a.at > since]

    def add_pending(self, token_hash: str, user_id: int, expires_at: dt.datetime) -> PendingSignIn:
        pending = PendingSignIn(
            id=next(self._ids), token_hash=token_hash, user_id=user_id, expires_at=expires_at
        )
        self.pending[pending.id] = pending
        return pending

    def forget_pending_expired(self, now: dt.datetime) -> None:
        self.pending = {i: p for i, p in self.pending.items() if p.expires_at >= now}


@dataclasses.dataclass(frozen=True)
class Audited:
    username: str
    action: str
    detail: str | None


class FakeAudit:
    """The audit log in memory (`hub.support.access.AuditLog`)."""

    def __init__(self) -> None:
        self.entries: list[Audited] = []

    def record(
        self,
        username: str,
        action: str,
        now: dt.datetime,
        *,
        ticket_id: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.entries.append(Audited(username, action, detail))


class FakeUsersUnit:
    """A unit of work as the lockout and the administration of users see it
    (`hub.support.access.UsersUnit`)."""

    def __init__(self) -> None:
        self.users = FakeUsers()
        self.audit = FakeAudit()
