"""Consumes Folkeregisteret's address changes into the persons' address history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.agents.runner import flow_agent, guarded
from hub.pipeline.addresses import AddressFlow

if TYPE_CHECKING:
    from hub.app import HubApp

NAME = "hub.agents.record_address_changes"


def install(wired: HubApp) -> None:
    from hub.app import FaustPublisher

    app, hub, settings = wired.app, wired.hub, wired.settings
    flow_agent(
        app,
        wired.address_changes_topic,
        guarded(hub, AddressFlow(hub, FaustPublisher(app)), NAME),
        NAME,
        size=settings.batch_size,
        within=settings.batch_window_seconds,
    )
