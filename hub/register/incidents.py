"""Incidents in the register, as the unit of work's `uow.incidents`: the active case tickets of
one cause grouped by one SQL statement on both databases (`hub.support.incidents` says what an
incident is, and what support may do with one), the gateway's reading of its view of them
(`hub.gateway.incidents`), and the closing of an incident's tickets in batches.

The grouping uses window functions (which SQLite has had since 3.25): each ticket's gap to the
previous ticket of its cause, a running count of the gaps at least a window long as the
incident's number, and a GROUP BY over it. Only the incidents leave the database, never the
tickets; `ix_case_tickets_incident` holds the tickets in that order. The persons affected are
counted, never listed: by the register's person where it knows the ticket's number, else by the
number itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    extract,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.selectable import SelectBase

from hub.register.models import ACTIVE, CaseTicket, PersonIdentifier, TicketStatus


@dataclass(frozen=True)
class Cause:
    """Why tickets failed: the same for every ticket of an incident (None: the ticket has none,
    as an undecodable message has no event type or release)."""

    source_system: str | None
    error_code: str | None
    event_type: str | None
    fagsystem_version: str | None

    def matches(self) -> list[ColumnElement[bool]]:
        """A ticket of this cause, as conditions (IS NULL for a part it lacks)."""
        return [
            column.is_(None) if value is None else column == value
            for column, value in zip(_CAUSE_COLUMNS, self.as_tuple(), strict=True)
        ]

    def as_tuple(self) -> tuple[str | None, ...]:
        return (self.source_system, self.error_code, self.event_type, self.fagsystem_version)


_CAUSE_COLUMNS = (
    CaseTicket.source_system,
    CaseTicket.error_code,
    CaseTicket.event_type,
    CaseTicket.fagsystem_version,
)


@dataclass(frozen=True)
class Incident:
    """One incident: its cause, how many active tickets, the first and last of their failures,
    one of its tickets to look at (the oldest), and how many municipalities and persons they
    concern."""

    cause: Cause
    tickets: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    sample_ticket: int
    municipalities: int
    persons: int

    def as_json(self) -> dict[str, Any]:
        from hub.domain.calendar import iso_utc

        return {
            "sourceSystem": self.cause.source_system,
            "errorCode": self.cause.error_code,
            "eventType": self.cause.event_type,
            "fagsystemVersion": self.cause.fagsystem_version,
            "tickets": self.tickets,
            "firstSeen": iso_utc(self.first_seen),
            "lastSeen": iso_utc(self.last_seen),
            "sampleTicket": self.sample_ticket,
            "municipalities": self.municipalities,
            "persons": self.persons,
        }


# The view the gateway reads, as migration 0026 makes it; in a metadata of its own, as the
# register's models are its tables (a view is not a table for the models' comparison).
GATEWAY_TICKETS = Table(
    "gateway_incident_tickets",
    MetaData(),
    Column("id", Integer),
    Column("status", String(16)),
    Column("source_system", String(64)),
    Column("error_code", String(32)),
    Column("event_type", String(64)),
    Column("fagsystem_version", String(64)),
    Column("last_failed_at", DateTime(timezone=True)),
    Column("municipality", String(4)),
    Column("person", String),
)


class IncidentsRepository:
    """The incidents of the case tickets in one unit of work."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def find(
        self,
        *,
        window: dt.timedelta,
        limit: int | None = None,
        cause: Cause | None = None,
        source_system: str | None = None,
        within: ColumnElement[bool] | None = None,
    ) -> list[Incident]:
        """The incidents of the active (open and replayed) tickets, newest last failure first, at
        most `limit`; only those of `cause` if given, only those of `source_system` if given (in
        the query, as the gateway's own reading of its view is, `of_source`). `within` keeps only
        the tickets a condition holds for: the incidents are then those of the tickets it keeps,
        counted over those alone."""
        c = CaseTicket
        national, duf = aliased(PersonIdentifier), aliased(PersonIdentifier)
        # The person a ticket names: the register's, where it knows one of the numbers.
        person = func.coalesce(
            literal("p") + sql_cast(national.person_id, String),
            literal("p") + sql_cast(duf.person_id, String),
            literal("n") + c.national_id,
            literal("d") + c.duf_number,
        )
        tickets = (
            select(c.id, *_CAUSE_COLUMNS, c.last_failed_at, c.municipality, person.label("person"))
            .outerjoin(national, and_(national.kind == "national_id", national.value == c.national_id))
            .outerjoin(duf, and_(duf.kind == "duf", duf.value == c.duf_number))
            .where(
                _active(),
                *(cause.matches() if cause is not None else ()),
                *((c.source_system == source_system,) if source_system is not None else ()),
                *((within,) if within is not None else ()),
            )
        )
        return _grouped(self._session, tickets, window=window, limit=limit)

    def read_only(self) -> None:
        """Make this unit of work's transaction read-only, on PostgreSQL (SQLite has no such
        thing): whatever a fault might run in it then cannot change the register. Before any
        other statement of the transaction."""
        if self._session.get_bind().dialect.name == "postgresql":
            self._session.execute(text("SET TRANSACTION READ ONLY"))

    def of_source(self, source: str, *, window: dt.timedelta, limit: int) -> list[Incident]:
        """The incidents of one source as the gateway's view (`GATEWAY_TICKETS`) shows them,
        grouped as `find` groups the tickets, so both count alike; filtered by the source in the
        query itself, so another source's tickets never leave the database."""
        v = GATEWAY_TICKETS.c
        tickets = select(
            v.id,
            v.source_system,
            v.error_code,
            v.event_type,
            v.fagsystem_version,
            v.last_failed_at,
            v.municipality,
            v.person,
        ).where(v.source_system == source)
        return _grouped(self._session, tickets, window=window, limit=limit)

    def tickets_of(
        self,
        incident: Incident,
        limit: int,
        *,
        within: ColumnElement[bool] | None = None,
        after: tuple[dt.datetime, int] | None = None,
    ) -> list[int]:
        """Up to `limit` of the incident's active tickets, oldest failure first: those of its
        cause that last failed within its first and last failure. Only those `within` keeps, if
        given, and after the ticket `after` (its last failure and number) in that order."""
        session = self._session
        c = CaseTicket
        return list(
            session.scalars(
                select(c.id)
                .where(
                    _active(),
                    *incident.cause.matches(),
                    c.last_failed_at >= incident.first_seen,
                    c.last_failed_at <= incident.last_seen,
                    *((tuple_(c.last_failed_at, c.id) > tuple_(*after),) if after is not None else ()),
                    *((within,) if within is not None else ()),
                )
                # In the index's order: each batch reads only its own tickets, not all that remain.
                .order_by(c.last_failed_at, c.id)
                .limit(limit)
            )
        )

    def resolve(self, ticket_ids: list[int], note: str, now: dt.datetime) -> list[int]:
        """Resolve these tickets with the note, with one update; a ticket closed meanwhile is left
        as it is. The ids of those it resolved, in order."""
        if not ticket_ids:
            return []
        c = CaseTicket
        return sorted(
            self._session.scalars(
                update(c)
                .where(c.id.in_(ticket_ids), c.status.in_(ACTIVE))
                .values(status=TicketStatus.RESOLVED.value, resolution_note=note, closed_at=now)
                .returning(c.id),
                execution_options={"synchronize_session": False},
            )
        )

def _grouped(
    session: Session, tickets: SelectBase, *, window: dt.timedelta, limit: int | None = None
) -> list[Incident]:
    """The incidents of `tickets`, newest last failure first, at most `limit`: one row a ticket,
    with its `id`, the cause's columns (`source_system`, `error_code`, `event_type`,
    `fagsystem_version`), `last_failed_at`, `municipality` and `person` (any key that is one
    person's, counted and never returned). The desk's tickets (`IncidentsRepository.find`) and the
    gateway's view (`of_source`) are grouped by this one statement, so both count
    alike."""
    if window <= dt.timedelta(0):
        raise ValueError("an incident's window must be longer than nothing")
    t = tickets.subquery("tickets")
    seconds = _epoch_seconds(session.get_bind().dialect.name, t.c.last_failed_at)
    partition = [t.c.source_system, t.c.error_code, t.c.event_type, t.c.fagsystem_version]
    order = (t.c.last_failed_at, t.c.id)
    gaps = select(
        t,
        (seconds - func.lag(seconds).over(partition_by=partition, order_by=order)).label("gap"),
    ).subquery("gaps")
    starts = case((gaps.c.gap.is_(None), 1), (gaps.c.gap >= window.total_seconds(), 1), else_=0)
    g_cause = [gaps.c.source_system, gaps.c.error_code, gaps.c.event_type, gaps.c.fagsystem_version]
    numbered = select(
        gaps,
        func.sum(starts)
        .over(partition_by=g_cause, order_by=(gaps.c.last_failed_at, gaps.c.id), rows=(None, 0))
        .label("incident"),
    ).subquery("numbered")
    n = numbered.c
    n_cause = [n.source_system, n.error_code, n.event_type, n.fagsystem_version]
    last_seen = func.max(n.last_failed_at)
    query = (
        select(
            *n_cause,
            func.count().label("tickets"),
            func.min(n.last_failed_at).label("first_seen"),
            last_seen.label("last_seen"),
            func.min(n.id).label("sample"),
            func.count(n.municipality.distinct()).label("municipalities"),
            func.count(n.person.distinct()).label("persons"),
        )
        .group_by(*n_cause, n.incident)
        .order_by(last_seen.desc(), func.min(n.id).desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        Incident(
            cause=Cause(row.source_system, row.error_code, row.event_type, row.fagsystem_version),
            tickets=int(row.tickets),
            first_seen=_aware(row.first_seen),
            last_seen=_aware(row.last_seen),
            sample_ticket=int(row.sample),
            municipalities=int(row.municipalities),
            persons=int(row.persons),
        )
        for row in session.execute(query)
    ]


def _active() -> ColumnElement[bool]:
    """An active ticket, with the statuses written into the SQL rather than sent as parameters:
    `ix_case_tickets_incident` holds the active tickets only, and PostgreSQL uses such an index
    only where it can see the query asks for no others, which a plan made for any parameters
    (as a prepared statement's generic plan is) cannot."""
    return CaseTicket.status.in_([literal(status, literal_execute=True) for status in ACTIVE])


def _epoch_seconds(dialect: str, column: Any) -> ColumnElement[float]:
    """A timestamp as seconds, to subtract one from another the same way on both databases
    (SQLite keeps a timestamp as text, which `julianday` reads; PostgreSQL has `epoch`)."""
    if dialect == "postgresql":
        return cast(ColumnElement[float], extract("epoch", column))
    return cast(ColumnElement[float], sql_cast(func.julianday(column) * 86400.0, Float))


def _aware(value: dt.datetime | str) -> dt.datetime:
    """A timestamp from an aggregate: SQLite gives back its text, without the zone (UTC)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
