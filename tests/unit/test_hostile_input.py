"""Validation is total: whatever a schema-valid event holds, the rules answer with codes, never with
an exception, and nothing they write quotes an identifier, a control character or a megabyte."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.calendar import norwegian_date
from hub.domain.events import Registration
from hub.domain.identifiers import InvalidIdentifier, check_duf_number, parse_national_id
from hub.domain.redaction import ECHO_LIMIT, MESSAGE_LIMIT, clean, echo, fits, is_printable
from hub.pipeline.decode import decode_registration
from hub.rules import RuleContext, Severity, evaluate
from hub.rules.base import VIOLATION_MESSAGE_LIMIT
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from tests.factories import synthetic_person
from tests.hostile import ACCEPTABLE, ARABIC_INDIC, _absurd, _encode, identifiers_in

NOW = dt.datetime.now(dt.UTC)  # the absurd events are sent now
REGISTRY = SourceRegistry.from_mapping(
    {
        "sources": {
            "oslo-fagsystem": {"municipalities": ["0301"]},
            "vestland-fagsystem": {"municipalities": ["4601"]},
        }
    }
)
CONTEXT = RuleContext(
    today=NOW.date(),
    now=NOW,
    topic_source="oslo-fagsystem",
    registry=REGISTRY,
    allow_synthetic_identifiers=True,
)
ABSURD = list(_absurd(catalog(), random.Random(7), "oslo-fagsystem"))


def _assert_clean(violations: list[Any], carried: list[str]) -> None:
    for v in violations:
        for text in (v.message, v.message_nb):
            assert len(text) <= VIOLATION_MESSAGE_LIMIT
            assert is_printable(text), text
            assert not identifiers_in(text), text
            assert not any(i in text for i in carried)


@pytest.mark.parametrize(("description", "datum", "carried"), ABSURD, ids=[a[0] for a in ABSURD])
def test_every_absurd_but_schema_valid_event_is_rejected_by_a_rule_with_a_clean_message(
    description: str, datum: dict[str, Any], carried: list[str]
) -> None:
    registration = decode_registration(catalog(), _encode(catalog(), datum))
    violations = evaluate(registration, CONTEXT)
    rejected = any(v.severity is Severity.REJECT for v in violations)
    assert rejected is (description not in ACCEPTABLE), [v.code for v in violations]
    _assert_clean(violations, carried)


def _by_description(description: str) -> list[str]:
    registration = decode_registration(
        catalog(), _encode(catalog(), next(a[1] for a in ABSURD if a[0] == description))
    )
    return [v.code for v in evaluate(registration, CONTEXT)]


@pytest.mark.parametrize(
    ("description", "code"),
    [
        ("municipality of five digits", "NIR-MUNI-003"),
        ("municipality with a zero-width space", "NIR-MUNI-003"),
        ("municipality in Arabic-Indic digits", "NIR-MUNI-003"),
        ("NUL in sourceSystem", "NIR-TEXT-001"),
        ("65-character sourceSystem", "NIR-TEXT-002"),
        ("600 KB sourceSystem", "NIR-TEXT-002"),
        ("17-character nationalId", "NIR-ID-002"),
        ("nationalId in Arabic-Indic digits", "NIR-ID-002"),
        ("dufNumber in Arabic-Indic digits", "NIR-ID-003"),
        ("sentAt at the calendar's end", "NIR-DATE-005"),
        ("sentAt at the calendar's start", "NIR-DATE-005"),
        ("scopeHours at int's end", "NIR-QTY-002"),
        ("NaN hours", "NIR-QTY-002"),
        ("a thousand languages", "NIR-TEXT-002"),
    ],
)
def test_the_cases_seen_in_the_fuzz_run_end_with_their_own_rule(description: str, code: str) -> None:
    assert code in _by_description(description)


def test_identifiers_in_other_scripts_digits_are_refused_not_read() -> None:
    national_id = synthetic_person().national_id or ""
    parse_national_id(national_id, allow_synthetic=True)
    with pytest.raises(InvalidIdentifier, match="11 digits 0-9"):
        parse_national_id(national_id.translate(ARABIC_INDIC), allow_synthetic=True)
    with pytest.raises(InvalidIdentifier, match="12 digits 0-9"):
        check_duf_number("201812345604".translate(ARABIC_INDIC), today=NOW.date())


def test_norwegian_date_is_total_at_the_ends_of_the_calendar() -> None:
    assert norwegian_date(dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)) == dt.date(9999, 12, 31)
    assert norwegian_date(dt.datetime(1, 1, 1, tzinfo=dt.UTC)) == dt.date(1, 1, 1)


def test_clean_drops_control_characters_masks_identifiers_and_cuts() -> None:
    national_id = synthetic_person().national_id or ""
    text = f"a\x00b\u200bc\nd {national_id} e " + "x" * 2000
    cleaned = clean(text)
    assert cleaned.startswith("abcd <id:11:") and national_id not in cleaned
    assert len(cleaned) == MESSAGE_LIMIT and cleaned.endswith("…")
    assert national_id.translate(ARABIC_INDIC) not in clean(national_id.translate(ARABIC_INDIC))
    assert echo("z" * 500) == "'" + "z" * (ECHO_LIMIT - 1) + "…'"
    assert fits("\x00\x01", 10) is None and fits("0301", 4) == "0301"


# Any text, any date, any number: the rules answer, and what they write is clean.
_texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["0301", "03011", "oslo-fagsystem", "٠٣٠١", "", "\x00", "31129956715"]),
)
_date = st.dates().map(dt.date.isoformat)
_number = st.floats() | st.integers(-(2**31), 2**31 - 1)
# Payloads of the contract's types (what Avro decoding can give), with any values.
_payload = st.fixed_dictionaries(
    {},
    optional={
        "periodStart": _date,
        "periodEnd": _date,
        "plannedEndDate": st.none() | _date,
        "norwegianHours": _number,
        "hoursPerWeek": _number,
        "absentHours": _number,
        "scheduledHours": st.none() | _number,
        "scopeHours": st.none() | _number,
        "outcome": _texts,
        "otherLanguages": st.lists(_texts, max_size=60),
        "complaint": st.fixed_dictionaries({"subject": _texts, "decidedOn": st.none() | _date}),
        "measures": st.lists(
            st.fixed_dictionaries({"hoursPerWeek": _number, "startDate": _date}), max_size=3
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    event_type=st.sampled_from(
        ["TRAINING_HOURS", "TRAINING_DECISION", "UNKNOWN", "INTRODUCTION_PROGRAMME_ENDED"]
    ),
    fact_date=st.dates(),
    sent_at=st.datetimes(timezones=st.just(dt.UTC)),
    source=_texts,
    municipality=_texts,
    national_id=st.none() | _texts,
    duf_number=st.none() | _texts,
    version=st.none() | _texts,
    action=st.sampled_from(["REGISTER", "CORRECT", "ANNUL", "UNKNOWN"]),
    payload=_payload,
)
def test_the_rules_answer_any_event_without_raising_and_write_only_clean_text(
    event_type: str,
    fact_date: dt.date,
    sent_at: dt.datetime,
    source: str,
    municipality: str,
    national_id: str | None,
    duf_number: str | None,
    version: str | None,
    action: str,
    payload: dict[str, Any],
) -> None:
    registration = Registration(
        event_id=uuid.uuid4(),
        event_type=event_type,
        payload_record="no.imdi.nir.TrainingHours",
        fact_date=fact_date,
        sent_at=sent_at,
        source_system=source,
        municipality=municipality,
        national_id=national_id,
        duf_number=duf_number,
        payload=payload,
        writer_schema="registration_event.v3",
        fagsystem_version=version,
        action=action,
    )
    violations = evaluate(registration, CONTEXT)
    _assert_clean(violations, [i for i in (national_id, duf_number) if i and len(i) >= 11])
    assert evaluate(dataclasses.replace(registration), CONTEXT) == violations  # and the same each time


def test_a_failure_quoting_what_it_read_is_cleaned_before_a_receipt_or_dead_letter_carries_it() -> None:
    from hub.domain.events import Origin
    from hub.errors import UnknownSchemaError
    from hub.pipeline.flow import failure_from

    national_id = synthetic_person().national_id or ""
    failure = failure_from(
        UnknownSchemaError(f"unknown writer schema fingerprint {national_id}ab"), Origin("t", 0, 0)
    )
    assert (failure.error_class, failure.code) == ("schema", "NIR-SCHEMA-UNKNOWN")
    assert national_id not in failure.message and "<id:11:" in failure.message
