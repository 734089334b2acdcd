"""One way to run a long-lived service of the hub (the gateway, the lag exporter, the Folkeregister
connector): settings from the environment, logging as a service logs (`hub.ops.logs`), one line
saying what runs where, then the service until SIGTERM or SIGINT asks it to stop. The masks are
keyed before any command runs (`hub.cli`'s callback), so not again here. The worker is Faust's
own and starts through Faust's command line (`hub.cli.run`), which does the same for it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from hub.config import Settings
from hub.ops import logs

log = logging.getLogger("hub.service")

Serve = Callable[[Settings, asyncio.Event], Awaitable[object]]


def run_service(serve: Serve, describe: Callable[[Settings], str], settings: Settings | None = None) -> None:
    """Run `serve(settings, stop)` until SIGTERM or SIGINT sets `stop`; `describe` says what runs."""
    settings = settings or Settings.from_env()
    logs.for_service(settings.log_repeat_seconds)
    log.info("%s", describe(settings))

    async def until_stopped() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(until_stopped())
