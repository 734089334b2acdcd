"""Turns every dead letter into a case ticket that support staff can inspect, fix and replay."""

from hub.agents.runner import flow_agent, guarded
from hub.app import FaustPublisher, app, dead_letters_topic, hub, settings
from hub.support.dead_letters import DeadLetterFlow

open_case_tickets = flow_agent(
    app,
    dead_letters_topic,
    guarded(hub, DeadLetterFlow(hub, FaustPublisher(app)), "hub.agents.open_case_tickets"),
    "hub.agents.open_case_tickets",
    size=settings.batch_size,
    within=settings.batch_window_seconds,
)
