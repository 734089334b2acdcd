"""The worker's flows and checkpoints, built from a `Hub` (`hub.bootstrap`): the one place that
takes collaborators out of it. The pipeline's classes are given what they use and know no `Hub`.

Clocks are read through the hub at each reading (`lambda: hub.clock()`): tests move it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.bootstrap import Hub
from hub.pipeline.addresses import AddressFlow
from hub.pipeline.checkpoint import BatchFlow, Checkpoint
from hub.pipeline.flow import Outbox, Transactions
from hub.pipeline.ports import Publisher, UnitOfWork
from hub.pipeline.registrations import RegistrationFlow
from hub.register.unit_of_work import U
from hub.support.dead_letters import DeadLetterFlow


def transactions(hub: Hub, units: Callable[[], U]) -> Transactions[U]:
    """Units of work from `units`, retried as the settings say."""
    settings = hub.settings
    return Transactions(
        units, initial_delay=settings.retry_initial_seconds, max_delay=settings.retry_max_seconds
    )


def outbox(hub: Hub, publisher: Publisher, retrying: Transactions[Any]) -> Outbox:
    return Outbox(
        publisher,
        retrying,
        dead_letters=hub.names.dead_letters,
        clock=lambda: hub.clock(),
        max_message_bytes=hub.settings.max_message_bytes,
    )


def registration_flow(hub: Hub, publisher: Publisher) -> RegistrationFlow:
    """The registration flow on the register (or on `hub.registration_units`: the tests of
    decisions wire an in-memory one), publishing through `publisher`."""
    units: Callable[[], UnitOfWork] = hub.registration_units or hub.unit_of_work
    retrying = transactions(hub, units)
    return RegistrationFlow(
        retrying,
        outbox(hub, publisher, retrying),
        clock=lambda: hub.clock(),
        catalog=hub.catalog,
        registry=hub.registry,
        names=hub.names,
        allow_synthetic_identifiers=hub.settings.allow_synthetic_identifiers,
        hold_seconds=hub.settings.hold_seconds,
    )


def address_flow(hub: Hub, publisher: Publisher) -> AddressFlow:
    retrying = transactions(hub, hub.unit_of_work)
    return AddressFlow(
        retrying,
        outbox(hub, publisher, retrying),
        catalog=hub.catalog,
        clock=lambda: hub.clock(),
        allow_synthetic_identifiers=hub.settings.allow_synthetic_identifiers,
    )


def dead_letter_flow(hub: Hub, publisher: Publisher) -> DeadLetterFlow:
    retrying = transactions(hub, hub.unit_of_work)
    return DeadLetterFlow(
        retrying,
        outbox(hub, publisher, retrying),
        catalog=hub.catalog,
        source_of=hub.names.source_of,
        clock=lambda: hub.clock(),
    )


def checkpoint(hub: Hub, flow: BatchFlow, name: str) -> Checkpoint:
    """The checkpoint of `flow`'s batches, its marks kept under `name`."""
    units: Callable[[], UnitOfWork] = hub.unit_of_work
    return Checkpoint(
        name,
        flow,
        transactions(hub, units),
        clock=lambda: hub.clock(),
        crash_attempts=hub.settings.crash_attempts,
    )
