"""Replaying tickets' events to their source topics, one, edited, or many by filter.

A replay re-publishes the original message (or the newest edit of it) to the topic it came from,
with headers that say which ticket it replays. Deduplication in the register guarantees a
replayed event is never written twice; when it is accepted, the ticket closes itself, and when
it fails again, the dead letter reopens the ticket with the new reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import ColumnElement

from hub.bootstrap import Hub
from hub.domain.calendar import norwegian_date
from hub.domain.sources import Source
from hub.errors import DecodeError
from hub.pipeline.decode import decode_registration
from hub.register.models import CaseTicket
from hub.register.unit_of_work import UnitOfWork, in_transaction
from hub.schemas.codec import REGISTRATION, SchemaCatalog
from hub.schemas.contract import ContractError, from_json
from hub.support.incidents import Incident
from hub.support.scope import OutOfScope, Scope
from hub.support.tickets import ACTIVE, TicketError, TicketStatus, get_ticket

H_REPLAY_TICKET = "nir.replay.ticket"
H_REPLAYED_AT = "nir.replay.at"


def edit_ticket(
    uow: UnitOfWork,
    catalog: SchemaCatalog,
    ticket: CaseTicket,
    event: dict[str, Any],
    user: str,
    now: dt.datetime,
    *,
    scope: Scope | None = None,
    sender: Source | None = None,
) -> None:
    """Keep a corrected version of the ticket's event, checked against the contract first.

    The edit keeps the event id (so the register's deduplication still holds) and the source:
    the one whose topic the event came on (`sender`), else the one the ticket names. Raises
    `ContractError` naming every problem. With a user's `scope` (the support desk's), the
    edited event must be one the user could replay (`Scope.check_replay`), else `OutOfScope`;
    without (`hub cases replay --edit`), it is the operator's.
    """
    if ticket.status not in ACTIVE:
        raise TicketError(f"ticket {ticket.id} is {ticket.status}; only open tickets can be edited")
    datum = from_json(event)
    if ticket.event_id is not None and str(datum["eventId"]) != ticket.event_id:
        raise ContractError(["eventId: must stay the ticket's event id"])
    source = sender.id if sender is not None else ticket.source_system
    if source is not None and datum["sourceSystem"] != source:
        raise ContractError(["sourceSystem: must stay the ticket's source"])
    if scope is not None:
        scope.check_replay(
            ticket,
            source_system=str(datum["sourceSystem"]),
            municipality=str(datum["municipality"]),
            fact_date=datum["factDate"],
            today=norwegian_date(now),
        )
    uow.tickets.add_edit(ticket.id, event, catalog.encode(REGISTRATION, datum), user, now)
    # An approval was for the event as it was (`hub.support.approval`): it does not carry over.
    uow.tickets.withdraw_approval(ticket)
    uow.audit.record(user, "edit", now, ticket_id=ticket.id)


@dataclass
class ReplayReport:
    replayed: list[int] = field(default_factory=list)
    skipped: dict[int, ReplayStep] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplayStep:
    """What became of one ticket in a replay: sent to `topic` (in a dry run, would be), or
    skipped, `closed` (with the ticket's status) or `filed_by_hand`. Data, not words: the CLI
    prints it in English (`str`), the support page in its user's language."""

    ticket_id: int
    topic: str | None = None
    skipped: str | None = None
    status: str | None = None
    dry_run: bool = False
    # Why a replay outside the user's scope was refused: the support page's translation key of
    # the reason, and its values (`hub.support.scope.OutOfScope`).
    why: str | None = None
    values: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if self.skipped == CLOSED:
            return f"skipped: ticket is {self.status}"
        if self.skipped == FILED_BY_HAND:
            return "skipped: nothing to replay (a case filed by hand)"
        if self.skipped == OUT_OF_SCOPE:
            return f"refused: outside the user's scope ({self.why})"
        return f"{'would replay' if self.dry_run else 'replayed'} to {self.topic}"


# Why a ticket is skipped.
CLOSED, FILED_BY_HAND, OUT_OF_SCOPE = "closed", "filed_by_hand", "out_of_scope"


def check_replayable(
    catalog: SchemaCatalog, scope: Scope, ticket: CaseTicket, value: bytes | None, today: dt.date
) -> None:
    """`OutOfScope` unless the user may replay `value`, the ticket's event as it now stands
    (`uow.tickets.current_value`), to the topic it came on. Nothing to replay (a case filed by
    hand) is no refusal: the replay skips it."""
    if scope.imdi or value is None:
        return
    try:
        event = decode_registration(catalog, value)
    except DecodeError:
        raise OutOfScope("the event cannot be read, so it cannot be checked", "scope.unreadable") from None
    scope.check_replay(
        ticket,
        source_system=event.source_system,
        municipality=event.municipality,
        fact_date=event.fact_date,
        today=today,
    )


@dataclass(frozen=True)
class _Planned:
    ticket_id: int
    topic: str
    key: bytes | None
    value: bytes


def _plan(
    uow: UnitOfWork,
    ticket_id: int,
    *,
    catalog: SchemaCatalog,
    scope: Scope | None,
    now: dt.datetime,
    dry_run: bool,
) -> _Planned | ReplayStep:
    """What replaying a ticket sends, or why it cannot be replayed. For a user of the support
    desk (`scope`), the event as it now stands is checked against their scope first: an edit
    kept earlier, or by someone else, is checked as the user sends it (a refusal is audited)."""
    ticket = get_ticket(uow, ticket_id)
    if ticket.status not in ACTIVE:
        return ReplayStep(ticket_id, skipped=CLOSED, status=ticket.status)
    value = uow.tickets.current_value(ticket)
    if ticket.original_value is None or value is None or ticket.original_topic is None:
        return ReplayStep(ticket_id, skipped=FILED_BY_HAND)
    if scope is not None:
        try:
            if not scope.sees(ticket):
                raise OutOfScope("the ticket is not in the user's scope", "scope.source")
            check_replayable(catalog, scope, ticket, value, norwegian_date(now))
        except OutOfScope as exc:
            if not dry_run:
                uow.audit.record(scope.username, "out_of_scope", now, ticket_id=ticket_id, detail=exc.detail)
            return ReplayStep(
                ticket_id, skipped=OUT_OF_SCOPE, why=exc.key, values=tuple(sorted(exc.values.items()))
            )
    return _Planned(ticket_id, ticket.original_topic, ticket.original_key, value)


def _mark(
    uow: UnitOfWork, ticket_id: int, status: TicketStatus, count: int, user: str | None, now: dt.datetime
) -> None:
    uow.tickets.count_replays(get_ticket(uow, ticket_id), status, count)
    if user is not None:
        uow.audit.record(user, "replay" if count > 0 else "replay_failed", now, ticket_id=ticket_id)


def replay_counts(uow: UnitOfWork) -> dict[str, int]:
    """Replays as `_mark` records them, whoever sent them (the support page, `hub cases replay`):
    sent is the sum of the tickets' replay counts (a failed send takes its count back), failed
    the audit log's entries for failed replays (a replay by a person is always audited)."""
    sent, failed = uow.tickets.replay_counts()
    return {"sent": sent, "failed": failed}


async def replay_tickets(
    hub: Hub,
    ticket_ids: list[int],
    *,
    per_second: float = 50.0,
    dry_run: bool = False,
    on_each: Callable[[ReplayStep], None] = lambda _step: None,
    user: str | None = None,
    scope: Scope | None = None,
) -> ReplayReport:
    """Replay the tickets in order, at most `per_second` a second. With `dry_run` nothing is
    sent; the report says what would be. A support desk user's replay gives their `scope`:
    each event is checked against it as it is sent (`_plan`); the CLI's operator has none."""
    report = ReplayReport()

    def in_uow(work: Callable[[UnitOfWork], Any]) -> Any:
        return in_transaction(hub.unit_of_work, work)  # awaited by the caller

    producer = (
        None
        if dry_run
        else AIOKafkaProducer(
            # Not as the worker: only the replay principal may write a source's registrations.
            **hub.settings.kafka_as(hub.settings.kafka_replay_user).aiokafka(),
            acks="all",
            enable_idempotence=True,
        )
    )
    if producer is not None:
        await producer.start()
    try:
        for ticket_id in ticket_ids:
            plan = await in_uow(
                functools.partial(
                    _plan,
                    ticket_id=ticket_id,
                    catalog=hub.catalog,
                    scope=scope,
                    now=hub.clock(),
                    dry_run=dry_run,
                )
            )
            if isinstance(plan, ReplayStep):
                report.skipped[ticket_id] = plan
                on_each(plan)
                continue
            if producer is None:
                report.replayed.append(ticket_id)
                on_each(ReplayStep(ticket_id, plan.topic, dry_run=True))
                continue
            # Marked first: the replayed event may be processed (and close the ticket) at once.
            await in_uow(
                functools.partial(
                    _mark,
                    ticket_id=ticket_id,
                    status=TicketStatus.REPLAYED,
                    count=1,
                    user=user,
                    now=hub.clock(),
                ),
            )
            headers = [
                (H_REPLAY_TICKET, str(ticket_id).encode()),
                (H_REPLAYED_AT, hub.clock().isoformat().encode()),
            ]
            try:
                await producer.send_and_wait(plan.topic, plan.value, key=plan.key, headers=headers)
            except Exception:
                await in_uow(
                    functools.partial(
                        _mark,
                        ticket_id=ticket_id,
                        status=TicketStatus.OPEN,
                        count=-1,
                        user=user,
                        now=hub.clock(),
                    ),
                )
                raise
            report.replayed.append(ticket_id)
            on_each(ReplayStep(ticket_id, plan.topic))
            await asyncio.sleep(1.0 / per_second)
    finally:
        if producer is not None:
            await producer.stop()
    return report


# The most tickets of an incident one pass of `replay_incident` takes from the register.
INCIDENT_REPLAY_BATCH = 1000


async def replay_incident(
    hub: Hub,
    incident: Incident,
    *,
    per_second: float = 50.0,
    dry_run: bool = False,
    on_each: Callable[[ReplayStep], None] = lambda _step: None,
    user: str | None = None,
    scope: Scope | None = None,
    batch: int = INCIDENT_REPLAY_BATCH,
) -> ReplayReport:
    """Replay every active ticket of the incident (`hub.support.incidents`), oldest first,
    `batch` at a time through `replay_tickets`, with its rate, dry run, audit and scope. A
    replayed ticket stays active, so the batches page on by ticket number; a ticket that fails
    again meanwhile has a later failure and leaves the incident. A support user's replay keeps to
    the tickets their `scope` sees (and each is checked again as it is sent)."""
    within: ColumnElement[bool] | None = scope.tickets() if scope is not None else None
    report = ReplayReport()
    after: tuple[dt.datetime, int] | None = None
    while True:
        ids, after = await in_transaction(
            hub.unit_of_work,
            functools.partial(_next_batch, incident=incident, batch=batch, within=within, after=after),
        )
        if not ids:
            return report
        part = await replay_tickets(
            hub, ids, per_second=per_second, dry_run=dry_run, on_each=on_each, user=user, scope=scope
        )
        report.replayed.extend(part.replayed)
        report.skipped.update(part.skipped)


def _next_batch(
    uow: UnitOfWork,
    *,
    incident: Incident,
    batch: int,
    within: ColumnElement[bool] | None,
    after: tuple[dt.datetime, int] | None,
) -> tuple[list[int], tuple[dt.datetime, int] | None]:
    """The next batch of the incident's tickets, and where the one after it begins."""
    ids = uow.incidents.tickets_of(incident, batch, within=within, after=after)
    if not ids:
        return ids, after
    last = uow.tickets.get(ids[-1])
    assert last is not None  # read in this very transaction
    return ids, (last.last_failed_at, last.id)
