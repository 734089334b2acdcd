"""The caller's incidents as the gateway serves them (`GET /v1/incidents`, issue 32): what a
vendor learns of its own failures grouped by cause (error code, event type, fagsystemVersion),
so a bad release is seen as one thing with a count and a since-when, not thousands of receipts.

This is the gateway's only door to the register, and it is narrow: it is opened only when
NIR_GATEWAY_DATABASE_URL is set, it reads one view, `gateway_incident_tickets` (migration 0026:
the active tickets' cause, last failure, municipality and a person key that names no number),
with one statement (the desk's grouping, `uow.incidents.of_source`, filtered by the caller's
source in the query itself, so another source's tickets never leave the database), in a
read-only transaction on PostgreSQL, and what it gives back are counts. On PostgreSQL it connects as its
own role, `nir_gateway`, which may SELECT that view and nothing else (docs/operations/security.md):
were the gateway taken over, the register's tables, and its persons' numbers, stay out of reach. No identifier, municipality,
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
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.domain.calendar import iso_utc
from hub.domain.redaction import clean
from hub.errors import ConfigurationError, RegisterRefused, RegisterUnavailable, safe_traceback
from hub.gateway.problems import Problem
from hub.register.database import make_engine
from hub.register.incidents import GATEWAY_TICKETS, Incident
from hub.register.unit_of_work import UnitOfWork, units_over

log = logging.getLogger(__name__)

INCIDENTS_PAGE = 20
INCIDENTS_PAGE_MAX = 100
CACHE_SECONDS = 10.0
RETRY_SECONDS = 30
# fagsystemVersion is the vendor's own free text: echoed back cut and with any identifier masked.
VERSION_LIMIT = 64

__all__ = ["GATEWAY_TICKETS"]  # the view the gateway reads (migration 0026), as the register has it


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
        self,
        database_url: str,
        window: dt.timedelta,
        clock: Callable[[], float] = time.monotonic,
        *,
        password_file: str = "",
    ) -> None:
        self.window = window
        self.clock = clock
        if database_url and password_file:
            database_url = with_password(database_url, password_file)
        self.engine = make_engine(database_url) if database_url else None
        self.units: Callable[[], UnitOfWork] | None = None
        if self.engine is not None:
            self.units = units_over(self.engine)
        self._kept: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    async def of(self, source: str, limit: int) -> list[dict[str, Any]]:
        """The source's newest incidents (by last failure), at most `limit`; a 503 problem when
        the gateway has no register or the register does not answer."""
        if self.units is None:
            raise Problem(
                503,
                "incidents-unavailable",
                "This gateway does not serve incidents",
                "it is not connected to the register (NIR_GATEWAY_DATABASE_URL); ask IMDi",
            )
        kept = self._kept.get(source)
        if kept is None or self.clock() - kept[0] > CACHE_SECONDS:
            try:
                found = await asyncio.to_thread(self._read, self.units, source)
            except (SQLAlchemyError, RegisterUnavailable, RegisterRefused) as exc:
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

    def _read(self, units: Callable[[], UnitOfWork], source: str) -> list[dict[str, Any]]:
        with units() as uow:  # never committed: left, it rolls back
            # Defence in depth: whatever a fault here might run, it cannot change the register
            # (PostgreSQL's SET TRANSACTION READ ONLY).
            uow.incidents.read_only()
            incidents = uow.incidents.of_source(source, window=self.window, limit=INCIDENTS_PAGE_MAX)
        return [vendor_view(i) for i in incidents]


def with_password(database_url: str, password_file: str) -> str:
    """The URL with the password read from the file (NIR_GATEWAY_DATABASE_PASSWORD_FILE, a compose
    secret): the password is then in no environment variable, where `docker inspect` and every
    child process would see it."""
    try:
        password = Path(password_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(
            f"the gateway's database password cannot be read from {password_file}: {exc.strerror}"
        ) from None
    if not password:
        raise ConfigurationError(f"the gateway's database password file {password_file} is empty")
    return make_url(database_url).set(password=password).render_as_string(hide_password=False)
