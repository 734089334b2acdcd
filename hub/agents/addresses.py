"""Consumes Folkeregisteret's address changes into the persons' address history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.agents.runner import install_flow
from hub.wiring import address_flow

if TYPE_CHECKING:
    from hub.app import HubApp

NAME = "hub.agents.record_address_changes"


def install(wired: HubApp) -> None:
    from hub.app import FaustPublisher

    install_flow(wired, wired.address_changes_topic, address_flow(wired.hub, FaustPublisher(wired.app)), NAME)
