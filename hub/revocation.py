"""Revoking a source, and restoring it: IMDi's decision that a fagsystem's transfers stop at once.

A revocation takes effect in this order, each step safe to repeat (`hub sources revoke` can
simply be run again after a failure):
1. The register records it (`source_states`): the worker reads it in each batch's transaction,
   so from the next batch every event on the source's topic is rejected (NIR-SOURCE-003), what
   was already there and replays of it included.
2. It is published on the source-states topic: the gateway follows that topic and answers the
   source's posts and receipt reads with 403 within moments, without a restart.
3. The source's own ACLs and SCRAM credential are removed: it can no longer reach the broker
   directly. (A Maskinporten source never had a credential: steps 1 and 2 are what stop it.)

A restoration records and publishes the state `revoked = False`, then grants the ACLs again.
"""

from __future__ import annotations

import datetime as dt

from aiokafka import AIOKafkaProducer

from hub.bootstrap import Hub
from hub.domain.sources import Source, SourceState
from hub.kafka.principals import BrokerAccess
from hub.kafka.topics import TopicNames


async def publish_source_state(hub: Hub, state: SourceState) -> None:
    """The state on the compacted source-states topic, keyed by the source (as the admin)."""
    producer = AIOKafkaProducer(**hub.settings.kafka.aiokafka(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        topic = TopicNames(hub.settings.topic_prefix).source_states
        await producer.send_and_wait(topic, state.as_bytes(), key=state.source.encode())
    finally:
        await producer.stop()


def record(hub: Hub, source: Source, *, revoked: bool, by: str, reason: str) -> SourceState:
    """Step 1: the new state in the register, unless it is the state already (so running the
    command again adds no history); returns the state in force."""
    if not reason.strip():
        raise ValueError("a reason is required: say why")
    with hub.unit_of_work() as uow:
        current = uow.sources.current().get(source.id)
        if current is not None and current.revoked == revoked:
            return current
        if current is None and not revoked:
            raise ValueError(f"source {source.id!r} is not revoked")
        state = SourceState(source.id, revoked, hub.clock().astimezone(dt.UTC), by, reason.strip())
        uow.sources.record(state)
        uow.commit()
        return state


async def revoke(hub: Hub, source: Source, *, by: str, reason: str) -> tuple[SourceState, int]:
    """Steps 1-3; returns the revocation and how many ACLs were removed."""
    state = record(hub, source, revoked=True, by=by, reason=reason)
    await publish_source_state(hub, state)
    return state, BrokerAccess(hub.settings).revoke(source)


async def restore(hub: Hub, source: Source, *, by: str, reason: str) -> SourceState:
    """The source may transfer again: recorded, published, and its ACLs granted again."""
    state = record(hub, source, revoked=False, by=by, reason=reason)
    await publish_source_state(hub, state)
    BrokerAccess(hub.settings).grant(source)
    return state
