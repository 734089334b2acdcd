"""The last line of defence between a flow and Faust's acknowledgement.

The flows turn every failure into an outcome. Should one still raise (a fault in the failure
path itself), returning to Faust would acknowledge the event and a graceful shutdown would commit
its offset: the event would be lost. So the process ends at once instead, without committing;
the supervisor restarts it and the event is delivered again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Protocol, TypeVar

from hub.pipeline.flow import Message

T_co = TypeVar("T_co", covariant=True)
log = logging.getLogger(__name__)

EXIT_UNHANDLED = 70  # EX_SOFTWARE


class Processes(Protocol[T_co]):
    async def process(self, message: Message) -> T_co: ...


async def process_or_exit(flow: Processes[T_co], message: Message) -> T_co:
    try:
        return await flow.process(message)
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.critical(
            "unhandled failure at %s; exiting without committing its offset", message.origin, exc_info=True
        )
        logging.shutdown()
        os._exit(EXIT_UNHANDLED)
