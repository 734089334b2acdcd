"""Consumes Folkeregisteret's address changes into the persons' address history."""

from __future__ import annotations

from typing import Any

from hub.agents.guard import process_or_exit
from hub.app import FaustPublisher, address_changes_topic, app, hub
from hub.domain.events import Origin
from hub.pipeline.addresses import AddressFlow
from hub.pipeline.flow import Message

flow = AddressFlow(hub, FaustPublisher(app))


@app.agent(address_changes_topic, name="hub.agents.addresses")
async def record_address_changes(stream: Any) -> None:
    async for event in stream.events():
        m = event.message
        await process_or_exit(flow, Message(Origin(m.topic, m.partition, m.offset), m.key, m.value))
