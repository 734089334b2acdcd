"""The register on SQLite and PostgreSQL: migrations, persons and their identifiers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from hub.config import Settings
from hub.domain.events import AddressChange, Origin
from hub.domain.identifiers import make_national_id
from hub.domain.transfer import Message
from hub.errors import RegisterNotMigrated
from hub.register.addresses import pending_lookups, record_address_change
from hub.register.database import make_engine, make_session_factory
from hub.register.identity import IdentityRepository
from hub.register.migrate import current_revision, head_revision, require_current, upgrade
from hub.register.models import Base, Person, PersonEvent, PersonIdentifier, PersonMerge
from hub.register.people import describe_person
from hub.register.person_events import record_person_event
from hub.register.repository import RegisterRepository, find_person_id, person_state
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from hub.wiring import registration_flow
from tests.conftest import pipeline_hub
from tests.factories import event, synthetic_person
from tests.fakes import RecordingPublisher
from tests.harness import hub_command

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
# One synthetic person born 1991-03-14: first a D-number, later a fødselsnummer.
D_NUMBER = make_national_id(dt.date(1991, 3, 14), 123, d_number=True) or ""
FODSELSNUMMER = "14839140240"


def person_event(
    sequence: int, event_type: str, national_id: str, *former: str, on: dt.date | None = None
) -> AddressChange:
    """A person event from Folkeregisteret's feed, as the address flow decodes it."""
    return AddressChange(
        sequence_number=sequence,
        event_type=event_type,
        national_id=national_id,
        recorded_at=NOW,
        moved_on=None,
        municipality=None,
        protection="UNKNOWN",
        address_kind="UNKNOWN",
        address_line=None,
        postal_code=None,
        postal_place=None,
        former_national_ids=former,
        event_date=on,
    )


def test_the_migrations_create_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_a_register_that_is_not_migrated_is_refused_with_the_command_to_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path}/empty.sqlite3")
    with pytest.raises(RegisterNotMigrated, match="hub db upgrade"):
        require_current(engine)
    upgrade(engine)
    require_current(engine)


def test_a_person_known_first_by_duf_number_then_by_fodselsnummer_stays_one_person(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        first = RegisterRepository(s).person_with(None, "201812345604", NOW)
        second = RegisterRepository(s).person_with("14839140240", "201812345604", NOW)
        third = RegisterRepository(s).person_with("14839140240", None, NOW)
        s.commit()
        assert first == second == third
        kinds = sorted(s.scalars(select(PersonIdentifier.kind).where(PersonIdentifier.person_id == first)))
        assert kinds == ["duf", "national_id"]


def test_two_records_are_joined_only_on_folkeregisterets_word_never_by_numbers_named_together(
    database_url: str,
) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        by_duf = RegisterRepository(s).person_with(None, "201812345604", NOW)
        by_fnr = RegisterRepository(s).person_with("14839140240", None, NOW)
        with pytest.raises(ValueError, match="not joined without proof"):
            RegisterRepository(s).person_with("14839140240", "201812345604", NOW)
        d_number = RegisterRepository(s).person_with(D_NUMBER, None, NOW)
        assert record_person_event(s, person_event(9, "IDENTITY_CHANGED", "14839140240", D_NUMBER), NOW)
        s.commit()
        assert find_person_id(s, D_NUMBER) == find_person_id(s, "14839140240") == min(by_fnr, d_number)
        assert find_person_id(s, "201812345604") == by_duf
        [merge] = s.scalars(select(PersonMerge)).all()
        assert merge.merged_by == "folkeregisteret" and "feed item 9" in merge.reason


def test_a_protected_address_keeps_no_address_text_and_is_not_shown(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    change = AddressChange(
        sequence_number=1,
        event_type="ADDRESS_CHANGED",
        national_id="14839140240",
        recorded_at=NOW,
        moved_on=dt.date(2026, 11, 1),
        municipality="4601",
        protection="CONFIDENTIAL",
        address_kind="STREET_ADDRESS",
        address_line="Skjult 1",
        postal_code="5003",
        postal_place="BERGEN",
    )
    with sessions() as s:
        assert not record_address_change(s, change, NOW)  # a person the register does not know
        RegisterRepository(s).person_with("14839140240", None, NOW)
        assert record_address_change(s, change, NOW)
        assert not record_address_change(s, change, NOW)  # the same feed item again
        s.commit()
        shown = describe_person(s, find_person_id(s, "14839140240") or 0)
    [address] = shown["addresses"]
    assert (address["addressLine"], address["postalCode"], address["municipality"]) == (None, None, None)
    assert "Skjult" not in str(shown)


def test_person_show_as_of_a_date_leaves_out_identifiers_and_addresses_received_after_it(
    database_url: str,
) -> None:
    """Issue 15, fault 7: `--as-of` filtered registrations but not addresses or identifiers."""
    sessions = make_session_factory(make_engine(database_url))
    later = NOW + dt.timedelta(days=30)
    change = AddressChange(
        sequence_number=7,
        event_type="ADDRESS_CHANGED",
        national_id="14839140240",
        recorded_at=later,
        moved_on=dt.date(2026, 12, 20),
        municipality="4601",
        protection="UNGRADED",
        address_kind="STREET_ADDRESS",
        address_line="Gate 1",
        postal_code="5003",
        postal_place="BERGEN",
    )
    with sessions() as s:
        person_id = RegisterRepository(s).person_with(None, "201812345604", NOW)
        RegisterRepository(s).person_with("14839140240", "201812345604", later)
        assert record_address_change(s, change, later)
        s.commit()
        then = describe_person(s, person_id, as_of=NOW + dt.timedelta(days=1))
        now = describe_person(s, person_id, as_of=later + dt.timedelta(days=1))
    assert [i["kind"] for i in then["identifiers"]] == ["duf"] and then["addresses"] == []
    assert len(now["identifiers"]) == 2 and len(now["addresses"]) == 1


def _address(
    sequence: int, event_type: str, national_id: str, municipality: str, recorded_at: dt.datetime, **more: str
) -> AddressChange:
    return AddressChange(
        sequence_number=sequence,
        event_type=event_type,
        national_id=national_id,
        recorded_at=recorded_at,
        moved_on=dt.date(2021, 5, 1),  # a change without moving keeps the last move's date
        municipality=municipality,
        protection=more.get("protection", "UNGRADED"),
        address_kind="STREET_ADDRESS",
        address_line=None,
        postal_code=None,
        postal_place=None,
    )


def test_a_change_of_municipality_without_moving_gives_the_residence_its_new_number_from_that_day(
    database_url: str,
) -> None:
    hub = pipeline_hub(database_url)
    hub.registry = SourceRegistry.from_mapping(
        {"sources": {"oslo-fagsystem": {"municipalities": ["1508", "1580"]}}}
    )
    person, hidden = synthetic_person(), synthetic_person()
    moved = dt.datetime(2021, 5, 3, 8, tzinfo=dt.UTC)
    renumbered = dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC)  # 06:00 in Oslo, on the reform's day
    with make_session_factory(hub.engine)() as s:
        for who, protection in ((person, "UNGRADED"), (hidden, "STRICTLY_CONFIDENTIAL")):
            nid = who.national_id or ""
            RegisterRepository(s).person_with(nid, who.duf_number, NOW)
            first = 1 if who is person else 3
            for sequence, event_type, municipality, at in (
                (first, "ADDRESS_CHANGED", "1507", moved),
                (first + 1, "ADDRESS_CHANGED_WITHOUT_MOVING", "1580", renumbered),
            ):
                change = _address(sequence, event_type, nid, municipality, at, protection=protection)
                assert record_address_change(s, change, NOW)
        s.commit()
        shown = describe_person(s, find_person_id(s, person.national_id or "") or 0)
        shown_hidden = describe_person(s, find_person_id(s, hidden.national_id or "") or 0)
    assert shown["affiliation"] == [
        {"from": "2021-05-01", "municipality": "1507"},
        {"from": "2024-01-01", "municipality": "1580", "withoutMoving": True},
    ]
    assert shown["municipalityOn"]["municipality"] == "1580"
    # Not even that a protected address changed its municipality is shown.
    assert shown_hidden["affiliation"] == [{"from": "2021-05-01", "municipality": None, "protected": True}]
    assert "1580" not in str(shown_hidden["affiliation"]) + str(shown_hidden["municipalityOn"])

    # The decisions read the same residence: Haram reports without a warning; Ålesund, which the
    # person no longer lives in since the split, is warned about.
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    topic = "nir.source.oslo-fagsystem.registrations"
    for offset, municipality in enumerate(("1580", "1508")):
        value = catalog().encode(REGISTRATION, from_json(event(person, municipality=municipality)))
        asyncio.run(flow.process(Message(Origin(topic, 0, offset), b"key", value)))
    receipts = [
        catalog().decode(v).datum for _, _, v, _ in publisher.on("nir.source.oslo-fagsystem.receipts")
    ]
    codes = [{v["code"] for v in r["violations"]} for r in receipts]
    assert "NIR-MUNI-002" not in codes[0] and receipts[0]["outcome"] == "ACCEPTED"
    assert "NIR-MUNI-002" in codes[1]


def test_a_d_number_replaced_by_a_fodselsnummer_keeps_one_person_with_both_numbers_and_their_kinds(
    database_url: str,
) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        person_id = RegisterRepository(s).person_with(D_NUMBER, None, NOW)
        assert record_person_event(s, person_event(7, "IDENTITY_CHANGED", FODSELSNUMMER, D_NUMBER), NOW)
        # A fagsystem that now sends the fødselsnummer, or still the D-number, finds the same person.
        assert RegisterRepository(s).person_with(FODSELSNUMMER, None, NOW) == person_id
        assert RegisterRepository(s).person_with(D_NUMBER, None, NOW) == person_id
        s.commit()
        assert s.scalars(select(Person.id)).all() == [person_id]
        shown = describe_person(s, person_id)
    numbers = {i["value"]: (i["kind"], i["ceasedAt"]) for i in shown["identifiers"]}
    assert numbers == {D_NUMBER: ("d-number", "2026-11-26T12:00:00Z"), FODSELSNUMMER: ("fodselsnummer", None)}
    assert [e["eventType"] for e in shown["personEvents"]] == ["IDENTITY_CHANGED"]


def test_person_show_as_of_a_date_shows_a_number_ceased_later_as_still_in_use(database_url: str) -> None:
    """Issue 28, point 6: `--as-of` showed a number Folkeregisteret ceased after that date as ceased."""
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        person_id = RegisterRepository(s).person_with(D_NUMBER, None, NOW - dt.timedelta(days=30))
        assert record_person_event(s, person_event(7, "IDENTITY_CHANGED", FODSELSNUMMER, D_NUMBER), NOW)
        s.commit()
        before = describe_person(s, person_id, as_of=NOW - dt.timedelta(days=1))
        after = describe_person(s, person_id, as_of=NOW + dt.timedelta(days=1))
    assert [(i["value"], i["ceasedAt"]) for i in before["identifiers"]] == [(D_NUMBER, None)]
    assert {i["value"]: i["ceasedAt"] for i in after["identifiers"]} == {
        D_NUMBER: "2026-11-26T12:00:00Z",
        FODSELSNUMMER: None,
    }


def test_person_show_as_of_a_date_leaves_out_a_merge_or_a_split_made_after_it(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        keeper = RegisterRepository(s).person_with(None, "201812345604", NOW - dt.timedelta(days=30))
        other = RegisterRepository(s).person_with(FODSELSNUMMER, None, NOW - dt.timedelta(days=30))
        merge = IdentityRepository(s).merge(
            keeper, other, reason="one person by UDI's papers", by="imdi", now=NOW
        )
        IdentityRepository(s).split(
            merge.id, reason="two after all", by="imdi", now=NOW + dt.timedelta(days=10)
        )
        s.commit()

        def merges(days: int) -> list[tuple[str, str | None, str | None]]:
            shown = describe_person(s, keeper, as_of=NOW + dt.timedelta(days=days))
            return [(m["mergedAt"], m["splitAt"], m["splitReason"]) for m in shown["merges"]]

        assert merges(-1) == []
        assert merges(1) == [("2026-11-26T12:00:00Z", None, None)]
        assert merges(11) == [("2026-11-26T12:00:00Z", "2026-12-06T12:00:00Z", "two after all")]


def test_an_identity_change_merges_two_persons_who_each_held_one_of_the_numbers(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        by_d_number = RegisterRepository(s).person_with(D_NUMBER, "201812345604", NOW)
        by_fnr = RegisterRepository(s).person_with(FODSELSNUMMER, None, NOW)
        record_address_change(
            s,
            dataclasses.replace(person_event(3, "ADDRESS_CHANGED", FODSELSNUMMER), municipality="0301"),
            NOW,
        )
        assert by_d_number != by_fnr
        assert record_person_event(s, person_event(8, "IDENTITY_CHANGED", FODSELSNUMMER, D_NUMBER), NOW)
        s.commit()
        assert s.scalars(select(Person.id)).all() == [by_d_number]  # the older one keeps them
        shown = describe_person(s, by_d_number)
    assert {(i["kind"], i["value"]) for i in shown["identifiers"]} == {
        ("d-number", D_NUMBER),
        ("duf", "201812345604"),
        ("fodselsnummer", FODSELSNUMMER),
    }
    assert [a["sequenceNumber"] for a in shown["addresses"]] == [3]


def test_the_same_person_event_read_twice_changes_nothing_and_an_unknown_persons_waits_for_them(
    database_url: str,
) -> None:
    sessions = make_session_factory(make_engine(database_url))
    change = person_event(9, "IDENTITY_CHANGED", FODSELSNUMMER, D_NUMBER)
    with sessions() as s:
        assert record_person_event(s, change, NOW)  # neither number is known: kept, no person made
        assert s.scalars(select(Person.id)).all() == []
        person_id = RegisterRepository(s).person_with(D_NUMBER, None, NOW)  # the person appears
        s.commit()
        before = describe_person(s, person_id)
        assert {(i["value"], i["ceasedAt"] is not None) for i in before["identifiers"]} == {
            (D_NUMBER, True),
            (FODSELSNUMMER, False),
        }
        assert [e["sequenceNumber"] for e in before["personEvents"]] == [9]
        assert not record_person_event(s, change, NOW)
        # A look-up's identity change and death share its sequence number: both are kept.
        assert record_person_event(s, person_event(-4, "IDENTITY_CHANGED", FODSELSNUMMER, D_NUMBER), NOW)
        assert record_person_event(s, person_event(-4, "PERSON_DIED", FODSELSNUMMER), NOW)
        assert not record_person_event(s, person_event(-4, "PERSON_DIED", FODSELSNUMMER), NOW)
        s.rollback()
        s.commit()
        assert describe_person(s, person_id) == before


def test_a_death_and_a_duplicate_cessation_are_recorded_as_states_and_shown(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        dead = RegisterRepository(s).person_with(FODSELSNUMMER, None, NOW)
        duplicate = RegisterRepository(s).person_with(D_NUMBER, None, NOW)
        assert record_person_event(
            s, person_event(10, "PERSON_DIED", FODSELSNUMMER, on=dt.date(2026, 11, 20)), NOW
        )
        assert record_person_event(s, person_event(11, "PERSON_CEASED_AS_DUPLICATE", D_NUMBER), NOW)
        s.commit()
        shown_dead, shown_duplicate = describe_person(s, dead), describe_person(s, duplicate)
    assert shown_dead["states"] == [{"state": "dead", "on": "2026-11-20", "sequenceNumber": 10}]
    assert shown_duplicate["states"] == [
        {"state": "ceased_as_duplicate", "on": "2026-11-26", "sequenceNumber": 11}
    ]
    assert [i["ceasedAt"] for i in shown_duplicate["identifiers"]] == ["2026-11-26T12:00:00Z"]
    assert [i["ceasedAt"] for i in shown_dead["identifiers"]] == [None]


def test_person_show_names_the_kind_of_each_identifier_and_the_migration_labels_old_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path}/old.sqlite3")
    upgrade(engine, "0008")
    h_number = make_national_id(dt.date(1980, 5, 2), 42, synthetic=False) or ""
    h_number = h_number[:2] + f"{int(h_number[2:4]) + 40:02d}" + h_number[4:]  # month + 40
    with engine.begin() as connection:
        connection.execute(Person.__table__.insert(), [{"id": 1, "created_at": NOW}])
        connection.execute(
            PersonIdentifier.__table__.insert(),
            [
                {"person_id": 1, "kind": kind, "value": value, "first_seen_at": NOW}
                for kind, value in (
                    ("duf", "201812345604"),
                    ("national_id", D_NUMBER),
                    ("national_id", FODSELSNUMMER),
                    ("national_id", h_number),
                )
            ],
        )
    upgrade(engine)
    with make_session_factory(engine)() as s:
        shown = describe_person(s, 1)
    assert [(i["kind"], i["value"]) for i in shown["identifiers"]] == [
        ("duf", "201812345604"),
        ("d-number", D_NUMBER),
        ("fodselsnummer", FODSELSNUMMER),
        ("h-number", h_number),
    ]
    engine.dispose()


def test_hub_person_show_prints_each_identifiers_kind_and_the_persons_states(sqlite_url: str) -> None:
    sessions = make_session_factory(make_engine(sqlite_url))
    with sessions() as s:
        RegisterRepository(s).person_with(D_NUMBER, "201812345604", NOW)
        record_person_event(s, person_event(12, "IDENTITY_CHANGED", FODSELSNUMMER, D_NUMBER), NOW)
        record_person_event(s, person_event(13, "PERSON_DIED", FODSELSNUMMER, on=dt.date(2026, 11, 20)), NOW)
        s.commit()
    settings = dataclasses.replace(Settings(), database_url=sqlite_url)
    shown = hub_command(settings, "person", "show", "--reason", "test", stdin=FODSELSNUMMER)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"  d-number: {D_NUMBER} (ceased 2026-11-26T12:00:00Z)" in lines
    assert "  duf: 201812345604" in lines
    assert f"  fodselsnummer: {FODSELSNUMMER}" in lines
    assert "  state: dead on 2026-11-20 (Folkeregisteret, sequence 13)" in lines


def test_hub_person_show_on_a_register_that_does_not_exist_says_so_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere" / "register.sqlite3"
    settings = dataclasses.replace(Settings(), database_url=f"sqlite:///{missing}")
    shown = hub_command(settings, "person", "show", "--reason", "test", stdin=FODSELSNUMMER)
    assert shown.returncode == 2
    assert f"error [NIR-REGISTER-MISSING]: there is no register at {missing}" in shown.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_address_look_up_asks_for_the_number_in_use_not_a_ceased_one(database_url: str) -> None:
    """Issue 15, fault 6: the look-up took the newest number, which may be one Folkeregisteret
    has ceased (here a D-number the register learns of only after the fødselsnummer)."""
    sessions = make_session_factory(make_engine(database_url))
    with sessions() as s:
        RegisterRepository(s).person_with(FODSELSNUMMER, None, NOW)
        assert record_person_event(s, person_event(9, "IDENTITY_CHANGED", FODSELSNUMMER, D_NUMBER), NOW)
        s.commit()
        assert [number for _, number in pending_lookups(s, NOW)] == [FODSELSNUMMER]


def test_postgresql_plans_the_registers_batch_reads_for_each_batch_not_once(postgres_server) -> None:  # type: ignore[no-untyped-def]
    # psycopg prepares a statement it has run five times, and PostgreSQL would then keep one
    # generic plan for it, made for the tables as they were: for a register that began empty, a
    # sequential scan that grew with the register until autovacuum next analyzed it.
    from sqlalchemy import text

    from hub.pipeline.decode import decode_registration

    engine = make_engine(postgres_server.create_database())
    upgrade(engine)
    encoded = [catalog().encode(REGISTRATION, from_json(event(synthetic_person()))) for _ in range(3)]
    batch = [decode_registration(catalog(), value) for value in encoded]
    with make_session_factory(engine)() as session:
        for _ in range(12):  # prepared after 5 runs; a generic plan is weighed after 5 more
            RegisterRepository(session).snapshot(batch)
        generic, custom = session.execute(
            text("SELECT sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements")
        ).one()
    engine.dispose()
    assert custom > 0  # the snapshot's statements were prepared, and planned at each run
    assert generic == 0


def test_a_batch_statement_is_built_once_per_database_and_takes_any_number_of_values(
    database_url: str,
) -> None:
    # The register's batch statements are built once (building one and computing its cache key
    # cost SQLAlchemy more than the driver's execution) and bound to each batch's values: none,
    # one or many, on both databases.
    from hub.register.database import among_parameter, prebuilt

    built: list[str] = []

    def values_of_persons(dialect: str) -> Any:
        built.append(dialect)
        return select(PersonIdentifier.value).where(
            among_parameter(dialect, PersonIdentifier.value, "values")
        )

    engine = make_engine(database_url)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        repository = RegisterRepository(session)
        for national_id in (D_NUMBER, FODSELSNUMMER):
            repository.person_with(national_id, None, NOW)
        found = [
            sorted(session.scalars(prebuilt(session, values_of_persons), {"values": values}))
            for values in ([], [D_NUMBER], [D_NUMBER, FODSELSNUMMER, "no such value"])
        ]
        statement = prebuilt(session, values_of_persons)
    engine.dispose()
    assert found == [[], [D_NUMBER], sorted([D_NUMBER, FODSELSNUMMER])]
    assert built == [engine.dialect.name]
    assert statement is prebuilt(session, values_of_persons)


def test_a_death_recorded_late_in_the_evening_utc_is_dated_the_next_day_in_norway_whatever_the_machines_zone(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28: Oslo's day of an instant. A death without a date is dated the day
    Folkeregisteret recorded it; SQLite gives the UTC timestamp back naive, which Python read in
    the machine's zone, so on a machine set to Oslo 23:30 UTC stayed on the day before."""
    late_evening = dt.datetime(2026, 11, 26, 23, 30, tzinfo=dt.UTC)  # 00:30 on the 27th in Oslo
    monkeypatch.setenv("TZ", "Europe/Oslo")
    time.tzset()
    try:
        sessions = make_session_factory(make_engine(database_url))
        with sessions() as s:
            person_id = RegisterRepository(s).person_with(D_NUMBER, None, NOW)
            died = dataclasses.replace(person_event(8, "PERSON_DIED", D_NUMBER), recorded_at=late_evening)
            assert record_person_event(s, died, late_evening)
            s.commit()
        with sessions() as s:
            [row] = s.scalars(select(PersonEvent).where(PersonEvent.person_id == person_id)).all()
            assert person_state(row).on == dt.date(2026, 11, 27)
    finally:
        monkeypatch.undo()
        time.tzset()
