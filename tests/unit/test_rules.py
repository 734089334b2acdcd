"""The rule catalogue: every rule has a passing and a failing example here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hub.domain.calendar import OSLO
from hub.domain.events import Registration
from hub.domain.identifiers import CheckDigitRule
from hub.domain.lifecycle import Fact
from hub.domain.residence import Residence, residence_history, residence_on
from hub.domain.snapshot import TWO_PERSONS, Conflict, PersonState, Target
from hub.domain.sources import SourceState
from hub.pipeline.decode import decode_registration
from hub.rules import RULES, RuleContext, Severity, check, evaluate
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from tests.factories import PAYLOADS, event, synthetic_person

TODAY = dt.date(2026, 11, 26)
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
REGISTRY = SourceRegistry.from_mapping(
    {"sources": {"oslo-fagsystem": {"municipalities": ["0301"]}, "other": {"municipalities": ["4601"]}}}
)


def _fact(event_type: str, date: str, **payload: Any) -> Fact:
    return Fact(
        f"k-{event_type}-{date}", event_type, dt.date.fromisoformat(date), payload, sequence=len(date)
    )


# The person's training has run since June; the base event (training hours) fits it.
RUNNING = (
    _fact("TRAINING_CLAIM", "2026-05-01"),
    _fact("TRAINING_DECISION", "2026-05-15", outcome="GRANTED"),
    _fact("TRAINING_STARTED", "2026-06-01"),
)
LIVES_IN_BERGEN = Residence(dt.date(2026, 1, 1), "4601", protected=False, sequence_number=1)
STUDENT_PERMIT = _fact(
    "RESIDENCE_PERMIT_REGISTERED", "2026-01-10", ground="STUDENT", validUntil="2027-01-10", permanent=False
)
DIED_IN_OCTOBER = PersonState("dead", dt.date(2026, 10, 1), sequence_number=3)
CEASED_DUPLICATE = PersonState("ceased_as_duplicate", dt.date(2026, 10, 1), sequence_number=4)

CONTEXT = RuleContext(
    history=RUNNING,
    today=TODAY,
    now=NOW,
    topic_source="oslo-fagsystem",
    registry=REGISTRY,
    allow_synthetic_identifiers=True,
)
# The person has claimed training; the decision is what comes next.
CLAIMED = dataclasses.replace(CONTEXT, history=RUNNING[:1])
ASYLUM_PERMIT_2019 = _fact(
    "RESIDENCE_PERMIT_REGISTERED", "2019-03-01", ground="ASYLUM", validUntil=None, permanent=True
)


def registration(event_type: str = "TRAINING_HOURS", **changes: Any) -> Registration:
    e = event(synthetic_person(), event_type, fact_date=TODAY - dt.timedelta(days=5))
    e["sentAt"] = NOW.isoformat()
    e.update(changes)
    return decode_registration(catalog(), catalog().encode(REGISTRATION, from_json(e)))


def _bad_check_digit(r: Registration) -> Registration:
    nid = r.national_id or ""
    return dataclasses.replace(r, national_id=nid[:-1] + str((int(nid[-1]) + 1) % 10))


def _replace(**changes: Any) -> Callable[[], Registration]:
    return lambda: dataclasses.replace(registration(), **changes)


def _registry(municipality: str) -> RuleContext:
    registry = SourceRegistry.from_mapping(
        {"sources": {"oslo-fagsystem": {"municipalities": [municipality]}}}
    )
    return dataclasses.replace(CONTEXT, registry=registry)


def _with_payload(event_type: str, **payload: Any) -> Callable[[], Registration]:
    def make() -> Registration:
        r = registration(event_type)
        return dataclasses.replace(r, payload={**r.payload, **payload})

    return make


# code -> a registration that breaks exactly this rule, and the context to judge it in.
FAILING: dict[str, tuple[Callable[[], Registration], RuleContext]] = {
    "NIR-TEXT-001": (_replace(source_system="oslo-fagsystem\x00"), CONTEXT),
    "NIR-TEXT-002": (_replace(fagsystem_version="v" * 65), CONTEXT),
    "NIR-MUNI-003": (_replace(municipality="03011"), CONTEXT),
    "NIR-DATE-005": (_replace(sent_at=dt.datetime(1, 1, 1, tzinfo=dt.UTC)), CONTEXT),
    "NIR-QTY-002": (_with_payload("TRAINING_HOURS", norwegianHours=float("nan")), CONTEXT),
    "NIR-SCHEMA-001": (_replace(event_type="UNKNOWN"), CONTEXT),
    "NIR-SCHEMA-002": (_replace(event_type="TRAINING_CLAIM"), CONTEXT),
    "NIR-ID-001": (_replace(national_id=None, duf_number=None), CONTEXT),
    "NIR-ID-002": (lambda: _bad_check_digit(registration()), CONTEXT),
    "NIR-ID-003": (_replace(duf_number="1899123456"), CONTEXT),
    "NIR-ID-004": (_replace(duf_number="201812345678"), CONTEXT),  # checksum 04, not 78
    "NIR-SOURCE-001": (_replace(source_system="other"), CONTEXT),
    "NIR-SOURCE-002": (registration, _registry("4601")),
    "NIR-SOURCE-003": (
        registration,
        dataclasses.replace(
            CONTEXT, source_revoked=SourceState("oslo-fagsystem", True, NOW, "imdi", "contract ended")
        ),
    ),
    # 3001 was Halden until 2023; from 2024 Halden is 3101 and 3001 is no municipality.
    "NIR-MUNI-001": (_replace(municipality="3001"), _registry("3001")),
    "NIR-DATE-001": (_replace(fact_date=TODAY + dt.timedelta(days=1)), CONTEXT),
    "NIR-DATE-002": (_replace(sent_at=NOW + dt.timedelta(hours=1)), CONTEXT),
    "NIR-DATE-003": (
        _with_payload("TRAINING_HOURS", periodStart="2026-11-20", periodEnd="2026-11-01"),
        CONTEXT,
    ),
    "NIR-DEADLINE-001": (_replace(fact_date=dt.date(2026, 9, 25)), CONTEXT),
    "NIR-DEADLINE-002": (
        lambda: dataclasses.replace(registration("TRAINING_CLAIM"), fact_date=dt.date(2024, 11, 25)),
        CONTEXT,
    ),
    "NIR-CODE-003": (_with_payload("TRAINING_ENDED", endReason="NOT_REGISTERED"), CONTEXT),
    "NIR-LIFE-001": (registration, dataclasses.replace(CONTEXT, history=())),
    "NIR-LIFE-002": (lambda: registration("TRAINING_STARTED"), CONTEXT),
    "NIR-LIFE-003": (
        registration,
        dataclasses.replace(
            CONTEXT, history=(*RUNNING, _fact("TRAINING_STOPPED", "2026-10-01", stopKind="PERMANENT"))
        ),
    ),
    "NIR-LIFE-004": (
        registration,
        dataclasses.replace(CONTEXT, history=(*RUNNING, _fact("TRAINING_ENDED", "2026-10-01"))),
    ),
    "NIR-DATE-004": (
        registration,
        dataclasses.replace(CONTEXT, history=(*RUNNING[:2], _fact("TRAINING_STARTED", "2026-11-25"))),
    ),
    "NIR-CORR-001": (_replace(action="CORRECT"), CONTEXT),
    "NIR-CORR-002": (_replace(action="CORRECT", corrects_event_id=uuid.uuid4()), CONTEXT),
    "NIR-CORR-003": (
        _replace(action="ANNUL", corrects_event_id=uuid.uuid4()),
        dataclasses.replace(CONTEXT, target=Target("k", "TRAINING_HOURS", same_person=False)),
    ),
    # Bergen's registration, annulled from Oslo's topic.
    "NIR-CORR-004": (
        _replace(action="ANNUL", corrects_event_id=uuid.uuid4()),
        dataclasses.replace(
            CONTEXT, target=Target("k", "TRAINING_HOURS", same_person=True, municipality="4601")
        ),
    ),
    "NIR-ID-005": (registration, dataclasses.replace(CONTEXT, identity=Conflict(TWO_PERSONS))),
    "NIR-EVENT-001": (registration, dataclasses.replace(CONTEXT, reused_id="registered")),
    "NIR-QTY-001": (_with_payload("TRAINING_HOURS", norwegianHours=-1.0), CONTEXT),
    "NIR-CODE-001": (_with_payload("TRAINING_LANGUAGES", motherTongue="Tigrinya"), CONTEXT),
    "NIR-CODE-002": (
        _with_payload("TRAINING_STARTED", goalLevel="UNKNOWN"),
        dataclasses.replace(CONTEXT, history=RUNNING[:2]),
    ),
    "NIR-MUNI-002": (registration, dataclasses.replace(CONTEXT, residences=(LIVES_IN_BERGEN,))),
    "NIR-PERSON-001": (registration, dataclasses.replace(CONTEXT, person_states=(DIED_IN_OCTOBER,))),
    "NIR-PERSON-002": (registration, dataclasses.replace(CONTEXT, person_states=(CEASED_DUPLICATE,))),
    "NIR-RIGHT-001": (
        lambda: registration("INTRODUCTION_PROGRAMME_DECISION"),
        dataclasses.replace(
            CONTEXT, history=(_fact("INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", "2026-05-01"), STUDENT_PERMIT)
        ),
    ),
    "NIR-RIGHT-002": (
        lambda: registration("TRAINING_DECISION"),
        dataclasses.replace(CONTEXT, history=(RUNNING[0], STUDENT_PERMIT)),
    ),
    "NIR-CODE-004": (_with_payload("TRAINING_DECISION", outcome="REFUSED", refusalReasons=[]), CLAIMED),
    "NIR-CODE-005": (_with_payload("TRAINING_DECISION", scopeHours=None), CLAIMED),
    "NIR-DATE-006": (_with_payload("TRAINING_STOPPED", stoppedUntil=None), CONTEXT),
    "NIR-DATE-007": (_with_payload("TRAINING_STOPPED", stoppedUntil="2027-02-22"), CONTEXT),
    "NIR-DATE-008": (
        _with_payload("TRAINING_STOPPED", stopKind="PERMANENT", stoppedUntil="2026-12-21"),
        CONTEXT,
    ),
    "NIR-QTY-003": (
        _with_payload(
            "TRAINING_LEAVE",
            leave={"reason": "PREGNANCY", "durationDays": 11, "absenceReasonAfterLeave": None},
        ),
        CONTEXT,
    ),
    "NIR-CODE-006": (_with_payload("TRAINING_EXEMPTION", exemptFrom="PARTICIPATION"), CONTEXT),
    "NIR-CODE-007": (
        _with_payload("TRAINING_FINAL_TEST", partialResults=[{"skill": "READING", "result": "C1"}]),
        CONTEXT,
    ),
    "NIR-CODE-008": (
        _with_payload(
            "TRAINING_FINAL_TEST",
            partialResults=[{"skill": "READING", "result": "A2"}, {"skill": "READING", "result": "B1"}],
        ),
        CONTEXT,
    ),
    "NIR-QTY-004": (
        _with_payload(
            "TRAINING_FINAL_TEST", socialStudiesTest={"passed": True, "correctAnswers": 28, "language": "ara"}
        ),
        CONTEXT,
    ),
    "NIR-QTY-005": (_with_payload("CULTURE_AND_VALUES_TRAINING", hoursCompleted=0.0), CONTEXT),
    "NIR-RIGHT-003": (
        lambda: registration("TRAINING_STARTED"),  # a goal level, for a person under the older act
        dataclasses.replace(CONTEXT, history=(*RUNNING[:2], ASYLUM_PERMIT_2019)),
    ),
}


def test_every_rule_in_the_catalogue_has_an_example_here_and_a_unique_code() -> None:
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    assert set(FAILING) == set(codes)


def test_a_valid_registration_passes_every_rule() -> None:
    assert evaluate(registration(), CONTEXT) == []


@pytest.mark.parametrize("code", sorted(FAILING))
def test_each_rule_fires_on_its_failing_example_and_explains_itself_in_both_languages(code: str) -> None:
    make, context = FAILING[code]
    broken = make()
    rule = next(r for r in RULES if r.code == code)
    # A rule the decision asks on demand is never asked by `evaluate`.
    violations = (
        [v for v in [check(code, broken, context)] if v] if rule.on_demand else evaluate(broken, context)
    )
    assert [v.code for v in violations] == [code]
    assert not rule.on_demand or code not in [v.code for v in evaluate(broken, context)]
    [violation] = violations
    assert violation.severity is next(r.severity for r in RULES if r.code == code)
    assert violation.message and violation.message_nb and violation.message != violation.message_nb
    for identifier in (broken.national_id, broken.duf_number):
        if identifier:
            assert identifier not in violation.message + violation.message_nb


@pytest.mark.parametrize(
    ("fact_date", "late", "too_old"),
    [
        (dt.date(2026, 9, 26), False, False),  # exactly two months before 26 November: in time
        (dt.date(2026, 9, 25), True, False),
        (dt.date(2024, 11, 26), True, False),  # exactly 24 months: still allowed
        (dt.date(2024, 11, 25), False, True),
    ],
)
def test_the_deadline_boundaries_are_two_and_twenty_four_months(
    fact_date: dt.date, late: bool, too_old: bool
) -> None:
    codes = {v.code for v in evaluate(dataclasses.replace(registration(), fact_date=fact_date), CONTEXT)}
    assert ("NIR-DEADLINE-001" in codes) is late
    assert ("NIR-DEADLINE-002" in codes) is too_old


@pytest.mark.parametrize(
    ("fact_date", "received_on", "last_day_in_time"),
    [
        ("2025-06-30", "2025-08-31", "2025-08-30"),
        ("2026-02-28", "2026-04-29", "2026-04-28"),
        ("2026-02-28", "2026-04-30", "2026-04-28"),
        ("2024-02-29", "2024-04-30", "2024-04-29"),
        ("2025-11-30", "2026-01-31", "2026-01-30"),
    ],
)
def test_a_deadline_ending_at_a_month_end_is_counted_forward_from_the_fact(
    fact_date: str, received_on: str, last_day_in_time: str
) -> None:
    """Counted back from the day of receipt, with the month's end clamped, none of these was late."""
    fact = dataclasses.replace(registration(), fact_date=dt.date.fromisoformat(fact_date))

    def codes(day: str) -> set[str]:
        at = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(12), tzinfo=dt.UTC)
        return {v.code for v in evaluate(fact, dataclasses.replace(CONTEXT, today=at.date(), now=at, received_at=at))}

    assert "NIR-DEADLINE-001" in codes(received_on)
    assert "NIR-DEADLINE-001" not in codes(last_day_in_time)


@pytest.mark.parametrize(
    ("fact_date", "received_on"), [("2022-02-28", "2024-02-29"), ("2024-08-31", "2026-09-01"), ("2024-02-29", "2026-03-01")]
)
def test_the_24_month_limit_is_counted_forward_from_the_fact_too(fact_date: str, received_on: str) -> None:
    """28 February 2022 + 24 months is 28 February 2024 (counted back from 29 February 2024, it
    seemed in time); 29 February 2024 + 24 months is 28 February 2026."""
    received = dt.datetime.combine(dt.date.fromisoformat(received_on), dt.time(12), tzinfo=dt.UTC)
    fact = dataclasses.replace(registration(), fact_date=dt.date.fromisoformat(fact_date))

    def codes(at: dt.datetime) -> set[str]:
        context = dataclasses.replace(CONTEXT, today=at.date(), now=at, received_at=at)
        return {v.code for v in evaluate(fact, context)}

    assert "NIR-DEADLINE-002" in codes(received)
    assert "NIR-DEADLINE-002" not in codes(received - dt.timedelta(days=1))


def test_the_deadlines_count_to_when_the_hub_received_the_event_not_to_its_sent_at() -> None:
    """sentAt is the fagsystem's own clock: a backdated one must not make a late event in time,
    and a fagsystem whose clock runs slow must not make an event late that arrived in time."""
    in_time = dt.date(2026, 9, 26)  # two months before 26 November, when the hub received it
    backdated = dataclasses.replace(
        registration(), fact_date=dt.date(2026, 9, 1), sent_at=dt.datetime(2026, 9, 2, tzinfo=dt.UTC)
    )
    received = dataclasses.replace(CONTEXT, received_at=NOW)
    assert "NIR-DEADLINE-001" in {v.code for v in evaluate(backdated, received)}
    slow_clock = dataclasses.replace(
        registration(), fact_date=in_time, sent_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    )
    received_in_time = dataclasses.replace(CONTEXT, received_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    assert evaluate(slow_clock, received_in_time) == []
    # Received long before it is decided (held, or a transfer that failed and was put right):
    # the receipt counts, not the day of the decision.
    decided_later = dataclasses.replace(
        CONTEXT,
        today=dt.date(2027, 3, 1),
        now=dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
        received_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
    )
    assert "NIR-DEADLINE-001" not in {v.code for v in evaluate(slow_clock, decided_later)}
    [late] = [v for v in evaluate(backdated, received) if v.code == "NIR-DEADLINE-001"]
    assert "2026-11-26" in late.message and "2026-11-26" in late.message_nb


def test_fact_dates_are_judged_in_norwegian_time() -> None:
    late_evening = dt.datetime(2026, 11, 26, 23, 30, tzinfo=dt.UTC)  # already the 27th in Oslo
    r = dataclasses.replace(registration(), fact_date=dt.date(2026, 11, 27), sent_at=late_evening)
    context = dataclasses.replace(CONTEXT, today=late_evening.astimezone(OSLO).date(), now=late_evening)
    assert evaluate(r, context) == []


def test_municipality_numbers_are_checked_against_the_list_in_force_on_the_facts_date() -> None:
    _, context = FAILING["NIR-MUNI-001"]
    sent = dt.datetime(2024, 1, 2, 10, tzinfo=dt.UTC)  # judged soon after the county reform
    context = dataclasses.replace(context, today=sent.date(), now=sent, history=())
    halden = dataclasses.replace(registration("TRAINING_CLAIM"), municipality="3001", sent_at=sent)
    assert evaluate(dataclasses.replace(halden, fact_date=dt.date(2023, 12, 31)), context) == []
    assert [
        v.code for v in evaluate(dataclasses.replace(halden, fact_date=dt.date(2024, 1, 1)), context)
    ] == ["NIR-MUNI-001"]


def test_the_affiliation_warning_names_both_municipalities_but_never_a_protected_one() -> None:
    r = registration()
    [warning] = evaluate(r, dataclasses.replace(CONTEXT, residences=(LIVES_IN_BERGEN,)))
    assert "0301" in warning.message and "4601" in warning.message and "4601" in warning.message_nb
    protected = dataclasses.replace(LIVES_IN_BERGEN, protected=True)
    moved_later = dataclasses.replace(LIVES_IN_BERGEN, since=r.fact_date + dt.timedelta(days=1))
    lives_in_oslo = dataclasses.replace(LIVES_IN_BERGEN, municipality="0301")
    for residences in (
        (protected,),
        (moved_later,),
        (lives_in_oslo,),
        (LIVES_IN_BERGEN, dataclasses.replace(lives_in_oslo, since=r.fact_date, sequence_number=2)),
    ):
        assert evaluate(r, dataclasses.replace(CONTEXT, residences=residences)) == [], residences


def _reported_by(municipality: str, *residences: Residence, on: dt.date | None = None) -> list[str]:
    """The codes a registration by `municipality` gets, by a source that may report for it."""
    r = dataclasses.replace(registration(), municipality=municipality)
    r = r if on is None else dataclasses.replace(r, fact_date=on)
    return [v.code for v in evaluate(r, dataclasses.replace(_registry(municipality), residences=residences))]


def test_a_person_living_in_3024_since_2022_is_not_warned_about_when_3201_baerum_reports_in_2026() -> None:
    in_baerum = Residence(dt.date(2022, 3, 1), "3024", protected=False, sequence_number=1)
    assert _reported_by("3201", in_baerum) == []
    # Before the renumbering, Bærum reported under its old number.
    assert "NIR-MUNI-002" not in _reported_by("3024", in_baerum, on=dt.date(2023, 6, 1))


def test_a_residence_in_1507_alesund_is_in_1580_haram_or_1508_alesund_after_the_split_and_back() -> None:
    in_alesund = Residence(dt.date(2021, 5, 1), "1507", protected=False, sequence_number=1)
    assert _reported_by("1580", in_alesund) == []
    assert _reported_by("1508", in_alesund) == []
    # A residence recorded under the new number, reported before the split under the old one.
    in_haram = dataclasses.replace(in_alesund, municipality="1580")
    assert "NIR-MUNI-002" not in _reported_by("1507", in_haram, on=dt.date(2023, 6, 1))


def test_a_genuine_mismatch_is_still_warned_about_naming_the_residence_by_the_number_in_force() -> None:
    in_baerum = Residence(dt.date(2022, 3, 1), "3024", protected=False, sequence_number=1)
    assert _reported_by("0301", in_baerum) == ["NIR-MUNI-002"]
    [warning] = evaluate(
        dataclasses.replace(registration(), municipality="0301"),
        dataclasses.replace(CONTEXT, residences=(in_baerum,)),
    )
    assert "municipality 3201 (recorded as 3024) on" in warning.message
    assert "kommune 3201 (registrert som 3024)" in warning.message_nb
    in_haram = Residence(dt.date(2021, 5, 1), "1580", protected=False, sequence_number=1)
    assert _reported_by("1508", in_haram) == ["NIR-MUNI-002"]  # Haram and Ålesund split in 2024
    assert "NIR-MUNI-002" in _reported_by("1505", in_haram, on=dt.date(2023, 6, 1))
    [rule] = [r for r in RULES if r.code == "NIR-MUNI-002"]
    assert rule.severity is Severity.WARNING


def test_a_change_of_municipality_without_moving_renumbers_the_residence_from_its_date() -> None:
    in_alesund = Residence(dt.date(2021, 5, 1), "1507", protected=False, sequence_number=1)
    renumbered = Residence(dt.date(2024, 1, 1), "1580", protected=False, sequence_number=2, moved=False)
    assert residence_history([in_alesund, renumbered]) == [in_alesund, renumbered]
    assert residence_on([in_alesund, renumbered], dt.date(2023, 12, 31)) == in_alesund
    assert residence_on([in_alesund, renumbered], dt.date(2024, 1, 1)) == renumbered
    # Haram is now where the person lives: Ålesund's report is warned about, naming Haram.
    assert _reported_by("1580", in_alesund, renumbered) == []
    assert _reported_by("1508", in_alesund, renumbered) == ["NIR-MUNI-002"]
    # A change without moving that keeps the number (a new street name) changes nothing.
    same = dataclasses.replace(renumbered, municipality="1507", sequence_number=3)
    assert residence_history([in_alesund, same]) == [in_alesund]


def test_a_death_reported_on_the_facts_date_or_later_is_no_warning_and_an_earlier_one_a_warning() -> None:
    r = registration()
    died_later = dataclasses.replace(DIED_IN_OCTOBER, on=r.fact_date)
    assert evaluate(r, dataclasses.replace(CONTEXT, person_states=(died_later,))) == []
    [warning] = evaluate(r, dataclasses.replace(CONTEXT, person_states=(DIED_IN_OCTOBER,)))
    assert warning.severity.value == "WARNING" and "2026-10-01" in warning.message


def test_a_pending_renewal_keeps_a_programme_decision_free_of_warnings() -> None:
    expired = _fact(
        "RESIDENCE_PERMIT_REGISTERED",
        "2023-01-10",
        ground="ASYLUM",
        validUntil="2026-01-10",
        renewalAppliedOn="2025-12-01",
        permanent=False,
    )
    claim = _fact("INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", "2026-05-01")
    decision = registration("INTRODUCTION_PROGRAMME_DECISION")
    assert evaluate(decision, dataclasses.replace(CONTEXT, history=(claim, expired))) == []
    lapsed = dataclasses.replace(expired, payload={**expired.payload, "renewalAppliedOn": None})
    codes = [v.code for v in evaluate(decision, dataclasses.replace(CONTEXT, history=(claim, lapsed)))]
    assert codes == ["NIR-RIGHT-001"]
    refused = dataclasses.replace(decision, payload={**decision.payload, "outcome": "REFUSED"})
    assert "NIR-RIGHT-001" not in [
        v.code for v in evaluate(refused, dataclasses.replace(CONTEXT, history=(claim, lapsed)))
    ]


# A correction's deadlines count to when the hub first received its original (`decide.counted_from`).
ORIGINAL_RECEIVED = dataclasses.replace(CONTEXT, received_at=dt.datetime(2023, 1, 20, 9, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("kind", "changes", "context"),
    [
        ("a residence permit granted long ago", {"event_type": "RESIDENCE_PERMIT_REGISTERED"}, CONTEXT),
        ("a correction of a record received in time", {"action": "CORRECT"}, ORIGINAL_RECEIVED),
        ("an annulment of an old record", {"action": "ANNUL"}, CONTEXT),
    ],
)
def test_the_deadlines_are_for_the_municipalitys_own_registrations_not_permits_or_corrections(
    kind: str, changes: dict[str, Any], context: RuleContext
) -> None:
    """Issue 15, fault 1: a permit granted in 2023 (the renewal-pending case itself), or the fix
    of a wrong record from 2023, is neither too old nor late."""
    old = dataclasses.replace(registration(), fact_date=dt.date(2023, 1, 10), **changes)
    codes = {v.code for v in evaluate(old, context)}
    assert "NIR-DEADLINE-002" not in codes, kind
    assert "NIR-DEADLINE-001" not in codes, kind
    plain = dataclasses.replace(registration(), fact_date=dt.date(2023, 1, 10))
    assert "NIR-DEADLINE-002" in {v.code for v in evaluate(plain, CONTEXT)}  # the municipality's own: too old


def _national_id_under_a_relaxed_second_check(born: dt.date, individual: int) -> str | None:
    """A number whose second check leaves remainder 1, valid only under a rule that accepts it;
    None where this individual number gives none."""
    digits = [int(c) for c in f"{born:%d%m%y}{individual:03d}"]
    first = (11 - sum(d * w for d, w in zip(digits, (3, 7, 6, 1, 8, 9, 4, 5, 2), strict=True)) % 11) % 11
    second = (
        1 - sum(d * w for d, w in zip([*digits, first], (5, 4, 3, 2, 7, 6, 5, 4, 3, 2), strict=True))
    ) % 11
    return "".join(map(str, [*digits, first, second])) if first < 10 and second < 10 else None


def test_the_category_rules_read_the_age_under_the_configured_check_digit_rule() -> None:
    """Issue 15, fault 7: `_birth_date` ignored the configured rule, so a number valid under it
    had no age, and a training right granted at 75 passed without a warning."""
    number = next(
        n
        for i in range(100, 500)
        if (n := _national_id_under_a_relaxed_second_check(dt.date(1950, 3, 5), i)) is not None
    )
    relaxed = CheckDigitRule(second=frozenset({0, 1}))
    asylum = _fact(
        "RESIDENCE_PERMIT_REGISTERED", "2026-01-10", ground="ASYLUM", validUntil="2029-01-10", permanent=False
    )
    context = dataclasses.replace(CONTEXT, history=(RUNNING[0], asylum), check_digit_rule=relaxed)
    decision = dataclasses.replace(registration("TRAINING_DECISION"), national_id=number)
    codes = [v.code for v in evaluate(decision, context)]
    assert "NIR-ID-002" not in codes  # valid under the configured rule
    assert "NIR-RIGHT-002" in codes  # 75 when the permit was granted: outside 18-67


# --- Issue 15, fault 4: code-list semantics. Each case shows the rule firing and not firing.


def _codes(r: Registration, context: RuleContext = CONTEXT) -> set[str]:
    return {v.code for v in evaluate(r, context)}


def _payload(event_type: str, **payload: Any) -> Registration:
    return _with_payload(event_type, **payload)()


@pytest.mark.parametrize(
    ("event_type", "missing", "given"),
    [
        (
            "INTRODUCTION_PROGRAMME_DECISION",
            {"refusalReason": None},
            {"refusalReason": "not in the target group"},
        ),
        (
            "INTRODUCTION_PROGRAMME_DECISION",
            {"refusalReason": "  "},
            {"refusalReason": "not in the target group"},
        ),
        ("TRAINING_DECISION", {"refusalReasons": []}, {"refusalReasons": ["no right"]}),
        (
            "TRAINING_DECISION",
            {"refusalReasons": ["no right", ""]},
            {"refusalReasons": ["no right", "no duty"]},
        ),
    ],
)
def test_a_refusal_is_rejected_without_its_reasons_and_accepted_with_them(
    event_type: str, missing: dict[str, Any], given: dict[str, Any]
) -> None:
    def codes(reasons: dict[str, Any]) -> set[str]:
        refused = {"outcome": "REFUSED", "measures": [], "durationMonths": None, "scopeHours": None}
        return _codes(_payload(event_type, **refused, **reasons))

    assert "NIR-CODE-004" in codes(missing)
    assert "NIR-CODE-004" not in codes(given)
    assert "NIR-CODE-004" not in _codes(_payload(event_type, **missing))  # a grant gives no reasons


@pytest.mark.parametrize(
    ("event_type", "broken"),
    [
        ("INTRODUCTION_PROGRAMME_DECISION", {"measures": []}),
        ("INTRODUCTION_PROGRAMME_DECISION", {"durationMonths": None}),
        ("INTRODUCTION_PROGRAMME_DECISION", {"durationMonths": 0}),
        (
            "INTRODUCTION_PROGRAMME_DECISION",
            {"measures": [{"measureType": "WORK_PRACTICE", "hoursPerWeek": None, "startDate": "2026-12-01"}]},
        ),
        ("TRAINING_DECISION", {"scopeHours": None}),
        ("TRAINING_DECISION", {"scopeHours": 0}),
    ],
)
def test_a_granted_decision_is_rejected_without_its_measures_and_duration_or_its_scope(
    event_type: str, broken: dict[str, Any]
) -> None:
    assert "NIR-CODE-005" in _codes(_payload(event_type, **broken))
    assert "NIR-CODE-005" not in _codes(registration(event_type))
    refused = {"outcome": "REFUSED", "refusalReason": "no right", "refusalReasons": ["no right"]}
    assert "NIR-CODE-005" not in _codes(_payload(event_type, **broken, **refused))


@pytest.mark.parametrize(
    ("fact_date", "longest"),
    [
        ("2026-11-21", "2027-02-20"),  # stoppedUntil is the last day stopped
        ("2027-03-01", "2027-05-31"),  # 1 March to 1 June would be three months and a day
        ("2026-11-30", "2027-02-28"),  # no 30 February: the month's last day
        ("2026-01-31", "2026-04-30"),  # no 31 April
    ],
)
def test_a_temporary_stop_lasts_at_most_three_months(fact_date: str, longest: str) -> None:
    def codes(until: str) -> set[str]:
        stop = _payload("TRAINING_STOPPED", stoppedUntil=until)
        return _codes(dataclasses.replace(stop, fact_date=dt.date.fromisoformat(fact_date)))

    assert "NIR-DATE-007" not in codes(longest)
    assert "NIR-DATE-007" not in codes(fact_date)
    day_more = (dt.date.fromisoformat(longest) + dt.timedelta(days=1)).isoformat()
    assert "NIR-DATE-007" in codes(day_more)
    assert "NIR-DATE-006" not in codes(day_more)


@pytest.mark.parametrize("event_type", ["INTRODUCTION_PROGRAMME_STOPPED", "TRAINING_STOPPED"])
def test_a_temporary_stop_needs_an_end_date_and_a_permanent_stop_must_not_have_one(event_type: str) -> None:
    def codes(kind: str, until: str | None) -> set[str]:
        return {c for c in _codes(_payload(event_type, stopKind=kind, stoppedUntil=until)) if "DATE-00" in c}

    assert codes("TEMPORARY", None) == {"NIR-DATE-006"}
    assert codes("TEMPORARY", "2026-12-21") == set()
    assert codes("PERMANENT", "2026-12-21") == {"NIR-DATE-008"}
    assert codes("PERMANENT", None) == set()


@pytest.mark.parametrize(
    ("reason", "longest"),
    [("PREGNANCY", 10), ("BIRTH", 20), ("CARE_AFTER_BIRTH_OR_ADOPTION", 306), ("LONG_ILLNESS", 366)],
)
def test_a_leave_longer_than_its_reason_allows_is_warned_about_as_unconfirmed(
    reason: str, longest: int
) -> None:
    def leave(days: int) -> list[Any]:
        r = _payload(
            "INTRODUCTION_PROGRAMME_LEAVE",
            leave={"reason": reason, "durationDays": days, "absenceReasonAfterLeave": None},
        )
        return [v for v in evaluate(r, CONTEXT) if v.code == "NIR-QTY-003"]

    assert leave(longest) == []
    [warning] = leave(longest + 1)
    assert warning.severity.value == "WARNING"
    assert "not yet confirmed" in warning.message and "ikke bekreftet" in warning.message_nb


def test_welfare_and_other_leave_have_no_length_of_their_own() -> None:
    for reason in ("WELFARE", "OTHER"):
        r = _payload(
            "TRAINING_LEAVE", leave={"reason": reason, "durationDays": 400, "absenceReasonAfterLeave": None}
        )
        assert "NIR-QTY-003" not in _codes(r)
    assert "NIR-QTY-003" in _codes(
        _payload(
            "TRAINING_LEAVE", leave={"reason": "BIRTH", "durationDays": 21, "absenceReasonAfterLeave": None}
        )
    )


def test_a_doctors_note_exempts_from_the_final_test_only() -> None:
    def fires(exempt_from: str, ground: str) -> bool:
        return "NIR-CODE-006" in _codes(_payload("TRAINING_EXEMPTION", exemptFrom=exempt_from, ground=ground))

    assert fires("PARTICIPATION", "HEALTH_DOCTORS_NOTE")
    assert not fires("FINAL_TEST", "HEALTH_DOCTORS_NOTE")
    assert not fires("PARTICIPATION", "HEALTH_OR_WEIGHTY_REASONS")
    assert not fires("PARTICIPATION", "HEAVY_CARE_DUTIES")


@pytest.mark.parametrize("event_type", ["TRAINING_FINAL_TEST", "ASYLUM_SEEKER_FINAL_TEST"])
def test_c1_is_rejected_as_a_partial_test_result_but_b2_is_not(event_type: str) -> None:
    def codes(result: str) -> set[str]:
        results = [{"skill": "ORAL", "result": "B1"}, {"skill": "WRITING", "result": result}]
        return _codes(_payload(event_type, partialResults=results))

    assert "NIR-CODE-007" in codes("C1")
    assert "NIR-CODE-007" not in codes("B2")


@pytest.mark.parametrize("event_type", ["TRAINING_FINAL_TEST", "ASYLUM_SEEKER_FINAL_TEST"])
def test_the_same_partial_test_twice_in_one_result_is_rejected_but_two_unknown_skills_are_not(
    event_type: str,
) -> None:
    def codes(*skills: str) -> set[str]:
        return _codes(_payload(event_type, partialResults=[{"skill": s, "result": "A2"} for s in skills]))

    assert "NIR-CODE-008" in codes("ORAL", "WRITING", "ORAL")
    assert "NIR-CODE-008" not in codes("ORAL", "WRITING", "READING", "LISTENING")
    assert "NIR-CODE-008" not in codes("UNKNOWN", "UNKNOWN")  # a newer writer's two skills


def test_c1_stays_a_valid_goal_level() -> None:
    started = _payload("TRAINING_STARTED", goalLevel="C1")
    assert "NIR-CODE-007" not in _codes(started, dataclasses.replace(CONTEXT, history=RUNNING[:2]))
    assert "NIR-CODE-007" in _codes(
        _payload("TRAINING_FINAL_TEST", partialResults=[{"skill": "ORAL", "result": "C1"}])
    )


@pytest.mark.parametrize("event_type", ["TRAINING_FINAL_TEST", "ASYLUM_SEEKER_FINAL_TEST"])
@pytest.mark.parametrize(
    ("passed", "wrong", "right"),
    [
        (True, 28, 29),
        (True, 0, 38),
        (True, 28, None),  # the count is optional
        (False, 29, 28),
        (False, 38, None),
    ],
)
def test_a_social_studies_pass_is_29_of_38_correct_or_more(
    event_type: str, passed: bool, wrong: int, right: int | None
) -> None:
    def codes(correct: int | None) -> set[str]:
        test = {"passed": passed, "correctAnswers": correct, "language": "ara"}
        return _codes(registration(event_type, payload={"partialResults": [], "socialStudiesTest": test}))

    assert "NIR-QTY-004" in codes(wrong)
    assert "NIR-QTY-004" not in codes(right)


def test_no_social_studies_score_exceeds_38_in_either_final_test() -> None:
    for event_type in ("TRAINING_FINAL_TEST", "ASYLUM_SEEKER_FINAL_TEST"):
        test = {"passed": True, "correctAnswers": 39, "language": "ara"}
        r = registration(event_type, payload={"partialResults": [], "socialStudiesTest": test})
        assert [v.code for v in evaluate(r, CONTEXT)] == ["NIR-QTY-002"], event_type


def test_a_completed_culture_and_values_course_has_its_hours() -> None:
    def fires(hours: float, completed: bool) -> bool:
        r = _payload("CULTURE_AND_VALUES_TRAINING", hoursCompleted=hours, completed=completed)
        return "NIR-QTY-005" in _codes(r)

    assert fires(0.0, True)
    assert not fires(25.0, True)
    assert not fires(0.0, False)
    assert not fires(12.5, False)


def _permit(date: str, ground: str = "ASYLUM") -> Fact:
    return _fact("RESIDENCE_PERMIT_REGISTERED", date, ground=ground, validUntil=None, permanent=False)


@pytest.mark.parametrize(
    ("permits", "right", "wrong"),
    [
        (("2019-03-01",), ("TRACK_2", None), (None, "B1")),  # introduction act: a track
        (("2019-03-01",), ("TRACK_2", None), ("TRACK_2", "B1")),
        (("2020-12-31",), ("TRACK_1", None), (None, "B1")),
        (("2021-01-01",), (None, "B1"), ("TRACK_2", None)),  # integration act: a goal level
        (("2022-06-01",), (None, "C1"), ("TRACK_2", "B1")),
        (("2019-03-01", "2022-06-01"), ("TRACK_2", None), (None, "B1")),  # the first permit decides
        (("2022-06-01", "2019-03-01"), ("TRACK_3", None), (None, "B1")),
    ],
)
def test_training_records_a_track_under_the_introduction_act_and_a_goal_level_under_the_integration_act(
    permits: tuple[str, ...], right: tuple[str | None, str | None], wrong: tuple[str | None, str | None]
) -> None:
    context = dataclasses.replace(CONTEXT, history=(*RUNNING[:2], *(_permit(p) for p in permits)))

    def violations(track: str | None, goal: str | None) -> list[Any]:
        started = _payload("TRAINING_STARTED", track=track, goalLevel=goal)
        return [v for v in evaluate(started, context) if v.code == "NIR-RIGHT-003"]

    assert violations(*right) == []
    [warning] = violations(*wrong)
    assert warning.severity.value == "WARNING"


def test_the_act_runs_from_the_permit_the_persons_rights_rest_on_not_an_earlier_other_ground() -> None:
    """A student in 2019 granted asylum in 2022 comes under the integration act (the category's
    basis, `hub.domain.rights`), though the register's first permit is from 2019."""
    context = dataclasses.replace(
        CONTEXT, history=(*RUNNING[:2], _permit("2019-03-01", "STUDENT"), _permit("2022-06-01"))
    )
    goal = _payload("TRAINING_STARTED", track=None, goalLevel="B1")
    track = _payload("TRAINING_STARTED", track="TRACK_2", goalLevel=None)
    assert "NIR-RIGHT-003" not in _codes(goal, context)
    assert "NIR-RIGHT-003" in _codes(track, context)


def test_without_a_residence_permit_the_act_is_not_known_and_nothing_is_said() -> None:
    goal = _payload("TRAINING_STARTED", track=None, goalLevel="B1")
    assert "NIR-RIGHT-003" not in _codes(goal, dataclasses.replace(CONTEXT, history=RUNNING[:2]))
    old_act = dataclasses.replace(CONTEXT, history=(*RUNNING[:2], _permit("2019-03-01")))
    assert "NIR-RIGHT-003" in _codes(goal, old_act)


def test_an_annulment_is_not_judged_on_the_payload_it_withdraws() -> None:
    """A stop registered without its end date before these rules existed can still be withdrawn;
    a correction of it must give the end date."""
    stop = _payload("TRAINING_STOPPED", stoppedUntil=None)
    target = Target("k", "TRAINING_STOPPED", same_person=True)
    context = dataclasses.replace(CONTEXT, target=target)
    annulment = dataclasses.replace(stop, action="ANNUL", corrects_event_id=uuid.uuid4())
    correction = dataclasses.replace(annulment, action="CORRECT")
    assert "NIR-DATE-006" not in _codes(annulment, context)
    assert "NIR-DATE-006" in _codes(correction, context)


def test_the_factories_default_events_break_none_of_the_code_list_rules() -> None:
    """Many tests send the factories' events and expect them ACCEPTED."""
    fault_4 = {
        "NIR-CODE-004",
        "NIR-CODE-005",
        "NIR-CODE-006",
        "NIR-CODE-007",
        "NIR-CODE-008",
        "NIR-DATE-006",
        "NIR-DATE-007",
        "NIR-DATE-008",
        "NIR-QTY-003",
        "NIR-QTY-004",
        "NIR-QTY-005",
        "NIR-RIGHT-003",
    }
    assert fault_4 <= {r.code for r in RULES}
    permit_2021 = dataclasses.replace(CONTEXT, history=(*RUNNING, _permit("2021-06-01")))
    for event_type in PAYLOADS:
        assert _codes(registration(event_type), permit_2021) & fault_4 == set(), event_type


def test_a_correction_that_moves_the_fact_more_than_24_months_before_the_original_came_is_too_old() -> None:
    """Its deadlines count from when the original came (2023-01-20); whether the registration
    was late is the original's to say, so a correction is never counted late again."""
    correction = dataclasses.replace(registration(), action="CORRECT")
    for fact_date, expected in (
        (dt.date(2023, 1, 10), set()),
        (dt.date(2022, 10, 1), set()),
        (dt.date(2020, 10, 1), {"NIR-DEADLINE-002"}),
    ):
        codes = {
            v.code for v in evaluate(dataclasses.replace(correction, fact_date=fact_date), ORIGINAL_RECEIVED)
        }
        assert codes & {"NIR-DEADLINE-001", "NIR-DEADLINE-002"} == expected, fact_date


def test_a_municipality_reports_its_own_past_under_its_number_today() -> None:
    """DOMAIN.md: Bærum (3024 until 2023, 3201 since) and Haram (in 1507 Ålesund until 2023, 1580
    since) may give their number today for a fact of 2023; a number that ended may not be used after."""
    for number in ("3201", "1580", "3024"):
        past = dataclasses.replace(registration(), municipality=number, fact_date=dt.date(2023, 3, 1))
        assert "NIR-MUNI-001" not in _codes(past, _registry(number)), number
    ended = dataclasses.replace(registration(), municipality="3024", fact_date=dt.date(2024, 3, 1))
    assert "NIR-MUNI-001" in _codes(ended, _registry("3024"))


# --- Issue 28, points 4 and 5: the category over a change of ground, and age 67.


def test_a_change_of_ground_after_asylum_gives_no_category_warnings_on_a_correct_track() -> None:
    """Asylum in 2019, then a permit as family of a Norwegian in 2022: the person stays under
    introduksjonsloven with the programme the asylum gave, so a programme decision and a track
    are right (NIR-RIGHT-001 and NIR-RIGHT-003 fired)."""
    asylum = _fact(
        "RESIDENCE_PERMIT_REGISTERED", "2019-03-01", ground="ASYLUM", validUntil="2022-03-01", permanent=False
    )
    family = _fact(
        "RESIDENCE_PERMIT_REGISTERED",
        "2022-01-15",
        ground="FAMILY_OF_NORWEGIAN_OR_NORDIC",
        validUntil="2028-01-15",
        permanent=False,
    )
    claim = _fact("INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", "2026-05-01")
    context = dataclasses.replace(CONTEXT, history=(*RUNNING[:2], claim, asylum, family))
    decision = registration("INTRODUCTION_PROGRAMME_DECISION")
    track = _payload("TRAINING_STARTED", track="TRACK_2", goalLevel=None)
    assert "NIR-RIGHT-001" not in _codes(decision, context)
    assert "NIR-RIGHT-003" not in _codes(track, context)
    goal = _payload("TRAINING_STARTED", track=None, goalLevel="B1")
    [warning] = [v for v in evaluate(goal, context) if v.code == "NIR-RIGHT-003"]
    assert "2019-03-01" in warning.message


def test_a_training_decision_dated_on_or_after_the_67th_birthday_is_warned() -> None:
    """Granted asylum at 60, the person's right and duty to training end on the 67th birthday."""
    decided_on = TODAY - dt.timedelta(days=5)
    permit = _fact(
        "RESIDENCE_PERMIT_REGISTERED", "2020-06-01", ground="ASYLUM", validUntil=None, permanent=True
    )
    context = dataclasses.replace(CONTEXT, history=(RUNNING[0], permit))

    def decision(born: dt.date) -> Registration:
        person = synthetic_person(born=born)
        return dataclasses.replace(registration("TRAINING_DECISION"), national_id=person.national_id)

    sixty_seven_today = decided_on.replace(year=decided_on.year - 67)
    [warning] = [v for v in evaluate(decision(sixty_seven_today), context) if v.code == "NIR-RIGHT-002"]
    assert "67" in warning.message and warning.severity.value == "WARNING"
    older = sixty_seven_today - dt.timedelta(days=40)
    assert "NIR-RIGHT-002" in _codes(decision(older), context)
    sixty_seven_tomorrow = sixty_seven_today + dt.timedelta(days=1)
    assert "NIR-RIGHT-002" not in _codes(decision(sixty_seven_tomorrow), context)



def test_a_training_decision_closed_by_a_67th_birthday_on_28_february_says_the_reading_is_unconfirmed() -> None:
    """Born 29 February 1956: 67 on 28 February 2023 by DOMAIN.md's "the same for years", a
    reading the law on ages could not confirm, so the warning says it rests on it."""
    decided_on = dt.date(2023, 2, 28)
    at = dt.datetime.combine(decided_on, dt.time(12), tzinfo=dt.UTC)
    permit = _fact("RESIDENCE_PERMIT_REGISTERED", "2020-06-01", ground="ASYLUM", validUntil=None, permanent=True)
    context = dataclasses.replace(
        CONTEXT, history=(_fact("TRAINING_CLAIM", "2023-01-10"), permit), today=decided_on, now=at, received_at=at
    )
    person = synthetic_person(born=dt.date(1956, 2, 29), with_duf=False)
    decision = dataclasses.replace(  # no DUF number: a synthetic one may be from after 2023 (NIR-ID-003)
        registration("TRAINING_DECISION"),
        national_id=person.national_id,
        duf_number=None,
        fact_date=decided_on,
        sent_at=at,
    )
    [warning] = [v for v in evaluate(decision, context) if v.code == "NIR-RIGHT-002"]
    assert warning.severity.value == "WARNING"
    assert "marks unconfirmed decides this, so it is a warning only" in warning.message
    assert "29 February" in warning.message and "ubekreftet" in warning.message_nb

def test_a_category_warning_resting_on_an_unconfirmed_rule_says_it_is_a_warning_for_that_reason() -> None:
    """DOMAIN.md marks the programme's 18-55 limits unconfirmed: warn, and say so."""
    permit = _fact(
        "RESIDENCE_PERMIT_REGISTERED", "2020-06-01", ground="ASYLUM", validUntil=None, permanent=True
    )
    claim = _fact("INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", "2026-05-01")
    person = synthetic_person(born=dt.date(1960, 1, 1))  # 60 at the permit
    decision = dataclasses.replace(
        registration("INTRODUCTION_PROGRAMME_DECISION"), national_id=person.national_id
    )
    [warning] = evaluate(decision, dataclasses.replace(CONTEXT, history=(claim, permit)))
    assert (
        warning.code == "NIR-RIGHT-001"
        and "marks unconfirmed decides this, so it is a warning only" in warning.message
    )
