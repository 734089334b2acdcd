"""`hub report`'s default year is this year in Norway, not on the machine's clock (issue 28:
Oslo's day of an instant wherever a date is taken from one)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import hub.cli as hub_cli
import hub.register.reports
from hub.domain.calendar import norwegian_date
from hub.kafka.topics import TopicNames
from hub.register.reports import REPORTS, Report, ReportedFor
from hub.sources import SourceRegistry


@dataclass
class _Hub:
    """What `hub report` asks of the hub: today in Norway, a unit of work, the sources."""

    now: dt.datetime
    registry = SourceRegistry.from_mapping({"sources": {"fagsystem": {"municipalities": ["1580"]}}})
    names = TopicNames("nir")

    def today(self) -> dt.date:
        return norwegian_date(self.now)

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[object]:
        yield SimpleNamespace(
            reports=SimpleNamespace(report=lambda name, year, sources: REPORTS[name](None, year, sources))
        )


def _years(monkeypatch: pytest.MonkeyPatch, now: dt.datetime, *arguments: str) -> list[int]:
    asked: list[int] = []

    def participants(_session: object, year: int, sources: ReportedFor) -> Report:
        # The command hands the reports the source registry, read by each registration's topic.
        assert sources(_Hub.names.registrations("fagsystem")) == {"1580"}
        asked.append(year)
        return Report(("year",), [(year,)], series=(), value="year")

    monkeypatch.setattr(hub_cli.common, "migrated_hub", lambda: _Hub(now))
    monkeypatch.setitem(hub.register.reports.REPORTS, "participants", participants)
    result = CliRunner().invoke(hub_cli.cli, ["report", "participants", *arguments])
    assert result.exit_code == 0, result.output
    return asked


def test_the_default_year_is_the_year_in_norway_when_utc_is_still_in_the_old_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new_years_eve = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)  # 1 January 2027 in Oslo
    assert _years(monkeypatch, new_years_eve) == [2027]
    assert _years(monkeypatch, new_years_eve - dt.timedelta(hours=1)) == [2026]
    assert _years(monkeypatch, new_years_eve, "--year", "2024") == [2024]
