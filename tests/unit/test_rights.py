"""The rights-and-duty category, for every case DOMAIN.md lists."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.rights import Category, Permit, categories

D = dt.date
RD, RO, DO, NA = Category.RIGHT_AND_DUTY, Category.RIGHT_ONLY, Category.DUTY_ONLY, Category.NOT_APPLICABLE
BORN_1990 = D(1990, 5, 17)  # 32 on a permit granted in 2022
GRANTED = D(2022, 3, 1)


def on_grant_year(ground: str, **options: object) -> tuple[Category, Category]:
    result = categories([Permit(ground, GRANTED)], on=D(2022, 6, 1), birth_date=BORN_1990, **options)  # type: ignore[arg-type]
    return result.training, result.programme


@pytest.mark.parametrize(
    ("ground", "training", "programme"),
    [
        ("ASYLUM", RD, RD),
        ("RESETTLED_REFUGEE", RD, RD),
        ("HUMANITARIAN", RD, RD),
        ("FAMILY_OF_REFUGEE", RD, RD),
        ("FAMILY_OF_NORWEGIAN_OR_NORDIC", RD, NA),
        ("WORKER_OUTSIDE_EEA", DO, NA),
        ("FAMILY_OF_WORKER", DO, NA),
        ("COLLECTIVE_PROTECTION", RO, RD),
        ("EEA_OR_NORDIC", NA, NA),
        ("STUDENT", NA, NA),
        ("TEMPORARY_OTHER", NA, NA),
        ("OTHER", NA, NA),
        ("UNKNOWN", NA, NA),
    ],
)
def test_the_residence_ground_gives_each_scheme_s_category(
    ground: str, training: Category, programme: Category
) -> None:
    assert on_grant_year(ground) == (training, programme)


def test_unconfirmed_programme_rules_are_marked_as_such() -> None:
    family = categories([Permit("FAMILY_OF_REFUGEE", GRANTED)], on=D(2022, 6, 1), birth_date=BORN_1990)
    assert any("unconfirmed" in note for note in family.notes)
    asylum = categories([Permit("ASYLUM", GRANTED)], on=D(2022, 6, 1), birth_date=BORN_1990)
    assert asylum.notes == ()


def test_collective_protection_s_right_to_training_must_be_claimed_within_12_months() -> None:
    permit = [Permit("COLLECTIVE_PROTECTION", GRANTED)]
    last_day, day_after = D(2023, 3, 1), D(2023, 3, 2)
    assert categories(permit, on=last_day, birth_date=BORN_1990).training is RO
    late = categories(permit, on=day_after, birth_date=BORN_1990)
    assert late.training is NA and late.programme is RD
    claimed = categories(permit, on=D(2024, 1, 1), birth_date=BORN_1990, training_claimed_on=D(2023, 2, 1))
    assert claimed.training is RO
    too_late = categories(permit, on=D(2024, 1, 1), birth_date=BORN_1990, training_claimed_on=day_after)
    assert too_late.training is NA


@pytest.mark.parametrize(
    ("born", "granted", "training", "programme"),
    [
        (D(2004, 6, 1), D(2022, 5, 31), NA, NA),  # 17 under the integration act
        (D(2004, 6, 1), D(2022, 6, 1), RD, RD),  # 18 on the day
        (D(2003, 6, 1), D(2019, 6, 1), RD, NA),  # 16 under the introduction act: training only
        (D(2003, 6, 2), D(2019, 6, 1), NA, NA),  # 15
        (D(1966, 1, 1), D(2022, 1, 1), RD, NA),  # 56: too old for the programme
        (D(1955, 1, 1), D(2022, 1, 1), RD, NA),  # 67: the oldest for training
        (D(1954, 1, 1), D(2022, 1, 1), NA, NA),  # 68
    ],
)
def test_age_when_the_permit_was_granted_sets_the_limits(
    born: dt.date, granted: dt.date, training: Category, programme: Category
) -> None:
    result = categories([Permit("ASYLUM", granted)], on=granted, birth_date=born)
    assert (result.training, result.programme) == (training, programme)


def test_the_act_follows_the_grant_date() -> None:
    assert Permit("ASYLUM", D(2020, 12, 31)).act == "introduksjonsloven"
    assert Permit("ASYLUM", D(2021, 1, 1)).act == "integreringsloven"


def test_an_expired_permit_with_a_renewal_pending_keeps_the_category_open() -> None:
    """The fault of the old register: it closed the category when the permit expired."""
    pending = Permit("ASYLUM", GRANTED, valid_until=D(2025, 3, 1), renewal_applied_on=D(2025, 1, 10))
    after_expiry = D(2025, 9, 1)
    result = categories([pending], on=after_expiry, birth_date=BORN_1990)
    assert (result.training, result.programme) == (RD, RD) and result.basis == pending

    lapsed = Permit("ASYLUM", GRANTED, valid_until=D(2025, 3, 1))
    assert categories([lapsed], on=after_expiry, birth_date=BORN_1990).training is NA
    assert categories([lapsed], on=D(2025, 3, 1), birth_date=BORN_1990).training is RD  # last valid day
    applied_too_late = Permit("ASYLUM", GRANTED, valid_until=D(2025, 3, 1), renewal_applied_on=D(2025, 3, 2))
    assert categories([applied_too_late], on=after_expiry, birth_date=BORN_1990).training is NA


def test_a_later_permit_on_another_stated_ground_becomes_the_basis_and_a_silent_one_extends_it() -> None:
    first = Permit("WORKER_OUTSIDE_EEA", D(2021, 2, 1), valid_until=D(2023, 2, 1))
    then = Permit("ASYLUM", D(2022, 8, 1), valid_until=D(2025, 8, 1))
    permanent = Permit("OTHER", D(2025, 8, 1), permanent=True)
    history = [permanent, first, then]
    assert categories(history, on=D(2022, 1, 1), birth_date=BORN_1990).training is DO
    assert categories(history, on=D(2023, 1, 1), birth_date=BORN_1990).basis == then
    # Issue 15, fault 2: a permanent permit sent as OTHER no longer closes the refugee's category.
    later = categories(history, on=D(2040, 1, 1), birth_date=BORN_1990)
    assert (later.basis, later.training, later.programme) == (then, RD, RD)


# --- issue 15, fault 2: the category from the whole history, not the newest permit ------------


def test_a_renewal_does_not_recompute_the_age_the_programme_right_rests_on() -> None:
    born = D(1965, 1, 1)
    first = Permit("ASYLUM", D(2019, 6, 1), valid_until=D(2022, 6, 1), renewal_applied_on=D(2022, 4, 1))
    renewal = Permit("ASYLUM", D(2022, 7, 1), valid_until=D(2025, 7, 1))  # 57 by now; 54 at first
    result = categories([first, renewal], on=D(2023, 1, 1), birth_date=born)
    assert (result.programme, result.basis) == (RD, first)


def test_a_renewal_does_not_move_a_permit_from_the_introduction_act_to_the_integration_act() -> None:
    first = Permit("ASYLUM", D(2019, 6, 1), valid_until=D(2022, 6, 1), renewal_applied_on=D(2022, 4, 1))
    renewal = Permit("ASYLUM", D(2022, 6, 2), valid_until=D(2025, 6, 2))
    result = categories([first, renewal], on=D(2023, 1, 1), birth_date=BORN_1990)
    assert result.as_json()["act"] == "introduksjonsloven"


def test_a_renewal_does_not_restart_collective_protections_twelve_month_claim_window() -> None:
    first = Permit(
        "COLLECTIVE_PROTECTION", D(2022, 3, 1), valid_until=D(2023, 3, 1), renewal_applied_on=D(2023, 1, 1)
    )
    renewal = Permit("COLLECTIVE_PROTECTION", D(2023, 3, 1), valid_until=D(2024, 3, 1))
    assert categories([first, renewal], on=D(2023, 6, 1), birth_date=BORN_1990).training is NA


def test_a_refused_renewal_closes_the_category_from_the_day_it_was_refused() -> None:
    refused = Permit(
        "ASYLUM",
        D(2022, 3, 1),
        valid_until=D(2025, 3, 1),
        renewal_applied_on=D(2025, 1, 10),
        renewal_refused_on=D(2025, 9, 1),
    )
    assert categories([refused], on=D(2025, 8, 31), birth_date=BORN_1990).training is RD  # still pending
    assert categories([refused], on=D(2025, 9, 1), birth_date=BORN_1990).training is NA


def test_a_permit_after_a_lapse_starts_a_new_stay_with_its_own_basis() -> None:
    lapsed = Permit("ASYLUM", D(2016, 3, 1), valid_until=D(2018, 3, 1))  # no renewal applied for
    again = Permit("ASYLUM", D(2022, 3, 1), valid_until=D(2025, 3, 1))
    assert categories([lapsed, again], on=D(2020, 1, 1), birth_date=BORN_1990).training is NA
    result = categories([lapsed, again], on=D(2023, 1, 1), birth_date=BORN_1990)
    assert (result.basis, result.as_json()["act"]) == (again, "integreringsloven")


def test_without_a_permit_in_force_nothing_applies() -> None:
    assert categories([], on=D(2022, 1, 1), birth_date=BORN_1990).training is NA
    not_yet = categories([Permit("ASYLUM", GRANTED)], on=D(2022, 2, 28), birth_date=BORN_1990)
    assert (not_yet.training, not_yet.programme, not_yet.basis) == (NA, NA, None)


def test_without_a_birth_date_the_age_limits_are_not_checked_and_the_notes_say_so() -> None:
    result = categories([Permit("ASYLUM", GRANTED)], on=D(2022, 6, 1), birth_date=None)
    assert (result.training, result.programme) == (RD, RD)
    assert any("age not known" in note for note in result.notes)


def test_permits_read_from_the_register_or_from_avro_are_the_same() -> None:
    as_text = Permit.from_payload(
        GRANTED, {"ground": "ASYLUM", "validUntil": "2025-03-01", "renewalAppliedOn": None}
    )
    as_dates = Permit.from_payload(
        GRANTED, {"ground": "ASYLUM", "validUntil": D(2025, 3, 1), "permanent": False}
    )
    assert as_text == as_dates


# --- a property: generated permit histories against DOMAIN.md's table, stated independently ---

# DOMAIN.md, "Rights and duty": ground -> (training, introduction programme).
TABLE = {
    "ASYLUM": (RD, RD),
    "RESETTLED_REFUGEE": (RD, RD),
    "HUMANITARIAN": (RD, RD),
    "FAMILY_OF_REFUGEE": (RD, RD),
    "FAMILY_OF_NORWEGIAN_OR_NORDIC": (RD, NA),
    "WORKER_OUTSIDE_EEA": (DO, NA),
    "FAMILY_OF_WORKER": (DO, NA),
    "COLLECTIVE_PROTECTION": (RO, RD),
    "EEA_OR_NORDIC": (NA, NA),
    "STUDENT": (NA, NA),
    "TEMPORARY_OTHER": (NA, NA),
}


def expected(
    ground: str, granted: dt.date, born: dt.date, lawful_until: dt.date | None, day: dt.date
) -> tuple[Category, Category]:
    """What DOMAIN.md says for one person whose first permit (`ground`, `granted`) was renewed on
    the same ground while they stayed lawfully resident until `lawful_until` (None: still are)."""
    if day < granted or (lawful_until is not None and day > lawful_until):
        return NA, NA
    training, programme = TABLE[ground]
    age = granted.year - born.year - ((granted.month, granted.day) < (born.month, born.day))
    youngest = 16 if granted < D(2021, 1, 1) else 18
    if not youngest <= age <= 67:
        training = NA
    if not 18 <= age <= 55:
        programme = NA
    a_year_on = D(
        granted.year + 1, granted.month, 28 if (granted.month, granted.day) == (2, 29) else granted.day
    )
    if ground == "COLLECTIVE_PROTECTION" and day > a_year_on:
        training = NA  # never claimed
    return training, programme


RENEWALS = st.lists(st.sampled_from(["same ground", "permanent as OTHER", "refused", "lapsed"]), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    ground=st.sampled_from(sorted(TABLE)),
    granted=st.dates(D(2014, 1, 1), D(2024, 12, 31)),
    age=st.integers(10, 75),
    years=st.integers(1, 3),
    renewals=RENEWALS,
    days_later=st.integers(-30, 12 * 365),
)
def test_the_category_follows_the_whole_permit_history_as_domain_md_states_it(
    ground: str, granted: dt.date, age: int, years: int, renewals: list[str], days_later: int
) -> None:
    born = D(granted.year - age, 6, 15)
    permits: list[Permit] = []
    current = Permit(ground, granted, valid_until=granted + dt.timedelta(days=365 * years))
    lawful_until: dt.date | None = None
    for step in renewals:
        assert current.valid_until is not None
        applied = current.valid_until - dt.timedelta(days=30)
        if step == "lapsed":
            lawful_until = current.valid_until
            break
        if step == "refused":
            refused_on = current.valid_until + dt.timedelta(days=60)
            current = dataclasses.replace(current, renewal_applied_on=applied, renewal_refused_on=refused_on)
            lawful_until = refused_on - dt.timedelta(days=1)
            break
        permits.append(dataclasses.replace(current, renewal_applied_on=applied))
        renewed_on = current.valid_until + dt.timedelta(days=20)  # granted while the application was pending
        if step == "permanent as OTHER":
            current = Permit("OTHER", renewed_on, permanent=True)
            break
        current = Permit(ground, renewed_on, valid_until=renewed_on + dt.timedelta(days=365 * years))
    else:
        if not current.permanent:
            lawful_until = current.valid_until  # the last permit runs out, no renewal applied for
    if current.permanent:
        lawful_until = None
    permits.append(current)
    day = granted + dt.timedelta(days=days_later)
    result = categories(permits, on=day, birth_date=born)
    assert (result.training, result.programme) == expected(ground, granted, born, lawful_until, day)


def test_a_refused_renewal_sent_in_the_contract_closes_the_category_read_from_the_facts() -> None:
    """Issue 15, fault 2: a refused renewal could not be recorded, so a pending one stayed open
    forever. Contract v4's permit carries `renewalRefusedOn`."""
    from hub.domain.lifecycle import Fact
    from hub.domain.rights import categories_from_facts
    from hub.pipeline.decode import decode_registration
    from hub.schemas.codec import REGISTRATION, catalog
    from hub.schemas.contract import from_json
    from tests.factories import event, synthetic_person

    payload = {
        "ground": "ASYLUM",
        "validUntil": "2025-03-01",
        "renewalAppliedOn": "2025-01-10",
        "renewalRefusedOn": "2025-09-01",
        "permanent": False,
    }
    sent = event(synthetic_person(), "RESIDENCE_PERMIT_REGISTERED", fact_date=D(2022, 3, 1), payload=payload)
    permit = decode_registration(catalog(), catalog().encode(REGISTRATION, from_json(sent)))
    assert permit.payload["renewalRefusedOn"] == "2025-09-01"
    facts = [Fact("p", permit.event_type, permit.fact_date, permit.payload, 1)]
    assert categories_from_facts(facts, on=D(2025, 8, 31), birth_date=BORN_1990).training is RD  # pending
    assert categories_from_facts(facts, on=D(2025, 9, 1), birth_date=BORN_1990).training is NA
