"""Consumes every source's registrations topic and runs each message through the registration flow.

The flow handles every failure itself and returns only once the register transaction has
committed and the receipt (and any dead letter) is confirmed by the broker, so the event Faust
acknowledges afterwards is really done.
"""

from __future__ import annotations

from typing import Any

from hub.agents.guard import process_or_exit
from hub.app import FaustPublisher, app, hub, registrations_topic
from hub.domain.events import Origin
from hub.pipeline.flow import Message
from hub.pipeline.registrations import RegistrationFlow

flow = RegistrationFlow(hub, FaustPublisher(app))


@app.agent(registrations_topic, name="hub.agents.registrations")
async def transfer_registrations(stream: Any) -> None:
    async for event in stream.events():
        m = event.message
        await process_or_exit(flow, Message(Origin(m.topic, m.partition, m.offset), m.key, m.value))
