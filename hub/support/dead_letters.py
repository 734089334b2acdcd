"""The dead-letter flow: every dead letter becomes (or attaches to) a case ticket. It lives with
the tickets: support reads the pipeline's dead letters, the pipeline knows nothing of support.

There is nowhere further to send a message that fails here, so this flow never gives up on a
transient failure and treats anything it cannot decode as data for the ticket, not an error. A
dead letter whose ticket the register refuses (or whose reading fails in a way nobody foresaw) is
quarantined: a ticket with only its location, its bytes and why, and the partition moves on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from hub.domain.transfer import Message
from hub.errors import HubError, safe_traceback
from hub.pipeline.flow import Flow, Outbox, Transactions
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.codec import SchemaCatalog
from hub.support.tickets import DeadLetter, quarantine_dead_letter, tickets_from_dead_letters

log = logging.getLogger(__name__)


class DeadLetterFlow(Flow[UnitOfWork]):
    def __init__(
        self,
        transactions: Transactions[UnitOfWork],
        outbox: Outbox,
        *,
        catalog: SchemaCatalog,
        source_of: Callable[[str], str | None],
        clock: Callable[[], dt.datetime],
    ) -> None:
        super().__init__(transactions, outbox)
        self.catalog, self.source_of, self.clock = catalog, source_of, clock

    async def process_batch(self, messages: list[Message]) -> list[int]:
        """The tickets of a batch in one transaction, set-based (`tickets_from_dead_letters`);
        should the register refuse one of them, the batch goes one by one, so that only that one
        is quarantined. Returns the tickets' ids."""
        try:
            return await self.in_transaction(lambda uow: self._record(uow, messages), "case ticket")
        except asyncio.CancelledError:
            raise
        except Exception:  # transient failures were retried inside; this one is the data's
            return [await self.process(m) for m in messages]

    async def process(self, message: Message) -> int:
        """Returns the ticket's id."""
        try:
            return await self.in_transaction(lambda uow: self._record(uow, [message])[0], "case ticket")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # transient failures were retried inside; this one is the data's
            why = exc.code if isinstance(exc, HubError) else f"unexpected {type(exc).__name__}"
            log.error("dead letter %s quarantined: %s", message.origin, safe_traceback(exc))
            return await self._quarantine(message, why)

    def _record(self, uow: UnitOfWork, messages: list[Message]) -> list[int]:
        return tickets_from_dead_letters(
            uow,
            self.catalog,
            [DeadLetter(m.origin, m.key, m.value, m.headers) for m in messages],
            source_of=self.source_of,
            now=self.clock(),
        )

    async def set_aside(self, message: Message, times: int) -> None:
        """The crash guard's way out: quarantined, unread."""
        await self._quarantine(message, f"the worker stopped {times} times while reading it")

    async def _quarantine(self, message: Message, why: str) -> int:
        return await self.in_transaction(
            lambda uow: (
                quarantine_dead_letter(
                    uow,
                    origin=message.origin,
                    key=message.key,
                    value=message.value,
                    why=why,
                    now=self.clock(),
                ).id
            ),
            "case ticket",
        )
