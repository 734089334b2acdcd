"""Regenerate the municipality lists and correspondences the hub ships in `hub/domain/data/`.

SSB's classification 131 (municipalities) has a version for every change; the hub ships each
version from 2018 to the last year checked, and the correspondence between consecutive versions:

    kommuner-YYYY.csv                  kommunenummer,navn,fylkesnummer,fylkesnavn (in force from
                                       1 January YYYY until the next list)
    kommuner-endringer-YYYY-ZZZZ.csv   fra_nummer,fra_navn,til_nummer,til_navn,delt (from the list
                                       of YYYY to that of ZZZZ; a number not listed kept its number;
                                       delt=1 where one municipality was split among several; a row
                                       with the same number on both sides records a renaming)
    kommuner-versjoner.csv             aar,liste,endringer: one row per year checked, naming the
                                       list in force on 1 January and the changes that took effect
                                       then (empty: none, the year before's list stays in force)

Two ways in, one output:

    python tools/municipalities.py klass [--base-url URL] [--first 2018] [--last 2026] [--out DIR]
    python tools/municipalities.py csv DIRECTORY [--first 2018] [--last 2026] [--out DIR]

`klass` reads SSB's KLASS API (base URL `https://data.ssb.no/api/klass/v1` unless given): the
codes of classification 131 in force on 1 January of each year (`codesAt`), the county names from
classification 104, and the changes between each two differing lists (`changes`). `csv` reads a
directory of files shaped like the ones above (as in `shared/`): `kommuner-YYYY.csv` for the
years whose list changed (a year without a file kept the year before's list) and
`kommuner-endringer-YYYY-ZZZZ.csv` where one is at hand. Where a change file is missing it is
derived from the two lists: a number that is gone goes to the new number with the same name
(compared before any Sami form or county qualifier, "Våler (Viken)" is "Våler (Østfold)"), and a
new number whose name matches none that is gone re-establishes a municipality of that name from
an older list, split out of what that one had merged into (1580 Haram out of 1507 Ålesund, which
1534 Haram merged into in 2020). Anything else unexplained stops the tool: fetch the change file.

The names in a change file are those of its lists (SSB's change tables wrote some names in an
older form, "Aarborte - Hattfjelldal" for the list's "Hattfjelldal/Aarborte"), and a list's name
that lost a letter to an encoding ("Kárá?johka") is mended from the change table's spelling of the
same number, where the two agree apart from the lost letters. Rows are sorted by number, so both
ways in give the same bytes; the tests check that the shipped files are reproduced from both.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import itertools
import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KLASS_BASE_URL = "https://data.ssb.no/api/klass/v1"
MUNICIPALITIES, COUNTIES = 131, 104
FIRST_YEAR, LAST_YEAR = 2018, 2026
OUT = Path(__file__).resolve().parent.parent / "hub" / "domain" / "data"
LIST_COLUMNS = ("kommunenummer", "navn", "fylkesnummer", "fylkesnavn")
CHANGE_COLUMNS = ("fra_nummer", "fra_navn", "til_nummer", "til_navn", "delt")
INDEX = "kommuner-versjoner.csv"
# SSB's placeholder for an unknown municipality is no municipality.
UNKNOWN = "9999"


class DataError(Exception):
    """The lists and changes read do not agree: nothing is written."""


# Its own record, not hub.domain.municipalities' one: importing that module reads the shipped
# files, which this tool must be able to rewrite when they are wrong.
@dataclass(frozen=True)
class Municipality:
    number: str
    name: str
    county_number: str
    county_name: str


# A list: number -> municipality. Changes: (old number, new number) -> the names the source gave.
Listing = dict[str, Municipality]
Changes = dict[tuple[str, str], tuple[str, str]]


def list_file(year: int) -> str:
    return f"kommuner-{year}.csv"


def change_file(first: int, second: int) -> str:
    return f"kommuner-endringer-{first}-{second}.csv"


# --- Reading: SSB's KLASS API.


def _get_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read().decode("utf-8"))


def _codes_at(base_url: str, classification: int, day: dt.date) -> dict[str, str]:
    query = urllib.parse.urlencode({"date": day.isoformat()})
    data = _get_json(f"{base_url.rstrip('/')}/classifications/{classification}/codesAt?{query}")
    return {str(c["code"]): str(c["name"]) for c in data.get("codes", [])}


def read_klass(
    base_url: str, years: Sequence[int]
) -> tuple[dict[int, Listing], dict[tuple[int, int], Changes]]:
    """Each year's list (as on 1 January) and the changes between each two differing lists."""
    lists: dict[int, Listing] = {}
    for year in years:
        day = dt.date(year, 1, 1)
        counties = _codes_at(base_url, COUNTIES, day)
        lists[year] = {
            code: Municipality(code, name, code[:2], counties.get(code[:2], ""))
            for code, name in _codes_at(base_url, MUNICIPALITIES, day).items()
            if code != UNKNOWN
        }
    changes: dict[tuple[int, int], Changes] = {}
    for first, second in _version_pairs(lists):
        # A change on 1 January of the later year belongs here, one on that of the earlier year
        # to the step before: SSB's `from` is inclusive and its `to` exclusive.
        start, end = dt.date(first, 1, 2), dt.date(second, 1, 2)
        query = urllib.parse.urlencode({"from": start.isoformat(), "to": end.isoformat()})
        data = _get_json(f"{base_url.rstrip('/')}/classifications/{MUNICIPALITIES}/changes?{query}")
        found: Changes = {}
        for change in data.get("codeChanges", []):
            occurred = change.get("changeOccurred")
            if occurred and not start <= dt.date.fromisoformat(occurred) < end:
                continue
            old, new = str(change["oldCode"]), str(change["newCode"])
            found[(old, new)] = (str(change.get("oldName") or ""), str(change.get("newName") or ""))
        changes[(first, second)] = found
    return lists, changes


# --- Reading: a directory of CSVs shaped like the shipped ones.


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_directory(
    directory: Path, years: Sequence[int]
) -> tuple[dict[int, Listing], dict[tuple[int, int], Changes]]:
    lists: dict[int, Listing] = {}
    for year in years:
        path = directory / list_file(year)
        if path.exists():
            lists[year] = {
                r["kommunenummer"]: Municipality(
                    r["kommunenummer"], r["navn"], r["fylkesnummer"], r["fylkesnavn"]
                )
                for r in _read_csv(path)
            }
        elif lists:
            lists[year] = lists[year - 1]
        else:
            raise DataError(f"{directory} has no {list_file(year)}, the first year asked for")
    changes: dict[tuple[int, int], Changes] = {}
    for first, second in _version_pairs(lists):
        path = directory / change_file(first, second)
        if path.exists():
            changes[(first, second)] = {
                (r["fra_nummer"], r["til_nummer"]): (r["fra_navn"], r["til_navn"]) for r in _read_csv(path)
            }
        else:
            changes[(first, second)] = derive_changes(lists, changes, first, second)
    return lists, changes


def _base_name(name: str) -> str:
    """A name without its Sami forms or county qualifier: "Våler (Viken)" -> "Våler",
    "Gratangen/Rivtták" -> "Gratangen", "Hábmer - Hamarøy" stays (a form SSB no longer uses)."""
    return re.sub(r"\s*\(.*\)$", "", name.split("/")[0]).strip()


def derive_changes(
    lists: dict[int, Listing], earlier: dict[tuple[int, int], Changes], first: int, second: int
) -> Changes:
    """The changes from `first`'s list to `second`'s, where SSB's table is not at hand (see the
    module docstring for the rule); `earlier` holds the tables of the steps before."""
    old, new = lists[first], lists[second]
    gone, added = sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys())
    pairs: set[tuple[str, str]] = set()
    for number in gone:
        same_name = [n for n in added if _base_name(new[n].name) == _base_name(old[number].name)]
        if len(same_name) != 1:
            raise DataError(
                f"{first}-{second}: {number} {old[number].name} is gone and its successor is not one new "
                f"number of the same name ({same_name or 'none'}): give {change_file(first, second)}"
            )
        pairs.add((number, same_name[0]))
    for number in sorted(set(added) - {n for _, n in pairs}):
        pairs.add((_reestablished_from(lists, earlier, first, new[number]), number))
    return {(o, n): (old[o].name, new[n].name) for o, n in pairs}


def _reestablished_from(
    lists: dict[int, Listing], earlier: dict[tuple[int, int], Changes], first: int, municipality: Municipality
) -> str:
    """The number in `first`'s list that a re-established municipality was split out of: the one
    its namesake in an older list had become."""
    name = _base_name(municipality.name)
    for year in sorted((y for y in lists if y < first), reverse=True):
        namesakes = [m for m in lists[year].values() if _base_name(m.name) == name]
        if len(namesakes) == 1 and namesakes[0].number not in lists[first]:
            became = _forward(lists, earlier, namesakes[0].number, year, first)
            if len(became) == 1:
                return became.pop()
    raise DataError(f"{municipality.number} {municipality.name} is new and comes from nowhere the lists say")


def _forward(
    lists: dict[int, Listing], earlier: dict[tuple[int, int], Changes], number: str, year: int, until: int
) -> set[str]:
    """What `number` of `year`'s list became in `until`'s, through the change tables `earlier`."""
    numbers = {number}
    for first, second in _version_pairs({y: lists[y] for y in lists if year <= y <= until}):
        table = earlier.get((first, second), {})
        numbers = {n for o in numbers for (old, n) in table if old == o} | {
            o for o in numbers if o in lists[second] and not any(old == o for old, _ in table)
        }
    return numbers


# --- Checking and writing.


def _version_pairs(lists: dict[int, Listing]) -> list[tuple[int, int]]:
    """The consecutive years whose lists differ: (the first year of a list, that of the next)."""
    years = sorted(lists)
    firsts = [y for i, y in enumerate(years) if i == 0 or lists[y] != lists[years[i - 1]]]
    return list(itertools.pairwise(firsts))


def _mend(name: str, spellings: Iterable[str]) -> str:
    """`name` with letters lost to an encoding ('?') restored from another spelling of it."""
    if "?" not in name:
        return name
    pattern = re.compile("".join("." if c == "?" else re.escape(c) for c in name) + r"\Z")
    mended = {s for s in spellings if "?" not in s and pattern.match(s)}
    return mended.pop() if len(mended) == 1 else name


def build(lists: dict[int, Listing], changes: dict[tuple[int, int], Changes]) -> dict[str, str]:
    """The shipped files' names and text, after checking that lists and changes agree."""
    spellings: dict[str, set[str]] = {}
    for table in changes.values():
        for (old, new), (old_name, new_name) in table.items():
            spellings.setdefault(old, set()).add(old_name)
            spellings.setdefault(new, set()).add(new_name)
    lists = {
        year: {
            n: Municipality(n, _mend(m.name, spellings.get(n, ())), m.county_number, m.county_name)
            for n, m in listing.items()
        }
        for year, listing in lists.items()
    }
    files: dict[str, str] = {}
    pairs = _version_pairs(lists)
    firsts = {first for pair in pairs for first in pair} or {min(lists)}
    for year in sorted(firsts):
        rows = sorted(lists[year].values(), key=lambda m: m.number)
        files[list_file(year)] = _csv(
            LIST_COLUMNS, [(m.number, m.name, m.county_number, m.county_name) for m in rows]
        )
    for first, second in pairs:
        before, after = lists[first], lists[second]
        table = changes[(first, second)]
        _check(first, second, before, after, table)
        targets: dict[str, int] = {}
        for o, _ in table:
            targets[o] = targets.get(o, 0) + 1
        rows_out = [
            (o, before[o].name, n, after[n].name, "1" if targets[o] > 1 else "0") for o, n in sorted(table)
        ]
        files[change_file(first, second)] = _csv(CHANGE_COLUMNS, rows_out)
    index = []
    current, step = min(lists), ""
    for year in sorted(lists):
        if year in firsts and year != current:
            step, current = change_file(current, year), year
        else:
            step = ""
        index.append((str(year), list_file(current), step))
    files[INDEX] = _csv(("aar", "liste", "endringer"), index)
    return files


def _check(first: int, second: int, old: Listing, new: Listing, table: Changes) -> None:
    where = change_file(first, second)
    problems = [f"{o} is not in the {first} list" for o, _ in table if o not in old]
    problems += [f"{n} is not in the {second} list" for _, n in table if n not in new]
    problems += [
        f"{o} is gone in {second} but not in the changes"
        for o in old.keys() - new.keys() - {o for o, _ in table}
    ]
    problems += [
        f"{n} is new in {second} but no change leads to it"
        for n in new.keys() - old.keys() - {n for _, n in table}
    ]
    if problems:
        raise DataError(f"{where}: " + "; ".join(sorted(problems)))


def _csv(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def regenerate(lists: dict[int, Listing], changes: dict[tuple[int, int], Changes], out: Path) -> list[Path]:
    """Write the shipped files to `out` (and remove none: a stale file is the caller's to see)."""
    files = build(lists, changes)  # checks everything before a file is written
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8", newline="")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--first", type=int, default=FIRST_YEAR)
    parser.add_argument("--last", type=int, default=LAST_YEAR, help="the last year checked")
    parser.add_argument("--out", type=Path, default=OUT)
    sub = parser.add_subparsers(dest="way", required=True)
    klass = sub.add_parser("klass", help="read SSB's KLASS API")
    klass.add_argument("--base-url", default=KLASS_BASE_URL)
    directory = sub.add_parser("csv", help="read a directory of CSVs")
    directory.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    years = range(args.first, args.last + 1)
    try:
        lists, changes = read_data(args, years)
        written = regenerate(lists, changes, args.out)
    except DataError as exc:
        print(f"municipalities: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def read_data(
    args: argparse.Namespace, years: Sequence[int]
) -> tuple[dict[int, Listing], dict[tuple[int, int], Changes]]:
    if args.way == "klass":
        lists, changes = read_klass(args.base_url, years)
    else:
        lists, changes = read_directory(args.directory, years)
    return lists, changes


if __name__ == "__main__":
    sys.exit(main())
