"""Consumes every source's registrations topic and runs each message through the registration flow,
and periodically tries again the held events whose persons' numbers changed outside the flow or
whose answer was never confirmed, and dead-letters those that waited longer than the hold limit.

Each batch goes through its checkpoint (`hub.pipeline.checkpoint`): the flow handles every failure
itself, and a batch is acknowledged only once the register transaction has committed and the
receipts (and any dead letters) are confirmed by the broker.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hub.agents.runner import install_flow
from hub.errors import safe_traceback
from hub.wiring import registration_flow

if TYPE_CHECKING:
    from hub.app import HubApp

log = logging.getLogger(__name__)

NAME = "hub.agents.transfer_registrations"


def install(wired: HubApp) -> None:
    from hub.app import FaustPublisher

    app, settings = wired.app, wired.settings
    flow = registration_flow(wired.hub, FaustPublisher(app))
    install_flow(wired, wired.registrations_topic, flow, NAME)

    @app.timer(interval=settings.hold_check_seconds, name="hub.agents.look_after_held_events")
    async def look_after_held_events() -> None:
        """Held events belong to the worker that owns their partition: only it tries again those
        whose persons changed outside the flow or whose answer is owed, and expires those that
        waited too long."""
        assigned = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
        if not assigned:
            return
        try:
            answered = await flow.retry_held(assigned)
            expired = await flow.expire_held(assigned)
        except Exception as exc:  # the next tick tries again; nothing was released unconfirmed
            log.error("looking after held events failed: %s", safe_traceback(exc))
            return
        if answered:
            log.info("answered %d held event(s) tried again", answered)
        if expired:
            log.info("dead-lettered %d held event(s) that waited too long", expired)
