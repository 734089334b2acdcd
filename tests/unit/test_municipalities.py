"""The municipality lists and SSB's correspondence between them, read on a fact's date."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import hub.domain.municipalities
from hub.domain.municipalities import municipalities_on, name_on, numbers_on, same_municipality

DATA = Path(hub.domain.municipalities.__file__).parent / "data"
IN_2022, IN_2026 = dt.date(2022, 6, 1), dt.date(2026, 6, 1)


def test_the_correspondence_covers_every_2020_number_gone_in_2024_and_points_only_to_2024_numbers() -> None:
    old, new = municipalities_on(IN_2022), municipalities_on(IN_2026)
    with (DATA / "kommuner-2020-2024.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(r["kommunenummer_2020"], r["kommunenummer_2024"]) for r in csv.DictReader(handle)]
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
    assert name_on("1507", IN_2026) == "Ålesund, Haram"
    assert name_on("9999", IN_2026) == ""
