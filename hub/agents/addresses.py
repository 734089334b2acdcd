"""Consumes Folkeregisteret's address changes into the persons' address history."""

from hub.agents.runner import flow_agent, guarded
from hub.app import FaustPublisher, address_changes_topic, app, hub, settings
from hub.pipeline.addresses import AddressFlow

record_address_changes = flow_agent(
    app,
    address_changes_topic,
    guarded(hub, AddressFlow(hub, FaustPublisher(app)), "hub.agents.record_address_changes"),
    "hub.agents.record_address_changes",
    size=settings.batch_size,
    within=settings.batch_window_seconds,
)
