"""The statistics IMDi needs from the register, as rows ready for CSV (and a chart).

Every report derives each person's schemes from the effective facts, exactly as `hub person
show` does, so the figures and the person view cannot disagree. A person counts for the
municipality that registered the scheme's start (participants, status) or end (exits).

Folkeregisteret's states (`hub.register.person_events`): a person who died before the year
began took no part in it (participants), and one who died by 31 December is counted with status
`deceased` rather than a scheme status that could no longer change (status). A person ceased as
a duplicate counts as before: their registrations move to the record that continues once an
identity change or a registration links the two, and until then dropping them would lose a
participant.

Each row begins with the municipality's number, its name in the list in force in the report's
year (so a 2023 report says what the municipality was called then), and the year. A
registration's municipality is counted under the number it has in the list in force on 31
December of the report's year (`number_on`): a 2024 report counts Bærum's 3024 and 3201
registrations together under 3201 "Bærum", a 2022 report its 3201 ones under 3024, and 1534
Haram's under 1580 Haram from 2024. Where a split makes that several numbers, the registration's
source settles it: a 1507 registration sent by a source that reports for 1580 Haram (and not for
1508 Ålesund) is Haram's past, counted under 1580 "Haram" (`reported_for`, from the source
registry). Where the source does not settle it (it reports for both parts, or for neither), the
hub does not guess: the registration is counted under its own number, named with what it is that
year ("Ålesund (1507 in 2020-2023; in 2024 1508 Ålesund or 1580 Haram)").
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.calendar import as_utc, norwegian_date
from hub.domain.codes import main_activity_group
from hub.domain.deadlines import may_be_late
from hub.domain.lifecycle import ROLES, Action, Fact, Role, Scheme, Status, derive, effective_facts
from hub.domain.municipalities import name_on, number_counted
from hub.domain.snapshot import PERSON_DIED
from hub.domain.sources import SourceRegistry
from hub.register.models import PersonEvent, RegistrationRecord
from hub.register.repository import fact_of

# The status report's status for a person Folkeregisteret reported dead by 31 December.
DECEASED = "deceased"


@dataclass(frozen=True)
class Report:
    """A report's rows, and what its chart shows: one series of bars per distinct combination
    of the `series` columns' values, the `value` column as the bars' heights; `share` says the
    value is a fraction (drawn in per cent), else it counts persons or registrations."""

    columns: tuple[str, ...]
    rows: Sequence[tuple[object, ...]]
    series: tuple[str, ...]
    value: str
    share: bool = False


# The columns every report begins with.
_WHERE = ("municipality", "municipality_name", "year")


def _where(municipality: str, year: int) -> tuple[str, str, int]:
    return municipality, name_on(municipality, dt.date(year, 12, 31)), year


# The municipalities the source of a registration reports for, by the registration's topic (empty
# for a topic of no source the registry knows): what settles which part of a split it belongs to.
ReportedFor = Callable[[str], frozenset[str]]


def _no_source(_topic: str) -> frozenset[str]:
    return frozenset()


def reported_for(registry: SourceRegistry, source_of: Callable[[str], str | None]) -> ReportedFor:
    """`ReportedFor` from the source registry and the topics' names (`TopicNames.source_of`)."""

    return lambda topic: registry.municipalities_of(source_of(topic) or "")


def _in_year(municipality: str, year: int, reporting: frozenset[str] = frozenset()) -> str:
    """The number a registration's municipality is counted under in `year`'s report: its number
    on 31 December; where it is several then, the one of them its source reports for (`reporting`),
    if just one; else its own (see the module docstring)."""
    return number_counted(municipality, dt.date(year, 12, 31), reporting)


def _people(
    session: Session, year: int, sources: ReportedFor
) -> Iterator[tuple[list[Fact], dict[str, str], dt.date | None]]:
    """Per person: the facts, the municipality each registration counts under in `year`'s report
    (by registration key, `_in_year`), and the date of death if Folkeregisteret reported one."""
    by_person: dict[int, list[RegistrationRecord]] = defaultdict(list)
    for row in session.scalars(select(RegistrationRecord).order_by(RegistrationRecord.id)):
        by_person[row.person_id].append(row)
    died_on = {
        person_id: on or norwegian_date(recorded_at)
        for person_id, on, recorded_at in session.execute(
            select(PersonEvent.person_id, PersonEvent.event_date, PersonEvent.recorded_at)
            .where(PersonEvent.event_type == PERSON_DIED)
            .order_by(PersonEvent.sequence_number)
        )
    }
    for person_id, rows in by_person.items():
        facts = [fact_of(r) for r in rows]
        municipality = {
            r.registration_key: _in_year(r.municipality, year, sources(r.topic))
            for r in rows
            if r.action != Action.ANNUL.value
        }
        yield facts, municipality, died_on.get(person_id)


def _scheme_facts(facts: list[Fact], scheme: Scheme, role: Role) -> list[Fact]:
    return [
        f for f in effective_facts(facts) if f.event_type in ROLES and f.scheme is scheme and f.role is role
    ]


def participants(session: Session, year: int, sources: ReportedFor = _no_source) -> Report:
    """Persons taking part at some time in `year`, per municipality and scheme.

    For the introduction programme and the training: started by the end of the year and not
    ended or stopped before it began. For asylum seekers' training and the culture and values
    course: any registration dated in the year.
    """
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    counts: Counter[tuple[str, str]] = Counter()
    for facts, municipality, died_on in _people(session, year, sources):
        if died_on is not None and died_on < first:
            continue
        states_before = derive(facts, on=first - dt.timedelta(days=1))
        states_end = derive(facts, on=last)
        for scheme in (Scheme.INTRODUCTION_PROGRAMME, Scheme.NORWEGIAN_AND_SOCIAL_STUDIES):
            starts = [f for f in _scheme_facts(facts, scheme, Role.START) if f.fact_date <= last]
            if not starts:
                continue
            state_before, state_end = states_before[scheme], states_end[scheme]
            took_part = state_end.status is Status.RUNNING or any(f.fact_date >= first for f in starts)
            took_part = took_part or state_before.status is Status.RUNNING
            if took_part:
                counts[(municipality[starts[-1].key], scheme.value)] += 1
        # Schemes without decisions and starts: anyone with a fact dated in the year took part.
        for scheme in (Scheme.ASYLUM_SEEKER_TRAINING, Scheme.CULTURE_AND_VALUES):
            in_year = [
                f
                for f in effective_facts(facts)
                if f.event_type in ROLES and f.scheme is scheme and first <= f.fact_date <= last
            ]
            if in_year:
                counts[(municipality[in_year[-1].key], scheme.value)] += 1
    rows = [(*_where(m, year), s, n) for (m, s), n in sorted(counts.items())]
    return Report((*_WHERE, "scheme", "participants"), rows, series=("scheme",), value="participants")


def status_at_year_end(session: Session, year: int, sources: ReportedFor = _no_source) -> Report:
    """Each scheme's status on 31 December, per municipality (persons with a start by then)."""
    last = dt.date(year, 12, 31)
    counts: Counter[tuple[str, str, str]] = Counter()
    for facts, municipality, died_on in _people(session, year, sources):
        states = derive(facts, on=last)
        for scheme in (Scheme.INTRODUCTION_PROGRAMME, Scheme.NORWEGIAN_AND_SOCIAL_STUDIES):
            starts = [f for f in _scheme_facts(facts, scheme, Role.START) if f.fact_date <= last]
            if starts:
                status = DECEASED if died_on is not None and died_on <= last else states[scheme].status.value
                counts[(municipality[starts[-1].key], scheme.value, status)] += 1
    rows = [(*_where(m, year), s, st, n) for (m, s, st), n in sorted(counts.items())]
    return Report(
        (*_WHERE, "scheme", "status", "persons"), rows, series=("scheme", "status"), value="persons"
    )


def main_activity_at_exit(session: Session, year: int, sources: ReportedFor = _no_source) -> Report:
    """Introduction-programme ends in `year` by main activity and SSB's outcome group.

    A person who ends more than once in the year counts only for the last end.
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    for facts, municipality, _ in _people(session, year, sources):
        ends = [
            f
            for f in _scheme_facts(facts, Scheme.INTRODUCTION_PROGRAMME, Role.END)
            if f.fact_date.year == year
        ]
        if ends:
            activity = ends[-1].payload.get("mainActivity") or "UNKNOWN"
            counts[(municipality[ends[-1].key], activity, main_activity_group(activity))] += 1
    rows = [(*_where(m, year), a, g, n) for (m, a, g), n in sorted(counts.items())]
    # The SSB group follows from the activity: a series per activity keeps two of one group apart.
    return Report(
        (*_WHERE, "main_activity", "ssb_group", "persons"), rows, series=("main_activity",), value="persons"
    )


def late_registrations(session: Session, year: int, sources: ReportedFor = _no_source) -> Report:
    """The share of registrations the hub received in `year` that came more than two months
    after the fact (the Norwegian year, as the deadline rule counts). Only registrations the
    deadline applies to are counted (`hub.domain.deadlines.may_be_late`): a permit, a
    correction or an annulment can never be late, so counting it would only dilute the share."""
    totals: Counter[str] = Counter()
    late: Counter[str] = Counter()
    query = select(
        RegistrationRecord.municipality,
        RegistrationRecord.late,
        RegistrationRecord.received_at,
        RegistrationRecord.action,
        RegistrationRecord.event_type,
        RegistrationRecord.topic,
    )
    for municipality, is_late, received_at, action, event_type, topic in session.execute(query):
        if may_be_late(action, event_type) and norwegian_date(as_utc(received_at)).year == year:
            municipality = _in_year(municipality, year, sources(topic))
            totals[municipality] += 1
            late[municipality] += int(is_late)
    rows = [(*_where(m, year), totals[m], late[m], round(late[m] / totals[m], 4)) for m in sorted(totals)]
    return Report(
        (*_WHERE, "registrations", "late", "late_share"), rows, series=(), value="late_share", share=True
    )


REPORTS = {
    "participants": participants,
    "status": status_at_year_end,
    "exits": main_activity_at_exit,
    "late": late_registrations,
}


class ReportsRepository:
    """The statistics reports on the unit of work (`uow.reports`)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def report(self, name: str, year: int, sources: ReportedFor = _no_source) -> Report:
        """Report `name` (one of `REPORTS`) for `year`."""
        return REPORTS[name](self._session, year, sources)
