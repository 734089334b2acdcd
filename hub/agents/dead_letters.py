"""Turns every dead letter into a case ticket that support staff can inspect, fix and replay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.agents.runner import install_flow
from hub.wiring import dead_letter_flow

if TYPE_CHECKING:
    from hub.app import HubApp

NAME = "hub.agents.open_case_tickets"


def install(wired: HubApp) -> None:
    from hub.app import FaustPublisher

    install_flow(
        wired, wired.dead_letters_topic, dead_letter_flow(wired.hub, FaustPublisher(wired.app)), NAME
    )
