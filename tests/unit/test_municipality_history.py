"""A municipality reports its own past through every renumbering since 2018 (NIR-SOURCE-002,
NIR-MUNI-001), and the reports count it under the number of the report's year."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

import hub.domain.municipalities
from hub.domain.events import Registration
from hub.domain.municipalities import municipalities_on, numbers_on
from hub.pipeline.decode import decode_registration
from hub.register.reports import _in_year, _where
from hub.rules import RuleContext, check
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from tests.factories import event, synthetic_person

TODAY = dt.date(2026, 11, 26)
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
DATA = Path(hub.domain.municipalities.__file__).parent / "data"


def _changes() -> list[tuple[str, str, dt.date]]:
    """Every change of number in the shipped tables: (old, new, the first day of the new)."""
    with (DATA / "kommuner-versjoner.csv").open(encoding="utf-8", newline="") as handle:
        steps = [
            (r["endringer"], dt.date(int(r["aar"]), 1, 1)) for r in csv.DictReader(handle) if r["endringer"]
        ]
    found = []
    for file_name, day in steps:
        with (DATA / file_name).open(encoding="utf-8", newline="") as handle:
            found += [
                (r["fra_nummer"], r["til_nummer"], day)
                for r in csv.DictReader(handle)
                if r["fra_nummer"] != r["til_nummer"]
            ]
    return found


CHANGES = _changes()


def _registration(municipality: str, fact_date: dt.date) -> Registration:
    e = event(synthetic_person(), "TRAINING_HOURS", fact_date=fact_date)
    e["sentAt"] = NOW.isoformat()
    r = decode_registration(catalog(), catalog().encode(REGISTRATION, from_json(e)))
    return dataclasses.replace(r, municipality=municipality, fact_date=fact_date)


def _source_for(*municipalities: str | dict[str, object]) -> RuleContext:
    registry = SourceRegistry.from_mapping(
        {"sources": {"fagsystem": {"municipalities": list(municipalities)}}}
    )
    return RuleContext(
        history=(),
        today=TODAY,
        now=NOW,
        topic_source="fagsystem",
        registry=registry,
        allow_synthetic_identifiers=True,
    )


def _refused_by(municipality: str, fact_date: dt.date, context: RuleContext) -> list[str]:
    r = _registration(municipality, fact_date)
    return [code for code in ("NIR-SOURCE-002", "NIR-MUNI-001") if check(code, r, context) is not None]


def test_the_data_has_every_kind_of_change_the_tests_below_walk_through() -> None:
    assert len(CHANGES) > 400
    assert ("0219", "3024", dt.date(2020, 1, 1)) in CHANGES and (
        "1534",
        "1507",
        dt.date(2020, 1, 1),
    ) in CHANGES
    assert ("1507", "1580", dt.date(2024, 1, 1)) in CHANGES and (
        "5012",
        "5059",
        dt.date(2020, 1, 1),
    ) in CHANGES


@pytest.mark.parametrize(
    ("old", "new", "changed_on"), CHANGES, ids=[f"{o}-{n}-{d.year}" for o, n, d in CHANGES]
)
def test_the_successors_source_sends_a_fact_from_before_the_change_under_either_number_and_a_report_counts_it_under_the_successor(
    old: str, new: str, changed_on: dt.date
) -> None:
    before = changed_on - dt.timedelta(days=1)
    successors = sorted(numbers_on(old, TODAY))
    assert successors, old
    for successor in successors:
        context = _source_for(successor)
        # The number after the change, where this part of it is the successor (not another part).
        through = [new] if successor in numbers_on(new, TODAY) else []
        for number in (old, *through, successor):
            assert _refused_by(number, before, context) == [], (number, successor)
    # The report of this year counts it under the successor, named as this year's list names it:
    # after a split, the part whose source sent it.
    year = TODAY.year
    for successor in successors:
        assert _where(_in_year(old, year, frozenset({successor})), year) == (
            successor,
            municipalities_on(TODAY)[successor].name,
            year,
        )
    if len(successors) > 1:  # a source of every part, or of none, says nothing: its own number
        for reporting in (frozenset(successors), frozenset()):
            number, name, _ = _where(_in_year(old, year, reporting), year)
            assert number == old and all(f"{s} {municipalities_on(TODAY)[s].name}" in name for s in successors)


def test_baerum_sends_its_2019_past_as_0219_3024_or_3201_and_its_2023_past_as_3024_or_3201() -> None:
    baerum = _source_for("3201")
    for number in ("0219", "3024", "3201"):
        assert _refused_by(number, dt.date(2019, 5, 1), baerum) == [], number
    assert _refused_by("3024", dt.date(2023, 5, 1), baerum) == []
    # 0219 ended in 2020: no municipality for a fact of 2023, and no source's either.
    assert _refused_by("0219", dt.date(2023, 5, 1), baerum) == ["NIR-SOURCE-002", "NIR-MUNI-001"]
    # Never a number that was not Bærum.
    for number in ("0301", "0220", "3025", "3203"):
        assert "NIR-SOURCE-002" in _refused_by(number, dt.date(2019, 5, 1), baerum), number


def test_haram_sends_its_past_as_1534_or_as_the_alesund_it_was_part_of_and_alesund_never_as_haram() -> None:
    haram, alesund = _source_for("1580"), _source_for("1508")
    assert _refused_by("1507", dt.date(2022, 5, 1), haram) == []
    assert _refused_by("1534", dt.date(2019, 5, 1), haram) == []
    assert _refused_by("1507", dt.date(2022, 5, 1), alesund) == []
    assert _refused_by("1504", dt.date(2019, 5, 1), alesund) == []
    assert _refused_by("1534", dt.date(2019, 5, 1), alesund) == ["NIR-SOURCE-002"]
    assert _refused_by("1508", dt.date(2022, 5, 1), haram) == ["NIR-SOURCE-002"]
    assert _refused_by("1580", dt.date(2022, 5, 1), alesund) == ["NIR-SOURCE-002"]


def test_snillfjords_parts_each_send_its_2019_past_as_5012() -> None:
    for part in ("5055", "5056", "5059"):  # Heim, Hitra, Orkland
        assert _refused_by("5012", dt.date(2019, 5, 1), _source_for(part)) == [], part
    assert _refused_by("5012", dt.date(2020, 5, 1), _source_for("5059")) == ["NIR-SOURCE-002", "NIR-MUNI-001"]


def test_a_reporting_period_is_still_judged_on_todays_date() -> None:
    ended = _source_for({"number": "3201", "until": TODAY})
    assert _refused_by("0219", dt.date(2019, 5, 1), ended) == ["NIR-SOURCE-002"]
    current = _source_for({"number": "3201", "from": dt.date(2026, 1, 1)})
    assert _refused_by("0219", dt.date(2019, 5, 1), current) == []


def test_the_refusal_names_the_numbers_the_source_may_use_for_that_date_in_both_languages_and_no_person() -> (
    None
):
    r = _registration("0301", dt.date(2019, 5, 1))
    violation = check("NIR-SOURCE-002", r, _source_for("3201"))
    assert violation is not None
    assert "it may report for 3201 (for a fact of 2019-05-01 also 0219, 3024)" in violation.message
    assert "den kan rapportere for 3201 (for et faktum 2019-05-01 også 0219, 3024)" in violation.message_nb
    for identifier in (r.national_id, r.duf_number):
        assert not identifier or identifier not in violation.message + violation.message_nb


def test_the_reports_count_baerum_under_the_number_of_the_reports_year_and_a_split_under_the_part_that_sent_it() -> None:
    assert (
        _where(_in_year("3024", 2024), 2024)
        == _where(_in_year("3201", 2024), 2024)
        == ("3201", "Bærum", 2024)
    )
    assert _where(_in_year("3201", 2022), 2022) == ("3024", "Bærum", 2022)
    assert _where(_in_year("0219", 2019), 2019) == ("0219", "Bærum", 2019)
    assert _where(_in_year("1534", 2024), 2024) == ("1580", "Haram", 2024)
    assert _where(_in_year("1507", 2024), 2024) == (
        "1507",
        "Ålesund (1507 in 2020-2023; in 2024 1508 Ålesund or 1580 Haram)",
        2024,
    )
    # Sent by Haram's own source, 1507 is Haram's past; by Ålesund's, Ålesund's.
    assert _where(_in_year("1507", 2024, frozenset({"1580"})), 2024) == ("1580", "Haram", 2024)
    assert _where(_in_year("1507", 2024, frozenset({"1508", "0301"})), 2024) == ("1508", "Ålesund", 2024)
