"""What a support user may see and change, read from the source registry and never from an
event's own words.

A ticket from a dead letter belongs to the source that sent the event: the source whose topic it
came on (`CaseTicket.original_topic`, written by the worker, never by the sender), and through it
to the municipalities the registry gives that source. The municipality and source the event
claims are shown on the ticket, and trusted for nothing. A ticket whose topic names no source in
the registry, and a dead letter that could not be decoded (its bytes cannot be checked against
anyone's scope), are IMDi's only. A case filed by hand belongs to the municipality it was filed
for (a municipality user files for their own).

A municipality user may change and replay an event only within their municipality (or a number
it had on the fact's date: `hub.domain.municipalities.numbers_since`) and their sources, and only
as the source's registry entry allows (`Source.may_report`, the predicate of rule
NIR-SOURCE-002). IMDi's support staff see and may change everything; the worker's rules still
decide what is accepted.

The scope is computed on every read from the registry in force, so a change to the registry
(a source given another municipality, or taken away) takes effect on the desk at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

from hub.domain.municipalities import is_municipality_number, numbers_since
from hub.domain.sources import Source
from hub.errors import HubError
from hub.kafka.topics import TopicNames
from hub.register.models import CaseTicket, RegistrationRecord, User
from hub.sources import SourceRegistry
from hub.support.access import Role

# The day the register's municipality lists begin: every number a municipality has had since is
# its own.
_FIRST_DAY = dt.date(2018, 1, 1)
# Ticket kinds whose scope is their source's (those made from a decoded dead letter).
_FROM_EVENTS = ("dead_letter", "identity_conflict")
_MANUAL = "manual"
# The municipality's own roles: its super user and its administrative user see the same tickets.
_MUNICIPAL_ROLES = frozenset(role.value for role in Role if role.municipal)


class OutOfScope(HubError):
    """An edit or replay outside what the user may change. `key` and `values` are the support
    page's translation of why (no personal data: municipality numbers and source ids only)."""

    code = "NIR-SCOPE"

    def __init__(self, message: str, key: str, **values: str) -> None:
        super().__init__(message)
        self.key, self.values = key, values

    @property
    def detail(self) -> str:
        """For the audit log: the reason's key and its values."""
        return " ".join([self.key, *(f"{k}={v}" for k, v in sorted(self.values.items()))])


@dataclass(frozen=True)
class Sources:
    """The registry and the topic names together: which source a topic belongs to, and which
    municipalities the registry gives it."""

    registry: SourceRegistry
    names: TopicNames

    @classmethod
    def of(cls, hub: Any) -> Sources:
        """From a `hub.bootstrap.Hub` (anything with `registry` and `names`)."""
        return cls(hub.registry, hub.names)

    def sender(self, ticket: CaseTicket) -> Source | None:
        """The registered source that sent the ticket's event, by the topic it came on; None for
        a ticket filed by hand, an undecoded dead letter, or a topic that is no registered
        source's."""
        if ticket.kind not in _FROM_EVENTS or ticket.event_id is None or ticket.original_topic is None:
            return None
        source_id = self.names.source_of(ticket.original_topic)
        return self.registry.get(source_id) if source_id is not None else None


@dataclass(frozen=True)
class Scope:
    """One user's scope: everything (IMDi's support staff), or one municipality and the sources
    the registry gives it."""

    username: str
    imdi: bool
    municipality: str | None
    sources: Sources

    @classmethod
    def of(cls, user: User, sources: Sources) -> Scope:
        imdi = user.role == Role.IMDI_SUPPORT.value
        # A user of no known role, or a municipality user without a municipality, sees nothing.
        municipality = user.municipality if user.role in _MUNICIPAL_ROLES else None
        return cls(user.username, imdi, municipality or None, sources)

    @property
    def own_sources(self) -> frozenset[str]:
        """The sources the registry gives the user's municipality (now or once)."""
        if self.municipality is None:
            return frozenset()
        return frozenset(s.id for s in self.sources.registry if self.municipality in s.municipalities)

    def own_numbers(self, fact_date: dt.date, today: dt.date) -> frozenset[str]:
        """The user's municipality's numbers for a fact of `fact_date`: today's and the ones it
        has had since (a municipality reports its own past under them)."""
        if self.municipality is None:
            return frozenset()
        return frozenset({self.municipality, *numbers_since(self.municipality, fact_date, today)})

    def sees(self, ticket: CaseTicket) -> bool:
        if self.imdi:
            return True
        if self.municipality is None:
            return False
        if ticket.kind == _MANUAL:
            return ticket.municipality == self.municipality
        sender = self.sources.sender(ticket)
        return sender is not None and sender.id in self.own_sources

    def tickets(self) -> ColumnElement[bool] | None:
        """The tickets the user sees, as a condition (None: every ticket). The same as `sees`."""
        if self.imdi:
            return None
        if self.municipality is None:
            return false()
        topics = [self.sources.names.registrations(s) for s in sorted(self.own_sources)]
        return or_(
            and_(CaseTicket.kind == _MANUAL, CaseTicket.municipality == self.municipality),
            and_(
                CaseTicket.kind.in_(_FROM_EVENTS),
                CaseTicket.event_id.is_not(None),
                CaseTicket.original_topic.in_(topics),
            ),
        )

    def registrations(self, today: dt.date) -> ColumnElement[bool] | None:
        """The register's registrations the user may see (None: all): those sent by one of
        their sources, or for their municipality under any number it has had."""
        if self.imdi:
            return None
        if self.municipality is None:
            return false()
        return or_(
            RegistrationRecord.source_system.in_(sorted(self.own_sources)),
            RegistrationRecord.municipality.in_(sorted(self.own_numbers(_FIRST_DAY, today))),
        )

    def lives_here(self, municipality: str | None, today: dt.date) -> bool:
        """Whether a residence's municipality is the user's (under any number it has had)."""
        if self.imdi:
            return True
        return municipality is not None and municipality in self.own_numbers(_FIRST_DAY, today)

    def check_replay(
        self,
        ticket: CaseTicket,
        *,
        source_system: str,
        municipality: str,
        fact_date: dt.date,
        today: dt.date,
    ) -> None:
        """`OutOfScope` unless the user may send this event (the newest edit, or the original)
        to the ticket's topic: the topic's source is a registered source of theirs, the event
        says it is from that source, and its municipality is theirs and one the source may
        report for on the fact's date. IMDi's support staff may send anything (the worker's
        rules still decide)."""
        if self.imdi:
            return
        sender = self.sources.sender(ticket)
        if sender is None or sender.id not in self.own_sources:
            raise OutOfScope(
                "the topic this event would be replayed to is not one of your sources'",
                "scope.source",
            )
        if source_system != sender.id:
            raise OutOfScope(
                f"the event's sourceSystem must be {sender.id}, the source it came from",
                "scope.sender",
                source=sender.id,
            )
        yours = self.own_numbers(fact_date, today)
        if municipality not in yours or not sender.may_report(municipality, fact_date, today):
            allowed = sorted(m for m in yours if sender.may_report(m, fact_date, today))
            # The number is echoed only if it is one (it is the sender's or the editor's text).
            shown = municipality if is_municipality_number(municipality) else "-"
            raise OutOfScope(
                f"municipality {shown} is not yours, or source {sender.id} may not "
                f"report for it; it may be {', '.join(allowed) or '-'}",
                "scope.municipality",
                municipality=shown,
                source=sender.id,
                allowed=", ".join(allowed) or "-",
            )
