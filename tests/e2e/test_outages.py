"""Outages are quiet and a stop is prompt: a worker whose broker is gone logs each cause about once
per interval, not thousands of times a second, and a worker stops within 15 seconds of SIGTERM or
SIGINT whether its broker is down, its database is down, or it is in the middle of a batch; what it
had not finished is delivered again, and nothing is lost."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.dev.localrun import LocalBroker, WorkerProcess, free_port, start_local_broker, stop_local_broker
from tests.conftest import PostgresServer, make_settings
from tests.e2e.test_delivery_guarantees import _assert_each_written_once_and_answered, _migrated, _stream
from tests.harness import HubHarness

STOP_LIMIT = 15.0


@pytest.fixture(autouse=True)
def _long_timeout(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.timeout(600))


@pytest.fixture
def own_broker() -> Iterator[tuple[LocalBroker, dict[str, str]]]:
    """A broker of this test's own, which it may stop without disturbing the others; and the
    environment that starts and stops it."""
    env = {
        "NIR_KAFKA_PORT": str(free_port(pair=True)),
        "NIR_KAFKA_DATA_DIR": tempfile.mkdtemp(prefix="nir-kafka-"),
    }
    yield start_local_broker(env), env
    stop_local_broker(env)
    shutil.rmtree(env["NIR_KAFKA_DATA_DIR"], ignore_errors=True)


def _stop_within(worker: WorkerProcess, how: signal.Signals) -> float:
    started = time.monotonic()
    worker.process.send_signal(how)
    worker.process.wait(60)
    return time.monotonic() - started


def _lines(worker: WorkerProcess) -> list[str]:
    return worker.log_path.read_text(errors="replace").splitlines()


def test_a_broker_outage_is_logged_about_once_per_interval_and_sigint_still_stops_the_worker(
    own_broker: tuple[LocalBroker, dict[str, str]], sqlite_url: str, tmp_path: Path
) -> None:
    broker, broker_env = own_broker
    settings = dataclasses.replace(make_settings(broker, sqlite_url, tmp_path), log_repeat_seconds=10.0)
    with HubHarness(settings, tmp_path) as harness:
        events = _stream(40)
        harness.publish(events)
        worker = harness.start_worker()
        harness.wait_until(lambda: harness.registration_count() == 40, timeout=120, what="the events")
        before = len(_lines(worker))
        stop_local_broker(broker_env)
        outage = 25.0
        time.sleep(outage)
        during = _lines(worker)[before:]
        assert worker.running
        # Without the repeat filter: about 74 ERROR lines a second from the Kafka client alone.
        assert len(during) <= outage, "\n".join(during[-40:])
        assert any("more like this" in line for line in during), "\n".join(during[-40:])
        took = _stop_within(worker, signal.SIGINT)
        print(f"broker outage of {outage:.0f} s: {len(during)} log lines; stopped {took:.1f} s after SIGINT")
        assert took <= STOP_LIMIT
        assert not any(line.strip() == "^" for line in _lines(worker))  # no traceback a fragment per line


def test_a_database_outage_does_not_keep_sigterm_from_stopping_the_worker_and_nothing_is_lost(
    kafka_broker: LocalBroker, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    with HubHarness(make_settings(kafka_broker, _migrated(postgres_server), tmp_path), tmp_path) as harness:
        events = _stream(400)
        worker = harness.start_worker()
        harness.publish(events[:40])
        harness.wait_until(lambda: harness.registration_count() == 40, timeout=120, what="the first events")
        postgres_server.run("stop")
        try:
            harness.publish(events[40:])
            time.sleep(3)  # the worker is now retrying a batch it holds
            took = _stop_within(worker, signal.SIGTERM)
        finally:
            postgres_server.run("start")
        print(f"stopped {took:.1f} s after SIGTERM with the database down")
        assert took <= STOP_LIMIT
        harness.start_worker(same_port=True)
        _assert_each_written_once_and_answered(harness, events)


def test_a_worker_stopped_in_the_middle_of_batches_stops_promptly_and_loses_nothing(
    harness: HubHarness,
) -> None:
    # Enough events that the worker is still at them when stopped: it takes whole fetches at a
    # time, and a graceful stop finishes the batch in hand.
    events = _stream(12_000)
    harness.publish(events)
    worker = harness.start_worker()
    harness.wait_until(lambda: harness.registration_count() >= 200, timeout=120, what="the worker to be busy")
    took = _stop_within(worker, signal.SIGTERM)
    assert harness.registration_count() < len(events), "the worker finished before it was stopped"
    print(f"stopped {took:.1f} s after SIGTERM mid-stream")
    assert took <= STOP_LIMIT
    harness.start_worker(same_port=True)
    _assert_each_written_once_and_answered(harness, events)
