"""The audit log (`audit_log`): who acted, or viewed personal data, and when; `uow.audit`. The one
writer of its rows, so every entry names the operating-system user of a `hub` command alike."""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from hub.register.access_log import command_line_os_user
from hub.register.database import insert_rows
from hub.register.models import AuditEntry


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def record(
        self,
        username: str,
        action: str,
        now: dt.datetime,
        *,
        ticket_id: int | None = None,
        detail: str | None = None,
    ) -> None:
        """Record who viewed personal data or acted, and when. `detail` never holds an identifier."""
        self._session.add(
            AuditEntry(
                at=now,
                username=username,
                action=action,
                ticket_id=ticket_id,
                detail=detail,
                os_user=command_line_os_user(),  # a command's `--user` is only what the caller typed
            )
        )
        self._session.flush()

    def record_each(
        self, username: str, action: str, now: dt.datetime, ticket_ids: list[int], *, detail: str | None = None
    ) -> None:
        """`record` for each of these tickets, in one insert (an incident's thousand at once)."""
        insert_rows(
            self._session,
            cast(Table, AuditEntry.__table__),
            [
                {
                    "at": now,
                    "username": username,
                    "action": action,
                    "ticket_id": ticket_id,
                    "detail": detail,
                    "os_user": command_line_os_user(),
                }
                for ticket_id in ticket_ids
            ],
        )
