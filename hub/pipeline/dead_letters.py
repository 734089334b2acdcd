"""The dead-letter flow: every dead letter becomes (or attaches to) a case ticket.

There is nowhere further to send a message that fails here, so this flow never gives up on a
transient failure and treats anything it cannot decode as data for the ticket, not an error.
"""

from __future__ import annotations

from hub.pipeline.flow import Flow, Message
from hub.register.unit_of_work import UnitOfWork
from hub.support.tickets import ticket_from_dead_letter


class DeadLetterFlow(Flow):
    async def process(self, message: Message) -> int:
        """Returns the ticket's id."""
        ref = f"{message.origin.partition}:{message.origin.offset}"

        def record(uow: UnitOfWork) -> int:
            ticket = ticket_from_dead_letter(
                uow.session,
                self.hub.catalog,
                key=message.key,
                value=message.value,
                headers=message.headers,
                dead_letter_ref=ref,
                source_of=self.hub.names.source_of,
                now=self.hub.clock(),
            )
            return ticket.id

        return await self.in_transaction(record, "case ticket")
