"""The hub's changes to faust-streaming (hub.streaming)."""

from __future__ import annotations

import logging

import faust
import pytest

from hub.streaming import HubWorker


@pytest.fixture
def root_logger() -> logging.Logger:
    logger = logging.Logger("root-under-test", level=logging.WARNING)
    logger.addHandler(logging.StreamHandler())
    return logger


def test_faust_worker_would_send_every_debug_record_through_the_spinner(root_logger: logging.Logger) -> None:
    # What HubWorker exists to prevent: at WARN, Faust lowers the root logger to DEBUG.
    worker = faust.Worker(faust.App("streaming-test-faust"), loop=None)
    worker.on_setup_root_logger(root_logger, logging.WARNING)
    assert root_logger.level == logging.DEBUG
    assert len(root_logger.handlers) == 2


def test_hub_worker_leaves_the_root_logger_at_the_chosen_level(root_logger: logging.Logger) -> None:
    worker = HubWorker(faust.App("streaming-test-hub"), loop=None)
    worker.on_setup_root_logger(root_logger, logging.WARNING)
    assert root_logger.level == logging.WARNING
    assert len(root_logger.handlers) == 1
    assert worker.spinner is None
    assert not root_logger.isEnabledFor(logging.DEBUG)


def test_the_app_runs_the_hub_worker() -> None:
    from hub.app import app

    assert app.conf.Worker is HubWorker
