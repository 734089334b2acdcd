"""The registration flow: the checkpoint's steps for registrations (`RegistrationBatch`, in
`hub.pipeline.checkpoint`), and the hold's rounds between batches.

Every failure becomes an outcome (a rejection with its reason, a dead letter and a receipt);
nothing escapes as an exception except cancellation, so the agent never crashes on bad input.

Events that depend on one that has not arrived (an end before its start, a correction before its
original) are held in the register and decided again whenever their person's register gains a
fact; those still waiting when the hold limit passes are rejected (`expire_held`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Collection

from hub.domain.transfer import Message
from hub.kafka.topics import TopicNames
from hub.pipeline.checkpoint import RegistrationBatch
from hub.pipeline.decide import Decision, expired, failed
from hub.pipeline.flow import Outbox, Transactions, set_aside_failure
from hub.pipeline.ports import UnitOfWork
from hub.schemas.codec import SchemaCatalog
from hub.sources import SourceRegistry

log = logging.getLogger(__name__)


class RegistrationFlow(RegistrationBatch):
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
        hold_seconds: float,
    ) -> None:
        super().__init__(
            transactions,
            outbox,
            clock=clock,
            catalog=catalog,
            registry=registry,
            names=names,
            allow_synthetic_identifiers=allow_synthetic_identifiers,
        )
        self.hold_seconds = hold_seconds

    async def process(self, message: Message) -> Decision:
        return (await self.process_batch([message]))[0]

    async def expire_held(self, assigned: Collection[tuple[str, int]]) -> int:
        """Reject the held events of the assigned partitions that waited past the hold limit."""
        hold = self.hold_seconds
        async with self._deciding:
            limit = self.clock() - dt.timedelta(seconds=hold)
            entries = await self.transactions.run(lambda uow: uow.register.expired_held(limit), "held events")
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
            entries = await self.transactions.run(lambda uow: uow.register.held_to_try_again(), "held events")
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
            decisions = await self._decide(batch)
            await self._answer(decisions)
        return sum(d.outcome is not None for d in decisions)

    async def set_aside(self, message: Message, times: int) -> None:
        """Rejected unread (the crash guard's way out): a dead letter and a receipt."""
        failure = set_aside_failure(times)
        nb = f"{failure.code}: huben stoppet {times} ganger på denne meldingen; den er lagt til side ulest"
        async with self._deciding:
            await self._answer([failed(message, None, failure, [], nb)])
