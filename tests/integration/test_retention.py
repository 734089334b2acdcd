"""Retention (`hub.register.retention`, `hub retention run`, the topics' `retention.ms`): a
register with data of different ages, on both databases; concurrent runs; the real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.config import Settings
from hub.dev.localrun import LocalBroker
from hub.errors import ConfigurationError
from hub.register.database import make_engine, make_session_factory
from hub.register.models import (
    AccessLogEntry,
    AuditEntry,
    Base,
    CaseTicket,
    Person,
    PersonIdentifier,
    PersonMerge,
    SignInAttempt,
    TicketEdit,
    TicketOutcome,
    User,
    UserSession,
)
from hub.register.retention import Outcome, policy, run
from hub.register.unit_of_work import UnitOfWork
from tests.conftest import make_settings
from tests.harness import HubHarness, hub_command

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
SETTINGS = Settings()  # the defaults: tickets 730 days, audit 1826, sign-in 7, sessions 1


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def units(database_url: str) -> Iterator[Callable[[], UnitOfWork]]:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    yield lambda: UnitOfWork(factory)
    engine.dispose()


def ticket(status: str, closed_days_ago: float | None, **values: Any) -> CaseTicket:
    return CaseTicket(
        status=status,
        kind="dead_letter",
        event_id=values.pop("event_id", None),
        error_code="NIR-LIFE-001",
        error_message="the end comes before the start",
        error_message_nb="slutten kommer før starten",
        source_system="oslo-fagsystem",
        municipality="0301",
        duf_number="201900012345",
        national_id="01017012345",
        original_topic="nir.source.oslo-fagsystem.registrations",
        original_value=b"the event as it arrived",
        description="a note that names the person",
        resolution_note="fixed in the fagsystem" if closed_days_ago is not None else None,
        first_failed_at=days_ago(3000),
        last_failed_at=days_ago(3000),
        closed_at=days_ago(closed_days_ago) if closed_days_ago is not None else None,
        **values,
    )


def seed(session: Session) -> dict[str, int]:
    """A register with one row of each kind on each side of its limit; the ids of the tickets."""
    tickets = {
        "old resolved": ticket("resolved", 800, event_id="e-old-resolved"),
        "old discarded": ticket("discarded", 731, event_id="e-old-discarded"),
        "old merged": ticket("resolved", 1000, event_id="e-old-merged"),
        "recent resolved": ticket("resolved", 100, event_id="e-recent"),
        "old open": ticket("open", None, event_id="e-open"),
        "old replayed": ticket("replayed", None, event_id="e-replayed"),
    }
    session.add_all(tickets.values())
    session.flush()
    for each in tickets.values():
        session.add(
            TicketOutcome(
                ticket_id=each.id, at=each.first_failed_at, kind="failed", error_message="quotes it"
            )
        )
        session.add(
            TicketEdit(ticket_id=each.id, edited_at=NOW, edited_by="kari", event={"x": 1}, value=b"edited")
        )
    person = Person(created_at=days_ago(4000))
    session.add(person)
    session.flush()
    session.add(
        PersonIdentifier(
            person_id=person.id,
            kind="duf",
            value="201900012345",
            first_seen_at=days_ago(4000),
            number_kind="duf",
        )
    )
    session.add(
        PersonMerge(
            keeper_id=person.id,
            other_id=person.id + 1000,
            other_created_at=days_ago(4000),
            marks={},
            merged_at=days_ago(1000),
            merged_by="kari",
            reason="the same person",
            ticket_id=tickets["old merged"].id,
        )
    )
    for age in (2000, 1827, 1825, 10):
        session.add(AuditEntry(at=days_ago(age), username="kari", action="view_ticket"))
    for age in (2000, 1827, 1825, 10):  # who read a person's data: by the same five years
        session.add(
            AccessLogEntry(
                at=days_ago(age), actor="kari", channel="desk", action="view_ticket", person_id=person.id
            )
        )
    for age in (30, 7.5, 6, 1):
        session.add(SignInAttempt(at=days_ago(age), username="kari", client_address="10.0.0.1"))
    user = User(username="kari", password_hash="x", role="imdi_support", created_at=days_ago(4000))
    session.add(user)
    session.flush()
    for expires in (-30, -2, -0.5, 1):  # days from now: expired a month, two days, hours ago; not yet
        session.add(
            UserSession(token_hash=f"h{expires}", user_id=user.id, expires_at=NOW + dt.timedelta(expires))
        )
    return {name: each.id for name, each in tickets.items()}


def counts(units: Callable[[], UnitOfWork]) -> dict[str, int]:
    with units() as uow:
        return {
            table.__tablename__: uow.session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.__subclasses__()
        }


def by_name(outcomes: list[Outcome]) -> dict[tuple[str, str], int | None]:
    return {(o.kind.name, o.kind.action): o.count for o in outcomes}


EXPECTED = {
    ("closed case tickets", "deleted"): 2,
    ("closed case tickets a merge record names", "anonymised"): 1,
    ("audit-log entries", "deleted"): 2,
    ("access-log entries", "deleted"): 2,
    ("sign-in attempts", "deleted"): 2,
    ("expired sessions", "deleted"): 2,
}


def test_a_dry_run_counts_what_is_past_its_time_and_changes_nothing(units: Callable[[], UnitOfWork]) -> None:
    with units() as uow:
        seed(uow.session)
        uow.commit()
    before = counts(units)

    outcomes = run(units, policy(SETTINGS), NOW, apply=False, batch_size=1)

    assert by_name(outcomes) == EXPECTED
    assert counts(units) == before
    with units() as uow:
        merged = uow.session.scalar(select(CaseTicket).where(CaseTicket.event_id == "e-old-merged"))
        assert merged is not None and merged.national_id == "01017012345" and merged.anonymised_at is None
    assert outcomes[0].line(applied=False) == (
        "closed case tickets (NIR_RETENTION_CLOSED_TICKET_DAYS=730, older than 730 days): 2 would be deleted"
    )


def test_applying_the_policy_deletes_or_anonymises_what_is_past_its_time_and_keeps_the_rest(
    units: Callable[[], UnitOfWork],
) -> None:
    with units() as uow:
        ids = seed(uow.session)
        uow.commit()
    before = counts(units)

    outcomes = run(units, policy(SETTINGS), NOW, apply=True, batch_size=1)

    assert by_name(outcomes) == EXPECTED
    after = counts(units)
    with units() as uow:
        session = uow.session
        kept = set(session.scalars(select(CaseTicket.event_id)))
        assert kept == {"e-old-merged", "e-recent", "e-open", "e-replayed"}
        # The two deleted tickets went with their outcomes and edits; the merged one lost its edit.
        assert after["ticket_outcomes"] == before["ticket_outcomes"] - 2
        assert after["ticket_edits"] == before["ticket_edits"] - 3
        merged = session.get_one(CaseTicket, ids["old merged"])
        personal = (
            merged.duf_number,
            merged.national_id,
            merged.original_value,
            merged.original_key,
            merged.error_message,
            merged.error_message_nb,
            merged.description,
            merged.resolution_note,
        )
        assert personal == (None,) * 8
        assert merged.anonymised_at is not None and merged.anonymised_at.replace(tzinfo=dt.UTC) == NOW
        assert (merged.status, merged.error_code, merged.source_system, merged.municipality) == (
            "resolved",
            "NIR-LIFE-001",
            "oslo-fagsystem",
            "0301",
        )
        outcome = session.scalar(select(TicketOutcome).where(TicketOutcome.ticket_id == merged.id))
        assert outcome is not None and outcome.error_message is None and outcome.kind == "failed"
        recent = session.get_one(CaseTicket, ids["recent resolved"])
        assert recent.national_id == "01017012345" and recent.original_value == b"the event as it arrived"
        ages = sorted(
            round((NOW - at.replace(tzinfo=dt.UTC)).days) for at in session.scalars(select(AuditEntry.at))
        )
        assert ages == [10, 1825]
        read_ages = sorted(
            round((NOW - at.replace(tzinfo=dt.UTC)).days) for at in session.scalars(select(AccessLogEntry.at))
        )
        assert read_ages == [10, 1825]
        assert len(session.scalars(select(SignInAttempt.id)).all()) == 2
        expiries = sorted(session.scalars(select(UserSession.token_hash)))
        assert expiries == ["h-0.5", "h1"]
    # The register's facts are kept whatever their age.
    for table in ("persons", "person_identifiers", "person_merges", "users"):
        assert after[table] == before[table]

    again = run(units, policy(SETTINGS), NOW, apply=True, batch_size=1)
    assert set(by_name(again).values()) == {0}  # nothing counted twice, the anonymised ticket neither


def test_a_kind_with_zero_days_is_kept_indefinitely(units: Callable[[], UnitOfWork]) -> None:
    with units() as uow:
        seed(uow.session)
        uow.commit()
    forever = dataclasses.replace(SETTINGS, retention_audit_days=0)

    outcomes = by_name(run(units, policy(forever), NOW, apply=True, batch_size=10))

    assert outcomes[("audit-log entries", "deleted")] is None
    assert counts(units)["audit_log"] == 4


def test_two_concurrent_runs_do_not_conflict_and_together_delete_each_row_once(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with UnitOfWork(factory) as uow:
        for _ in range(240):
            uow.session.add(AuditEntry(at=days_ago(2000), username="kari", action="view_ticket"))
        for n in range(40):
            uow.session.add(ticket("resolved", 800, event_id=f"e-{n}"))
            uow.session.add(SignInAttempt(at=days_ago(100), username="kari", client_address="10.0.0.1"))
        uow.commit()
    engine.dispose()

    start = threading.Barrier(2)
    results: list[list[Outcome]] = []
    errors: list[BaseException] = []

    def cron() -> None:
        # Each run with its own engine and connections, as on another machine.
        engine = make_engine(database_url)
        factory = make_session_factory(engine)
        try:
            start.wait()
            results.append(run(lambda: UnitOfWork(factory), policy(SETTINGS), NOW, apply=True, batch_size=7))
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            engine.dispose()

    runs = [threading.Thread(target=cron) for _ in range(2)]
    for each in runs:
        each.start()
    for each in runs:
        each.join(timeout=120)

    assert errors == [] and len(results) == 2
    together: dict[tuple[str, str], int] = {}
    for outcomes in results:
        for key, count in by_name(outcomes).items():
            together[key] = together.get(key, 0) + (count or 0)
    assert together[("audit-log entries", "deleted")] == 240
    assert together[("closed case tickets", "deleted")] == 40
    assert together[("sign-in attempts", "deleted")] == 40
    left = counts(lambda: UnitOfWork(make_session_factory(make_engine(database_url))))
    assert (left["audit_log"], left["case_tickets"], left["sign_in_attempts"]) == (0, 0, 0)


def test_the_register_facts_cannot_be_given_a_retention_while_the_regulations_period_is_unconfirmed() -> None:
    with pytest.raises(ConfigurationError, match="NIR_RETENTION_REGISTER_DAYS must be 0"):
        Settings.from_env({"NIR_RETENTION_REGISTER_DAYS": "3650"})
    with pytest.raises(ConfigurationError, match="NIR_RETENTION_AUDIT_DAYS must be 0"):
        Settings.from_env({"NIR_RETENTION_AUDIT_DAYS": "-1"})


def test_hub_retention_run_is_a_dry_run_unless_told_to_apply(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with UnitOfWork(make_session_factory(engine)) as uow:
        uow.session.add(AuditEntry(at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), username="kari", action="x"))
        uow.commit()
    settings = dataclasses.replace(Settings(), database_url=sqlite_url)

    dry = hub_command(settings, "retention", "run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing changed" in dry.stdout
    assert (
        "audit-log entries (NIR_RETENTION_AUDIT_DAYS=1826, older than 1826 days): 1 would be deleted"
        in dry.stdout
    )
    assert "the register's facts" in dry.stdout and "kept indefinitely" in dry.stdout
    assert "topic nir.source.<source>.registrations: the broker keeps indefinitely" in dry.stdout

    applied = hub_command(settings, "retention", "run", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert (
        "audit-log entries (NIR_RETENTION_AUDIT_DAYS=1826, older than 1826 days): 1 deleted" in applied.stdout
    )
    assert "retention applied: 0 closed case tickets deleted;" in applied.stderr  # for cron's log
    assert "; 1 audit-log entries deleted;" in applied.stderr
    with UnitOfWork(make_session_factory(engine)) as uow:
        assert uow.session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    engine.dispose()


@pytest.fixture
def harness(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    settings = dataclasses.replace(
        make_settings(kafka_broker, sqlite_url, tmp_path),
        retention_dead_letter_days=3,
        retention_receipts_days=5,
    )
    with HubHarness(settings, tmp_path) as harness:
        yield harness


def topic_configs(harness: HubHarness, topics: list[str]) -> dict[str, dict[str, str]]:
    async def describe() -> dict[str, dict[str, str]]:
        admin = AIOKafkaAdminClient(**harness.admin.kafka.aiokafka())
        await admin.start()
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t, None) for t in topics]
            )
        finally:
            await admin.close()
        return {
            topic: {entry[0]: entry[1] for entry in entries}
            for response in responses
            for _code, _message, _type, topic, entries in response.resources
        }

    return asyncio.run(describe())


def test_hub_topics_ensure_sets_each_topics_retention_from_the_policy_and_reports_one_that_differs(
    harness: HubHarness,
) -> None:
    from hub.kafka.admin import config_drift
    from hub.kafka.topics import required_topics

    result = hub_command(harness.admin, "topics", "ensure")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    names = harness.hub.names
    day = 24 * 60 * 60 * 1000
    configs = topic_configs(
        harness,
        [
            names.dead_letters,
            names.registrations("oslo-fagsystem"),
            names.receipts("oslo-fagsystem"),
            names.address_changes,
        ],
    )
    assert configs[names.dead_letters]["retention.ms"] == str(3 * day)
    assert configs[names.registrations("oslo-fagsystem")]["retention.ms"] == "-1"
    assert configs[names.receipts("oslo-fagsystem")]["retention.ms"] == str(5 * day)
    assert configs[names.address_changes]["retention.ms"] == str(30 * day)  # the default

    # A backup interval longer than a topic the hub reads keeps its messages: warned of, as a
    # restore from such a backup could not apply what the topic no longer holds.
    rarely = hub_command(dataclasses.replace(harness.admin, backup_interval_hours=100), "topics", "ensure")
    assert rarely.returncode == 0, rarely.stderr
    warnings = [line for line in rarely.stderr.splitlines() if "backup interval" in line]
    assert warnings == [
        f"warning: {names.dead_letters} keeps messages for 72 hours, less than the backup interval "
        "(NIR_BACKUP_INTERVAL_HOURS=100): after a restore, what it no longer holds cannot be applied "
        "again (docs/operations/backup-and-recovery.md)"
    ]

    # A topic made before the policy (the broker's default retention) is reported, with its fix.
    by_hand = f"{harness.settings.topic_prefix}x"

    async def create() -> None:
        admin = AIOKafkaAdminClient(**harness.admin.kafka.aiokafka())
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        names.dead_letters.replace(harness.settings.topic_prefix, by_hand),
                        1,
                        1,
                        topic_configs={"max.message.bytes": "123456"},  # the operator's own
                    )
                ]
            )
        finally:
            await admin.close()

    asyncio.run(create())
    other = dataclasses.replace(harness.admin, topic_prefix=by_hand)
    specs = [s for s in required_topics(other, harness.hub.registry) if s.name.endswith("dead-letters")]
    [drift] = asyncio.run(config_drift(harness.admin.kafka, specs))
    assert (drift.key, drift.wanted) == ("retention.ms", str(3 * day))
    assert drift.actual != drift.wanted
    assert f"--add-config retention.ms={3 * day}" in drift.fix("b:9093")
    # `hub topics ensure` applies the policy to it too, and only the policy: incrementally.
    applied = hub_command(other, "topics", "ensure")
    assert applied.returncode == 0, applied.stderr
    assert f"{drift.topic}  retention.ms={3 * day} set (was {drift.actual})" in applied.stdout
    [after] = topic_configs(harness, [drift.topic]).values()
    assert (after["retention.ms"], after["max.message.bytes"]) == (str(3 * day), "123456")
    assert asyncio.run(config_drift(harness.admin.kafka, specs)) == []
