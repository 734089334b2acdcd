"""The municipality lists and SSB's correspondence between them, read on a fact's date."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import hub.domain.municipalities
from hub.domain.municipalities import (
    in_force_between,
    municipalities_on,
    name_on,
    number_on,
    numbers_on,
    numbers_since,
    same_municipality,
)

DATA = Path(hub.domain.municipalities.__file__).parent / "data"
IN_2019, IN_2022, IN_2026 = dt.date(2019, 6, 1), dt.date(2022, 6, 1), dt.date(2026, 6, 1)


def test_the_correspondence_covers_every_2020_number_gone_in_2024_and_points_only_to_2024_numbers() -> None:
    old, new = municipalities_on(IN_2022), municipalities_on(IN_2026)
    with (DATA / "kommuner-endringer-2020-2024.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(r["fra_nummer"], r["til_nummer"]) for r in csv.DictReader(handle)]
    assert {o for o, _ in rows} == old.keys() - new.keys()
    assert {n for _, n in rows} <= new.keys()
    # Every new number comes from somewhere, and the split of Ålesund is there.
    assert {n for _, n in rows} == new.keys() - old.keys()
    assert sorted(n for o, n in rows if o == "1507") == ["1508", "1580"]
    assert ("3024", "3201") in rows


def test_a_number_is_read_in_the_list_in_force_on_the_date_in_both_directions() -> None:
    assert numbers_on("3024", IN_2026) == {"3201"}
    assert numbers_on("3201", IN_2022) == {"3024"}
    assert numbers_on("1507", IN_2026) == {"1508", "1580"}
    assert numbers_on("1580", IN_2022) == numbers_on("1508", IN_2022) == {"1507"}
    assert numbers_on("0301", IN_2022) == numbers_on("0301", IN_2026) == {"0301"}
    assert numbers_on("9999", IN_2026) == frozenset()


def test_a_split_municipality_is_any_of_its_successors_but_they_are_not_each_other() -> None:
    assert same_municipality("1507", "1580", IN_2026) and same_municipality("1507", "1508", IN_2026)
    assert not same_municipality("1508", "1580", IN_2026)
    assert same_municipality("1508", "1580", IN_2022)  # both were Ålesund then
    assert not same_municipality("3024", "0301", IN_2026)


def test_a_municipality_is_named_as_in_the_list_in_force_through_a_renaming_a_renumbering_and_a_split() -> (
    None
):
    assert (name_on("1833", IN_2022), name_on("1833", IN_2026)) == ("Rana", "Rana/Raane")
    assert name_on("3024", IN_2026) == name_on("3201", IN_2022) == "Bærum"
    assert name_on("9999", IN_2026) == ""


def test_a_split_municipality_is_named_by_its_own_name_and_what_it_is_now_never_by_a_guess() -> None:
    assert name_on("1507", IN_2026) == "Ålesund (1507 in 2020-2023; in 2026 1508 Ålesund or 1580 Haram)"
    assert (
        name_on("5012", IN_2026)
        == "Snillfjord (5012 in 2018-2019; in 2026 5055 Heim, 5056 Hitra or 5059 Orkland)"
    )
    assert name_on("1508", IN_2019) == (
        "Ålesund (1508 from 2024; in 2019 1504 Ålesund, 1523 Ørskog, 1529 Skodje or 1546 Sandøy)"
    )
    assert number_on("1507", IN_2026) is None and number_on("1507", IN_2022) == "1507"
    assert number_on("0219", IN_2026) == "3201" and number_on("9999", IN_2026) is None


def test_a_fact_of_2019_is_read_in_the_2019_list_and_2018_in_the_2018_list() -> None:
    assert "0219" in municipalities_on(IN_2019) and "0219" not in municipalities_on(IN_2022)
    assert len(municipalities_on(IN_2019)) == len(municipalities_on(dt.date(2018, 6, 1))) == 422
    # Rindal moved from Møre og Romsdal to Trøndelag in 2019, and kept its name.
    assert numbers_on("1567", IN_2019) == {"5061"} and numbers_on("5061", dt.date(2018, 6, 1)) == {"1567"}
    # Before 2018 the oldest list the hub ships is read.
    assert "0219" in municipalities_on(dt.date(2017, 6, 1))


def test_numbers_follow_several_steps_in_both_directions() -> None:
    assert numbers_on("0219", IN_2022) == {"3024"} and numbers_on("0219", IN_2026) == {"3201"}
    assert numbers_on("3201", IN_2019) == numbers_on("3024", IN_2019) == {"0219"}
    assert numbers_on("5012", IN_2022) == {"5055", "5056", "5059"}  # Snillfjord split in 2020
    assert numbers_on("5056", IN_2019) == {"5012", "5013"}  # Hitra took part of Snillfjord
    assert numbers_on("1504", IN_2022) == numbers_on("1534", IN_2022) == {"1507"}


def test_haram_merged_into_alesund_and_split_out_again_is_haram_not_alesund() -> None:
    """The changes say 1534 Haram -> 1507 Ålesund (2020) -> 1508 Ålesund or 1580 Haram (2024); the
    part of the split that takes back Haram's name is Haram re-established."""
    assert numbers_on("1534", IN_2026) == {"1580"} and numbers_on("1580", IN_2019) == {"1534"}
    assert numbers_on("1504", IN_2026) == numbers_on("1523", IN_2026) == {"1508"}
    assert numbers_on("1508", IN_2019) == {"1504", "1523", "1529", "1546"}
    assert not same_municipality("1534", "1508", IN_2026) and same_municipality("1534", "1580", IN_2026)
    assert not same_municipality("1534", "1508", IN_2019)
    # The merged municipality itself was both.
    assert numbers_on("1507", IN_2026) == {"1508", "1580"}
    assert numbers_on("1507", IN_2019) == {"1504", "1523", "1529", "1534", "1546"}


def test_the_numbers_a_municipality_had_from_a_facts_date_until_today_are_every_step_of_the_way() -> None:
    assert numbers_since("3201", IN_2019, IN_2026) == {"0219", "3024", "3201"}
    assert numbers_since("3201", IN_2022, IN_2026) == {"3024", "3201"}
    assert numbers_since("1580", IN_2019, IN_2026) == {"1534", "1507", "1580"}
    assert numbers_since("1508", IN_2022, IN_2026) == {"1507", "1508"}
    assert "0301" not in numbers_since("3201", IN_2019, IN_2026)
    assert in_force_between("3024", IN_2019, IN_2026) and not in_force_between("0219", IN_2022, IN_2026)
