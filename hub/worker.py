"""The hub's Faust worker (`hub worker`): what it changes in Faust's, and why (`hub.app.create_app` makes
it the app's worker class).

- `HubWorker` never runs Faust's terminal progress spinner. With a log level of WARN or higher,
  Faust's worker sets the root logger to DEBUG so that every log record turns the spinner; every
  library's debug record (aiokafka logs one for each message it sends) is then built and handled,
  which cost the registrations path about a quarter of its rate. A service logs to files; it has
  no terminal to spin. It also puts `hub.ops.logs`'s filters on the log handlers, logs a thread that
  dies as one record, and ends the process when a stop takes longer than `NIR_SHUTDOWN_SECONDS`
  (Faust waits a minute for a consumer thread that died while the broker was down, and without
  end for a batch that the database keeps from finishing). Once started, it freezes the objects
  of its start-up (`gc.freeze`): Python's full collection otherwise walked all of them, some
  170,000 modules, classes and functions that never become garbage, every few seconds under
  load, stopping the worker for 100 to 150 ms each time, the largest part of the p99 latency.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading

import faust

from hub.errors import safe_traceback
from hub.ops import logs

log = logging.getLogger(__name__)


class HubWorker(faust.Worker):
    # How often one log message may repeat (`hub.ops.logs`), and how long a stop may take: the
    # app's settings (`hub.app.create_app`), these for an app without them.
    log_repeat_seconds: float = 10.0
    shutdown_seconds: float = 10.0

    def _setting(self, name: str) -> float:
        settings = getattr(self.app, "hub_settings", None)
        return float(getattr(settings, name) if settings is not None else getattr(self, name))

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # before Faust's handler, which only spins when there is a spinner
        super().on_setup_root_logger(logger, level)
        logs.install(level, repeat_seconds=self._setting("log_repeat_seconds"))
        threading.excepthook = _log_thread_death

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        gc.freeze()

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self._signal_stop_time is None:
            _arm_shutdown_deadline(self._setting("shutdown_seconds"), signal)
        super()._schedule_shutdown(signal)


def _arm_shutdown_deadline(seconds: float, received: signal.Signals) -> None:
    """End the process if a stop takes longer than `seconds`.

    With the broker down, aiokafka's consumer thread dies of a cancelled fetch while stopping and
    Faust waits a minute for it; with the database down, Faust waits without end for the batch
    in hand to be acknowledged. Ending here loses nothing: an event is acknowledged, and its
    offset committed, only once its outcome is committed and confirmed, so whatever was unfinished
    is delivered again to the next worker. A thread, because the event loop may be what is stuck.
    """

    def expire() -> None:
        log.warning(
            "stopping took longer than %.0f s after %s; exiting without committing unfinished work",
            seconds,
            received.name,
        )
        logging.shutdown()
        os._exit(128 + received.value)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def _log_thread_death(args: threading.ExceptHookArgs) -> None:
    """A thread that dies of an exception is one log record, with where, not what (its message
    can carry data), instead of a traceback written to stderr a fragment at a time."""
    if args.exc_value is not None:
        log.error(
            "thread %s ended by %s", args.thread.name if args.thread else "?", safe_traceback(args.exc_value)
        )
