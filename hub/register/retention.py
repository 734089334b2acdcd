"""Retention: what the register deletes or anonymises once it is past its time (`hub retention
run`), by the policy in the settings (NIR_RETENTION_*_DAYS; 0 keeps a kind indefinitely).

| kind                         | when it is due                          | what happens                    |
|------------------------------|-----------------------------------------|---------------------------------|
| closed tickets               | resolved or discarded, closed N days ago | deleted, with outcomes and edits |
| closed tickets a merge names | the same                                | anonymised (see `_anonymise`)   |
| audit-log entries            | written N days ago                      | deleted                         |
| access-log entries           | read N days ago                         | deleted                         |
| sign-in attempts             | made N days ago                         | deleted                         |
| sessions                     | expired N days ago                      | deleted                         |

The register's own facts (persons, identifiers, registrations, addresses, merges) are not a kind
here: the NIR regulation's period for them is unconfirmed, and NIR_RETENTION_REGISTER_DAYS
accepts only 0 (kept indefinitely). The topics' retention is the broker's (`hub.kafka.topics`).

Each kind goes in batches of at most `batch_size` rows, one transaction per batch, so a long run
holds no lock for long and what it has done stays done if it stops. Several runs at once (cron
on several machines) neither conflict nor count a row twice:

- On PostgreSQL a batch claims its rows with `SELECT ... FOR UPDATE SKIP LOCKED`: concurrent
  runs take disjoint rows, and a row another run deleted meanwhile is no longer found.
- On SQLite a batch begins with `BEGIN IMMEDIATE`, taking the database's one write lock before
  it reads, so the rows it selects are the rows it changes and batches of concurrent runs follow
  one another (the driver would otherwise read outside any transaction and begin one only at
  the first write; busy_timeout makes the second run wait rather than fail).

A batch's count is what its DELETE or UPDATE changed (the rowcount), never what it selected.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select, text, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from hub.config import Settings
from hub.register.models import (
    AccessLogEntry,
    AuditEntry,
    CaseTicket,
    PersonMerge,
    SignInAttempt,
    TicketEdit,
    TicketOutcome,
    TicketStatus,
    UserSession,
)
from hub.register.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

CLOSED = (TicketStatus.RESOLVED.value, TicketStatus.DISCARDED.value)

DELETED, ANONYMISED = "deleted", "anonymised"


@dataclass(frozen=True)
class Kind:
    """One kind of data the policy keeps for `days` (0: indefinitely)."""

    name: str
    setting: str
    days: int
    action: str  # DELETED or ANONYMISED
    # The ids of the rows due at a cutoff (a select of one id column, on `table`).
    due: Callable[[dt.datetime], Select[Any]]
    # Delete or anonymise the claimed rows at `now`; returns how many it changed.
    act: Callable[[Session, Sequence[int], dt.datetime], int]
    table: type


@dataclass(frozen=True)
class Outcome:
    """What a run did, or would do, to one kind: a count, never the rows."""

    kind: Kind
    count: int | None  # None: the kind is kept indefinitely

    def line(self, applied: bool) -> str:
        kind = self.kind
        policy = f"{kind.setting}={kind.days}"
        if self.count is None:
            return f"{kind.name}: kept indefinitely ({policy})"
        verb = kind.action if applied else f"would be {kind.action}"
        return f"{kind.name} ({policy}, older than {kind.days} days): {self.count} {verb}"


def policy(settings: Settings) -> list[Kind]:
    """The kinds, in the order a run takes them: tickets before the audit entries that name them."""
    return [
        Kind(
            "closed case tickets",
            "NIR_RETENTION_CLOSED_TICKET_DAYS",
            settings.retention_closed_ticket_days,
            DELETED,
            lambda cutoff: _closed_tickets(cutoff).where(CaseTicket.id.not_in(_merged_tickets())),
            _delete_tickets,
            CaseTicket,
        ),
        Kind(
            "closed case tickets a merge record names",
            "NIR_RETENTION_CLOSED_TICKET_DAYS",
            settings.retention_closed_ticket_days,
            ANONYMISED,
            lambda cutoff: _closed_tickets(cutoff).where(
                CaseTicket.id.in_(_merged_tickets()), CaseTicket.anonymised_at.is_(None)
            ),
            _anonymise,
            CaseTicket,
        ),
        Kind(
            "audit-log entries",
            "NIR_RETENTION_AUDIT_DAYS",
            settings.retention_audit_days,
            DELETED,
            lambda cutoff: select(AuditEntry.id).where(AuditEntry.at < cutoff),
            _deleter(AuditEntry),
            AuditEntry,
        ),
        Kind(
            "access-log entries",
            "NIR_RETENTION_ACCESS_LOG_DAYS",
            settings.retention_access_log_days,
            DELETED,
            lambda cutoff: select(AccessLogEntry.id).where(AccessLogEntry.at < cutoff),
            _deleter(AccessLogEntry),
            AccessLogEntry,
        ),
        Kind(
            "sign-in attempts",
            "NIR_RETENTION_SIGNIN_ATTEMPT_DAYS",
            settings.retention_signin_attempt_days,
            DELETED,
            lambda cutoff: select(SignInAttempt.id).where(SignInAttempt.at < cutoff),
            _deleter(SignInAttempt),
            SignInAttempt,
        ),
        Kind(
            "expired sessions",
            "NIR_RETENTION_SESSION_DAYS",
            settings.retention_session_days,
            DELETED,
            lambda cutoff: select(UserSession.id).where(UserSession.expires_at < cutoff),
            _deleter(UserSession),
            UserSession,
        ),
    ]


def run(
    units: Callable[[], UnitOfWork],
    kinds: Sequence[Kind],
    now: dt.datetime,
    *,
    apply: bool,
    batch_size: int,
) -> list[Outcome]:
    """Count (dry run) or delete and anonymise (`apply`) what is past its time at `now`."""
    outcomes = []
    for kind in kinds:
        if kind.days == 0:
            outcomes.append(Outcome(kind, None))
            continue
        cutoff = now - dt.timedelta(days=kind.days)
        if apply:
            count = _apply(units, kind, cutoff, now, batch_size)
        else:
            with units() as uow:
                count = uow.session.scalar(select(func.count()).select_from(kind.due(cutoff).subquery())) or 0
        outcomes.append(Outcome(kind, count))
    if apply:
        # One line for the whole run (the log's repeat filter would hold back a second line of
        # the same template), with counts only.
        done = [f"{o.count} {o.kind.name} {o.kind.action}" for o in outcomes if o.count is not None]
        log.info("retention applied: %s", "; ".join(done) or "every kind is kept indefinitely")
    return outcomes


def _apply(
    units: Callable[[], UnitOfWork], kind: Kind, cutoff: dt.datetime, now: dt.datetime, batch_size: int
) -> int:
    total = 0
    while True:
        with units() as uow:
            ids = _claim(uow.session, kind, cutoff, batch_size)
            if not ids:
                return total
            changed = kind.act(uow.session, ids, now)
            uow.commit()
        total += changed


def _claim(session: Session, kind: Kind, cutoff: dt.datetime, batch_size: int) -> list[int]:
    """The ids of up to `batch_size` due rows, which no other run's batch holds or will take."""
    if session.get_bind().dialect.name == "sqlite":
        # The driver begins a transaction only at a write: this batch takes the lock before it reads.
        session.execute(text("BEGIN IMMEDIATE"))
    statement = kind.due(cutoff).order_by(kind.table.id).limit(batch_size)  # type: ignore[attr-defined]
    # SQLite has no FOR UPDATE (SQLAlchemy leaves it out there): the write lock above serves.
    statement = statement.with_for_update(skip_locked=True, of=kind.table)
    return list(session.scalars(statement))


def _closed_tickets(cutoff: dt.datetime) -> Select[Any]:
    return select(CaseTicket.id).where(CaseTicket.status.in_(CLOSED), CaseTicket.closed_at < cutoff)


def _merged_tickets() -> Select[Any]:
    """Tickets a merge record names (`PersonMerge.ticket_id`, the conflict the merge settled): a
    split reads the merge, and the merge says which ticket it settled."""
    return select(PersonMerge.ticket_id).where(PersonMerge.ticket_id.is_not(None))


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


def _deleter(table: type) -> Callable[[Session, Sequence[int], dt.datetime], int]:
    def act(session: Session, ids: Sequence[int], _now: dt.datetime) -> int:
        return _rowcount(session.execute(delete(table).where(table.id.in_(ids))))  # type: ignore[attr-defined]

    return act


def _delete_tickets(session: Session, ids: Sequence[int], _now: dt.datetime) -> int:
    """A ticket with its outcomes and edits (the edits hold corrected copies of the event). The
    audit entries that name it stay, for their own time: they say who acted, not on what data."""
    session.execute(delete(TicketOutcome).where(TicketOutcome.ticket_id.in_(ids)))
    session.execute(delete(TicketEdit).where(TicketEdit.ticket_id.in_(ids)))
    return _rowcount(session.execute(delete(CaseTicket).where(CaseTicket.id.in_(ids))))


def _anonymise(session: Session, ids: Sequence[int], now: dt.datetime) -> int:
    """A closed ticket a merge record names stays, so the merge still says which case it settled,
    but without anything about the person: no identifiers, no stored message or edits, no free
    text (messages and notes can quote the event). What is left is what and when: its kind,
    status, error code, source, municipality, dates and event id (a source's own UUID)."""
    session.execute(delete(TicketEdit).where(TicketEdit.ticket_id.in_(ids)))
    session.execute(
        update(TicketOutcome)
        .where(TicketOutcome.ticket_id.in_(ids))
        .values(error_message=None, error_message_nb=None)
    )
    return _rowcount(
        session.execute(
            update(CaseTicket)
            .where(CaseTicket.id.in_(ids))
            .values(
                duf_number=None,
                national_id=None,
                original_key=None,
                original_value=None,
                error_message=None,
                error_message_nb=None,
                description=None,
                resolution_note=None,
                fact_date=None,
                anonymised_at=now,
            )
        )
    )
