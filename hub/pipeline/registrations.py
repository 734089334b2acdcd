"""The registration flow: decode → snapshot → decide each → apply → answer → release, a batch at a
time. A batch of one is a batch; there is no other path.

Every failure becomes an outcome (a rejection with its reason, a dead letter and a receipt);
nothing escapes as an exception except cancellation, so the agent never crashes on bad input.

Events that depend on one that has not arrived (an end before its start, a correction before its
original) are held in the register and decided again whenever their person's register gains a
fact; those still waiting when the hold limit passes are rejected (`expire_held`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Collection, Sequence

from hub.bootstrap import Hub
from hub.domain.snapshot import HeldEntry, Write
from hub.errors import HubError
from hub.ops import metrics
from hub.pipeline.decide import (
    Circumstances,
    Decision,
    Pending,
    decide_batch,
    expired,
    failed,
    held_message,
)
from hub.pipeline.decode import decode_registration
from hub.pipeline.flow import Flow, Message, count_dead_letters, failure_from, set_aside_failure
from hub.pipeline.ports import Outgoing, Publisher
from hub.pipeline.receipts import encode_receipt
from hub.register.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class RegistrationFlow(Flow):
    def __init__(self, hub: Hub, publisher: Publisher) -> None:
        super().__init__(hub, publisher)
        # Deciding a batch and expiring held events never overlap: both may answer a held event.
        self._deciding = asyncio.Lock()

    async def process(self, message: Message) -> Decision:
        return (await self.process_batch([message]))[0]

    async def process_batch(self, messages: list[Message]) -> list[Decision]:
        """The decisions of these messages, in order, once they are all committed and answered.

        The checkpoint, in the only order that loses nothing:
        1. the register commits the batch's decisions (rows, holds, closed tickets) in one
           transaction: a crash before this, and the messages come again and are decided anew;
        2. receipts and dead letters are sent, in message order, and confirmed by the broker:
           a crash before this, and the messages come again, are found in the register, and the
           same answers are sent (a receipt may arrive twice, never not at all);
        3. held events that got their final answer leave the hold: their offsets were committed
           when they were held, so until their answer is confirmed the hold must remember them;
        4. the caller (`hub.agents.runner`) acknowledges the messages, so their offsets are
           committed only now.
        """
        async with self._deciding:
            decided = await self._decide(messages)
            await self._answer([d for group in decided for d in group])
        return [group[0] for group in decided]

    async def expire_held(self, assigned: Collection[tuple[str, int]]) -> int:
        """Reject the held events of the assigned partitions that waited past the hold limit."""
        hold = self.hub.settings.hold_seconds
        async with self._deciding:
            limit = self.hub.clock() - dt.timedelta(seconds=hold)
            entries = await self.in_transaction(lambda uow: uow.register.expired_held(limit), "held events")
            decisions = []
            for entry in entries:
                if (entry.origin.topic, entry.origin.partition) not in assigned:
                    continue  # another worker owns that partition, and its held events
                waited = f"held since {entry.held_at:%Y-%m-%d %H:%M}, longer than {hold:g} s"
                decisions.append(expired(entry, self._read_held, waited))
            await self._answer(decisions)
        return len(decisions)

    async def retry_held(self, assigned: Collection[tuple[str, int]]) -> int:
        """Try again the held events of the assigned partitions that the register asks for
        (`RegisterRepository.held_to_try_again`): those whose persons' numbers changed outside
        this flow (Folkeregisteret's identity change, IMDi's merge or split), as an event of the
        person would have, and those accepted whose answer was never confirmed, answered again;
        how many got their final answer."""
        async with self._deciding:
            entries = await self.in_transaction(lambda uow: uow.register.held_to_try_again(), "held events")
            batch = []
            for entry in entries:
                if (entry.origin.topic, entry.origin.partition) not in assigned:
                    continue  # another worker owns that partition, and its held events
                try:
                    batch.append(self._read_held(entry))
                except asyncio.CancelledError:
                    raise
                except Exception:  # its bytes no longer decode: the hold limit ends it, with why
                    continue
            decisions = await self._decide_in_register(batch)
            await self._answer(decisions)
        return sum(d.outcome is not None for d in decisions)

    async def set_aside(self, message: Message, times: int) -> None:
        """Rejected unread (the crash guard's way out): a dead letter and a receipt."""
        failure = set_aside_failure(times)
        nb = f"{failure.code}: huben stoppet {times} ganger på denne meldingen; den er lagt til side ulest"
        async with self._deciding:
            await self._answer([failed(message, None, failure, [], nb)])

    # --- the steps ---------------------------------------------------------------------------

    async def _decide(self, messages: Sequence[Message]) -> list[list[Decision]]:
        """Per message, in order: its decision, then those of the held events it let go."""
        batch: list[Pending] = []
        undecodable: dict[int, Decision] = {}
        for index, message in enumerate(messages):
            try:
                event = decode_registration(self.hub.catalog, message.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                undecodable[index] = failed(message, None, failure_from(exc, message.origin), [])
                continue
            batch.append(Pending(message, event, self._source(message)))
        groups: list[list[Decision]] = []
        for decision in await self._decide_in_register(batch):
            if decision.held is None:
                groups.append([decision])
            else:  # a held event decided again follows the event that let it go
                groups[-1].append(decision)
        decided = iter(groups)
        return [[undecodable[i]] if i in undecodable else next(decided) for i in range(len(messages))]

    async def _decide_in_register(self, batch: list[Pending]) -> list[Decision]:
        """Snapshot → decide each → apply, in one transaction (see `decide_batch`).

        Transient failures are retried inside `in_transaction`. Any other means the register
        refused a value of one event (PostgreSQL refuses values SQLite takes): the batch is
        decided in halves until that event is alone, and it alone is rejected."""
        if not batch:
            return []
        circumstances = Circumstances(
            self.hub.clock(), self.hub.registry, self.hub.settings.allow_synthetic_identifiers
        )

        def work(uow: UnitOfWork) -> list[Decision]:
            snapshot = uow.register.snapshot([p.event for p in batch])
            # A revocation counts from the first batch after it, with nothing in between.
            judged = dataclasses.replace(circumstances, revoked=uow.register.revoked_sources())
            decisions = decide_batch(batch, snapshot, judged, self._read_held)
            uow.register.apply(c for d in decisions for c in d.changes)
            return decisions

        try:
            decisions = await self.in_transaction(work, "register write")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if len(batch) == 1:
                pending = batch[0]
                return [failed(pending.message, pending.event, failure_from(exc, pending.message.origin), [])]
            reason = exc.code if isinstance(exc, HubError) else type(exc).__name__
            log.warning("the register refused a batch of %d (%s); deciding it in halves", len(batch), reason)
            half = len(batch) // 2
            return await self._decide_in_register(batch[:half]) + await self._decide_in_register(batch[half:])
        return decisions

    async def _answer(self, decisions: Sequence[Decision]) -> None:
        """Steps 2 and 3 of the checkpoint (see `process_batch`), and the metrics."""
        answered = [d for d in decisions if d.outcome is not None]
        await self.publish([o for d in answered for o in self._answers(d)], "receipt send")
        count_dead_letters(d.failure for d in answered if d.failure)
        released = [event_id for d in answered for event_id in d.releases]
        if released:
            await self.in_transaction(lambda uow: uow.register.release(released), "release held")
        _observe(answered)

    def _answers(self, decision: Decision) -> list[Outgoing]:
        """What to publish for a decision: the dead letter of a rejected message, and the receipt
        (none for an unregistered source: the dead letter is the record)."""
        message = decision.message
        answers = [self.dead_letter_of(message, decision.failure)] if decision.failure else []
        source = self._source(message)
        if self.hub.registry.get(source) is not None and decision.outcome is not None:
            value = encode_receipt(
                self.hub.catalog,
                event_id=decision.event.event_id if decision.event else None,
                outcome=decision.outcome,
                violations=decision.violations,
                origin=message.origin,
                now=self.hub.clock(),
                registered_at=decision.registered_at,
            )
            answers.append(Outgoing(self.hub.names.receipts(source), source.encode(), value, []))
        return answers

    def _read_held(self, entry: HeldEntry) -> Pending:
        """A held event, to be decided again."""
        message = held_message(entry)
        return Pending(
            message, decode_registration(self.hub.catalog, entry.value), self._source(message), entry
        )

    def _source(self, message: Message) -> str:
        return self.hub.names.source_of(message.origin.topic) or ""


def _observe(decisions: Sequence[Decision]) -> None:
    metrics.observe_registrations(
        metrics.RegistrationOutcome(
            event_type=d.event.event_type if d.event else "UNDECODABLE",
            municipality=d.event.municipality if d.event else None,
            outcome=d.outcome.value if d.outcome else "",
            violations=tuple((v.code, v.severity.value) for v in d.violations),
            late=any(isinstance(c, Write) and c.late for c in d.changes),
        )
        for d in decisions
    )
