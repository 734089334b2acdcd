"""The statistics reports, on SQLite and PostgreSQL, against figures worked out by hand, and the
charts drawn from them, checked by what they draw."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import AddressChange, Origin
from hub.domain.transfer import Message
from hub.register.charts import NO_DATA, draw
from hub.register.database import make_session_factory
from hub.register.person_events import record_person_event
from hub.register.reports import (
    Report,
    late_registrations,
    main_activity_at_exit,
    participants,
    reported_for,
    status_at_year_end,
)
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from hub.wiring import registration_flow
from tests.factories import event, synthetic_person
from tests.fakes import RecordingPublisher

Y = dt.date.today().year - 1  # a whole year in the past, within the 24-month window


def make_hub(database_url: str, now: dt.datetime, registry: SourceRegistry | None = None) -> Hub:
    settings = dataclasses.replace(Settings(), database_url=database_url, allow_synthetic_identifiers=True)
    registry = registry or SourceRegistry.load(settings.sources_file)
    hub = Hub(settings=settings, registry=registry, catalog=catalog())
    hub.clock = lambda: now
    return hub


@pytest.fixture
def hub(database_url: str) -> Hub:
    return make_hub(database_url, dt.datetime(Y + 1, 6, 1, 12, tzinfo=dt.UTC))


def send(hub: Hub, events: list[dict]) -> None:  # type: ignore[type-arg]
    flow = registration_flow(hub, RecordingPublisher())
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
    training: bool = False,
) -> list[dict]:  # type: ignore[type-arg]
    """A person's introduction programme from offer to `end` (or still running); with `training`
    also training in Norwegian and social studies, claimed, granted and started on the same days."""
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
    if training:
        events += [
            at("TRAINING_CLAIM", start - dt.timedelta(days=20)),
            at("TRAINING_DECISION", start - dt.timedelta(days=10)),
            at("TRAINING_STARTED", start),
        ]
    return events


@pytest.fixture
def known(hub: Hub) -> Hub:
    """A register with figures worked out by hand: in Oslo three programmes (two ended, one of
    them registered late; the running one also with training), in Bergen a running programme
    and an asylum seeker's training."""
    d = lambda month, day: dt.date(Y, month, day)  # noqa: E731
    send(
        hub,
        story("0301", "oslo-fagsystem", d(2, 1), d(10, 1), "EMPLOYED_FULL_TIME")
        + story("0301", "oslo-fagsystem", d(3, 1), None, training=True)
        + story("0301", "oslo-fagsystem", d(4, 1), d(11, 1), "UNEMPLOYED", sent_late=True)
        + story("4601", "vestland-fagsystem", d(5, 1), None),
    )
    asylum_seeker = synthetic_person(with_national_id=False)
    hours = event(
        asylum_seeker, "ASYLUM_SEEKER_TRAINING_HOURS", fact_date=d(6, 30), source="vestland-fagsystem"
    )
    send(hub, [{**hours, "municipality": "4601", "sentAt": f"{d(7, 1)}T10:00:00+00:00"}])
    return hub


def test_the_reports_count_what_the_register_holds(known: Hub) -> None:
    with make_session_factory(known.engine)() as session:
        assert participants(session, Y).rows == [
            ("0301", "Oslo", Y, "introduction_programme", 3),
            ("0301", "Oslo", Y, "norwegian_and_social_studies", 1),
            ("4601", "Bergen", Y, "asylum_seeker_training", 1),
            ("4601", "Bergen", Y, "introduction_programme", 1),
        ]
        assert participants(session, Y - 1).rows == []
        assert status_at_year_end(session, Y).rows == [
            ("0301", "Oslo", Y, "introduction_programme", "ended", 2),
            ("0301", "Oslo", Y, "introduction_programme", "running", 1),
            ("0301", "Oslo", Y, "norwegian_and_social_studies", "running", 1),
            ("4601", "Bergen", Y, "introduction_programme", "running", 1),
        ]
        assert main_activity_at_exit(session, Y).rows == [
            ("0301", "Oslo", Y, "EMPLOYED_FULL_TIME", "employed_or_education", 1),
            ("0301", "Oslo", Y, "UNEMPLOYED", "unemployed_or_measure", 1),
        ]
        # The late story's end reached the hub in the next year: it counts there.
        assert late_registrations(session, Y).rows == [
            ("0301", "Oslo", Y, 13, 3, 0.2308),
            ("4601", "Bergen", Y, 4, 0, 0.0),
        ]


def test_the_late_share_counts_only_registrations_the_deadline_applies_to(hub: Hub) -> None:
    """A permit, a correction and an annulment can never be late: counted, they only diluted the
    share (one late claim of four was 25 %)."""
    d = lambda month, day: dt.date(Y, month, day)  # noqa: E731
    person = synthetic_person()

    def sent(e: dict, on: dt.date, **changes: object) -> dict:  # type: ignore[type-arg]
        return {**e, "sentAt": f"{on}T10:00:00+00:00", **changes}

    permit = event(person, "RESIDENCE_PERMIT_REGISTERED", fact_date=dt.date(Y - 3, 6, 1))
    claim = event(person, "TRAINING_CLAIM", fact_date=d(1, 10))
    correction = event(person, "TRAINING_CLAIM", fact_date=d(1, 12))
    annulment = event(person, "TRAINING_CLAIM", fact_date=d(1, 12))
    send(
        hub,
        [
            sent(permit, d(5, 1)),
            sent(claim, d(5, 1)),  # more than two months after the fact: late
            sent(correction, d(5, 2), action="CORRECT", correctsEventId=claim["eventId"]),
            sent(annulment, d(5, 3), action="ANNUL", correctsEventId=claim["eventId"]),
        ],
    )
    with make_session_factory(hub.engine)() as session:
        assert late_registrations(session, Y).rows == [("0301", "Oslo", Y, 1, 1, 1.0)]


def bars(figure: Figure) -> dict[str, dict[str, float]]:
    """What a chart draws: per series (its legend label), each bar's height by the municipality
    labelled under its group."""
    (axes,) = figure.axes
    under = {
        round(x): label.get_text() for x, label in zip(axes.get_xticks(), axes.get_xticklabels(), strict=True)
    }
    return {
        series.get_label(): {
            under[round(bar.get_x() + bar.get_width() / 2)]: bar.get_height() for bar in series
        }
        for series in axes.containers
    }


def assert_readable(figure: Figure) -> None:
    """The legend lies inside the picture and covers no bar, as laid out when the PNG was saved."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    (axes,) = figure.axes
    legends = [*figure.legends, *([axes.get_legend()] if axes.get_legend() else [])]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert figure.bbox.x0 <= box.x0 and box.x1 <= figure.bbox.x1 and box.y1 <= figure.bbox.y1
        assert not any(box.overlaps(bar.get_window_extent(renderer)) for bar in axes.patches)


def whole_number_ticks(figure: Figure) -> list[float]:
    (axes,) = figure.axes
    low, high = axes.get_ylim()
    ticks = [t for t in axes.get_yticks() if low <= t <= high]
    assert all(float(t).is_integer() for t in ticks), ticks
    return ticks


def draw_to(tmp_path: Path, report: Report, name: str) -> Figure:
    path = tmp_path / f"{name}.png"
    figure = draw(report, title=name, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return figure


def test_the_status_chart_draws_each_scheme_of_a_municipality_as_its_own_series(
    known: Hub, tmp_path: Path
) -> None:
    with make_session_factory(known.engine)() as session:
        figure = draw_to(tmp_path, status_at_year_end(session, Y), "status")
    assert bars(figure) == {
        "introduction_programme: ended": {"0301 Oslo": 2},
        "introduction_programme: running": {"0301 Oslo": 1, "4601 Bergen": 1},
        "norwegian_and_social_studies: running": {"0301 Oslo": 1},
    }
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == ["0301 Oslo", "4601 Bergen"]
    assert figure.axes[0].get_ylim()[0] == 0 and whole_number_ticks(figure) == [0, 1, 2]
    assert_readable(figure)


def test_the_participants_and_exits_charts_count_persons_in_whole_numbers_beside_their_legend(
    known: Hub, tmp_path: Path
) -> None:
    with make_session_factory(known.engine)() as session:
        taking_part = draw_to(tmp_path, participants(session, Y), "participants")
        exits = draw_to(tmp_path, main_activity_at_exit(session, Y), "exits")
    assert bars(taking_part) == {
        "asylum_seeker_training": {"4601 Bergen": 1},
        "introduction_programme": {"0301 Oslo": 3, "4601 Bergen": 1},
        "norwegian_and_social_studies": {"0301 Oslo": 1},
    }
    assert whole_number_ticks(taking_part) == [0, 1, 2, 3]
    assert taking_part.axes[0].get_ylabel() == "participants"
    # Two activities are two series even where SSB puts them in one group.
    assert bars(exits) == {"EMPLOYED_FULL_TIME": {"0301 Oslo": 1}, "UNEMPLOYED": {"0301 Oslo": 1}}
    assert whole_number_ticks(exits) == [0, 1]
    assert_readable(taking_part)
    assert_readable(exits)


def test_the_late_chart_shows_the_late_share_in_per_cent_on_a_whole_scale(known: Hub, tmp_path: Path) -> None:
    with make_session_factory(known.engine)() as session:
        figure = draw_to(tmp_path, late_registrations(session, Y), "late")
    (axes,) = figure.axes
    assert bars(figure) == {"late_share": {"0301 Oslo": pytest.approx(23.08), "4601 Bergen": 0.0}}
    assert axes.get_ylim() == (0, 100) and axes.get_ylabel() == "late share (%)"
    # A share of 0 % has no visible bar; its figure says it is there.
    assert [text.get_text() for text in axes.texts] == ["23.1 %", "0.0 %"]
    assert not figure.legends and axes.get_legend() is None  # one series needs no legend


def test_a_chart_of_an_empty_report_says_there_is_no_data(known: Hub, tmp_path: Path) -> None:
    with make_session_factory(known.engine)() as session:
        figure = draw_to(tmp_path, late_registrations(session, Y - 1), "late")
    (axes,) = figure.axes
    assert [text.get_text() for text in axes.texts] == [NO_DATA]
    assert not axes.patches and not axes.axison and not figure.legends


def test_a_municipality_is_named_as_in_the_list_in_force_in_the_reports_year(
    database_url: str, tmp_path: Path
) -> None:
    # 1833 Rana took the name Rana/Raane in the 2024 list; 3024 Bærum became 3201 Bærum.
    registry = SourceRegistry.from_mapping(
        {"sources": {"nordland-fagsystem": {"municipalities": ["1833", "3024"]}}}
    )
    hub = make_hub(database_url, dt.datetime(2024, 12, 31, 12, tzinfo=dt.UTC), registry)
    send(
        hub,
        story("1833", "nordland-fagsystem", dt.date(2023, 3, 1), None)
        + story("3024", "nordland-fagsystem", dt.date(2023, 4, 1), None),
    )
    with make_session_factory(hub.engine)() as session:
        before, after = status_at_year_end(session, 2023), status_at_year_end(session, 2024)
    assert [row[:3] for row in before.rows] == [("1833", "Rana", 2023), ("3024", "Bærum", 2023)]
    # The scheme counts for the number that registered its start as it is in the report's year,
    # under that year's name.
    assert [row[:3] for row in after.rows] == [("1833", "Rana/Raane", 2024), ("3201", "Bærum", 2024)]
    figure = draw_to(tmp_path, after, "status")
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == [
        "1833 Rana/Raane",
        "3201 Bærum",
    ]


def test_a_renumbered_municipality_is_counted_once_under_the_reports_years_number_and_a_split_by_its_source(
    database_url: str,
) -> None:
    # Bærum registered as 3024 in 2023 and as 3201 in 2024; Ålesund's 1507 was split in 2024:
    # its 2023 registrations count under the part whose source sent them, and are not guessed
    # where the source reports for both parts.
    registry = SourceRegistry.from_mapping(
        {
            "sources": {
                "fagsystem": {"municipalities": ["3201", "1508"]},
                "haram": {"municipalities": ["1580"]},
                "both": {"municipalities": ["1508", "1580"]},
            }
        }
    )
    hub = make_hub(database_url, dt.datetime(2024, 12, 31, 12, tzinfo=dt.UTC), registry)
    send(
        hub,
        story("3024", "fagsystem", dt.date(2023, 4, 1), None)
        + story("3201", "fagsystem", dt.date(2024, 4, 1), None)
        + story("1507", "fagsystem", dt.date(2023, 5, 1), None)
        + story("1507", "haram", dt.date(2023, 5, 1), None)
        + story("1507", "both", dt.date(2023, 5, 1), None),
    )
    sources = reported_for(hub.registry, hub.names.source_of)
    with make_session_factory(hub.engine)() as session:
        in_2023, in_2024 = participants(session, 2023, sources), participants(session, 2024, sources)
        late_2023 = late_registrations(session, 2023, sources)
    assert [(row[:3], row[-1]) for row in in_2024.rows] == [
        (("1507", "Ålesund (1507 in 2020-2023; in 2024 1508 Ålesund or 1580 Haram)", 2024), 1),
        (("1508", "Ålesund", 2024), 1),
        (("1580", "Haram", 2024), 1),
        (("3201", "Bærum", 2024), 2),
    ]
    assert [(row[:3], row[-1]) for row in in_2023.rows] == [
        (("1507", "Ålesund", 2023), 3),
        (("3024", "Bærum", 2023), 1),
    ]
    assert [row[:4] for row in late_2023.rows] == [("1507", "Ålesund", 2023, 9), ("3024", "Bærum", 2023, 3)]


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
    with make_session_factory(hub.engine)() as session:
        assert record_person_event(session, died, hub.clock())
        session.commit()
        assert participants(session, Y).rows == [("0301", "Oslo", Y, "introduction_programme", 2)]
        assert participants(session, Y + 1).rows == [("0301", "Oslo", Y + 1, "introduction_programme", 1)]
        assert status_at_year_end(session, Y).rows == [
            ("0301", "Oslo", Y, "introduction_programme", "deceased", 1),
            ("0301", "Oslo", Y, "introduction_programme", "running", 1),
        ]
