"""Consumes every source's registrations topic and runs each message through the registration flow.

The flow handles every failure itself and returns only once the register transaction has
committed and the receipt (and any dead letter) is confirmed by the broker.
"""

from hub.agents.runner import flow_agent
from hub.app import FaustPublisher, app, hub, registrations_topic
from hub.pipeline.registrations import RegistrationFlow

transfer_registrations = flow_agent(
    app, registrations_topic, RegistrationFlow(hub, FaustPublisher(app)), "hub.agents.transfer_registrations"
)
