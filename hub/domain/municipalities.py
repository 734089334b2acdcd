"""The official municipality lists (SSB classification 131), by the date they are in force, and
the correspondence between one list and the next.

`data/` holds every version of the list from 2018 (`kommuner-YYYY.csv`, in force from 1 January
YYYY until the next one), SSB's changes between consecutive versions
(`kommuner-endringer-YYYY-ZZZZ.csv`: `fra_nummer,fra_navn,til_nummer,til_navn,delt`; a number not
listed kept its number) and an index, `kommuner-versjoner.csv`, naming the list in force on
1 January of every year checked: no change took effect in 2021-2023 or in 2025-2026, so the 2020
and the 2024 list stay in force through them. `tools/municipalities.py` regenerates the files
from SSB's KLASS API or from a directory of CSVs, and says how each was made. A fact is checked
against the list in force on its date (0219 Bærum in 2019, 3024 in 2020-2023, 3201 from 2024);
after the last year checked the newest list stays in force.

A number from another list is read through the changes, one step at a time and in either
direction (`numbers_on`): 0219 is 3024 in 2022 and 3201 in 2026, and 3201 is 0219 in 2019. A
merger makes several numbers one, a split one number several. A merger followed by a split is
read as the changes and the names say together: in 2020 1534 Haram merged into 1507 Ålesund, and
in 2024 1507 was split into 1508 Ålesund and 1580 Haram. The changes alone would make 1534 Haram
either of them; but a split's new part that takes back the name of a municipality merged into the
split one (1580 Haram) is read as that municipality re-established, and the rest (1508 Ålesund)
as the successor of the others. So 1534 Haram is 1580 in 2024, 1504 Ålesund, 1523 Ørskog, 1529
Skodje and 1546 Sandøy are 1508, and back again; 1507 itself, the merged municipality, is both
(`number_on` gives no single number for it then, and the reports say so rather than guess).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hub.domain.identifiers import is_ascii_digits

_DATA = Path(__file__).resolve().parent / "data"


def _read(file_name: str) -> list[dict[str, str]]:
    with (_DATA / file_name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _index() -> tuple[tuple[tuple[dt.date, str], ...], tuple[str, ...], int]:
    """From the index: the distinct lists (first day in force, file), the change file from each
    to the next, and the last year checked."""
    rows = _read("kommuner-versjoner.csv")
    lists: list[tuple[dt.date, str]] = []
    changes: list[str] = []
    for row in rows:
        if not lists or row["liste"] != lists[-1][1]:
            if lists:
                changes.append(row["endringer"])
            lists.append((dt.date(int(row["aar"]), 1, 1), row["liste"]))
    return tuple(lists), tuple(changes), int(rows[-1]["aar"])


# (first day in force, file), oldest first; `_CORRESPONDENCES[i]` leads from `_LISTS[i]` to
# `_LISTS[i + 1]`. SSB published no change for the years after the last list up to
# `CHECKED_THROUGH` (2025 and 2026 kept the 2024 list): the index says so year by year.
_LISTS, _CORRESPONDENCES, CHECKED_THROUGH = _index()


@dataclass(frozen=True)
class Municipality:
    number: str
    name: str
    county_number: str
    county_name: str


@cache
def _load(file_name: str) -> dict[str, Municipality]:
    return {
        row["kommunenummer"]: Municipality(
            number=row["kommunenummer"],
            name=row["navn"],
            county_number=row["fylkesnummer"],
            county_name=row["fylkesnavn"],
        )
        for row in _read(file_name)
    }


def _list(index: int) -> dict[str, Municipality]:
    return _load(_LISTS[index][1])


def _list_on(date: dt.date) -> int:
    """The index in `_LISTS` of the list in force on `date` (the oldest before 2018)."""
    chosen = 0
    for index, (valid_from, _) in enumerate(_LISTS):
        if date >= valid_from:
            chosen = index
    return chosen


def municipalities_on(date: dt.date) -> dict[str, Municipality]:
    """The municipalities in force on `date`, by number."""
    return _list(_list_on(date))


@cache
def _successors(index: int) -> dict[str, frozenset[str]]:
    """What each number of `_LISTS[index]` became in the next list: its rows in the changes, or
    itself where it is not listed (a renaming lists the same number on both sides)."""
    changed: dict[str, set[str]] = {}
    for row in _read(_CORRESPONDENCES[index]):
        changed.setdefault(row["fra_nummer"], set()).add(row["til_nummer"])
    later = _list(index + 1)
    return {
        number: frozenset(changed.get(number, {number} if number in later else ())) for number in _list(index)
    }


@cache
def _changes_only(number: str, start: int, end: int) -> frozenset[str]:
    """What `number` of `_LISTS[start]` became in `_LISTS[end]` (start <= end) by the changes
    alone, every part of every split."""
    numbers = frozenset({number})
    for index in range(start, end):
        numbers = frozenset(new for old in numbers for new in _successors(index).get(old, ()))
    return numbers


def _base_name(name: str) -> str:
    """A name without its Sami forms or county qualifier ("Herøy (Nordland)", "Rana/Raane")."""
    return re.sub(r"\s*\(.*\)$", "", name.split("/")[0]).strip()


@cache
def _reestablished(index: int) -> dict[str, tuple[int, str]]:
    """The parts of the splits from `_LISTS[index]` to the next that re-establish a municipality
    merged into the split one, each with where that municipality was last listed: (list index,
    number). 1580 Haram, split from 1507 Ålesund in 2024, is (1, "1534"): 1534 Haram of the 2019
    list merged into 1507 in 2020."""
    found: dict[str, tuple[int, str]] = {}
    for split, parts in _successors(index).items():
        if len(parts) < 2:
            continue
        split_name = _base_name(_list(index)[split].name)
        for part in parts:
            name = _base_name(_list(index + 1)[part].name)
            if name == split_name:
                continue  # the split municipality carries on under its name: not a return
            for earlier in range(index - 1, -1, -1):
                namesakes = [
                    m.number
                    for m in _list(earlier).values()
                    if _base_name(m.name) == name
                    and m.number not in _list(index)
                    and _changes_only(m.number, earlier, index) == {split}
                ]
                if len(namesakes) == 1:
                    found[part] = (earlier, namesakes[0])
                    break
    return found


@cache
def _forward(number: str, start: int, end: int) -> frozenset[str]:
    """What `number` of `_LISTS[start]` became in `_LISTS[end]` (start <= end): the changes, but
    at a split that re-establishes a municipality (`_reestablished`), the municipality itself
    goes to the re-established part and the others merged with it to the rest. A number from
    after the merger (1507 itself) goes to every part: it was all of them."""
    numbers = frozenset({number})
    for index in range(start, end):
        following: set[str] = set()
        for old in numbers:
            parts = _successors(index).get(old, frozenset())
            returns = {
                part: origin
                for part, origin in _reestablished(index).items()
                if part in parts and start <= origin[0]
            }
            if returns:
                own = {
                    part
                    for part, (listed, was) in returns.items()
                    if _changes_only(number, start, listed) == {was}
                }
                parts = frozenset(own) or (parts - returns.keys()) or parts
            following |= parts
        numbers = frozenset(following)
    return numbers


@cache
def _backward(start: int, end: int) -> dict[str, frozenset[str]]:
    """For each number of `_LISTS[end]`, what it was in `_LISTS[start]` (start < end): the
    numbers whose `_forward` reaches it, so both directions agree."""
    earlier: dict[str, set[str]] = {}
    for old in _list(start):
        for new in _forward(old, start, end):
            earlier.setdefault(new, set()).add(old)
    return {new: frozenset(olds) for new, olds in earlier.items()}


def numbers_on(number: str, date: dt.date) -> frozenset[str]:
    """The number(s) that `number` is on `date`, in the list then in force: itself if that list
    has it; else, through the changes, what it became (a number from an older list) or what it
    was (one from a newer list), several where a municipality was split or merged (read as the
    module docstring says); none for a number no list has."""
    target = _list_on(date)
    holding = [index for index in range(len(_LISTS)) if number in _list(index)]
    if not holding:
        return frozenset()
    # From the list nearest to the one in force.
    return _walk(number, min(holding, key=lambda index: abs(index - target)), target)


def _walk(number: str, start: int, target: int) -> frozenset[str]:
    """What `number` of `_LISTS[start]` is in `_LISTS[target]`, forward or back."""
    if start <= target:
        return _forward(number, start, target)
    return _backward(target, start).get(number, frozenset())


def number_on(number: str, date: dt.date) -> str | None:
    """The one number `number` is on `date` (`numbers_on`); None where it is several (1507 in
    2024: 1508 Ålesund or 1580 Haram) or none."""
    numbers = numbers_on(number, date)
    return next(iter(numbers)) if len(numbers) == 1 else None


def number_counted(number: str, date: dt.date, reporting: Collection[str] = ()) -> str:
    """The number a registration for `number` counts under on `date` (reports, charts): its
    number then; where a split makes that several, the one of them its source reports for
    (`reporting`), if just one; else `number` itself, unguessed (and where no list has it)."""
    numbers = numbers_on(number, date)
    if len(numbers) > 1:
        numbers = numbers.intersection(reporting)
    return next(iter(numbers)) if len(numbers) == 1 else number


def numbers_since(number: str, day: dt.date, today: dt.date) -> frozenset[str]:
    """Every number that the municipality `number` is today (in the list in force on `today`)
    had, or was part of, in the lists in force from `day` to `today`: for 3201 and a day of
    2019, 0219, 3024 and 3201; for 1103 Stavanger and a day of 2019 also 1141 Finnøy and 1142
    Rennesøy, merged into it in 2020 (where `numbers_on("1103", day)` is the 2019 Stavanger)."""
    now = _list_on(today)
    days = _list_starts(min(day, today), max(day, today))
    if number not in _list(now):  # not a number of today: read it as it is on each day
        return frozenset(n for d in days for n in numbers_on(number, d))
    return frozenset(n for d in days for n in _walk(number, now, _list_on(d)))


def in_force_between(number: str, first: dt.date, last: dt.date) -> bool:
    """Whether a list in force on some day from `first` to `last` has `number`."""
    return any(number in municipalities_on(day) for day in _list_starts(first, last))


def _list_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    """A day in force for each list in force from `first` to `last`."""
    return [first, *(valid_from for valid_from, _ in _LISTS if first < valid_from <= last)]


def same_municipality(first: str, second: str, date: dt.date) -> bool:
    """Whether two municipality numbers mean the same municipality on `date`, each read through
    the changes when it is not from the list then in force (a number that became several is any
    of them)."""
    return first == second or not numbers_on(first, date).isdisjoint(numbers_on(second, date))


def is_municipality_number(value: str) -> bool:
    """Whether `value` has a municipality number's shape: four digits 0-9 (leading zero kept)."""
    return len(value) == 4 and is_ascii_digits(value)


def municipality_on(number: str, date: dt.date) -> Municipality | None:
    return municipalities_on(date).get(number)


def _in_force(number: str) -> tuple[int, int | None, str]:
    """The first and last year a number was in force (None: still is) and its last name."""
    holding = [index for index in range(len(_LISTS)) if number in _list(index)]
    first = _LISTS[holding[0]][0].year
    last = None if holding[-1] == len(_LISTS) - 1 else _LISTS[holding[-1] + 1][0].year - 1
    return first, last, _list(holding[-1])[number].name


def name_on(number: str, date: dt.date) -> str:
    """The municipality's name in the list in force on `date`: for a number from another list,
    the name of what it is then ("3024" in 2024 is Bærum, now 3201); empty for a number no list
    has. Where it is several then, no guess: its own name, when it was in force and what it is
    ("Ålesund (1507 in 2020-2023; in 2024 1508 Ålesund or 1580 Haram)")."""
    numbers = sorted(numbers_on(number, date))
    in_force = municipalities_on(date)
    if len(numbers) <= 1:
        return "".join(in_force[n].name for n in numbers)
    first, last, name = _in_force(number)
    years = f"from {first}" if last is None else f"{first}" if first == last else f"{first}-{last}"
    parts = [f"{n} {in_force[n].name}" for n in numbers]
    now = ", ".join(parts[:-1]) + " or " + parts[-1]
    return f"{name} ({number} {'in ' if last else ''}{years}; in {date.year} {now})"
