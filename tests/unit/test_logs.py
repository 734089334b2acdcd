"""What a log line may contain, and how often: `hub.ops.logs`, through the formatter the worker uses."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from mode.utils.logging import ExtensionFormatter

from hub.ops import logs
from tests.factories import synthetic_person


@pytest.fixture
def logged(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[logging.Logger, io.StringIO, logs.RepeatFilter]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ExtensionFormatter(stream=stream, fmt="%(levelname)s %(message)s"))
    logger = logging.getLogger("hub.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logs.install(logging.DEBUG, repeat_seconds=60.0, handlers=[handler])
    repeats = next(f for f in handler.filters if isinstance(f, logs.RepeatFilter))
    yield logger, stream, repeats
    logger.removeHandler(handler)


def test_a_record_is_written_without_identifiers_or_line_breaks_whatever_its_arguments(logged: tuple) -> None:
    logger, stream, _ = logged
    national_id = synthetic_person().national_id
    logger.warning("value %s from %s, %d%% done", f"{national_id}\nERROR forged line", "0301", 50)
    [line] = stream.getvalue().splitlines()
    assert national_id not in line and "<id:11:" in line
    assert line.startswith("WARNING value <id:11:") and line.endswith("ERROR forged line from 0301, 50% done")


def test_a_traceback_is_one_record_with_its_identifiers_masked(logged: tuple) -> None:
    logger, stream, _ = logged
    national_id = synthetic_person().national_id
    try:
        raise ValueError(f"bad person {national_id}")
    except ValueError:
        logger.exception("failed")
    text = stream.getvalue()
    assert text.startswith("ERROR failed\nTraceback") and "ValueError: bad person <id:11:" in text
    assert national_id not in text


def test_the_same_message_passes_once_per_interval_and_then_says_how_many_were_held_back(
    logged: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream, _ = logged
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    for attempt in range(500):
        logger.error("Unable connect to node with id %s: %s", 1, f"attempt {attempt}")
        logger.error("Unable to update metadata from %s", [1])
    assert len(stream.getvalue().splitlines()) == 2
    now[0] += 61
    logger.error("Unable connect to node with id %s: %s", 1, "again")
    last = stream.getvalue().splitlines()[-1]
    assert last == "ERROR Unable connect to node with id 1: again [and 499 more like this in the last 61 s]"
    for _ in range(2):  # the last words of a process that ends are never held back
        logger.critical("unhandled failure at %s; exiting", "here")
    assert stream.getvalue().splitlines()[-2:] == ["CRITICAL unhandled failure at here; exiting"] * 2


def test_the_kafka_clients_loggers_never_go_below_info() -> None:
    logs.install(logging.DEBUG, repeat_seconds=10.0, handlers=[])
    assert logging.getLogger("aiokafka").getEffectiveLevel() == logging.INFO
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)


def test_a_record_passes_every_handler_alike_when_the_root_logger_has_several() -> None:
    streams = [io.StringIO(), io.StringIO()]
    handlers = [logging.StreamHandler(stream) for stream in streams]
    logger = logging.getLogger("hub.test_logs.two")
    logger.propagate = False
    for handler in handlers:
        logger.addHandler(handler)
    logs.install(logging.INFO, repeat_seconds=60.0, handlers=handlers)
    national_id = synthetic_person().national_id
    try:
        for _ in range(3):
            logger.warning("person %s", national_id)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    outputs = [stream.getvalue().splitlines() for stream in streams]
    assert outputs[0] == outputs[1] and len(outputs[0]) == 1 and national_id not in outputs[0][0]
