"""The unit of work: one database transaction around one piece of work, with the repositories on
its session: the register (`uow.register`), the crash guard's marks (`uow.marks`), what
Folkeregisteret tells the register (`uow.folkeregister`), the audit log (`uow.audit`), the
sources' states (`uow.sources`), the statistics reports (`uow.reports`), the support desk's
users (`uow.users`), the case tickets (`uow.tickets`) and their incidents (`uow.incidents`), whom
the records are about (`uow.identity`), what it holds about a person (`uow.person_data`) and who
read it (`uow.access_log`).

Leaving the block without `commit()` rolls back. Driver errors that mean "try again later"
(connection lost, database down, lock timeout, a concurrent insert of the same key) become
`RegisterUnavailable`, which is retriable; the caller retries the whole unit. Errors that mean
"this data does not fit" (a value too long for its column, a NUL byte, a broken constraint other
than a unique key) become `RegisterRefused`, which is not: retrying would fail the same way, and
PostgreSQL refuses values that SQLite stores.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from hub.errors import RegisterRefused, RegisterUnavailable, WriteConflict
from hub.register.access_log import AccessLogRepository
from hub.register.audit import AuditRepository
from hub.register.database import make_session_factory
from hub.register.folkeregister import FolkeregisterRepository
from hub.register.identity import IdentityRepository
from hub.register.incidents import IncidentsRepository
from hub.register.marks import MarksRepository
from hub.register.person_data import PersonDataRepository
from hub.register.reports import ReportsRepository
from hub.register.repository import RegisterRepository
from hub.register.source_states import SourceStatesRepository
from hub.register.tickets import TicketsRepository
from hub.register.users import UsersRepository

T = TypeVar("T")


class Transaction(Protocol):
    """One transaction: leaving the block without `commit()` rolls back. `UnitOfWork` is one, and
    so is every fake of it (`hub.pipeline.ports.UnitOfWork`)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def commit(self) -> None: ...


U = TypeVar("U", bound=Transaction)


def units_over(engine: Engine) -> Callable[[], UnitOfWork]:
    """Units of work on the database `engine` connects to, all from one session factory: what the
    rest of the hub is given instead of sessions (`Hub.unit_of_work`)."""
    return functools.partial(UnitOfWork, make_session_factory(engine))


class UnitOfWork:
    register: RegisterRepository
    marks: MarksRepository  # the crash guard's marks of unfinished work
    folkeregister: FolkeregisterRepository
    audit: AuditRepository
    sources: SourceStatesRepository  # revoked and restored
    reports: ReportsRepository
    users: UsersRepository  # the support desk's users, their sessions and sign-ins
    tickets: TicketsRepository
    incidents: IncidentsRepository
    identity: IdentityRepository  # whom the records are about: IMDi's merges and splits
    person_data: PersonDataRepository  # what it holds about a person, for their right of access
    access_log: AccessLogRepository  # who read a person's data
    session: Session

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        try:
            self.session = self._session_factory()
        except Exception as exc:
            raise _translate(exc) from exc
        self.register = RegisterRepository(self.session)
        self.marks = MarksRepository(self.session)
        self.folkeregister = FolkeregisterRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.sources = SourceStatesRepository(self.session)
        self.reports = ReportsRepository(self.session)
        self.users = UsersRepository(self.session)
        self.tickets = TicketsRepository(self.session)
        self.incidents = IncidentsRepository(self.session)
        self.identity = IdentityRepository(self.session)
        self.person_data = PersonDataRepository(self.session)
        self.access_log = AccessLogRepository(self.session)
        self._committed = False
        return self

    def rollback(self) -> None:
        """Undo what this unit did so far; it stays open (the support page then audits a refusal
        in it)."""
        self.session.rollback()

    def commit(self) -> None:
        try:
            self.session.commit()
        except Exception as exc:
            raise _translate(exc) from exc
        self._committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                self.session.rollback()
        finally:
            self.session.close()
        if exc is not None and not isinstance(exc, RegisterUnavailable | RegisterRefused):
            translated = _translate(exc)
            if translated is not exc:
                raise translated from exc


# How each driver names a unique-key violation: PostgreSQL's SQLSTATE, SQLite's extended code.
_UNIQUE_SQLSTATE = "23505"
_SQLITE_UNIQUE = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


def _translate(exc: BaseException) -> BaseException:
    # Messages name the driver's error class only: the driver's text can quote the value.
    if isinstance(exc, IntegrityError) and _unique_violation(exc):
        # A unique-key race (two workers writing the same event during a rebalance) is resolved
        # by retrying: the retry finds the row the other worker committed.
        return WriteConflict("a concurrent transaction wrote the same key")
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return RegisterUnavailable(f"register unavailable: {type(exc.orig).__name__}")
    if isinstance(exc, DataError | IntegrityError):
        return RegisterRefused(f"the register refused a value: {type(exc.orig).__name__}")
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        # Raised before the database saw the statement: a value the driver cannot send.
        cause = type(exc.orig).__name__ if exc.orig is not None else "unknown"
        return RegisterRefused(f"the register refused a value: {cause}")
    return exc


def _unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    return (
        getattr(orig, "sqlstate", None) == _UNIQUE_SQLSTATE
        or getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE
    )


async def in_transaction(units: Callable[[], U], work: Callable[[U], T]) -> T:
    """Run `work` in one committed unit of work from `units` (`Hub.unit_of_work`), on a thread,
    so the event loop never waits on the database. Errors are translated as above; nothing is
    retried here (`hub.pipeline.flow.Flow.in_transaction` retries what is transient)."""

    def run() -> T:
        with units() as uow:
            result = work(uow)
            uow.commit()
            return result

    return await asyncio.to_thread(run)
