"""The support page's words and dates: every text in both languages, dates the Norwegian way."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from hub.domain.calendar import norwegian_day_text, norwegian_time_text, parse_norwegian_day
from hub.support.i18n import ENGLISH, NORWEGIAN, TEXTS, language_of, translate

TEMPLATES = Path(__file__).parents[2] / "hub" / "support" / "templates"


def test_a_moment_is_written_day_month_year_and_time_in_oslo_summer_and_winter() -> None:
    assert norwegian_time_text(dt.datetime(2026, 12, 1, 17, 45, tzinfo=dt.UTC)) == "01.12.2026 18:45"
    assert norwegian_time_text(dt.datetime(2026, 7, 1, 22, 5, tzinfo=dt.UTC)) == "02.07.2026 00:05"
    assert norwegian_time_text(dt.datetime(2026, 12, 1, 17, 45)) == "01.12.2026 18:45"  # naive is UTC
    assert norwegian_day_text(dt.date(2026, 3, 9)) == "09.03.2026"


@pytest.mark.parametrize(
    ("text", "day"), [("01.12.2026", dt.date(2026, 12, 1)), (" 1.2.2026 ", dt.date(2026, 2, 1))]
)
def test_a_norwegian_date_is_read(text: str, day: dt.date) -> None:
    assert parse_norwegian_day(text) == day


@pytest.mark.parametrize(
    "text", ["2026-12-01", "31.02.2026", "01.12.26", "01.12.2026x", "\u0660\u0661.12.2026", ""]
)
def test_anything_else_is_not_a_date(text: str) -> None:
    with pytest.raises(ValueError):
        parse_norwegian_day(text)


def test_every_text_is_in_both_languages_with_the_same_values() -> None:
    for key, (nb, en) in TEXTS.items():
        assert nb and en, key
        assert set(re.findall(r"{(\w+)}", nb)) == set(re.findall(r"{(\w+)}", en)), key


def test_every_key_the_templates_use_is_in_the_table() -> None:
    used = {
        key
        for template in TEMPLATES.glob("*.html")
        for key in re.findall(r"""\bt\(\s*["']([a-z_.]+)["']\s*[,)]""", template.read_text())
    }
    assert used and used <= set(TEXTS), used - set(TEXTS)


def test_norwegian_is_the_default_and_a_hostile_language_is_not_taken() -> None:
    assert language_of(None) == language_of("de") == language_of(["en"]) == NORWEGIAN
    assert language_of("en") == ENGLISH
    assert translate("nb", "not_found.ticket", ticket=7) == "det finnes ingen sak 7"
    assert translate("en", "not_found.ticket", ticket=7) == "there is no ticket 7"


def test_every_scheme_and_status_the_person_context_shows_has_its_words() -> None:
    """The ticket page names each scheme by `person show --json`'s key and each status by its value."""
    from hub.domain.lifecycle import Scheme, Status

    for scheme in Scheme:
        assert translate(NORWEGIAN, f"scheme.{scheme.json_key}") != translate(
            ENGLISH, f"scheme.{scheme.json_key}"
        )
    for status in Status:
        assert translate(ENGLISH, f"scheme_status.{status.value}")


def test_what_a_replay_did_to_each_ticket_is_told_in_both_languages() -> None:
    from hub.support.i18n import step_text
    from hub.support.replay import CLOSED, FILED_BY_HAND, ReplayStep

    topic = "nir.source.oslo-fagsystem.registrations"
    steps = [
        ReplayStep(1, topic, dry_run=True),
        ReplayStep(2, topic),
        ReplayStep(3, skipped=CLOSED, status="resolved"),
        ReplayStep(4, skipped=FILED_BY_HAND),
    ]
    assert [step_text(NORWEGIAN, s) for s in steps] == [
        f"sendes på nytt til {topic}",
        f"sendt på nytt til {topic}",
        "hoppet over: saken er løst",
        "hoppet over: ingenting å sende (en sak registrert for hånd)",
    ]
    assert [step_text(ENGLISH, s) for s in steps] == [
        f"would replay to {topic}",
        f"replayed to {topic}",
        "skipped: the ticket is resolved",
        "skipped: nothing to replay (a case filed by hand)",
    ]
    assert str(steps[2]) == "skipped: ticket is resolved"  # the CLI's words
