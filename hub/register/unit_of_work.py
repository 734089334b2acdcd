"""The unit of work: one database transaction around one piece of work.

Leaving the block without `commit()` rolls back. Driver errors that mean "try again later"
(connection lost, database down, lock timeout, a concurrent insert of the same key) become
`RegisterUnavailable`, which is retriable; the caller retries the whole unit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hub.errors import RegisterUnavailable, WriteConflict

T = TypeVar("T")


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        try:
            self.session = self._session_factory()
        except Exception as exc:
            raise _translate(exc) from exc
        self._committed = False
        return self

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
        if exc is not None and not isinstance(exc, RegisterUnavailable):
            translated = _translate(exc)
            if translated is not exc:
                raise translated from exc


def _translate(exc: BaseException) -> BaseException:
    # A unique-key race (two workers writing the same event during a rebalance) is resolved
    # by retrying: the retry finds the row the other worker committed.
    if isinstance(exc, IntegrityError):
        return WriteConflict("a concurrent transaction wrote the same key")
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return RegisterUnavailable(f"register unavailable: {type(exc.orig).__name__}")
    return exc


async def in_transaction(session_factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one committed unit of work on a thread, so the event loop never waits on
    the database. Errors are translated as above; nothing is retried here."""

    def run() -> T:
        with UnitOfWork(session_factory) as uow:
            result = work(uow.session)
            uow.commit()
            return result

    return await asyncio.to_thread(run)
