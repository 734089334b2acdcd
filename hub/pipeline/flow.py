"""What every flow shares: the register's transactions (retried while transient), the outbox of
receipts and dead letters, and the classification of errors into dead-letter reasons."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from hub.domain.events import Origin
from hub.domain.redaction import clean
from hub.domain.transfer import Failure, Message
from hub.errors import (
    DecodeError,
    HubError,
    InternalError,
    InvalidAddressChange,
    MessageTooLarge,
    RegisterRefused,
    SetAside,
    UnknownSchemaError,
    safe_traceback,
)
from hub.ops import metrics
from hub.pipeline.deadletter import by_reference, dead_letter
from hub.pipeline.ports import Outgoing, Publisher
from hub.pipeline.retry import retry_transient
from hub.register.unit_of_work import U, in_transaction
from hub.rules.base import VIOLATION_MESSAGE_LIMIT

T = TypeVar("T")
log = logging.getLogger(__name__)


def failure_from(exc: Exception, origin: Origin) -> Failure:
    """The dead-letter reason for an error that escaped a flow's own handling. Its message goes
    on a receipt and a dead letter as it is, so it is cleaned here (an unknown fingerprint's hex
    can hold eleven digits in a row)."""
    if isinstance(exc, HubError):
        return Failure(_error_class(exc), exc.code, clean(exc.message, VIOLATION_MESSAGE_LIMIT), exc.title_nb)
    # A bug must not stop the partition: dead-letter the message and go on.
    log.error("unexpected error processing %s: %s", origin, safe_traceback(exc))
    return Failure("internal", InternalError.code, f"unexpected {type(exc).__name__}", InternalError.title_nb)


def _error_class(exc: HubError) -> str:
    if exc.retriable:  # retried as far as it may be (a conflict that kept coming back)
        return "internal"
    for kind, error_class in _ERROR_CLASSES:
        if isinstance(exc, kind):
            return error_class
    return "internal"


# Most specific first: an unknown schema is a decode error too.
_ERROR_CLASSES: tuple[tuple[type[HubError], str], ...] = (
    (UnknownSchemaError, "schema"),
    (DecodeError, "decode"),
    (RegisterRefused, "register"),
    (InvalidAddressChange, "rule"),
)


class Transactions(Generic[U]):
    """The register's transactions, each a unit of work from `units`: in a worker thread, retried
    while transient."""

    def __init__(self, units: Callable[[], U], *, initial_delay: float, max_delay: float) -> None:
        self.units = units
        self.initial_delay, self.max_delay = initial_delay, max_delay

    async def retry(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await retry_transient(
            operation, what=what, initial_delay=self.initial_delay, max_delay=self.max_delay
        )

    async def run(self, work: Callable[[U], T], what: str) -> T:
        """Run `work` in one register transaction, in a worker thread, retried while transient."""
        with metrics.REGISTER_WRITE_SECONDS.labels(what).time():
            return await self.retry(lambda: in_transaction(self.units, work), what)


class Outbox:
    """What the pipeline publishes (receipts and dead letters): in order, confirmed, retried while
    transient, and never stopped by a broker that takes less than the hub builds."""

    def __init__(
        self,
        publisher: Publisher,
        transactions: Transactions[Any],
        *,
        dead_letters: str,
        clock: Callable[[], dt.datetime],
        max_message_bytes: int,
    ) -> None:
        self.publisher, self._retrying = publisher, transactions
        self.dead_letters, self.clock, self.max_message_bytes = dead_letters, clock, max_message_bytes

    def dead_letter_of(self, message: Message, failure: Failure) -> Outgoing:
        """The original message for the dead-letter topic, with why and where it failed."""
        return dead_letter(
            self.dead_letters,
            message.origin,
            message.key,
            message.value,
            failure,
            self.clock(),
            max_bytes=self.max_message_bytes,
        )

    async def publish(self, messages: Sequence[Outgoing], what: str) -> None:
        """Send them all, in order; returns once every one is confirmed (retried while transient).

        Every message the hub builds fits `NIR_MAX_MESSAGE_BYTES`. Should the broker take less
        (a topic's own limit set lower), its refusal is no outage: each message is sent alone,
        a dead letter that still does not fit goes by reference, and a receipt that does not fit
        is counted and logged instead of stopping the partition."""
        if not messages:
            return
        try:
            await self._retrying.retry(lambda: self.publisher.send_many(messages), what)
        except MessageTooLarge:
            for message in messages:
                await self._publish_alone(message, what)

    async def _publish_alone(self, message: Outgoing, what: str) -> None:
        smaller = [by_reference(message)] if message.topic == self.dead_letters else []
        for candidate in (message, *smaller):
            if await self._sent(candidate, what):
                return
        kind = "dead_letter" if message.topic == self.dead_letters else "receipt"
        metrics.UNSENDABLE.labels(kind).inc()
        log.error("a %s for %s is larger than the broker takes; not sent", kind, message.topic)

    async def _sent(self, message: Outgoing, what: str) -> bool:
        try:
            await self._retrying.retry(lambda: self.publisher.send_many([message]), what)
        except MessageTooLarge:
            return False
        return True


class Flow(Generic[U]):
    """A flow takes messages one at a time (`process`) or a batch at a time (`process_batch`,
    which flows that gain from batches override); both turn every failure into an outcome.
    It is given its register transactions and its outbox (`hub.wiring` builds them)."""

    def __init__(self, transactions: Transactions[U], outbox: Outbox) -> None:
        self.transactions = transactions
        self.outbox = outbox

    async def process(self, message: Message) -> Any:
        raise NotImplementedError

    async def process_batch(self, messages: list[Message]) -> Sequence[Any]:
        return [await self.process(message) for message in messages]

    async def set_aside(self, message: Message, times: int) -> None:
        """Answer a message the worker stopped on `times` times, without reading it (the crash
        guard's way out): here, a dead letter."""
        await self.dead_letter(message, set_aside_failure(times))

    async def in_transaction(self, work: Callable[[U], T], what: str) -> T:
        """Run `work` in one register transaction, in a worker thread, retried while transient."""
        return await self.transactions.run(work, what)

    async def dead_letter(self, message: Message, failure: Failure) -> None:
        """Publish the original message to the dead-letter topic; returns once confirmed."""
        await self.outbox.publish([self.outbox.dead_letter_of(message, failure)], "dead-letter send")
        count_dead_letters([failure])


def set_aside_failure(times: int) -> Failure:
    return Failure(
        "poison",
        SetAside.code,
        f"{SetAside.code}: the worker stopped {times} times while processing this message; "
        "it was set aside unread",
        f"{SetAside.code}: {SetAside.title_nb}",
    )


def count_dead_letters(failures: Iterable[Failure]) -> None:
    """Count confirmed dead letters: the one place `nir_dead_letters_total` grows."""
    for failure in failures:
        metrics.DEAD_LETTERS.labels(failure.error_class, failure.code).inc()
