"""`hub backup` and `hub restore` on both databases, without a broker: what a register proves it
has done, a copy that restores to the same register, and what restore refuses."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.bootstrap import Hub
from hub.dev.localrun import LocalBroker, local_admin
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.ops.recovery import Manifest, complete_up_to, manifest_path
from hub.register.backup import backup, has_data, positions, restore
from hub.register.database import make_engine, make_session_factory
from hub.register.migrate import head_revision, upgrade
from hub.register.models import CaseTicket, RegistrationRecord, UnfinishedWork
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.wiring import dead_letter_flow, registration_flow
from tests.conftest import PostgresServer, make_settings, pipeline_hub
from tests.factories import event, synthetic_person
from tests.fakes import RecordingPublisher
from tests.harness import hub_command

TOPIC = "nir.source.oslo-fagsystem.registrations"
DEAD_LETTERS = "nir.dead-letters"


def _decide(hub: Hub, publisher: RecordingPublisher, e: dict, partition: int, offset: int) -> None:  # type: ignore[type-arg]
    """One registration through the flow, and its dead letters (if any) through the ticket flow."""
    before = len(publisher.on(DEAD_LETTERS))
    value = catalog().encode(REGISTRATION, from_json(e))
    asyncio.run(
        registration_flow(hub, publisher).process(Message(Origin(TOPIC, partition, offset), b"k", value))
    )
    for n, (_, key, letter, headers) in enumerate(publisher.on(DEAD_LETTERS)[before:], start=before):
        raw = tuple((k, v.encode()) for k, v in headers.items())
        asyncio.run(
            dead_letter_flow(hub, publisher).process(Message(Origin(DEAD_LETTERS, 2, n), key, letter, raw))
        )


def _filled(hub: Hub) -> None:
    publisher = RecordingPublisher()
    _decide(hub, publisher, event(synthetic_person()), 0, 4)
    _decide(hub, publisher, event(synthetic_person()), 0, 9)
    _decide(hub, publisher, event(synthetic_person(), municipality="9999"), 1, 7)  # rejected: a ticket
    _decide(hub, publisher, event(synthetic_person()), 1, 3)


def _another_register(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/restored/register.sqlite3"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


def test_a_register_proves_each_partition_done_up_to_the_highest_offset_it_names_and_no_further_than_a_mark(
    database_url: str,
) -> None:
    hub = pipeline_hub(database_url)
    _filled(hub)
    with make_session_factory(hub.engine)() as session:
        assert positions(session, DEAD_LETTERS) == {(TOPIC, 0): 10, (TOPIC, 1): 8, (DEAD_LETTERS, 2): 1}
        # A batch in flight on partition 0 from offset 6 (its outcomes may be in the register, its
        # receipts not yet sent): decided again from 6.
        session.add(
            UnfinishedWork(
                flow="transfer_registrations",
                topic=TOPIC,
                partition=0,
                first_offset=6,
                last_offset=12,
                attempts=1,
                began_at=dt.datetime.now(dt.UTC),
            )
        )
        session.commit()
        assert positions(session, DEAD_LETTERS)[(TOPIC, 0)] == 6


def test_the_manifest_takes_the_higher_of_the_group_s_committed_offset_and_the_register_s_proof() -> None:
    places = [(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)]
    committed = {(TOPIC, 0): 12, (TOPIC, 1): 2}
    proven = {(TOPIC, 0): 10, (TOPIC, 1): 8}
    assert complete_up_to(places, committed, proven) == {(TOPIC, 0): 12, (TOPIC, 1): 8, (TOPIC, 2): 0}


def test_a_backup_restores_to_the_same_register_and_says_what_its_snapshot_proves(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    hub = pipeline_hub(database_url)
    _filled(hub)
    snapshot = backup(hub.engine, tmp_path / "register.backup", DEAD_LETTERS)
    assert snapshot.revision == head_revision()
    assert snapshot.positions == {(TOPIC, 0): 10, (TOPIC, 1): 8, (DEAD_LETTERS, 2): 1}
    assert not (tmp_path / "register.backup.partial").exists()

    other = make_engine(_another_register(database_url, tmp_path, request))
    assert not has_data(other)
    restore(other, tmp_path / "register.backup")
    assert has_data(other)
    with make_session_factory(hub.engine)() as live, other.connect() as restored:
        for model in (RegistrationRecord, CaseTicket):
            assert list(restored.execute(select(model.__table__))) == list(
                live.execute(select(model.__table__))
            )
    other.dispose()


def test_restore_refuses_a_register_with_data_and_a_backup_of_a_revision_it_does_not_know(
    sqlite_url: str, tmp_path: Path
) -> None:
    hub = pipeline_hub(sqlite_url)
    _filled(hub)
    file = tmp_path / "register.backup"
    backup(hub.engine, file, DEAD_LETTERS)
    manifest = Manifest(
        head_revision(), dt.datetime.now(dt.UTC), "sqlite", hub.settings.app_id, {(TOPIC, 0): 10}
    )
    manifest_path(file).write_text(manifest.to_json())

    over_data = hub_command(hub.settings, "restore", str(file))
    assert over_data.returncode == 2 and "NIR-RECOVERY-REFUSED" in over_data.stderr
    assert "--force" in over_data.stderr

    fresh = dataclasses.replace(hub.settings, database_url=f"sqlite:///{tmp_path}/new/register.sqlite3")
    future = json.loads(manifest.to_json()) | {"revision": "9999_from_a_newer_hub"}
    manifest_path(file).write_text(json.dumps(future))
    unknown = hub_command(fresh, "restore", str(file))
    assert unknown.returncode == 2 and "9999_from_a_newer_hub" in unknown.stderr, unknown.stderr

    manifest_path(file).write_text(manifest.to_json())
    restored = hub_command(fresh, "restore", str(file))
    assert restored.returncode == 0, restored.stderr
    assert "hub recover --manifest" in restored.stdout
    forced = hub_command(hub.settings, "restore", "--force", str(file))
    assert forced.returncode == 0, forced.stderr


def test_an_empty_migrated_register_holds_no_data(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    assert not has_data(engine)


def test_hub_backup_into_a_directory_names_each_by_when_it_was_taken_and_keeps_the_newest(
    kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path
) -> None:
    """What compose's scheduled backup runs (with --repeat): each backup beside its manifest,
    the oldest removed with theirs once more than --keep are there."""
    _filled(pipeline_hub(sqlite_url))
    settings = local_admin(make_settings(kafka_broker, sqlite_url, tmp_path))  # may read the group
    into = tmp_path / "backups"
    taken = []
    for _ in range(3):
        done = hub_command(settings, "backup", "--into", str(into), "--keep", "2")
        assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
        taken.append(Path(done.stdout.split()[1]))
    assert [p.parent for p in taken] == [into] * 3 and taken == sorted(taken) and len(set(taken)) == 3
    assert f"removed {taken[0]} (more than 2 kept)" in done.stdout
    assert sorted(into.iterdir()) == sorted([*taken[1:], *(manifest_path(p) for p in taken[1:])])
    assert Manifest.read(manifest_path(taken[2])).revision == head_revision()
    for wrong in (["--repeat", "--out", str(tmp_path / "x")], ["--out", "a", "--into", "b"], []):
        refused = hub_command(settings, "backup", *wrong)
        assert refused.returncode == 2 and ("--into" in refused.stderr), refused.stderr
