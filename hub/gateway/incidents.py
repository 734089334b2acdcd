"""The caller's incidents as the gateway serves them (`GET /v1/incidents`, issue 32): what a
vendor learns of its own failures grouped by cause (error code, event type, fagsystemVersion),
so a bad release is seen as one thing with a count and a since-when, not thousands of receipts.

This is the gateway's only door to the register, and it is narrow: it is opened only when
NIR_GATEWAY_DATABASE_URL is set, it runs one statement (`list_incidents` filtered by the caller's
source in the query itself, so another source's tickets never leave the database), in a read-only
transaction on PostgreSQL, and what it gives back are counts. No identifier, municipality,
person or ticket content is in the answer; the persons and municipalities are counted in SQL.
The oldest ticket's number is (`sampleTicket`): it is the desk's reference, which the vendor can
quote to IMDi's support so both speak of the same incident, and tells nothing of a person.

A source's answer is kept for `CACHE_SECONDS`: the grouping reads all the source's active
tickets, and a vendor polling in a loop (within its rate) should not make the register do that
again and again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hub.domain.calendar import iso_utc
from hub.domain.redaction import clean
from hub.errors import safe_traceback
from hub.gateway.problems import Problem
from hub.register.database import make_engine, make_session_factory
from hub.support.incidents import Incident, list_incidents

log = logging.getLogger(__name__)

INCIDENTS_PAGE = 20
INCIDENTS_PAGE_MAX = 100
CACHE_SECONDS = 10.0
RETRY_SECONDS = 30
# fagsystemVersion is the vendor's own free text: echoed back cut and with any identifier masked.
VERSION_LIMIT = 64


def vendor_view(incident: Incident) -> dict[str, Any]:
    """What a source is told of one of its incidents: its cause, counts and since when."""
    version = incident.cause.fagsystem_version
    return {
        "errorCode": incident.cause.error_code,
        "eventType": incident.cause.event_type,
        "fagsystemVersion": None if version is None else clean(version, VERSION_LIMIT),
        "tickets": incident.tickets,
        "firstSeen": iso_utc(incident.first_seen),
        "lastSeen": iso_utc(incident.last_seen),
        "sampleTicket": incident.sample_ticket,
        "municipalities": incident.municipalities,
        "persons": incident.persons,
    }


class SourceIncidents:
    """Reads one source's incidents from the register, if the gateway was given one."""

    def __init__(
        self, database_url: str, window: dt.timedelta, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.clock = clock
        self.engine = make_engine(database_url) if database_url else None
        self.session_factory: sessionmaker[Session] | None = (
            make_session_factory(self.engine) if self.engine is not None else None
        )
        self._kept: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    async def of(self, source: str, limit: int) -> list[dict[str, Any]]:
        """The source's newest incidents (by last failure), at most `limit`; a 503 problem when
        the gateway has no register or the register does not answer."""
        if self.session_factory is None:
            raise Problem(
                503,
                "incidents-unavailable",
                "This gateway does not serve incidents",
                "it is not connected to the register (NIR_GATEWAY_DATABASE_URL); ask IMDi",
            )
        kept = self._kept.get(source)
        if kept is None or self.clock() - kept[0] > CACHE_SECONDS:
            try:
                found = await asyncio.to_thread(self._read, self.session_factory, source)
            except SQLAlchemyError as exc:
                log.warning("could not read the incidents of %s: %s", source, safe_traceback(exc))
                raise Problem(
                    503,
                    "incidents-unavailable",
                    "The incidents cannot be read just now",
                    "try again shortly",
                    headers={"Retry-After": str(RETRY_SECONDS)},
                ) from None
            kept = (self.clock(), found)
            self._kept[source] = kept
        return kept[1][:limit]

    def _read(self, session_factory: sessionmaker[Session], source: str) -> list[dict[str, Any]]:
        with session_factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Defence in depth: whatever a fault here might run, it cannot change the register.
                session.execute(text("SET TRANSACTION READ ONLY"))
            incidents = list_incidents(
                session, window=self.window, limit=INCIDENTS_PAGE_MAX, source_system=source
            )
        return [vendor_view(i) for i in incidents]
