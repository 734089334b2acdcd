"""What the hub changes in faust-streaming, and why. Each change is a documented subclass wired
in through Faust's own configuration (`hub.app`), never a patch of Faust's modules.

- `HubWorker` never runs Faust's terminal progress spinner. With a log level of WARN or higher,
  Faust's worker sets the root logger to DEBUG so that every log record turns the spinner; every
  library's debug record (aiokafka logs one for each message it sends) is then built and handled,
  which cost the registrations path about a quarter of its rate. A service logs to files; it has
  no terminal to spin.
"""

from __future__ import annotations

import logging

import faust


class HubWorker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # before Faust's handler, which only spins when there is a spinner
        super().on_setup_root_logger(logger, level)
