"""The statistics reports, on SQLite and PostgreSQL, against figures worked out by hand."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import AddressChange, Origin
from hub.pipeline.flow import Message
from hub.pipeline.registrations import RegistrationFlow
from hub.register.charts import draw
from hub.register.person_events import record_person_event
from hub.register.reports import late_registrations, main_activity_at_exit, participants, status_at_year_end
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from tests.factories import event, synthetic_person
from tests.fakes import RecordingPublisher

Y = dt.date.today().year - 1  # a whole year in the past, within the 24-month window


@pytest.fixture
def hub(database_url: str) -> Hub:
    settings = dataclasses.replace(Settings(), database_url=database_url, allow_synthetic_identifiers=True)
    hub = Hub(settings=settings, registry=SourceRegistry.load(settings.sources_file), catalog=catalog())
    hub.clock = lambda: dt.datetime(Y + 1, 6, 1, 12, tzinfo=dt.UTC)
    return hub


def send(hub: Hub, events: list[dict]) -> None:  # type: ignore[type-arg]
    flow = RegistrationFlow(hub, RecordingPublisher())
    for offset, e in enumerate(events):
        topic = hub.names.registrations(e["sourceSystem"])
        value = catalog().encode(REGISTRATION, from_json(e))
        # Each reaches the broker when its fagsystem sent it: the deadlines count to the broker's time.
        arrived = dt.datetime.fromisoformat(e["sentAt"])
        message = Message(Origin(topic, 0, offset), None, value, received_at=arrived)
        processed = asyncio.run(flow.process(message))
        assert processed.outcome.value.startswith("ACCEPTED"), processed


def story(
    municipality: str,
    source: str,
    start: dt.date,
    end: dt.date | None,
    activity: str = "UNEMPLOYED",
    sent_late: bool = False,
) -> list[dict]:  # type: ignore[type-arg]
    person = synthetic_person()

    def at(event_type: str, day: dt.date, **payload: object) -> dict:  # type: ignore[type-arg]
        e = event(person, event_type, fact_date=day, source=source, municipality=municipality)
        e["payload"].update(payload)
        sent = day + dt.timedelta(days=100 if sent_late else 1)
        e["sentAt"] = f"{sent}T10:00:00+00:00"
        return e

    events = [
        at("INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", start - dt.timedelta(days=20)),
        at("INTRODUCTION_PROGRAMME_DECISION", start - dt.timedelta(days=10)),
        at("INTRODUCTION_PROGRAMME_STARTED", start),
    ]
    if end is not None:
        events.append(at("INTRODUCTION_PROGRAMME_ENDED", end, mainActivity=activity))
    return events


def test_the_reports_count_what_the_register_holds(hub: Hub, tmp_path: Path) -> None:
    d = lambda month, day: dt.date(Y, month, day)  # noqa: E731
    send(
        hub,
        story("0301", "oslo-fagsystem", d(2, 1), d(10, 1), "EMPLOYED_FULL_TIME")
        + story("0301", "oslo-fagsystem", d(3, 1), None)
        + story("0301", "oslo-fagsystem", d(4, 1), d(11, 1), "UNEMPLOYED", sent_late=True)
        + story("4601", "vestland-fagsystem", d(5, 1), None),
    )
    asylum_seeker = synthetic_person(with_national_id=False)
    hours = event(
        asylum_seeker, "ASYLUM_SEEKER_TRAINING_HOURS", fact_date=d(6, 30), source="vestland-fagsystem"
    )
    send(hub, [{**hours, "municipality": "4601", "sentAt": f"{d(7, 1)}T10:00:00+00:00"}])
    with hub.session_factory() as session:
        assert participants(session, Y).rows == [
            ("0301", Y, "introduction_programme", 3),
            ("4601", Y, "asylum_seeker_training", 1),
            ("4601", Y, "introduction_programme", 1),
        ]
        assert participants(session, Y - 1).rows == []
        assert status_at_year_end(session, Y).rows == [
            ("0301", Y, "introduction_programme", "ended", 2),
            ("0301", Y, "introduction_programme", "running", 1),
            ("4601", Y, "introduction_programme", "running", 1),
        ]
        exits = main_activity_at_exit(session, Y)
        assert exits.rows == [
            ("0301", Y, "EMPLOYED_FULL_TIME", "employed_or_education", 1),
            ("0301", Y, "UNEMPLOYED", "unemployed_or_measure", 1),
        ]
        late = late_registrations(session, Y)
        # The late story's end reached the hub in the next year: it counts there.
        assert late.rows == [("0301", Y, 10, 3, 0.3), ("4601", Y, 4, 0, 0.0)]
    chart = tmp_path / "status.png"
    draw(exits, title="exits", path=chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 5000


def test_a_person_reported_dead_is_deceased_at_year_end_and_takes_no_part_in_later_years(hub: Hub) -> None:
    d = lambda month, day: dt.date(Y, month, day)  # noqa: E731
    running = story("0301", "oslo-fagsystem", d(3, 1), None)
    send(hub, running + story("0301", "oslo-fagsystem", d(4, 1), None))
    died = AddressChange(
        sequence_number=1,
        event_type="PERSON_DIED",
        national_id=running[0]["person"]["nationalId"],
        recorded_at=dt.datetime(Y, 9, 2, 8, tzinfo=dt.UTC),
        moved_on=None,
        municipality=None,
        protection="UNKNOWN",
        address_kind="UNKNOWN",
        address_line=None,
        postal_code=None,
        postal_place=None,
        event_date=d(9, 1),
    )
    with hub.session_factory() as session:
        assert record_person_event(session, died, hub.clock())
        session.commit()
        assert participants(session, Y).rows == [("0301", Y, "introduction_programme", 2)]
        assert participants(session, Y + 1).rows == [("0301", Y + 1, "introduction_programme", 1)]
        assert status_at_year_end(session, Y).rows == [
            ("0301", Y, "introduction_programme", "deceased", 1),
            ("0301", Y, "introduction_programme", "running", 1),
        ]
