"""Synthetic test data: persons with Tenor test identifiers, and valid events of every type."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from hub.domain.identifiers import duf_checksum, make_national_id

TODAY = dt.date.today()

# A minimal valid payload for every event type in the contract (dates relative to the fact).
PAYLOADS: dict[str, dict[str, Any]] = {
    "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM": {"kind": "CLAIM"},
    "INTRODUCTION_PROGRAMME_DECISION": {
        "outcome": "GRANTED",
        "measures": [
            {"measureType": "NORWEGIAN_TRAINING", "hoursPerWeek": 20.0, "startDate": "{d}", "endDate": None}
        ],
        "durationMonths": 24,
        "refusalReason": None,
    },
    "INTRODUCTION_PROGRAMME_STARTED": {"plannedEndDate": None},
    "INTRODUCTION_PROGRAMME_LEAVE": {
        "leave": {"reason": "BIRTH", "durationDays": 20, "absenceReasonAfterLeave": None}
    },
    "INTRODUCTION_PROGRAMME_ABSENCE": {
        "absence": {"periodStart": "{d}", "periodEnd": "{d}", "absentHours": 6.0, "scheduledHours": 37.5}
    },
    "INTRODUCTION_PROGRAMME_STOPPED": {"stopKind": "TEMPORARY", "stoppedUntil": "{d}"},
    "INTRODUCTION_PROGRAMME_ENDED": {"endReason": "WORK", "mainActivity": "EMPLOYED_FULL_TIME"},
    "INTRODUCTION_PROGRAMME_COMPLAINT": {
        "complaint": {"subject": "refusal", "outcome": "PENDING", "decidedOn": None}
    },
    "TRAINING_CLAIM": {"claimedWithinDeadline": True},
    "TRAINING_DECISION": {"outcome": "GRANTED", "scopeHours": 600, "refusalReasons": []},
    "TRAINING_LANGUAGES": {"motherTongue": "tir", "otherLanguages": ["ara", "eng"]},
    "TRAINING_STARTED": {"track": None, "goalLevel": "B1", "scopeHours": 600},
    "TRAINING_HOURS": {
        "periodStart": "{d}",
        "periodEnd": "{d}",
        "norwegianHours": 6.0,
        "socialStudiesHours": 2.0,
        "extraNorwegianHours": 0.0,
    },
    "TRAINING_FINAL_TEST": {
        "partialResults": [{"skill": "READING", "result": "A2"}],
        "socialStudiesTest": None,
    },
    "TRAINING_LEAVE": {"leave": {"reason": "WELFARE", "durationDays": 3, "absenceReasonAfterLeave": None}},
    "TRAINING_EXEMPTION": {
        "exemptFrom": "FINAL_TEST",
        "ground": "HEALTH_DOCTORS_NOTE",
        "legalBasis": "integreringsloven § 30",
    },
    "TRAINING_ABSENCE": {
        "absence": {"periodStart": "{d}", "periodEnd": "{d}", "absentHours": 2.0, "scheduledHours": None}
    },
    "TRAINING_STOPPED": {"stopKind": "TEMPORARY", "stoppedUntil": "{d}"},
    "TRAINING_ENDED": {"endReason": "GOAL_REACHED"},
    "TRAINING_COMPLAINT": {"complaint": {"subject": "exemption", "outcome": "REJECTED", "decidedOn": "{d}"}},
    "ASYLUM_SEEKER_TRAINING_HOURS": {
        "periodStart": "{d}",
        "periodEnd": "{d}",
        "hoursPerWeek": 4.0,
        "totalHours": 4.0,
    },
    "ASYLUM_SEEKER_TRAINING_TRACK": {"track": "TRACK_2"},
    "ASYLUM_SEEKER_FINAL_TEST": {
        "partialResults": [{"skill": "ORAL", "result": "A1"}],
        "socialStudiesTest": {"passed": False, "correctAnswers": 20, "language": "ara"},
    },
    "RESIDENCE_PERMIT_REGISTERED": {
        "ground": "ASYLUM",
        "validUntil": None,
        "renewalAppliedOn": None,
        "permanent": False,
        "grantedOnAppeal": False,
    },
    "CULTURE_AND_VALUES_TRAINING": {"hoursCompleted": 25.0, "completed": True, "language": "ukr"},
}


def fill_dates(value: Any, date: str) -> Any:
    if isinstance(value, dict):
        return {k: fill_dates(v, date) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_dates(v, date) for v in value]
    return date if value == "{d}" else value


@dataclass(frozen=True)
class Person:
    national_id: str | None
    duf_number: str | None

    def identifiers(self) -> dict[str, str | None]:
        return {"nationalId": self.national_id, "dufNumber": self.duf_number}

    @property
    def key(self) -> str:
        return self.duf_number or self.national_id or ""


_individuals = itertools.count(100)


def synthetic_person(
    *, with_duf: bool = True, with_national_id: bool = True, born: dt.date | None = None
) -> Person:
    """A new person with a valid synthetic fødselsnummer (month + 80) and a DUF number, born on
    `born` (in the 1900s) or on a day from 1976 to 1999: 26 to 50 years old in 2026, well inside
    every age limit of the law (18-55 for the programme), so no test meets a limit by chance."""
    national_id = None
    while with_national_id and national_id is None:
        n = next(_individuals)
        # 1976 to 1999 only: an individual number below 500 means the 1900s (12,000 days ran into
        # 2002, read as 1902, and a test now and then met a person aged 120); a person born in
        # 1970 was 56 at a grant and had no right to the programme, a warning now and then.
        birth = born or dt.date(1976, 1, 1) + dt.timedelta(days=(n * 37) % 8700)
        national_id = make_national_id(birth, n % 500)  # individual < 500: born 1900 to 1999
    first_ten = f"20{10 + next(_individuals) % 15:02d}{next(_individuals) % 1000000:06d}"
    duf = first_ten + duf_checksum(first_ten) if with_duf else None
    return Person(national_id, duf)


def event(
    person: Person,
    event_type: str = "TRAINING_CLAIM",
    *,
    source: str = "oslo-fagsystem",
    municipality: str = "0301",
    fact_date: dt.date | None = None,
    event_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid registration event in the contract's JSON shape."""
    fact_date = fact_date or TODAY - dt.timedelta(days=10)
    return {
        "eventId": event_id or str(uuid.uuid4()),
        "eventType": event_type,
        "factDate": fact_date.isoformat(),
        "sentAt": dt.datetime.now(dt.UTC).isoformat(),
        "sourceSystem": source,
        "municipality": municipality,
        "person": person.identifiers(),
        "payload": payload
        if payload is not None
        else fill_dates(PAYLOADS[event_type], fact_date.isoformat()),
    }
