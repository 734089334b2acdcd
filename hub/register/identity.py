"""Joining two persons of the register, and splitting them again: a person's decision on an
identity conflict, never the register's guess (`hub.domain.snapshot`, `Snapshot.resolve`).

- **Merge** (`IdentityRepository.merge`): IMDi's support staff decide that two persons are one.
  The other person's rows move to the keeper and the other goes, exactly as Folkeregisteret's
  identity change merges (`hub.register.repository.record_merge`): every merge records which rows moved,
  the other person's creation and Folkeregister look-up, and the highest row id of each table.
- **Split** (`IdentityRepository.split`): the newest merge still in force on a person is undone.
  What it moved goes back, row by row, and the other person returns with their id and creation time, so
  a split right after a merge gives the register it started with, column by column. What came to
  the merged person since goes with the numbers it names: a registration with the persons whose
  numbers it was sent with (a correction or annulment with its original), an address or a
  Folkeregister event with the person of its number, a number with the person of the numbers it
  came with. A registration that named numbers of both is for a person to place (`mixed_to`);
  a Folkeregister identity change since that names numbers of both says they are one person, and
  the split is refused.

Each function works inside the caller's session; the caller audits (`hub.support.persons`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.domain.lifecycle import Action
from hub.domain.snapshot import IDENTITY_CHANGED
from hub.errors import HubError
from hub.register.models import (
    AddressRecord,
    FolkeregisterLookup,
    Person,
    PersonEvent,
    PersonEventNumber,
    PersonIdentifier,
    PersonMerge,
    PersonMergeMove,
    RegistrationRecord,
)
from hub.register.repository import PERSON_ROWS, find_person_id, nudge_held, record_merge

KEEPER, OTHER = "keeper", "other"


class IdentityError(HubError):
    """A merge or split that cannot be done as asked (the persons, the merge, or what is mixed)."""

    code = "NIR-IDENTITY"


def merges_of(session: Session, person_id: int) -> list[PersonMerge]:
    """The merges into this person, oldest first (split ones too: they are its history)."""
    return list(
        session.scalars(
            select(PersonMerge).where(PersonMerge.keeper_id == person_id).order_by(PersonMerge.id)
        )
    )


@dataclass
class SplitReport:
    """What a split did: the merge, and how many rows of each table went back to the other."""

    merge_id: int
    keeper_id: int
    other_id: int
    moved_back: dict[str, int] = field(default_factory=dict)
    placed: list[str] = field(default_factory=list)  # event ids of mixed registrations placed by hand


@dataclass
class _Back:
    rows: dict[str, set[int]]
    placed: list[str]


def _what_goes_back(session: Session, merge: PersonMerge, mixed_to: str | None) -> _Back:
    """The keeper's rows that belong to the other person: those the merge moved, and of those
    that came since, the ones the other's numbers name."""
    moved: dict[str, set[int]] = {name: set() for name in PERSON_ROWS}
    for move in session.scalars(select(PersonMergeMove).where(PersonMergeMove.merge_id == merge.id)):
        moved[move.table_name].add(move.row_id)
    marks, keeper = merge.marks, merge.keeper_id

    def since(model: Any) -> list[Any]:
        """The keeper's rows of this table that came after the merge, in the order they came."""
        mark = marks.get(model.__tablename__, 0)
        query = select(model).where(model.person_id == keeper, model.id > mark).order_by(model.id)
        return list(session.scalars(query))

    identifiers = list(session.scalars(select(PersonIdentifier).where(PersonIdentifier.person_id == keeper)))
    side = {
        i.value: OTHER if i.id in moved["person_identifiers"] else KEEPER
        for i in identifiers
        if i.id in moved["person_identifiers"] or i.id <= marks.get("person_identifiers", 0)
    }
    registrations = since(RegistrationRecord)
    events = since(PersonEvent)
    numbers_of_event = _numbers(session, [e.id for e in events])
    evidence = [{n for n in (r.national_id, r.duf_number) if n} for r in registrations]
    evidence += [numbers_of_event.get(e.id, set()) for e in events]
    _spread(side, evidence)

    for event in events:
        if event.event_type == IDENTITY_CHANGED and _sides(side, numbers_of_event.get(event.id, ())) == {
            KEEPER,
            OTHER,
        }:
            raise IdentityError(
                f"Folkeregisteret's identity change (feed item {event.sequence_number}) since the merge "
                "names numbers of both persons: Folkeregisteret says they are one"
            )
    back = _Back({name: set(ids) for name, ids in moved.items()}, [])
    mixed: list[RegistrationRecord] = []
    original_side = {
        r.event_id: OTHER if r.id in moved["registrations"] else KEEPER
        for r in session.scalars(select(RegistrationRecord).where(RegistrationRecord.person_id == keeper))
        if r.action == Action.REGISTER.value
    }
    for registration in registrations:
        sides = _sides(side, (registration.national_id, registration.duf_number))
        if registration.action != Action.REGISTER.value and registration.registration_key in original_side:
            sides = {original_side[registration.registration_key]}  # a version goes with its original
        if len(sides) != 1:
            mixed.append(registration)
        elif sides == {OTHER}:
            back.rows["registrations"].add(registration.id)
            original_side[registration.event_id] = OTHER
    unplaced = [i for i in identifiers if i.value not in side]
    if (mixed or unplaced) and mixed_to is None:
        named = ", ".join(r.event_id for r in mixed) or "none"
        raise IdentityError(
            f"since the merge, registrations named numbers of both persons ({named}) or numbers came "
            "that no registration ties to one of them: say where they go (keeper or other)"
        )
    if mixed_to == OTHER:
        back.rows["registrations"] |= {r.id for r in mixed}
        for identifier in unplaced:
            side[identifier.value] = OTHER
    back.placed = [r.event_id for r in mixed]
    back.rows["person_identifiers"] |= {i.id for i in identifiers if side.get(i.value) == OTHER}
    back.rows["addresses"] |= {a.id for a in since(AddressRecord) if side.get(a.national_id or "") == OTHER}
    for event in events:
        if _sides(side, numbers_of_event.get(event.id, ())) == {OTHER}:
            back.rows["person_events"].add(event.id)
    return back


def _sides(side: dict[str, str], numbers: Iterable[str | None]) -> set[str]:
    """The sides (keeper, other) the numbers already placed of these are on."""
    return {side[n] for n in numbers if n in side}


def _numbers(session: Session, event_ids: Iterable[int]) -> dict[int, set[str]]:
    """The numbers each of these person events names."""
    found: dict[int, set[str]] = {}
    ids = list(event_ids)
    if ids:
        for number in session.scalars(
            select(PersonEventNumber).where(PersonEventNumber.person_event_id.in_(ids))
        ):
            found.setdefault(number.person_event_id, set()).add(number.value)
    return found


def _spread(side: dict[str, str], evidence: list[set[str]]) -> None:
    """Give each number without a side the side of the numbers it came with, where those are of
    one side only, until nothing more can be placed."""
    placed = True
    while placed:
        placed = False
        for numbers in evidence:
            sides = _sides(side, numbers)
            if len(sides) == 1:
                (found,) = sides
                for n in numbers - side.keys():
                    side[n] = found
                    placed = True


def _restore_lookup(session: Session, person_id: int, lookup: dict[str, Any]) -> None:
    """The other person's Folkeregister look-up as it was (under its own id, if still free)."""
    taken = session.get(FolkeregisterLookup, lookup["id"]) is not None
    session.add(
        FolkeregisterLookup(
            **({} if taken else {"id": lookup["id"]}),
            person_id=person_id,
            requested_at=dt.datetime.fromisoformat(lookup["requested_at"]),
            completed_at=dt.datetime.fromisoformat(lookup["completed_at"])
            if lookup["completed_at"]
            else None,
        )
    )


class IdentityRepository:
    """Whom the register's records are about, as the unit of work's `uow.identity`: the persons
    found by a number of theirs, and IMDi's merges and splits of them (`hub.support.persons`
    decides who may make them, and audits them)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def person_id_of(self, identifier: str) -> int | None:
        """The register id of the person with this fødselsnummer, D-number or DUF number."""
        return find_person_id(self._session, identifier)

    def merge(
        self,
        keeper_id: int,
        other_id: int,
        *,
        reason: str,
        by: str,
        now: dt.datetime,
        ticket_id: int | None = None,
    ) -> PersonMerge:
        """Join `other` into `keeper` (both in the register), recorded with who and why."""
        if not reason.strip():
            raise IdentityError("a reason is required: say why the two are one person")
        if keeper_id == other_id:
            raise IdentityError("the two numbers already belong to one person")
        for person_id in (keeper_id, other_id):
            if self._session.get(Person, person_id) is None:
                raise IdentityError(f"there is no person {person_id}")
        merge = record_merge(self._session, keeper_id, other_id, reason.strip(), by, now, ticket_id)
        nudge_held(self._session, [keeper_id], now)
        return merge

    def merges_of(self, person_id: int) -> list[PersonMerge]:
        return merges_of(self._session, person_id)

    def split(
        self, merge_id: int, *, reason: str, by: str, now: dt.datetime, mixed_to: str | None = None
    ) -> SplitReport:
        """Undo a merge (see the module's docstring). Raises `IdentityError`, changing nothing, when
        it cannot be undone as asked."""
        if not reason.strip():
            raise IdentityError("a reason is required: say why the two are not one person")
        if mixed_to not in (None, KEEPER, OTHER):
            raise IdentityError("mixed registrations go to the keeper or the other")
        merge = self._session.get(PersonMerge, merge_id)
        if merge is None:
            raise IdentityError(f"there is no merge {merge_id}")
        if merge.split_at is not None:
            raise IdentityError(f"merge {merge_id} was split already")
        if self._session.get(Person, merge.keeper_id) is None:
            raise IdentityError(
                f"person {merge.keeper_id} was merged into another since: split that merge first"
            )
        newer = self._session.scalar(
            select(PersonMerge.id).where(
                PersonMerge.keeper_id == merge.keeper_id,
                PersonMerge.split_at.is_(None),
                PersonMerge.id > merge.id,
            )
        )
        if newer is not None:
            raise IdentityError(f"merge {newer} into the same person came later: split it first")
        back = _what_goes_back(self._session, merge, mixed_to)
        self._session.add(Person(id=merge.other_id, created_at=merge.other_created_at))
        self._session.flush()
        report = SplitReport(merge.id, merge.keeper_id, merge.other_id, placed=back.placed)
        for name, model in PERSON_ROWS.items():
            ids = sorted(back.rows[name])
            report.moved_back[name] = len(ids)
            if ids:
                self._session.execute(
                    update(model)
                    .where(model.id.in_(ids))
                    .values(person_id=merge.other_id)
                    .execution_options(synchronize_session=False)
                )
        if merge.other_lookup is not None:
            _restore_lookup(self._session, merge.other_id, merge.other_lookup)
        merge.split_at, merge.split_by, merge.split_reason = now, by, reason.strip()
        self._session.flush()
        nudge_held(self._session, [merge.keeper_id, merge.other_id], now)
        return report
