"""A person's rights-and-duty category for the introduction programme and for training in
Norwegian and social studies, computed from the whole residence-permit history, the person's age
and the date (DOMAIN.md, "Rights and duty").

The category comes from the whole permit history, not from the newest permit:
- A *stay* is an unbroken lawful residence: permits each granted while the one before was still in
  force. A permit stays in force after its last valid day while a renewal applied for by that
  day is pending (the person is still lawfully resident; the register of old closed the category
  there, which was wrong), and until the day the renewal is refused.
- Within the stay that covers a date, the *basis* is the first permit of the ground that counts:
  the age limits, the act (introduksjonsloven or integreringsloven) and collective protection's
  12-month claim window all run from it. A renewal on the same ground, or a later permit whose
  ground says nothing (OTHER, UNKNOWN: a permanent permit is often sent so), extends the stay
  and keeps the basis; a later permit on another stated ground becomes the basis from its grant.
- Outside every stay (before the first grant, after a permit lapsed or a renewal was refused),
  nothing applies.

Where DOMAIN.md marks a rule as unconfirmed (the programme's 18-55 age limits, the programme for
family of refugees and for collective protection), the result says so in its notes.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from hub.domain.calendar import add_months
from hub.domain.lifecycle import Fact, effective_facts

INTEGRATION_ACT_FROM = dt.date(2021, 1, 1)
COLLECTIVE_PROTECTION_CLAIM_MONTHS = 12


class Category(enum.Enum):
    RIGHT_AND_DUTY = "right_and_duty"
    RIGHT_ONLY = "right_only"
    DUTY_ONLY = "duty_only"
    NOT_APPLICABLE = "not_applicable"


def _date(value: dt.date | str | None) -> dt.date | None:
    """A payload date: a date when decoded from Avro, ISO text when read from the register."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Permit:
    """One residence permit as registered (RESIDENCE_PERMIT_REGISTERED)."""

    ground: str
    granted_on: dt.date
    valid_until: dt.date | None = None
    renewal_applied_on: dt.date | None = None
    permanent: bool = False
    renewal_refused_on: dt.date | None = None  # the renewal applied for was refused on this day
    # When the renewal was granted as a new permit (set by `stay_on`): no longer pending then.
    renewal_granted_on: dt.date | None = field(default=None, compare=False)

    @classmethod
    def from_payload(cls, granted_on: dt.date, payload: dict[str, Any]) -> Permit:
        return cls(
            ground=payload["ground"],
            granted_on=granted_on,
            valid_until=_date(payload.get("validUntil")),
            renewal_applied_on=_date(payload.get("renewalAppliedOn")),
            permanent=bool(payload.get("permanent")),
            renewal_refused_on=_date(payload.get("renewalRefusedOn")),
        )

    def in_force_on(self, day: dt.date) -> bool:
        if day < self.granted_on:
            return False
        if self.permanent or self.valid_until is None or day <= self.valid_until:
            return True
        # Expired, but lawfully resident while a renewal applied for in time is pending.
        applied_in_time = self.renewal_applied_on is not None and self.renewal_applied_on <= self.valid_until
        decided = [d for d in (self.renewal_refused_on, self.renewal_granted_on) if d is not None]
        return applied_in_time and (not decided or day < min(decided))

    @property
    def act(self) -> str:
        return "integreringsloven" if self.granted_on >= INTEGRATION_ACT_FROM else "introduksjonsloven"


@dataclass(frozen=True)
class Categories:
    training: Category
    programme: Category
    basis: Permit | None
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "training": self.training.value,
            "introductionProgramme": self.programme.value,
            "act": self.basis.act if self.basis is not None else None,
            "basis": None
            if self.basis is None
            else {"ground": self.basis.ground, "grantedOn": self.basis.granted_on.isoformat()},
            "notes": list(self.notes),
        }


_RIGHT_AND_DUTY = Category.RIGHT_AND_DUTY
_NA = Category.NOT_APPLICABLE
_REFUGEE_GROUNDS = {"ASYLUM", "RESETTLED_REFUGEE", "HUMANITARIAN"}
# ground -> (training, programme, programme rule unconfirmed)
_BY_GROUND: dict[str, tuple[Category, Category, bool]] = {
    **{g: (_RIGHT_AND_DUTY, _RIGHT_AND_DUTY, False) for g in _REFUGEE_GROUNDS},
    "FAMILY_OF_REFUGEE": (_RIGHT_AND_DUTY, _RIGHT_AND_DUTY, True),
    "FAMILY_OF_NORWEGIAN_OR_NORDIC": (_RIGHT_AND_DUTY, _NA, False),
    "WORKER_OUTSIDE_EEA": (Category.DUTY_ONLY, _NA, False),
    "FAMILY_OF_WORKER": (Category.DUTY_ONLY, _NA, False),
    "COLLECTIVE_PROTECTION": (Category.RIGHT_ONLY, _RIGHT_AND_DUTY, True),
}


def _age_on(birth_date: dt.date, day: dt.date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


# Grounds that say nothing of their own: a later permit on one of them extends the stay.
_SILENT_GROUNDS = {"OTHER", "UNKNOWN"}


def stay_on(permits: Iterable[Permit], day: dt.date) -> list[Permit]:
    """The permits of the stay that covers `day` granted by then, in grant order; none when the
    person is not lawfully resident on `day`."""
    stays: list[list[Permit]] = []
    for permit in sorted(permits, key=lambda p: p.granted_on):
        day_before = permit.granted_on - dt.timedelta(days=1)
        if stays and any(p.in_force_on(permit.granted_on) or p.in_force_on(day_before) for p in stays[-1]):
            # The new permit settles the renewal the ones before were waiting for.
            stays[-1] = [
                replace(p, renewal_granted_on=p.renewal_granted_on or permit.granted_on) for p in stays[-1]
            ]
            stays[-1].append(permit)
        else:
            stays.append([permit])
    for stay in reversed(stays):
        if any(p.in_force_on(day) for p in stay):
            return [p for p in stay if p.granted_on <= day]
    return []


def basis_on(permits: Iterable[Permit], day: dt.date) -> Permit | None:
    """The permit the category on `day` rests on (see the module's docstring)."""
    stay = stay_on(permits, day)
    stated = [p for p in stay if p.ground not in _SILENT_GROUNDS]
    if not stated:
        return stay[0] if stay else None
    ground = stated[-1].ground
    basis = stated[-1]
    for permit in reversed(stated):  # back to the first of the latest run of that ground
        if permit.ground != ground:
            break
        basis = permit
    return basis


def categories(
    permits: Iterable[Permit],
    *,
    on: dt.date,
    birth_date: dt.date | None,
    training_claimed_on: dt.date | None = None,
) -> Categories:
    """The person's category for each scheme on `on`.

    `birth_date` comes from the fødselsnummer or D-number; without one (a DUF number only) the
    age limits cannot be checked, which the notes say. `training_claimed_on` is when the person
    claimed training, which keeps collective protection's right open after 12 months.
    """
    basis = basis_on(permits, on)
    if basis is None:
        return Categories(_NA, _NA, None, ("no residence permit in force on the date",))
    training, programme, unconfirmed = _BY_GROUND.get(basis.ground, (_NA, _NA, False))
    notes: list[str] = []
    if basis.ground in ("UNKNOWN", "OTHER"):
        notes.append(f"the permit's ground ({basis.ground}) gives no category")
    if unconfirmed and programme is not _NA:
        notes.append("the programme rule for this ground is unconfirmed (DOMAIN.md)")

    if basis.ground == "COLLECTIVE_PROTECTION":
        deadline = add_months(basis.granted_on, COLLECTIVE_PROTECTION_CLAIM_MONTHS)
        claimed_in_time = training_claimed_on is not None and training_claimed_on <= deadline
        if on > deadline and not claimed_in_time:
            training = _NA
            notes.append("the right to training was not claimed within 12 months of the permit")

    if birth_date is None:
        notes.append("age not known (no fødselsnummer or D-number): age limits not checked")
    else:
        age = _age_on(birth_date, basis.granted_on)
        youngest = 18 if basis.act == "integreringsloven" else 16
        if training is not _NA and not youngest <= age <= 67:
            training = _NA
            notes.append(f"training: age {age} when the permit was granted is outside {youngest}-67")
        if programme is not _NA and not 18 <= age <= 55:
            programme = _NA
            notes.append(f"programme: age {age} when the permit was granted is outside 18-55 (unconfirmed)")
    return Categories(training, programme, basis, tuple(notes))


PERMIT_EVENT = "RESIDENCE_PERMIT_REGISTERED"


def categories_from_facts(
    facts: Iterable[Fact], *, on: dt.date, birth_date: dt.date | None
) -> Categories | None:
    """The categories from a person's registered facts (corrections and annulments applied);
    None when no residence permit is registered, so nothing can be said."""
    effective = effective_facts(facts)
    permits = [Permit.from_payload(f.fact_date, f.payload) for f in effective if f.event_type == PERMIT_EVENT]
    if not permits:
        return None
    claims = [f.fact_date for f in effective if f.event_type == "TRAINING_CLAIM"]
    return categories(permits, on=on, birth_date=birth_date, training_claimed_on=min(claims, default=None))
