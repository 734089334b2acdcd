"""IMDi's decisions on whom the register's records are about, as `hub person merge`/`split` and
the support desk make them: each names the persons by a number of theirs, each is audited (the
audit entry names the merge and the persons' register ids, never a number), and only IMDi's
support staff may make them on the desk (`require_imdi`).

The register's side is `hub.register.identity`; the decision that opens the case is
`hub.domain.snapshot` (`Snapshot.resolve`, rule NIR-ID-005).
"""

from __future__ import annotations

import datetime as dt

from hub.register.identity import IdentityError, SplitReport
from hub.register.models import PersonMerge, User
from hub.register.unit_of_work import UnitOfWork
from hub.support.access import AccessDenied, Role
from hub.support.tickets import get_ticket


def require_imdi(user: User) -> None:
    """Only IMDi's support staff decide that records are one person, or not: a municipality's
    user would join or part records of persons it does not know."""
    if user.role != Role.IMDI_SUPPORT.value:
        raise AccessDenied("only IMDi's support staff may merge or split persons")


def person_of(uow: UnitOfWork, number: str) -> int:
    """The register id of the person with this fødselsnummer, D-number or DUF number."""
    person_id = uow.identity.person_id_of(number.strip())
    if person_id is None:
        raise IdentityError("no person in the register has that number")
    return person_id


def merge(
    uow: UnitOfWork,
    username: str,
    keep: str,
    other: str,
    *,
    reason: str,
    now: dt.datetime,
    ticket_id: int | None = None,
) -> PersonMerge:
    """Join the person with number `other` into the person with number `keep` (audited)."""
    if ticket_id is not None:
        get_ticket(uow, ticket_id)  # the case it settles must be there
    keeper_id, other_id = person_of(uow, keep), person_of(uow, other)
    done = uow.identity.merge(keeper_id, other_id, reason=reason, by=username, now=now, ticket_id=ticket_id)
    uow.audit.record(
        username,
        "merge_persons",
        now,
        ticket_id=ticket_id,
        detail=f"merge {done.id}: person {other_id} into person {keeper_id}",
    )
    return done


def split(
    uow: UnitOfWork,
    username: str,
    number: str,
    *,
    reason: str,
    now: dt.datetime,
    merge_id: int | None = None,
    mixed_to: str | None = None,
) -> SplitReport:
    """Undo the newest merge in force into the person with this number, or merge `merge_id`
    (which must be into them), audited."""
    person_id = person_of(uow, number)
    in_force = [m for m in uow.identity.merges_of(person_id) if m.split_at is None]
    if not in_force:
        raise IdentityError("no merge into this person is in force")
    chosen = in_force[-1] if merge_id is None else next((m for m in in_force if m.id == merge_id), None)
    if chosen is None:
        raise IdentityError(f"merge {merge_id} is not a merge in force into this person")
    report = uow.identity.split(chosen.id, reason=reason, by=username, now=now, mixed_to=mixed_to)
    uow.audit.record(
        username,
        "split_persons",
        now,
        ticket_id=chosen.ticket_id,
        detail=f"merge {chosen.id} split: person {report.other_id} out of person {report.keeper_id}",
    )
    return report
