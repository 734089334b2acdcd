"""The checkpoint: one batch, from the crash guard's mark to its acknowledgement, in the only order
that loses nothing (the README's "From the agent to the database").

1. mark: the crash guard marks the batch's offsets in the register (`hub.pipeline.crash_guard`);
   the partitions it finds marked already are taken one message at a time instead, and a message
   the worker stopped on too often is set aside unread;
2. decode each message; one that does not decode is rejected, alone;
3. snapshot: what the register knows of the batch's persons, read in one transaction ...
4. decide each event over it (`hub.pipeline.decide`, pure) ...
5. apply and commit the decisions in that same transaction: a crash before this, and the
   messages come again and are decided anew;
6. answer: receipts and dead letters are sent in message order and confirmed by the broker: a
   crash before this, and the messages come again, are found in the register, and the same
   answers are sent (a receipt may arrive twice, never not at all);
7. release held events that got their final answer: their offsets were committed when they were
   held, so until their answer is confirmed the hold must remember them;
8. unmark the batch;
9. acknowledge the messages (`Acknowledgement`): only now may their offsets be committed.

`Checkpoint.run` is steps 1, 8 and 9 around a flow's own steps; for registrations those are
`RegistrationBatch.process_batch` below, steps 2 to 7. The flows turn every failure into an
outcome. Should one still raise (a fault in the failure path itself), returning to Faust would
acknowledge the event: the process ends at once instead (`or_exit`), without acknowledging; the
supervisor restarts it and the crash guard's marks take over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from hub.domain.calendar import norwegian_date
from hub.domain.deadlines import may_be_late
from hub.domain.municipalities import number_counted
from hub.domain.snapshot import HeldEntry, Write
from hub.domain.transfer import Message
from hub.errors import HubError, safe_traceback
from hub.kafka.topics import TopicNames
from hub.ops import metrics
from hub.pipeline import crash_guard
from hub.pipeline.decide import Circumstances, Decision, Pending, decide_batch, failed, held_message
from hub.pipeline.decode import decode_registration
from hub.pipeline.flow import Outbox, Transactions, count_dead_letters, failure_from
from hub.pipeline.ports import Acknowledgement, Outgoing, UnitOfWork
from hub.pipeline.receipts import encode_receipt
from hub.schemas.codec import SchemaCatalog
from hub.sources import SourceRegistry

T = TypeVar("T")
log = logging.getLogger(__name__)

EXIT_UNHANDLED = 70  # EX_SOFTWARE


class BatchFlow(Protocol):
    """A flow's own steps between the mark and the unmark (`Flow`, `RegistrationFlow`)."""

    async def process_batch(self, messages: list[Message]) -> Sequence[Any]: ...

    async def set_aside(self, message: Message, times: int) -> None: ...


class Checkpoint:
    """Steps 1, 8 and 9 of a batch of `name`'s flow, around the flow's own."""

    def __init__(
        self,
        name: str,
        flow: BatchFlow,
        transactions: Transactions[UnitOfWork],
        *,
        clock: Callable[[], dt.datetime],
        crash_attempts: int,
    ) -> None:
        self.name, self.flow, self.transactions = name, flow, transactions
        self.clock, self.crash_attempts = clock, crash_attempts

    async def run(self, messages: list[Message], acknowledgement: Acknowledgement) -> None:
        """Take the batch through every step; returns once its messages are acknowledged."""
        plan = await self._mark(messages)  # 1
        if plan.together:
            await or_exit(self.flow.process_batch(plan.together), plan.together[0].origin)  # 2-7
            await self._unmark(plan.marks)  # 8
        for message in plan.one_by_one:
            await self._one_at_a_time(message)  # 1-8, a message of a suspected partition alone
        await acknowledgement.acknowledge()  # 9

    async def _mark(self, messages: list[Message]) -> crash_guard.Plan:
        name, now = self.name, self.clock()
        return await self.transactions.run(
            lambda uow: crash_guard.plan(uow.marks, name, messages, now), "crash guard"
        )

    async def _unmark(self, marks: list[int]) -> None:
        await self.transactions.run(lambda uow: uow.marks.remove(marks), "crash guard")

    async def _one_at_a_time(self, message: Message) -> None:
        """One message of a suspected partition, with a mark of its own that counts its beginnings."""
        name, origin, now = self.name, message.origin, self.clock()
        attempts = await self.transactions.run(
            lambda uow: uow.marks.begin_one(name, origin, now), "crash guard"
        )
        if attempts > self.crash_attempts:
            log.error(
                "%s: the worker stopped %d times on %s; set aside unprocessed", name, attempts - 1, origin
            )
            await or_exit(self.flow.set_aside(message, attempts - 1), origin)
            metrics.SET_ASIDE.labels(name).inc()
        else:
            await or_exit(self.flow.process_batch([message]), origin)
        await self.transactions.run(lambda uow: uow.marks.finish_one(name, origin), "crash guard")


async def or_exit(work: Awaitable[T], where: object) -> T:
    """`work`'s result; should it raise, the process ends at once, acknowledging nothing."""
    try:
        return await work
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        log.critical(
            "unhandled failure at %s (%s); exiting without committing its offset",
            where,
            safe_traceback(exc),
        )
        logging.shutdown()
        os._exit(EXIT_UNHANDLED)


class RegistrationBatch:
    """Steps 2 to 7 for registrations: decode → snapshot → decide → apply and commit → answer →
    release. A batch of one is a batch; there is no other path."""

    def __init__(
        self,
        transactions: Transactions[UnitOfWork],
        outbox: Outbox,
        *,
        clock: Callable[[], dt.datetime],
        catalog: SchemaCatalog,
        registry: SourceRegistry,
        names: TopicNames,
        allow_synthetic_identifiers: bool,
    ) -> None:
        self.transactions, self.outbox = transactions, outbox
        self.clock, self.catalog, self.registry, self.names = clock, catalog, registry, names
        self.allow_synthetic_identifiers = allow_synthetic_identifiers
        # Deciding a batch and the hold's rounds never overlap: both may answer a held event.
        self._deciding = asyncio.Lock()

    async def process_batch(self, messages: list[Message]) -> list[Decision]:
        """The decisions of these messages, in order, once they are all committed and answered."""
        async with self._deciding:
            pending, undecodable = self._decode(messages)  # 2
            decided = self._in_message_order(await self._decide(pending), undecodable, len(messages))  # 3-5
            await self._answer([d for group in decided for d in group])  # 6, 7
        return [group[0] for group in decided]

    # --- 2. decode ---------------------------------------------------------------------------

    def _decode(self, messages: Sequence[Message]) -> tuple[list[Pending], dict[int, Decision]]:
        """The events to decide, and the rejection of each message (by its index) that does not
        decode."""
        batch: list[Pending] = []
        undecodable: dict[int, Decision] = {}
        for index, message in enumerate(messages):
            try:
                event = decode_registration(self.catalog, message.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                undecodable[index] = failed(message, None, failure_from(exc, message.origin), [])
                continue
            batch.append(Pending(message, event, self._source(message)))
        return batch, undecodable

    # --- 3, 4, 5. snapshot → decide → apply, committed in one transaction --------------------

    async def _decide(self, batch: list[Pending]) -> list[Decision]:
        """Snapshot → decide each → apply, in one transaction (see `decide_batch`).

        Transient failures are retried inside the transaction's runner. Any other means the
        register refused a value of one event (PostgreSQL refuses values SQLite takes): the batch
        is decided in halves until that event is alone, and it alone is rejected."""
        if not batch:
            return []
        now = self.clock()

        def work(uow: UnitOfWork) -> list[Decision]:
            snapshot = uow.register.snapshot([p.event for p in batch])
            # A revocation counts from the first batch after it, with nothing in between.
            circumstances = Circumstances(
                now, self.registry, self.allow_synthetic_identifiers, uow.register.revoked_sources()
            )
            decisions = decide_batch(batch, snapshot, circumstances, self._read_held, failure_from)
            uow.register.apply(c for d in decisions for c in d.changes)
            return decisions

        try:
            return await self.transactions.run(work, "register write")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if len(batch) == 1:
                pending = batch[0]
                return [failed(pending.message, pending.event, failure_from(exc, pending.message.origin), [])]
            reason = exc.code if isinstance(exc, HubError) else type(exc).__name__
            log.warning("the register refused a batch of %d (%s); deciding it in halves", len(batch), reason)
            half = len(batch) // 2
            return await self._decide(batch[:half]) + await self._decide(batch[half:])

    @staticmethod
    def _in_message_order(
        decisions: list[Decision], undecodable: dict[int, Decision], count: int
    ) -> list[list[Decision]]:
        """Per message, in order: its decision, then those of the held events it let go."""
        groups: list[list[Decision]] = []
        for decision in decisions:
            if decision.held is None:
                groups.append([decision])
            else:  # a held event decided again follows the event that let it go
                groups[-1].append(decision)
        decided = iter(groups)
        return [[undecodable[i]] if i in undecodable else next(decided) for i in range(count)]

    # --- 6. answer, confirmed; 7. release ----------------------------------------------------

    async def _answer(self, decisions: Sequence[Decision]) -> None:
        """Receipts and dead letters sent in order and confirmed, then the held events answered
        for good leave the hold; and the metrics."""
        answered = [d for d in decisions if d.outcome is not None]
        await self.outbox.publish([o for d in answered for o in self._answers(d)], "receipt send")
        count_dead_letters(d.failure for d in answered if d.failure)
        released = [event_id for d in answered for event_id in d.releases]
        if released:
            await self.transactions.run(lambda uow: uow.register.release(released), "release held")
        _observe(answered, norwegian_date(self.clock()), self._reporting)

    def _answers(self, decision: Decision) -> list[Outgoing]:
        """What to publish for a decision: the dead letter of a rejected message, and the receipt
        (none for an unregistered source: the dead letter is the record)."""
        message = decision.message
        answers = [self.outbox.dead_letter_of(message, decision.failure)] if decision.failure else []
        source = self._source(message)
        if self.registry.get(source) is not None and decision.outcome is not None:
            value = encode_receipt(
                self.catalog,
                event_id=decision.event.event_id if decision.event else None,
                outcome=decision.outcome,
                violations=decision.violations,
                origin=message.origin,
                now=self.clock(),
                registered_at=decision.registered_at,
            )
            answers.append(Outgoing(self.names.receipts(source), source.encode(), value, []))
        return answers

    # --- what the steps share ----------------------------------------------------------------

    def _read_held(self, entry: HeldEntry) -> Pending:
        """A held event, to be decided again."""
        message = held_message(entry)
        return Pending(message, decode_registration(self.catalog, entry.value), self._source(message), entry)

    def _source(self, message: Message) -> str:
        return self.names.source_of(message.origin.topic) or ""

    def _reporting(self, message: Message) -> frozenset[str]:
        """The municipalities the message's source reports for (none for a source not known)."""
        return self.registry.municipalities_of(self._source(message))


def _observe(
    decisions: Sequence[Decision], today: dt.date, reporting: Callable[[Message], frozenset[str]]
) -> None:
    """Count the decisions. A registration's municipality is labelled with its number `today`, as
    this year's report counts it (`number_counted`: 3024 Bærum's past under 3201, 1507 from Haram's
    source under 1580), and only the registrations the two-month deadline applies to count in the
    late share's denominator."""
    metrics.observe_registrations(
        metrics.RegistrationOutcome(
            event_type=d.event.event_type if d.event else "UNDECODABLE",
            municipality=number_counted(d.event.municipality, today, reporting(d.message))
            if d.event and d.event.municipality
            else None,
            outcome=d.outcome.value if d.outcome else "",
            violations=tuple((v.code, v.severity.value) for v in d.violations),
            late=any(isinstance(c, Write) and c.late for c in d.changes),
            deadline_applies=d.event is not None and may_be_late(d.event.action, d.event.event_type),
        )
        for d in decisions
    )
