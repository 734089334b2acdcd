"""The official municipality lists (SSB classification 131), by the date they are in force.

The CSV files beside this module are copies of the lists in `shared/`: 2020 to 2023 and from 2024.
Facts before 2020 are checked against the 2020 list, the oldest the hub ships.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hub.domain.identifiers import is_ascii_digits

_DATA = Path(__file__).resolve().parent / "data"

# (first day in force, file); newest last.
_LISTS = (
    (dt.date(2020, 1, 1), "kommuner-2020.csv"),
    (dt.date(2024, 1, 1), "kommuner-2024.csv"),
)


@dataclass(frozen=True)
class Municipality:
    number: str
    name: str
    county_number: str
    county_name: str


@cache
def _load(file_name: str) -> dict[str, Municipality]:
    with (_DATA / file_name).open(encoding="utf-8", newline="") as handle:
        return {
            row["kommunenummer"]: Municipality(
                number=row["kommunenummer"],
                name=row["navn"],
                county_number=row["fylkesnummer"],
                county_name=row["fylkesnavn"],
            )
            for row in csv.DictReader(handle)
        }


def municipalities_on(date: dt.date) -> dict[str, Municipality]:
    """The municipalities in force on `date`, by number."""
    chosen = _LISTS[0][1]
    for valid_from, file_name in _LISTS:
        if date >= valid_from:
            chosen = file_name
    return _load(chosen)


def is_municipality_number(value: str) -> bool:
    """Whether `value` has a municipality number's shape: four digits 0-9 (leading zero kept)."""
    return len(value) == 4 and is_ascii_digits(value)


def municipality_on(number: str, date: dt.date) -> Municipality | None:
    return municipalities_on(date).get(number)
