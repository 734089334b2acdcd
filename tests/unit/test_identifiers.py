"""Fødselsnummer, D-number and DUF number validation, and masking."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.identifiers import (
    CheckDigitRule,
    InvalidIdentifier,
    NationalIdKind,
    check_duf_number,
    make_national_id,
    mask,
    parse_national_id,
    passes_duf_checksum,
)

births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(1999, 12, 31))
individuals = st.integers(min_value=0, max_value=499)


def test_the_example_from_the_domain_description_is_a_valid_fodselsnummer() -> None:
    info = parse_national_id("31129956715")
    assert info.kind is NationalIdKind.FODSELSNUMMER
    assert info.birth_date == dt.date(1899, 12, 31)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("3112995671", "11 digits"),
        ("3112995671a", "11 digits"),
        ("31129956716", "second check digit"),
        ("31129956815", "first check digit"),
    ],
)
def test_malformed_numbers_are_refused_with_a_reason_that_does_not_repeat_them(
    value: str, reason: str
) -> None:
    with pytest.raises(InvalidIdentifier, match=reason) as caught:
        parse_national_id(value)
    assert value not in str(caught.value)


def test_a_d_number_is_recognised_by_the_first_digit_plus_four() -> None:
    number = make_national_id(dt.date(1988, 4, 11), 234, synthetic=False, d_number=True)
    assert number is not None and number.startswith("51")
    info = parse_national_id(number)
    assert info.kind is NationalIdKind.D_NUMBER and info.birth_date == dt.date(1988, 4, 11)


def test_synthetic_test_numbers_are_refused_unless_allowed() -> None:
    number = make_national_id(dt.date(1990, 5, 17), 412)
    assert number is not None
    with pytest.raises(InvalidIdentifier, match="synthetic"):
        parse_national_id(number)
    assert parse_national_id(number, allow_synthetic=True).synthetic


def _with_check_digits(first_nine: str) -> str | None:
    digits = [int(c) for c in first_nine]
    for weights in ((3, 7, 6, 1, 8, 9, 4, 5, 2), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)):
        check = (11 - sum(d * w for d, w in zip(digits, weights, strict=False)) % 11) % 11
        if check == 10:
            return None
        digits.append(check)
    return "".join(map(str, digits))


def test_a_number_with_valid_check_digits_but_an_impossible_date_is_refused() -> None:
    # 31 February 1990, with the first individual number that has valid check digits.
    number = next(n for i in range(100, 500) if (n := _with_check_digits(f"310290{i:03d}")))
    with pytest.raises(InvalidIdentifier, match="birth date"):
        parse_national_id(number)


@given(births, individuals)
def test_every_generated_number_parses_back_to_its_birth_date(birth: dt.date, individual: int) -> None:
    number = make_national_id(birth, individual, synthetic=False)
    if number is None:
        return  # this individual number has no valid check digit: none is issued
    assert parse_national_id(number).birth_date == birth


@given(births, individuals, st.integers(min_value=0, max_value=10), st.integers(min_value=1, max_value=9))
def test_changing_any_single_digit_is_always_detected(
    birth: dt.date, individual: int, position: int, delta: int
) -> None:
    number = make_national_id(birth, individual, synthetic=False)
    if number is None:
        return
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    with pytest.raises(InvalidIdentifier):
        parse_national_id(changed)


def test_a_wider_check_digit_rule_can_be_switched_on_for_the_2032_numbers() -> None:
    number = "31129956716"  # second check digit off by one: remainder 1
    with pytest.raises(InvalidIdentifier):
        parse_national_id(number)
    wider = CheckDigitRule(second=frozenset({0, 1, 2, 3}))
    assert parse_national_id(number, rule=wider).birth_date == dt.date(1899, 12, 31)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("201812345604", True),
        ("20181234567", False),
        ("2018123456049", False),
        ("190012345678", False),
        ("209912345678", False),
        ("20181234567x", False),
    ],
)
def test_duf_numbers_are_checked_by_length_and_year(value: str, ok: bool) -> None:
    if ok:
        check_duf_number(value, today=dt.date(2026, 11, 26))
    else:
        with pytest.raises(InvalidIdentifier):
            check_duf_number(value, today=dt.date(2026, 11, 26))


def test_a_masked_identifier_reveals_nothing_but_stays_comparable() -> None:
    assert "31129956715" not in mask("31129956715")
    assert mask("31129956715") == mask("31129956715")
    assert mask("31129956715") != mask("31129956716")
    assert mask(None) == "<none>"


def _first_with_check_digits(day: int, month: int, year2: int, individuals: range = range(100, 500)) -> str:
    return next(
        n
        for i in individuals
        if (n := _with_check_digits(f"{day:02d}{month:02d}{year2:02d}{i:03d}")) is not None
    )


def test_an_h_number_is_read_as_one_with_its_birth_date() -> None:
    """Issue 15, fault 7: H-numbers (month + 40) were accepted but untested."""
    info = parse_national_id(_first_with_check_digits(17, 5 + 40, 90))
    assert (info.kind, info.birth_date) == (NationalIdKind.H_NUMBER, dt.date(1990, 5, 17))


def test_a_number_marked_both_as_a_d_number_and_an_h_number_is_refused() -> None:
    """Issue 15, fault 7: it was read as an H-number."""
    with pytest.raises(InvalidIdentifier, match="both"):
        parse_national_id(_first_with_check_digits(17 + 40, 5 + 40, 90))


def test_a_birth_date_after_today_is_refused_when_today_is_given() -> None:
    """Issue 15, fault 7: numbers of persons born tomorrow were accepted."""
    number = _first_with_check_digits(1, 6, 26, range(500, 750))  # individual 500-749, year 26: 2026
    info = parse_national_id(number)
    assert info.birth_date == dt.date(2026, 6, 1)
    assert parse_national_id(number, today=dt.date(2026, 6, 1)).birth_date == dt.date(2026, 6, 1)
    with pytest.raises(InvalidIdentifier, match="future"):
        parse_national_id(number, today=dt.date(2026, 5, 31))


def test_the_duf_checksum_is_the_weighted_sum_of_the_first_ten_digits_mod_11() -> None:
    """Issue 15, fault 7: no DUF checksum was checked at all; DOMAIN.md: warn, never refuse."""
    assert passes_duf_checksum("201812345604")
    assert not passes_duf_checksum("201812345678")
    assert not passes_duf_checksum("20181234560")  # the wrong length never passes
    check_duf_number("201812345678", today=dt.date(2026, 12, 1))  # a failed checksum is no error
