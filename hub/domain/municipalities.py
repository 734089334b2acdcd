"""The official municipality lists (SSB classification 131), by the date they are in force, and
the correspondence between one list and the next.

The lists beside this module are copies of those in `shared/`: 2020 to 2023 and from 2024.
Facts before 2020 are checked against the 2020 list, the oldest the hub ships.

`kommuner-2020-2024.csv` is the correspondence between the 2020 and the 2024 list (as SSB
publishes it for classification 131), one row per old and new number, for the numbers that
changed. It was built from the two lists: each 2020 number that is not in the 2024 list goes to
the new number with the same name in its successor county (Viken to Østfold, Akershus or
Buskerud; Vestfold og Telemark to Vestfold or Telemark; Troms og Finnmark to Troms or Finnmark),
names compared before any Sami form or county qualifier (3018 Våler (Viken) is 3114 Våler
(Østfold), 5414 Gratangen is 5516 Gratangen/Rivtták); plus the one split of 2024, 1507 Ålesund
into 1508 Ålesund and 1580 Haram. A number in both lists is the same municipality in both (three
of them only changed their names).
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
# The correspondence from each list to the next: (file, old number's column, new number's column).
_CORRESPONDENCES = (("kommuner-2020-2024.csv", "kommunenummer_2020", "kommunenummer_2024"),)


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


def _list_on(date: dt.date) -> int:
    """The index in `_LISTS` of the list in force on `date`."""
    chosen = 0
    for index, (valid_from, _) in enumerate(_LISTS):
        if date >= valid_from:
            chosen = index
    return chosen


def municipalities_on(date: dt.date) -> dict[str, Municipality]:
    """The municipalities in force on `date`, by number."""
    return _load(_LISTS[_list_on(date)][1])


@cache
def _successors(index: int) -> dict[str, frozenset[str]]:
    """What each number of `_LISTS[index]` became in the next list: its rows in the
    correspondence, or itself where the next list still has it."""
    file_name, old_column, new_column = _CORRESPONDENCES[index]
    changed: dict[str, set[str]] = {}
    with (_DATA / file_name).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            changed.setdefault(row[old_column], set()).add(row[new_column])
    later = _load(_LISTS[index + 1][1])
    return {
        number: frozenset(changed.get(number, {number} if number in later else ()))
        for number in _load(_LISTS[index][1])
    }


@cache
def _predecessors(index: int) -> dict[str, frozenset[str]]:
    """What each number of `_LISTS[index + 1]` was in `_LISTS[index]`."""
    earlier: dict[str, set[str]] = {}
    for old, news in _successors(index).items():
        for new in news:
            earlier.setdefault(new, set()).add(old)
    return {new: frozenset(olds) for new, olds in earlier.items()}


def numbers_on(number: str, date: dt.date) -> frozenset[str]:
    """The number(s) that `number` is on `date`, in the list then in force: itself if that list
    has it; else, through the correspondence, what it became (a number from an older list) or
    what it was (one from a newer list), several where a municipality was split or merged;
    none for a number no list has."""
    target = _list_on(date)
    holding = [index for index, (_, file_name) in enumerate(_LISTS) if number in _load(file_name)]
    if not holding:
        return frozenset()
    # From the list nearest to the one in force, one correspondence at a time.
    start = min(holding, key=lambda index: abs(index - target))
    numbers = frozenset({number})
    for index in range(start, target):
        numbers = frozenset(new for old in numbers for new in _successors(index).get(old, ()))
    for index in range(start - 1, target - 1, -1):
        numbers = frozenset(old for new in numbers for old in _predecessors(index).get(new, ()))
    return numbers


def same_municipality(first: str, second: str, date: dt.date) -> bool:
    """Whether two municipality numbers mean the same municipality on `date`, each read through
    the correspondence when it is not from the list then in force (a number that became several
    is any of them)."""
    return first == second or not numbers_on(first, date).isdisjoint(numbers_on(second, date))


def is_municipality_number(value: str) -> bool:
    """Whether `value` has a municipality number's shape: four digits 0-9 (leading zero kept)."""
    return len(value) == 4 and is_ascii_digits(value)


def municipality_on(number: str, date: dt.date) -> Municipality | None:
    return municipalities_on(date).get(number)


def name_on(number: str, date: dt.date) -> str:
    """The municipality's name in the list in force on `date`: for a number from another list,
    the name of what it is then ("3024" in 2024 is Bærum, now 3201), the names joined where it
    was split; empty for a number no list has."""
    in_force = municipalities_on(date)
    return ", ".join(in_force[n].name for n in sorted(numbers_on(number, date)))
