"""The access log: every read of a person's personal data, written here and nowhere else.

A row says who read (`actor`: the support desk's user, or the command line's `--user`; for the
command line also the operating-system user, which the caller cannot choose), when, through what
(`channel` desk or cli, and the `action`), why (`reason`: the command line requires one), and
whom. Whom is told twice, so that IMDi can answer a person's "who has looked at my data" (GDPR
art. 15) without the log holding a single number:

- `person_id`, the register's id of the person the read found: stable, and not personal data by
  itself (it names nobody outside the register);
- `subject_key`, the keyed hash of the number the read was asked by or showed
  (`hub.domain.identifiers.subject_key`, keyed with the installation's mask key). A search for a
  number the register does not know yet still gets its key, so when that person appears later,
  the search is found by their number.

A read of several numbers or persons (a ticket names a DUF number and a fødselsnummer; a list
names many) is a row for each. `reads_of` answers the question for a person: rows with their id
or the id of anyone merged into them, or with the key of any number they have now.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.domain.calendar import iso_utc
from hub.domain.identifiers import subject_key
from hub.register.identity import merges_of
from hub.register.models import AccessLogEntry, CaseTicket, PersonIdentifier
from hub.register.repository import find_person_id

DESK = "desk"
COMMAND_LINE = "cli"
REASON_LIMIT = 512  # the column's


@dataclass(frozen=True)
class Reader:
    """Who reads, through what, and why: the part of an access-log row that is the same for
    every person one read names."""

    actor: str
    channel: str
    os_user: str | None = None
    reason: str | None = None

    @classmethod
    def desk(cls, username: str) -> Reader:
        """A signed-in support desk user: the session names them; the action says why."""
        return cls(actor=username, channel=DESK)

    @classmethod
    def command_line(cls, actor: str, reason: str) -> Reader:
        """A `hub` command: `actor` as given (`--user`), and the operating-system user the
        command runs as, which is what the caller cannot choose."""
        return cls(actor=actor, channel=COMMAND_LINE, os_user=os_user(), reason=reason)


# The OS user of the `hub` command this context runs (`on_the_command_line`); None on the support
# page and in the worker. A context variable, not a parameter: every change the commands make is
# audited through one writer (`hub.register.audit.AuditRepository`), several calls below the command.
_COMMAND_LINE_OS_USER: ContextVar[str | None] = ContextVar("command_line_os_user", default=None)


def on_the_command_line() -> Callable[[], None]:
    """Mark what runs from here on as a `hub` command: its audit entries name the OS user.
    Returns what ends the mark (the command's end)."""
    token = _COMMAND_LINE_OS_USER.set(os_user())
    return lambda: _COMMAND_LINE_OS_USER.reset(token)


def command_line_os_user() -> str | None:
    """The OS user of the `hub` command running, or None outside one."""
    return _COMMAND_LINE_OS_USER.get()


def os_user() -> str:
    """The operating-system user this process runs as; in a container with no name for its uid,
    the uid itself, which still says who."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


class AccessLogRepository:
    """The access log in one unit of work, as `uow.access_log`. A read recorded is seen by what
    the same unit of work reads after it (an export's own access log): the session flushes
    before each query."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def record_read(
        self,
        reader: Reader,
        action: str,
        now: dt.datetime,
        *,
        person_id: int | None = None,
        numbers: Iterable[str | None] = (),
        ticket_id: int | None = None,
    ) -> None:
        """A read of one person (`person_id`, if the register knows them) asked by or showing
        `numbers`: a row for each number (by its key), or one row if no number was involved."""
        keys: list[str | None] = [*sorted({subject_key(n) for n in numbers if n})] or [None]
        for key in keys:
            self._session.add(
                AccessLogEntry(
                    at=now,
                    actor=reader.actor[:128],
                    os_user=reader.os_user[:128] if reader.os_user else None,
                    channel=reader.channel,
                    action=action,
                    reason=reader.reason[:REASON_LIMIT] if reader.reason else None,
                    person_id=person_id,
                    subject_key=key,
                    ticket_id=ticket_id,
                )
            )

    def record_number_read(self, reader: Reader, action: str, now: dt.datetime, number: str) -> None:
        """A read asked by one number (a search, `hub person show`): the person it names if any,
        and the number's key either way."""
        self.record_read(
            reader, action, now, person_id=find_person_id(self._session, number), numbers=(number,)
        )

    def record_ticket_read(self, reader: Reader, action: str, now: dt.datetime, ticket: CaseTicket) -> None:
        """A read of a ticket: each of its numbers, with the person that number names (an identity
        conflict's two numbers may name two persons)."""
        numbers = [n for n in (ticket.duf_number, ticket.national_id) if n]
        if not numbers:
            self.record_read(reader, action, now, ticket_id=ticket.id)
        for number in numbers:
            self.record_read(
                reader,
                action,
                now,
                person_id=find_person_id(self._session, number),
                numbers=(number,),
                ticket_id=ticket.id,
            )

    def reads_of(self, person_id: int | None, numbers: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Who has read this person's data, oldest first: the rows with their register id or that of
        a person merged into them, or with the key of any number the register knows them by now. For
        a number the register has no person for (`person_id` None), the rows with its key."""
        ids: set[int] = set()
        keys = {subject_key(n) for n in numbers}
        if person_id is not None:
            ids = {person_id, *(m.other_id for m in merges_of(self._session, person_id))}
            own = self._session.scalars(
                select(PersonIdentifier.value).where(PersonIdentifier.person_id == person_id)
            )
            keys |= {subject_key(n) for n in own}
        rows = self._session.scalars(
            select(AccessLogEntry)
            .where(or_(AccessLogEntry.person_id.in_(ids), AccessLogEntry.subject_key.in_(keys)))
            .order_by(AccessLogEntry.at, AccessLogEntry.id)
        )
        reads: list[dict[str, Any]] = []
        for r in rows:
            read = {
                "at": iso_utc(r.at),
                "actor": r.actor,
                "osUser": r.os_user,
                "channel": r.channel,
                "action": r.action,
                "reason": r.reason,
                "ticketId": r.ticket_id,
            }
            if not reads or reads[-1] != read:  # one read by two of their numbers is one read
                reads.append(read)
        return reads
