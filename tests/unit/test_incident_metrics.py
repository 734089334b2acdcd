"""Which incidents the workers export as `nir_incident_tickets` (issue 32): few series whatever the
flood, and among them every incident that may be growing."""

from __future__ import annotations

import datetime as dt

from hub.ops.observability import incident_series
from hub.support.incidents import Cause, Incident

T0 = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)


def _incident(source: str, tickets: int, hours_ago: int, version: str | None = "5.1.0") -> Incident:
    last = T0 - dt.timedelta(hours=hours_ago)
    return Incident(
        Cause(source, "NIR-SOURCE-002", "TRAINING_CLAIM" if version else None, version),
        tickets,
        last - dt.timedelta(hours=1),
        last,
        sample_ticket=hours_ago,
        municipalities=1,
        persons=tickets,
    )


def test_the_largest_and_the_newest_incidents_are_exported_and_no_others() -> None:
    # Newest first, as uow.incidents.find gives them: source s0 failed last, s29 longest ago; the
    # ten oldest are the largest.
    incidents = [_incident(f"s{n}", 1000 + n if n >= 20 else n + 1, n) for n in range(30)]
    series = incident_series(incidents, 5)
    assert {labels[0] for labels in series} == {f"s{n}" for n in (*range(5), *range(25, 30))}
    assert series[("s0", "NIR-SOURCE-002", "TRAINING_CLAIM", "5.1.0")] == 1
    assert series[("s29", "NIR-SOURCE-002", "TRAINING_CLAIM", "5.1.0")] == 1029


def test_of_two_incidents_of_one_cause_the_newer_is_exported_and_a_missing_part_is_an_empty_label() -> None:
    newer, older = _incident("s", 3, 1), _incident("s", 900, 40)
    undecodable = _incident("t", 7, 2, version=None)
    assert incident_series([newer, undecodable, older], 10) == {
        ("s", "NIR-SOURCE-002", "TRAINING_CLAIM", "5.1.0"): 3,
        ("t", "NIR-SOURCE-002", "", ""): 7,
    }


def test_a_vendors_release_name_is_cut_and_masks_an_identifier_before_it_becomes_a_label() -> None:
    hostile = _incident("s", 1, 1, version="release-01017012345-" + "x" * 500)
    [(_, _, _, version)] = incident_series([hostile], 10)
    assert len(version) <= 64 and "01017012345" not in version
