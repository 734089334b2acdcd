"""Deriving each scheme's state from facts, and judging whether a new fact fits."""

from __future__ import annotations

import datetime as dt
import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.lifecycle import (
    ROLES,
    Action,
    Fact,
    Scheme,
    Status,
    Verdict,
    derive,
    effective_facts,
    is_checked,
    transition_problem,
)
from tests.factories import PAYLOADS

IP = Scheme.INTRODUCTION_PROGRAMME
_seq = itertools.count(1)


def fact(
    event_type: str, day: int, *, key: str | None = None, action: Action = Action.REGISTER, **payload: object
) -> Fact:
    date = dt.date(2026, 1, 1) + dt.timedelta(days=day)
    body = {**PAYLOADS[event_type], **payload}
    body = {k: (date.isoformat() if v == "{d}" else v) for k, v in body.items()}
    n = next(_seq)
    return Fact(key or f"e{n}", event_type, date, body, n, action)


def programme(*days: int) -> list[Fact]:
    """Claim, decision, start and end of the introduction programme on the given days."""
    types = [
        "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM",
        "INTRODUCTION_PROGRAMME_DECISION",
        "INTRODUCTION_PROGRAMME_STARTED",
        "INTRODUCTION_PROGRAMME_ENDED",
    ]
    return [fact(t, d) for t, d in zip(types, days, strict=False)]


def test_a_programme_from_claim_to_end_is_derived_with_its_dates_and_outcome() -> None:
    state = derive(programme(0, 10, 20, 400))[IP]
    assert state.status is Status.ENDED
    assert (state.claimed_on, state.decided_on, state.started_on, state.ended_on) == (
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 11),
        dt.date(2026, 1, 21),
        dt.date(2027, 2, 5),
    )
    assert (state.end_reason, state.main_activity) == ("WORK", "EMPLOYED_FULL_TIME")


def test_the_state_on_a_date_uses_only_the_facts_up_to_that_date() -> None:
    facts = programme(0, 10, 20, 400)
    assert derive(facts, on=dt.date(2026, 1, 15))[IP].status is Status.GRANTED
    assert derive(facts, on=dt.date(2026, 6, 1))[IP].status is Status.RUNNING


@given(st.permutations(range(4)), st.integers(min_value=0, max_value=2**31))
def test_the_derived_state_does_not_depend_on_the_order_facts_arrived_in(order: list[int], seed: int) -> None:
    facts = [*programme(0, 10, 20, 400), fact("INTRODUCTION_PROGRAMME_LEAVE", 50)]
    arrived = [facts[i] for i in order] + facts[4:]
    random.Random(seed).shuffle(arrived)
    renumbered = [
        Fact(f.key, f.event_type, f.fact_date, f.payload, n, f.action) for n, f in enumerate(arrived)
    ]
    assert derive(renumbered) == derive(facts)


def test_a_correction_replaces_the_fact_and_an_annulment_removes_it() -> None:
    claim, decision, start, end = programme(0, 10, 20, 400)
    corrected = fact(
        "INTRODUCTION_PROGRAMME_ENDED", 380, key=end.key, action=Action.CORRECT, endReason="EDUCATION"
    )
    state = derive([claim, decision, start, end, corrected])[IP]
    assert (state.ended_on, state.end_reason) == (dt.date(2027, 1, 16), "EDUCATION")
    annulled = fact("INTRODUCTION_PROGRAMME_ENDED", 380, key=end.key, action=Action.ANNUL)
    assert derive([claim, decision, start, end, corrected, annulled])[IP].status is Status.RUNNING
    assert [f.key for f in effective_facts([end, corrected, annulled])] == []


def test_an_end_before_any_start_is_held_until_the_start_arrives() -> None:
    claim, decision, start, end = programme(0, 10, 20, 400)
    problem = transition_problem([claim, decision], end)
    assert problem is not None and (problem.verdict, problem.code) == (Verdict.HOLD, "NIR-LIFE-001")
    assert transition_problem([claim, decision, start], end) is None


def test_a_start_without_a_granted_decision_is_held_and_one_before_the_decision_is_rejected() -> None:
    claim, decision, start = programme(0, 10, 20)
    held = transition_problem([claim], start)
    assert held is not None and held.verdict is Verdict.HOLD
    early_start = fact("INTRODUCTION_PROGRAMME_STARTED", 5)
    rejected = transition_problem([claim, decision], early_start)
    assert rejected is not None and (rejected.verdict, rejected.code) == (Verdict.REJECT, "NIR-DATE-004")


def test_a_second_start_of_a_running_programme_is_rejected() -> None:
    facts = programme(0, 10, 20)
    problem = transition_problem(facts, fact("INTRODUCTION_PROGRAMME_STARTED", 30))
    assert problem is not None and problem.code == "NIR-LIFE-002"


def test_facts_after_a_permanent_stop_need_a_new_decision() -> None:
    facts = [*programme(0, 10, 20), fact("INTRODUCTION_PROGRAMME_STOPPED", 60, stopKind="PERMANENT")]
    leave = fact("INTRODUCTION_PROGRAMME_LEAVE", 70)
    problem = transition_problem(facts, leave)
    assert problem is not None and problem.code == "NIR-LIFE-003"
    renewed = [
        *facts,
        fact("INTRODUCTION_PROGRAMME_DECISION", 65),
        fact("INTRODUCTION_PROGRAMME_STARTED", 66),
    ]
    assert transition_problem(renewed, leave) is None


def test_a_permanently_stopped_participant_can_be_ended_with_a_reason() -> None:
    """Issue 15, fault 3: the end after a stop gives the end reason and main activity that SSB's
    exit figures need; before, NIR-LIFE-003 rejected it and the person was never ended."""
    facts = [*programme(0, 10, 20), fact("INTRODUCTION_PROGRAMME_STOPPED", 60, stopKind="PERMANENT")]
    for day in (60, 90):  # the day of the stop, and later
        end = fact("INTRODUCTION_PROGRAMME_ENDED", day, endReason="STOPPED", mainActivity="OTHER")
        assert transition_problem(facts, end) is None
        state = derive([*facts, end])[Scheme.INTRODUCTION_PROGRAMME]
        assert (state.status, state.end_reason) == (Status.ENDED, "STOPPED")


def test_a_temporary_stop_only_pauses_the_programme() -> None:
    facts = [
        *programme(0, 10, 20),
        fact("INTRODUCTION_PROGRAMME_STOPPED", 60, stopKind="TEMPORARY", stoppedUntil="2026-04-01"),
    ]
    state = derive(facts)[IP]
    assert state.status is Status.RUNNING and state.paused_until == dt.date(2026, 4, 1)
    assert transition_problem(facts, fact("INTRODUCTION_PROGRAMME_LEAVE", 70)) is None


def test_a_fact_after_the_end_is_rejected_and_one_before_the_start_too() -> None:
    facts = programme(0, 10, 20, 400)
    after = transition_problem(facts, fact("INTRODUCTION_PROGRAMME_ABSENCE", 500))
    assert after is not None and after.code == "NIR-LIFE-004"
    before = transition_problem(facts, fact("INTRODUCTION_PROGRAMME_LEAVE", 15))
    assert before is not None and (before.verdict, before.code) == (Verdict.REJECT, "NIR-DATE-004")


def test_a_training_test_before_the_training_started_is_rejected() -> None:
    facts = [fact("TRAINING_CLAIM", 0), fact("TRAINING_DECISION", 5), fact("TRAINING_STARTED", 20)]
    problem = transition_problem(facts, fact("TRAINING_FINAL_TEST", 10))
    assert problem is not None and problem.code == "NIR-DATE-004"
    assert transition_problem(facts, fact("TRAINING_FINAL_TEST", 200)) is None


def test_hours_and_tests_add_up_per_scheme() -> None:
    facts = [
        fact("TRAINING_CLAIM", 0),
        fact("TRAINING_DECISION", 5),
        fact("TRAINING_STARTED", 6),
        fact("TRAINING_HOURS", 30),
        fact("TRAINING_HOURS", 60),
        fact("TRAINING_FINAL_TEST", 90),
        fact("ASYLUM_SEEKER_TRAINING_HOURS", 3),
    ]
    states = derive(facts)
    assert states[Scheme.NORWEGIAN_AND_SOCIAL_STUDIES].hours == {
        "norwegianHours": 12.0,
        "socialStudiesHours": 4.0,
        "extraNorwegianHours": 0.0,
    }
    assert len(states[Scheme.NORWEGIAN_AND_SOCIAL_STUDIES].final_tests) == 1
    assert states[Scheme.ASYLUM_SEEKER_TRAINING].hours == {"totalHours": 4.0}
    assert states[Scheme.INTRODUCTION_PROGRAMME].facts == 0


def test_asylum_seeker_training_with_hours_and_a_test_shows_the_person_taking_part() -> None:
    """Issue 15, fault 7: it showed not_started, since the scheme has no start of its own."""
    facts = [fact("ASYLUM_SEEKER_TRAINING_HOURS", 3), fact("ASYLUM_SEEKER_FINAL_TEST", 40)]
    state = derive(facts)[Scheme.ASYLUM_SEEKER_TRAINING]
    assert (state.status, state.started_on, state.facts) == (Status.RUNNING, facts[0].fact_date, 2)
    assert derive([])[Scheme.ASYLUM_SEEKER_TRAINING].status is Status.NOT_STARTED


def test_facts_about_the_person_rather_than_a_scheme_are_left_out_of_the_lifecycle() -> None:
    permit = fact("RESIDENCE_PERMIT_REGISTERED", 0)
    facts = [permit, *programme(1, 10, 20)]
    assert derive(facts)[IP].status is Status.RUNNING
    assert transition_problem(facts, fact("INTRODUCTION_PROGRAMME_LEAVE", 30)) is None


@given(
    st.lists(st.tuples(st.sampled_from(sorted(PAYLOADS)), st.integers(0, 60)), max_size=8),
    st.sampled_from(sorted(PAYLOADS)),
    st.integers(0, 60),
)
def test_an_event_type_the_lifecycle_does_not_check_never_has_a_problem(
    history: list[tuple[str, int]], event_type: str, day: int
) -> None:
    """What lets the lifecycle rules skip such events before building anything."""
    problem = transition_problem([fact(t, d) for t, d in history], fact(event_type, day))
    assert is_checked(event_type) or problem is None


def test_the_checked_event_types_are_the_programme_and_trainings_timeline() -> None:
    checked = {t for t in ROLES if is_checked(t)}
    assert "TRAINING_STARTED" in checked and "INTRODUCTION_PROGRAMME_ENDED" in checked
    assert "TRAINING_HOURS" in checked and "TRAINING_FINAL_TEST" in checked
    assert not checked & {"TRAINING_CLAIM", "TRAINING_COMPLAINT", "ASYLUM_SEEKER_TRAINING_HOURS"}


# --- the order of arrival never decides (issue 27, fault 5) ------------------------------------


def sent(f: Fact, hours: int) -> Fact:
    """The fact as a version the fagsystem sent `hours` after midnight on 2026-06-01."""
    return Fact(
        f.key,
        f.event_type,
        f.fact_date,
        f.payload,
        f.sequence,
        f.action,
        dt.datetime(2026, 6, 1, hours, tzinfo=dt.UTC),
    )


def test_hours_dated_on_the_programmes_end_day_belong_to_it_whether_they_come_before_or_after_the_end() -> (
    None
):
    claim, decision, start, end = programme(0, 10, 20, 60)
    hours_on_end_day = fact("INTRODUCTION_PROGRAMME_ABSENCE", 60)
    assert transition_problem([claim, decision, start], hours_on_end_day) is None
    assert transition_problem([claim, decision, start, end], hours_on_end_day) is None
    assert transition_problem([claim, decision, start, hours_on_end_day], end) is None


def test_a_start_and_an_end_on_one_day_give_the_same_state_whichever_arrived_first() -> None:
    claim, decision, start, end = programme(0, 10, 20, 20)
    end_first = [
        Fact(f.key, f.event_type, f.fact_date, f.payload, n, f.action) for n, f in ((1, end), (2, start))
    ]
    assert derive([claim, decision, start, end])[IP] == derive([claim, decision, *end_first])[IP]
    assert derive([claim, decision, *end_first])[IP].status is Status.ENDED


def test_a_correction_that_moves_the_end_before_hours_already_registered_is_rejected() -> None:
    claim, decision, start, end = programme(0, 10, 20, 60)
    absence = fact("INTRODUCTION_PROGRAMME_ABSENCE", 50)
    earlier_end = fact("INTRODUCTION_PROGRAMME_ENDED", 40, key=end.key, action=Action.CORRECT)
    problem = transition_problem([claim, decision, start, absence, end], earlier_end)
    assert problem is not None and (problem.verdict, problem.code) == (Verdict.REJECT, "NIR-DATE-004")
    assert "2026-02-20" in problem.en and "2026-02-20" in problem.nb  # the absence it would break
    later_end = fact("INTRODUCTION_PROGRAMME_ENDED", 55, key=end.key, action=Action.CORRECT)
    assert transition_problem([claim, decision, start, absence, end], later_end) is None


def test_an_end_dated_before_hours_already_registered_is_rejected_as_the_hours_would_be_after_it() -> None:
    claim, decision, start = programme(0, 10, 20)
    absence = fact("INTRODUCTION_PROGRAMME_ABSENCE", 50)
    problem = transition_problem([claim, decision, start, absence], fact("INTRODUCTION_PROGRAMME_ENDED", 40))
    assert problem is not None and (problem.verdict, problem.code) == (Verdict.REJECT, "NIR-DATE-004")


def test_a_start_corrected_to_after_its_end_is_rejected_at_once_not_held() -> None:
    claim, decision, start, end = programme(0, 10, 20, 60)
    after_end = fact("INTRODUCTION_PROGRAMME_STARTED", 70, key=start.key, action=Action.CORRECT)
    problem = transition_problem([claim, decision, start, end], after_end)
    assert problem is not None and problem.verdict is Verdict.REJECT
    # The same start sent as an original in a new round would wait for its decision.
    original = fact("INTRODUCTION_PROGRAMME_STARTED", 70)
    held = transition_problem([claim, decision, start, end], original)
    assert held is not None and held.verdict is Verdict.HOLD


def test_a_fact_that_did_not_fit_before_is_not_blamed_on_a_new_one() -> None:
    claim, decision, start = programme(0, 10, 20)
    stray = fact("INTRODUCTION_PROGRAMME_ABSENCE", 5)  # before the start: it never fitted
    assert (
        transition_problem([claim, decision, start, stray], fact("INTRODUCTION_PROGRAMME_LEAVE", 30)) is None
    )


def test_a_correction_sent_after_an_annulment_restores_the_registration_with_its_content() -> None:
    test = fact("TRAINING_FINAL_TEST", 100)
    annulment = sent(fact("TRAINING_FINAL_TEST", 100, key=test.key, action=Action.ANNUL), 9)
    restored = sent(
        fact(
            "TRAINING_FINAL_TEST",
            100,
            key=test.key,
            action=Action.CORRECT,
            partialResults=[{"skill": "READING", "result": "B1"}],
        ),
        10,
    )
    assert effective_facts([test, annulment]) == []
    (standing,) = effective_facts([test, annulment, restored])
    assert standing.payload["partialResults"] == [{"skill": "READING", "result": "B1"}]


def test_the_versions_of_a_registration_count_in_the_order_they_were_sent_not_received() -> None:
    test = fact("TRAINING_FINAL_TEST", 100)
    correction = sent(fact("TRAINING_FINAL_TEST", 100, key=test.key, action=Action.CORRECT), 8)
    annulment = sent(fact("TRAINING_FINAL_TEST", 100, key=test.key, action=Action.ANNUL), 9)
    # The annulment was sent last: it stands, however the two arrived.
    for arrival in ([correction, annulment], [annulment, correction]):
        renumbered = [
            Fact(*list(vars(f).values())[:4], n, f.action, f.sent_at) for n, f in enumerate([test, *arrival])
        ]
        assert effective_facts(renumbered) == []
