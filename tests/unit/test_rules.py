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
from hub.domain.lifecycle import Fact
from hub.domain.residence import Residence
from hub.domain.snapshot import PersonState, Target
from hub.pipeline.decode import decode_registration
from hub.rules import RULES, RuleContext, evaluate
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from tests.factories import event, synthetic_person

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
    "NIR-SOURCE-001": (_replace(source_system="other"), CONTEXT),
    "NIR-SOURCE-002": (registration, _registry("4601")),
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
        dataclasses.replace(CONTEXT, target=Target("k", "TRAINING_HOURS", same_person=False, annulled=False)),
    ),
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
    violations = evaluate(broken, context)
    assert [v.code for v in violations] == [code]
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


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("a residence permit granted long ago", {"event_type": "RESIDENCE_PERMIT_REGISTERED"}),
        ("a correction of an old record", {"action": "CORRECT"}),
        ("an annulment of an old record", {"action": "ANNUL"}),
    ],
)
def test_the_deadlines_are_for_the_municipalitys_own_registrations_not_permits_or_corrections(
    kind: str, changes: dict[str, Any]
) -> None:
    """Issue 15, fault 1: a permit granted in 2023 (the renewal-pending case itself), or the fix
    of a wrong record from 2023, is neither too old nor late."""
    old = dataclasses.replace(registration(), fact_date=dt.date(2023, 1, 10), **changes)
    codes = {v.code for v in evaluate(old, CONTEXT)}
    assert "NIR-DEADLINE-002" not in codes, kind
    assert "NIR-DEADLINE-001" not in codes, kind
    plain = dataclasses.replace(registration(), fact_date=dt.date(2023, 1, 10))
    assert "NIR-DEADLINE-002" in {v.code for v in evaluate(plain, CONTEXT)}  # the municipality's own: too old
