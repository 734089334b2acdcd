"""Consumes Folkeregisteret's address changes into the persons' address history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.agents.runner import install_flow
from hub.pipeline.addresses import AddressFlow

if TYPE_CHECKING:
    from hub.app import HubApp

NAME = "hub.agents.record_address_changes"


def install(wired: HubApp) -> None:
    from hub.app import FaustPublisher

    install_flow(wired, wired.address_changes_topic, AddressFlow(wired.hub, FaustPublisher(wired.app)), NAME)
