"""The rights-and-duty category, for every case DOMAIN.md lists."""

from __future__ import annotations

import datetime as dt

import pytest

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


def test_the_newest_permit_in_force_counts_and_a_permanent_one_never_expires() -> None:
    first = Permit("WORKER_OUTSIDE_EEA", D(2021, 2, 1), valid_until=D(2023, 2, 1))
    then = Permit("ASYLUM", D(2022, 8, 1), valid_until=D(2025, 8, 1))
    permanent = Permit("OTHER", D(2025, 8, 1), permanent=True)
    history = [permanent, first, then]
    assert categories(history, on=D(2022, 1, 1), birth_date=BORN_1990).training is DO
    assert categories(history, on=D(2023, 1, 1), birth_date=BORN_1990).basis == then
    assert categories(history, on=D(2040, 1, 1), birth_date=BORN_1990).basis == permanent


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
