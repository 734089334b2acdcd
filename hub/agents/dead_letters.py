"""Turns every dead letter into a case ticket that support staff can inspect, fix and replay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.agents.runner import flow_agent, guarded
from hub.support.dead_letters import DeadLetterFlow

if TYPE_CHECKING:
    from hub.app import HubApp

NAME = "hub.agents.open_case_tickets"


def install(wired: HubApp) -> None:
    from hub.app import FaustPublisher

    app, hub, settings = wired.app, wired.hub, wired.settings
    flow_agent(
        app,
        wired.dead_letters_topic,
        guarded(hub, DeadLetterFlow(hub, FaustPublisher(app)), NAME),
        NAME,
        size=settings.batch_size,
        within=settings.batch_window_seconds,
    )
