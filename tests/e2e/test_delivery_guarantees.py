"""Nothing is lost and nothing is written twice: crashes, rebalances and database outages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hub.dev.localrun import LocalBroker
from tests.conftest import PostgresServer, make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness


def _stream(count: int) -> list[dict]:
    persons = [synthetic_person() for _ in range(count // 4)]
    events = []
    for i in range(count):
        person = persons[i % len(persons)]
        if i % 2:
            events.append(
                event(
                    person, "ASYLUM_SEEKER_TRAINING_HOURS", source="vestland-fagsystem", municipality="4601"
                )
            )
        else:
            events.append(event(person, "ASYLUM_SEEKER_TRAINING_HOURS"))
    return events


def _assert_each_written_once_and_answered(harness: HubHarness, events: list[dict]) -> None:
    ids = [e["eventId"] for e in events]
    harness.wait_until(
        lambda: harness.registration_count() >= len(ids), timeout=240, what="every event in the register"
    )
    rows = harness.registrations()
    assert Counter(r.event_id for r in rows) == Counter(ids)  # each once, none missing, none extra
    records = harness.read_outputs(
        until=lambda rs: {str(r["eventId"]) for r in harness.receipts(rs)} >= set(ids), timeout=120
    )
    receipts = harness.receipts(records)
    assert {str(r["eventId"]) for r in receipts} == set(ids)
    # A redelivered message repeats its original outcome: nothing is reported as a duplicate or
    # rejected, and nothing was dead-lettered.
    assert {r["outcome"] for r in receipts} == {"ACCEPTED"}
    assert harness.dead_letters(records) == []


def test_a_worker_killed_with_sigkill_mid_stream_loses_nothing_and_writes_nothing_twice(
    harness: HubHarness,
) -> None:
    events = _stream(4000)  # a worker can write 700 in one 0.2 s poll of the wait: keep a margin
    harness.publish(events)
    first = harness.start_worker()
    harness.wait_until(lambda: harness.registration_count() >= 150, timeout=120, what="the worker to be busy")
    first.kill()
    written_at_crash = harness.registration_count()
    assert written_at_crash < len(events), "the worker finished before it was killed; use a longer stream"

    harness.start_worker()
    _assert_each_written_once_and_answered(harness, events)


def test_two_workers_in_one_group_through_rebalances_write_each_event_once(harness: HubHarness) -> None:
    events = _stream(6000)  # enough that the second rebalance still finds work in flight
    harness.publish(events)
    first = harness.start_worker()
    harness.wait_until(
        lambda: harness.registration_count() >= 100, timeout=120, what="the first worker to be busy"
    )
    harness.start_worker()  # joins the group: partitions move while events are in flight
    harness.wait_until(
        lambda: harness.registration_count() >= 500, timeout=180, what="both workers to be busy"
    )
    first.kill()  # and move again, without a clean hand-over
    assert harness.registration_count() < len(events), "all done before the second rebalance"
    _assert_each_written_once_and_answered(harness, events)


def test_a_database_outage_is_waited_out_not_dead_lettered(
    kafka_broker: LocalBroker, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    harness = HubHarness(make_settings(kafka_broker, _migrated(postgres_server), tmp_path), tmp_path)
    try:
        before = _stream(40)
        harness.start_worker()
        harness.publish(before)
        harness.wait_until(lambda: harness.registration_count() == 40, timeout=120, what="the first events")
        postgres_server.run("stop")
        try:
            during = _stream(40)
            harness.publish(during)
            records = harness.read_outputs(until=lambda rs: len(rs) > 40, timeout=8)
            assert len(harness.receipts(records)) == 40  # nothing more was answered while down
            assert harness.dead_letters(records) == []
            assert harness.workers[0].running
        finally:
            postgres_server.run("start")
        _assert_each_written_once_and_answered(harness, before + during)
        assert "NIR-REGISTER-UNAVAILABLE" in harness.worker_logs()
    finally:
        harness.stop_all()


def _migrated(server: PostgresServer) -> str:
    from hub.register.database import make_engine
    from hub.register.migrate import upgrade

    url = server.create_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def _long_timeout(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.timeout(600))
