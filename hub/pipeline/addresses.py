"""The address-change flow for one message from Folkeregisteret: decode → write, or dead letter.

The same topic carries the person events (identity change, death, duplicate cessation, from
contract v2 on), written by `hub.register.person_events`; every number they name is checked
like the address change's. Feed items can arrive twice; the sequence number makes the write
idempotent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from hub.domain.events import AddressChange
from hub.domain.identifiers import InvalidIdentifier, parse_national_id
from hub.domain.municipalities import is_municipality_number
from hub.domain.redaction import is_plain
from hub.domain.transfer import Failure, Message
from hub.errors import InvalidAddressChange
from hub.pipeline.decode import decode_address_change
from hub.pipeline.flow import Flow, Outbox, Transactions, failure_from
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.codec import SchemaCatalog


@dataclass(frozen=True)
class AddressProcessed:
    written: bool
    failure: Failure | None = None


class AddressFlow(Flow[UnitOfWork]):
    def __init__(
        self,
        transactions: Transactions[UnitOfWork],
        outbox: Outbox,
        *,
        catalog: SchemaCatalog,
        clock: Callable[[], dt.datetime],
        allow_synthetic_identifiers: bool,
    ) -> None:
        super().__init__(transactions, outbox)
        self.catalog, self.clock, self.allow_synthetic_identifiers = (
            catalog,
            clock,
            allow_synthetic_identifiers,
        )

    async def process(self, message: Message) -> AddressProcessed:
        try:
            change = decode_address_change(self.catalog, message.value)
            try:
                for number in (change.national_id, *change.former_national_ids):
                    parse_national_id(number, allow_synthetic=self.allow_synthetic_identifiers)
            except InvalidIdentifier as exc:
                failure = Failure("rule", "NIR-ID-002", f"the national identity number {exc}")
            else:
                check_shape(change)
                now = self.clock()
                written = await self.in_transaction(
                    lambda uow: uow.folkeregister.record(change, now), "address write"
                )
                return AddressProcessed(written=written)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = failure_from(exc, message.origin)
        await self.dead_letter(message, failure)
        return AddressProcessed(written=False, failure=failure)


# Column lengths of the address history (`hub.register.models.AddressRecord`).
_TEXT_LIMITS = (("addressLine", 256), ("postalCode", 8), ("postalPlace", 128))


def check_shape(change: AddressChange) -> None:
    """Raise `InvalidAddressChange` unless every field fits the address history: the register
    must never be the one to refuse a value (PostgreSQL refuses what SQLite stores)."""
    if change.municipality is not None and not is_municipality_number(change.municipality):
        raise InvalidAddressChange("municipality must be four digits 0-9")
    texts = (change.address_line, change.postal_code, change.postal_place)
    for (name, limit), value in zip(_TEXT_LIMITS, texts, strict=True):
        if value is not None and not is_plain(value, limit):
            raise InvalidAddressChange(f"{name} must be printable text of at most {limit} characters")
