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
    claimed = categories(permit, on=D(2024, 1, 1), birth_date=BORN_1990, training_claims=[D(2023, 2, 1)])
    assert claimed.training is RO
    too_late = categories(permit, on=D(2024, 1, 1), birth_date=BORN_1990, training_claims=[day_after])
    assert too_late.training is NA


@pytest.mark.parametrize(
    ("born", "granted", "training", "programme"),
    [
        (D(2004, 6, 1), D(2022, 5, 31), NA, NA),  # 17 under the integration act
        (D(2004, 6, 1), D(2022, 6, 1), RD, RD),  # 18 on the day
        (D(2003, 6, 1), D(2019, 6, 1), RD, NA),  # 16 under the introduction act: training only
        (D(2003, 6, 2), D(2019, 6, 1), NA, NA),  # 15
        (D(1966, 1, 1), D(2022, 1, 1), RD, NA),  # 56: too old for the programme
        (D(1955, 1, 2), D(2022, 1, 1), RD, NA),  # 66 the day before the 67th birthday: the oldest
        (D(1955, 1, 1), D(2022, 1, 1), NA, NA),  # 67: training ends on the 67th birthday
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


def test_a_later_permit_on_another_stated_ground_adds_to_the_first_and_a_silent_one_extends_it() -> None:
    first = Permit("WORKER_OUTSIDE_EEA", D(2021, 2, 1), valid_until=D(2023, 2, 1))
    then = Permit("ASYLUM", D(2022, 8, 1), valid_until=D(2025, 8, 1))
    permanent = Permit("OTHER", D(2025, 8, 1), permanent=True)
    history = [permanent, first, then]
    assert categories(history, on=D(2022, 1, 1), birth_date=BORN_1990).training is DO
    # The worker's permit gave the first duty: the basis stays; asylum adds the right and the programme.
    added = categories(history, on=D(2023, 1, 1), birth_date=BORN_1990)
    assert (added.basis, added.training, added.programme) == (first, RD, RD)
    assert any("unconfirmed" in note and "ground changed" in note for note in added.notes)
    # Issue 15, fault 2: a permanent permit sent as OTHER no longer closes the refugee's category.
    later = categories(history, on=D(2040, 1, 1), birth_date=BORN_1990)
    assert (later.basis, later.training, later.programme) == (first, RD, RD)


def test_a_duty_only_and_a_right_only_from_two_grounds_make_right_and_duty() -> None:
    worker = Permit("WORKER_OUTSIDE_EEA", D(2022, 2, 1), valid_until=D(2025, 2, 1))
    protection = Permit("COLLECTIVE_PROTECTION", D(2023, 2, 1), valid_until=D(2026, 2, 1))
    both = categories([worker, protection], on=D(2023, 6, 1), birth_date=BORN_1990)
    assert (both.training, both.programme, both.basis) == (RD, RD, worker)
    # § 34's window runs from its own permit (the one that gave the right); unclaimed, the duty stays.
    unclaimed = categories([worker, protection], on=D(2024, 6, 1), birth_date=BORN_1990)
    assert unclaimed.training is DO


def test_a_first_permit_that_gave_nothing_for_age_leaves_the_basis_to_a_later_ground() -> None:
    """At 17 under integreringsloven asylum gave nothing; the family permit at 18 is the first
    that gave a right: its age and act count, and the asylum renewal adds nothing."""
    born = D(2004, 6, 1)
    asylum = Permit("ASYLUM", D(2021, 6, 1), valid_until=D(2024, 6, 1))
    family = Permit("FAMILY_OF_NORWEGIAN_OR_NORDIC", D(2022, 6, 1), valid_until=D(2025, 6, 1))
    result = categories([asylum, family], on=D(2023, 1, 1), birth_date=born)
    assert (result.training, result.programme, result.basis) == (RD, NA, family)
    alone = categories([asylum], on=D(2023, 1, 1), birth_date=born)
    assert (alone.training, alone.programme) == (NA, NA) and any("age 17" in n for n in alone.notes)


def test_a_permit_granted_on_appeal_with_no_refusal_before_it_counts_as_a_permit_and_says_so() -> None:
    lone = Permit("ASYLUM", D(2022, 3, 1), valid_until=D(2025, 3, 1), granted_on_appeal=True)
    result = categories([lone], on=D(2023, 1, 1), birth_date=BORN_1990)
    assert (result.training, result.programme) == (RD, RD)
    assert any("no refused renewal" in note for note in result.notes)


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


# --- issue 28, points 4 and 5: a change of ground, an appeal, a claim before the permit, age 67 -


def _facts(*permits: tuple[str, dict[str, object]], claims: tuple[dt.date, ...] = ()) -> list[object]:
    """Registered facts: permits as (grant date, payload), and training claims."""
    from hub.domain.lifecycle import Fact

    facts = [
        Fact(f"permit-{i}", "RESIDENCE_PERMIT_REGISTERED", D.fromisoformat(day), payload, i)
        for i, (day, payload) in enumerate(permits)
    ]
    facts += [Fact(f"claim-{i}", "TRAINING_CLAIM", day, {}, 100 + i) for i, day in enumerate(claims)]
    return facts


def _from_facts(facts: list[object], on: dt.date, born: dt.date = BORN_1990) -> tuple[object, ...]:
    from hub.domain.rights import categories_from_facts

    result = categories_from_facts(facts, on=on, birth_date=born)  # type: ignore[arg-type]
    assert result is not None
    basis = result.basis.granted_on.isoformat() if result.basis is not None else None
    return result.training, result.programme, result.as_json()["act"], basis


def _permit(ground: str, valid_until: str | None = None, **more: object) -> dict[str, object]:
    return {"ground": ground, "validUntil": valid_until, "permanent": valid_until is None, **more}


ASYLUM_2019 = ("2019-03-01", _permit("ASYLUM", "2022-03-01"))
FAMILY_2022 = ("2022-01-15", _permit("FAMILY_OF_NORWEGIAN_OR_NORDIC", "2025-01-15"))


def test_a_later_permit_on_another_ground_keeps_the_act_and_the_programme_the_first_gave() -> None:
    """Issue 28, point 4: asylum in 2019, then a permit as family of a Norwegian in 2022 (which
    gives no programme) made the person fall under integreringsloven with no programme."""
    facts = _facts(ASYLUM_2019, FAMILY_2022)
    assert _from_facts(facts, D(2023, 6, 1)) == (RD, RD, "introduksjonsloven", "2019-03-01")


def test_asylum_then_family_then_asylum_again_is_one_stay_resting_on_the_first_permit() -> None:
    asylum_again = ("2024-12-01", _permit("ASYLUM", "2027-12-01"))
    facts = _facts(ASYLUM_2019, FAMILY_2022, asylum_again)
    assert _from_facts(facts, D(2025, 6, 1)) == (RD, RD, "introduksjonsloven", "2019-03-01")


def test_a_refused_renewal_granted_on_appeal_continues_the_stay_and_its_first_permit() -> None:
    """Born so as to be 54 at the first permit and 58 at the appeal: a new stay would take the
    programme away and move the person to integreringsloven."""
    born = D(1964, 6, 1)
    refused = (
        "2019-03-01",
        _permit("ASYLUM", "2022-03-01", renewalAppliedOn="2022-01-10", renewalRefusedOn="2022-06-01"),
    )
    on_appeal = ("2023-02-01", _permit("ASYLUM", "2026-02-01", grantedOnAppeal=True))
    facts = _facts(refused, on_appeal)
    assert _from_facts(facts, D(2023, 6, 1), born) == (RD, RD, "introduksjonsloven", "2019-03-01")
    # Between the refusal and the appeal the refusal stands reversed: the stay never broke.
    assert _from_facts(facts, D(2022, 9, 1), born)[:2] == (RD, RD)


def test_a_new_permit_after_a_refusal_not_on_appeal_starts_a_new_stay() -> None:
    born = D(1964, 6, 1)
    refused = (
        "2019-03-01",
        _permit("ASYLUM", "2022-03-01", renewalAppliedOn="2022-01-10", renewalRefusedOn="2022-06-01"),
    )
    again = ("2023-02-01", _permit("ASYLUM", "2026-02-01"))
    facts = _facts(refused, again)
    assert _from_facts(facts, D(2022, 9, 1), born)[:2] == (NA, NA)
    assert _from_facts(facts, D(2023, 6, 1), born) == (RD, NA, "integreringsloven", "2023-02-01")  # 58


def test_a_collective_protection_claim_dated_before_the_permit_is_no_claim_within_the_window() -> None:
    """Issue 28, point 4: a § 34 claim dated before the permit counted as in time."""
    protection = ("2022-03-01", _permit("COLLECTIVE_PROTECTION", "2025-03-01"))
    before = _facts(protection, claims=(D(2022, 2, 1),))
    assert _from_facts(before, D(2023, 6, 1))[0] is NA
    on_the_day = _facts(protection, claims=(D(2022, 2, 1), D(2022, 3, 1)))
    assert _from_facts(on_the_day, D(2023, 6, 1))[0] is RO
    on_the_last_day = _facts(protection, claims=(D(2023, 3, 1),))
    assert _from_facts(on_the_last_day, D(2023, 6, 1))[0] is RO


def test_someone_67_and_two_months_old_at_the_grant_has_no_right_or_duty_to_training() -> None:
    """Issue 28, point 5: `<= 67` let a person of 67 and two months in."""
    result = categories([Permit("ASYLUM", D(2022, 3, 1))], on=D(2022, 6, 1), birth_date=D(1955, 1, 1))
    assert result.training is NA


def test_the_67th_birthday_closes_training_on_the_date_asked() -> None:
    """Issue 28, point 5: granted at 60, the right and duty ended at 67 all the same."""
    permit = [Permit("ASYLUM", D(2020, 3, 1), permanent=True)]
    born = D(1960, 1, 1)
    assert categories(permit, on=D(2026, 12, 31), birth_date=born).training is RD
    closed = categories(permit, on=D(2027, 1, 1), birth_date=born)
    assert closed.training is NA and any("67" in note for note in closed.notes)


@pytest.mark.parametrize(
    ("born", "granted", "training", "programme"),
    [
        (D(2004, 2, 29), D(2022, 2, 27), NA, NA),  # 17 the day before
        (D(2004, 2, 29), D(2022, 2, 28), RD, RD),  # 18 on 28 February of a common year
        (D(2004, 3, 1), D(2022, 2, 28), NA, NA),
        (D(1966, 2, 28), D(2022, 2, 27), RD, RD),  # 55 the day before the 56th birthday
        (D(1966, 2, 28), D(2022, 2, 28), RD, NA),  # 56 on the birthday
        (D(1968, 2, 29), D(2023, 2, 28), RD, RD),  # 55 on the birthday (born 29 February)
        (D(1968, 2, 29), D(2024, 2, 28), RD, RD),  # the day before the 56th, in a leap year
        (D(1968, 2, 29), D(2024, 2, 29), RD, NA),  # 56 on the birthday
        (D(1956, 2, 29), D(2023, 2, 27), RD, NA),  # 66 the day before the 67th
        (D(1956, 2, 29), D(2023, 2, 28), NA, NA),  # 67 on 28 February of a common year
        (D(1955, 6, 1), D(2022, 6, 1), NA, NA),  # 67 on the birthday
        (D(2005, 2, 28), D(2021, 2, 28), NA, NA),  # 16, under integreringsloven
        (D(2004, 2, 29), D(2020, 2, 29), RD, NA),  # 16 on the birthday, under introduksjonsloven
        (D(2004, 2, 29), D(2020, 2, 28), NA, NA),  # 15
    ],
)
def test_the_age_limits_hold_on_the_birthdays_themselves(
    born: dt.date, granted: dt.date, training: Category, programme: Category
) -> None:
    result = categories([Permit("ASYLUM", granted)], on=granted, birth_date=born)
    assert (result.training, result.programme) == (training, programme)



@pytest.mark.parametrize(
    ("born", "granted", "on", "unconfirmed"),
    [
        (D(2004, 2, 29), D(2022, 2, 28), D(2022, 6, 1), True),  # 18 at the grant, read on 28 February
        (D(1956, 2, 29), D(2020, 3, 1), D(2023, 2, 28), True),  # 67 on the date asked
        (D(2004, 2, 29), D(2024, 2, 28), D(2024, 6, 1), False),  # a leap year: 29 February is there
        (D(2004, 2, 29), D(2022, 3, 1), D(2022, 6, 1), False),
        (D(2004, 2, 28), D(2022, 2, 28), D(2022, 6, 1), False),  # an ordinary birthday
    ],
)
def test_an_age_read_on_28_february_for_someone_born_on_29_february_is_noted_as_unconfirmed(
    born: dt.date, granted: dt.date, on: dt.date, unconfirmed: bool
) -> None:
    """Issue 28: where the law is unconfirmed, say so. DOMAIN.md's "the same for years" puts the
    birthday on 28 February; the law on ages could not be checked (it may say 1 March)."""
    result = categories([Permit("ASYLUM", granted, permanent=True)], on=on, birth_date=born)
    noted = [note for note in result.notes if "29 February" in note]
    assert bool(noted) is unconfirmed
    assert all("unconfirmed" in note for note in noted)

# --- a property: generated permit histories against DOMAIN.md's rules, stated on their own -----
#
# The generator builds each history as a story, and records as it goes what the story means:
# which stay each permit belongs to and from which day to which the person was lawfully resident
# (a renewal pending, a refusal, an appeal, a lapse). The oracle below reads DOMAIN.md's table
# and its sentences on a change of ground from that record, with its own arithmetic of ages and
# of the 12-month window; it calls nothing in hub.domain.rights but the function under test.

# DOMAIN.md, "Rights and duty": ground -> (training, introduction programme). Not listed: nothing.
TABLE = {
    "ASYLUM": (RD, RD),
    "RESETTLED_REFUGEE": (RD, RD),
    "HUMANITARIAN": (RD, RD),
    "FAMILY_OF_REFUGEE": (RD, RD),
    "FAMILY_OF_NORWEGIAN_OR_NORDIC": (RD, NA),
    "WORKER_OUTSIDE_EEA": (DO, NA),
    "FAMILY_OF_WORKER": (DO, NA),
    "COLLECTIVE_PROTECTION": (RO, RD),
}
GROUNDS = [*TABLE, "EEA_OR_NORDIC", "STUDENT", "TEMPORARY_OTHER", "OTHER", "UNKNOWN"]
SAYS_NOTHING = {"OTHER", "UNKNOWN"}  # such a permit extends the stay, it has no ground of its own
HOLDS = {RD: {"right", "duty"}, RO: {"right"}, DO: {"duty"}, NA: set()}


def nth_birthday(born: dt.date, n: int) -> dt.date:
    """The day of the same number n years on; 28 February for a 29 February birth in a common year."""
    try:
        return born.replace(year=born.year + n)
    except ValueError:
        return D(born.year + n, 2, 28)


def years_old(born: dt.date, day: dt.date) -> int:
    n = day.year - born.year
    return n if nth_birthday(born, n) <= day else n - 1


@dataclasses.dataclass
class Story:
    """A generated permit history and what it means, written down as it was made."""

    born: dt.date
    permits: list[Permit] = dataclasses.field(default_factory=list)
    stay_of: list[int] = dataclasses.field(default_factory=list)  # each permit's stay
    lawful: list[tuple[dt.date, dt.date | None]] = dataclasses.field(default_factory=list)  # per stay
    claims: list[dt.date] = dataclasses.field(default_factory=list)


def oracle(story: Story, day: dt.date) -> tuple[Category, Category]:
    stays = [i for i, (start, end) in enumerate(story.lawful) if start <= day and (end is None or day <= end)]
    if not stays:
        return NA, NA
    [stay] = stays
    granted = [
        p for p, s in zip(story.permits, story.stay_of, strict=True) if s == stay and p.granted_on <= day
    ]
    firsts: list[Permit] = []
    for p in granted:
        if p.ground not in SAYS_NOTHING and all(p.ground != f.ground for f in firsts):
            firsts.append(p)

    def gives(ground: str, age: int, before_2021: bool) -> tuple[Category, Category]:
        training, programme = TABLE.get(ground, (NA, NA))
        if not (16 if before_2021 else 18) <= age <= 66:
            training = NA
        if not 18 <= age <= 55:  # "18-55", unconfirmed
            programme = NA
        return training, programme

    # The first permit that gave a right or duty fixes the act and the age.
    first = next(
        (
            p
            for p in firsts
            if gives(p.ground, years_old(story.born, p.granted_on), p.granted_on.year < 2021) != (NA, NA)
        ),
        None,
    )
    if first is None:
        return NA, NA
    age, before_2021 = years_old(story.born, first.granted_on), first.granted_on.year < 2021
    training: set[str] = set()
    programme: set[str] = set()
    for p in firsts[firsts.index(first) :]:  # a later ground adds, never takes away
        t, pr = gives(p.ground, age, before_2021)
        if p.ground == "COLLECTIVE_PROTECTION":  # claimed within 12 months of its own permit
            a_year_on = nth_birthday(p.granted_on, 1)
            if day > a_year_on and not any(p.granted_on <= c <= a_year_on for c in story.claims):
                t = NA
        training |= HOLDS[t]
        programme |= HOLDS[pr]
    if years_old(story.born, day) >= 67:
        training = set()
    as_category = {frozenset(v): k for k, v in HOLDS.items()}
    return as_category[frozenset(training)], as_category[frozenset(programme)]


STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["renewed", "another ground", "permanent", "refused", "on appeal", "lapsed", "new stay"]
        ),
        st.sampled_from(GROUNDS),
        st.integers(1, 400),
    ),
    max_size=5,
)


@st.composite
def stories(draw: st.DrawFn) -> Story:
    # Ages at the first grant around the limits, on or near the birthday, 29 February included.
    age = draw(st.sampled_from([15, 16, 17, 18, 19, 35, 54, 55, 56, 57, 65, 66, 67, 68]))
    first_year = draw(st.integers(2014, 2025))
    if draw(st.booleans()):
        born_year = first_year - age
        born = D(born_year - born_year % 4, 2, 29)
    else:
        born = draw(st.dates(D(first_year - age, 1, 1), D(first_year - age, 12, 31)))
    granted = nth_birthday(born, age) + dt.timedelta(days=draw(st.integers(-2, 2)))
    story = Story(born)
    stay = 0
    story.lawful.append((granted, None))
    current = Permit(draw(st.sampled_from(GROUNDS)), granted, valid_until=granted + dt.timedelta(days=730))
    story.claims = [granted + dt.timedelta(days=n) for n in draw(st.lists(st.integers(-90, 500), max_size=2))]

    def keep(permit: Permit) -> None:
        story.permits.append(permit)
        story.stay_of.append(stay)

    def new_stay(permit: Permit) -> None:
        nonlocal stay
        stay += 1
        story.lawful.append((permit.granted_on, None))

    kept_last = False  # a refusal or a lapse keeps the last permit itself
    for kind, ground, days in draw(STEPS):
        assert current.valid_until is not None
        applied = current.valid_until - dt.timedelta(days=30)
        if kind == "renewed":  # granted while the renewal was pending, or on the day after expiry
            keep(dataclasses.replace(current, renewal_applied_on=applied))
            renewed = current.valid_until + dt.timedelta(days=days % 90)
            current = Permit(ground, renewed, valid_until=renewed + dt.timedelta(days=730))
        elif kind == "another ground":  # granted while the current permit is in force
            keep(current)
            then = current.granted_on + dt.timedelta(days=days % 700)
            current = Permit(ground, then, valid_until=current.valid_until + dt.timedelta(days=365))
        elif kind in ("refused", "on appeal", "lapsed", "new stay"):
            refused_on = current.valid_until + dt.timedelta(days=1 + days % 200)
            if kind == "lapsed":  # no renewal applied for: the stay ends with the permit
                keep(current)
                kept_last = True
                story.lawful[stay] = (story.lawful[stay][0], current.valid_until)
                break
            keep(dataclasses.replace(current, renewal_applied_on=applied, renewal_refused_on=refused_on))
            later = refused_on + dt.timedelta(days=days)
            if kind == "on appeal":  # the refusal reversed: the same stay goes on, never broken
                current = Permit(
                    ground, later, valid_until=later + dt.timedelta(days=730), granted_on_appeal=True
                )
                continue
            story.lawful[stay] = (story.lawful[stay][0], refused_on - dt.timedelta(days=1))
            if kind == "refused":
                kept_last = True
                break
            current = Permit(ground, later, valid_until=later + dt.timedelta(days=730))
            new_stay(current)
        else:  # a permanent permit, granted while the current one is in force
            keep(current)
            current = Permit(ground, current.valid_until, permanent=True)
            break
    else:  # the last permit runs out, no renewal applied for
        story.lawful[stay] = (story.lawful[stay][0], current.valid_until)
    if not kept_last:
        keep(current)
        if current.permanent:
            story.lawful[stay] = (story.lawful[stay][0], None)
    return story


@settings(max_examples=1000, deadline=None)
@given(story=stories(), days_later=st.integers(-30, 14 * 365))
def test_the_category_follows_the_whole_permit_history_as_domain_md_states_it(
    story: Story, days_later: int
) -> None:
    day = story.permits[0].granted_on + dt.timedelta(days=days_later)
    result = categories(story.permits, on=day, birth_date=story.born, training_claims=story.claims)
    assert (result.training, result.programme) == oracle(story, day)
