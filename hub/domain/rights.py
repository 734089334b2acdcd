"""A person's rights-and-duty category for the introduction programme and for training in
Norwegian and social studies, computed from the whole residence-permit history, the person's age
and the date (DOMAIN.md, "Rights and duty"). Every rule of the category is stated here, in
DOMAIN.md's terms; each has a test in tests/unit/test_rights.py.

1. **The stay.** An unbroken lawful residence: permits each granted while one before was still
   in force (or the day after it ran out). A permit stays in force after its last valid day
   while a renewal applied for by that day is pending (the person is still lawfully resident;
   the register of old closed the category there, which was wrong), until the day a new permit
   is granted or the renewal is refused. A permit the contract marks `grantedOnAppeal` reverses
   the newest refusal before it in the stay: the stay goes on as if the renewal had been pending
   until the appeal granted it. Outside every stay (before the first grant, after a permit
   lapsed or a renewal was refused and not reversed) nothing applies.
2. **What a ground gives** (DOMAIN.md's table, `_BY_GROUND`), judged by the person's age on the
   day a permit was granted: training from the 18th birthday (the 16th under the introduction
   act) until the day before the 67th; the programme from the 18th birthday until the day
   before the 56th ("18-55", unconfirmed). Ages are counted as the law counts years
   (`calendar.age_on`: a 29 February birthday is reached on 28 February in a common year).
3. **The basis.** Within the stay, a renewal on a ground already seen (ASYLUM, FAMILY, ASYLUM
   again) gives nothing new; a permit on a ground that says nothing (OTHER, UNKNOWN: a permanent
   permit is often sent so) only extends the stay. Of the first permits of each stated ground,
   the first that gave a right or duty is the basis: the act (introduksjonsloven before 2021,
   integreringsloven after) and the age run from it.
4. **A later ground only adds** (unconfirmed): each stated ground first granted at or after the
   basis adds what it gives, judged at the basis's age and act; rights and duties are a union
   (a duty only and a right only make right and duty), so a later ground never takes away one
   the person still has while lawfully resident.
5. **Collective protection's clock** (§ 34): its right to training must be claimed within 12
   months of the first § 34 permit of the stay (the permit that gave that right; a renewal or a
   change of ground does not restart it). A claim dated before that permit is no claim within
   the window: the window opens on the grant.
6. **Age 67 closes** the right and duty to training on the date asked, whatever the age at the
   grant.
7. **A 29 February birthday** is reached on 28 February in a common year (DOMAIN.md's "the same
   for years"); the law on ages could not be checked, so an age read on such a 28 February is
   noted as unconfirmed.

Where DOMAIN.md marks a rule unconfirmed (the programme's age limits, the programme for family
of refugees and for collective protection, a change of ground, a refusal reversed on appeal),
the result says so in its notes; the NIR-RIGHT rules built on it only warn.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hub.domain.calendar import age_on, deadline
from hub.domain.lifecycle import Fact, effective_facts

INTEGRATION_ACT_FROM = dt.date(2021, 1, 1)
COLLECTIVE_PROTECTION_CLAIM_MONTHS = 12
# Training: from this birthday (by the act of the permit) until the day before TRAINING_UNTIL.
TRAINING_FROM = {"introduksjonsloven": 16, "integreringsloven": 18}
TRAINING_UNTIL = 67
# The programme: from the 18th birthday until the day before the 56th (DOMAIN.md: unconfirmed).
PROGRAMME_FROM, PROGRAMME_UNTIL = 18, 56


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
    granted_on_appeal: bool = False  # grants a refused renewal: continues that stay (contract v5)
    # When the renewal was granted as a new permit (set by `stay_on`): no longer pending then.
    renewal_granted_on: dt.date | None = field(default=None, compare=False)
    # When an appeal reversed this permit's refused renewal (set by `stay_on`): pending until then.
    appeal_granted_on: dt.date | None = field(default=None, compare=False)

    @classmethod
    def from_payload(cls, granted_on: dt.date, payload: dict[str, Any]) -> Permit:
        return cls(
            ground=payload["ground"],
            granted_on=granted_on,
            valid_until=_date(payload.get("validUntil")),
            renewal_applied_on=_date(payload.get("renewalAppliedOn")),
            permanent=bool(payload.get("permanent")),
            renewal_refused_on=_date(payload.get("renewalRefusedOn")),
            granted_on_appeal=bool(payload.get("grantedOnAppeal")),
        )

    def in_force_on(self, day: dt.date) -> bool:
        if day < self.granted_on:
            return False
        if self.permanent or self.valid_until is None or day <= self.valid_until:
            return True
        if self.appeal_granted_on is not None:  # the refusal was reversed: as if pending till then
            return day < self.appeal_granted_on
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


_RD, _RO, _DO, _NA = Category.RIGHT_AND_DUTY, Category.RIGHT_ONLY, Category.DUTY_ONLY, Category.NOT_APPLICABLE
_REFUGEE_GROUNDS = {"ASYLUM", "RESETTLED_REFUGEE", "HUMANITARIAN"}
# DOMAIN.md's table: ground -> (training, programme, programme rule unconfirmed). Grounds not
# listed (EEA_OR_NORDIC, STUDENT, TEMPORARY_OTHER, OTHER, UNKNOWN) give nothing.
_BY_GROUND: dict[str, tuple[Category, Category, bool]] = {
    **{g: (_RD, _RD, False) for g in _REFUGEE_GROUNDS},
    "FAMILY_OF_REFUGEE": (_RD, _RD, True),
    "FAMILY_OF_NORWEGIAN_OR_NORDIC": (_RD, _NA, False),
    "WORKER_OUTSIDE_EEA": (_DO, _NA, False),
    "FAMILY_OF_WORKER": (_DO, _NA, False),
    "COLLECTIVE_PROTECTION": (_RO, _RD, True),
}
COLLECTIVE_PROTECTION = "COLLECTIVE_PROTECTION"
# Grounds that say nothing of their own: a later permit on one of them extends the stay.
_SILENT_GROUNDS = {"OTHER", "UNKNOWN"}

# A category as what it holds: (a right, a duty).
_PARTS: dict[Category, tuple[bool, bool]] = {
    _RD: (True, True),
    _RO: (True, False),
    _DO: (False, True),
    _NA: (False, False),
}


def _union(a: Category, b: Category) -> Category:
    """What both give together: a later ground adds a right or duty, never takes one away."""
    right, duty = (x or y for x, y in zip(_PARTS[a], _PARTS[b], strict=True))
    return next(c for c, parts in _PARTS.items() if parts == (right, duty))


def _stays(permits: Iterable[Permit]) -> list[list[Permit]]:
    """The person's stays, each its permits in grant order, settled: a permit pending renewal
    knows when the next permit granted it, a refused one when an appeal reversed it."""
    stays: list[list[Permit]] = []
    for permit in sorted(permits, key=lambda p: p.granted_on):
        day_before = permit.granted_on - dt.timedelta(days=1)
        last = stays[-1] if stays else []
        refused = [
            i
            for i, p in enumerate(last)
            if p.renewal_refused_on is not None and p.renewal_refused_on <= permit.granted_on
        ]
        if permit.granted_on_appeal and refused:
            # The appeal grants the newest refused renewal: the stay never broke.
            newest = max(refused, key=lambda i: (last[i].renewal_refused_on, i))
            last[newest] = replace(last[newest], appeal_granted_on=permit.granted_on)
        elif not any(p.in_force_on(permit.granted_on) or p.in_force_on(day_before) for p in last):
            stays.append([permit])
            continue
        # The new permit settles the renewal the ones before were waiting for.
        stays[-1] = [replace(p, renewal_granted_on=p.renewal_granted_on or permit.granted_on) for p in last]
        stays[-1].append(permit)
    return stays


def stay_on(permits: Iterable[Permit], day: dt.date) -> list[Permit]:
    """The permits of the stay that covers `day` granted by then, in grant order; none when the
    person is not lawfully resident on `day`."""
    for stay in reversed(_stays(permits)):
        if any(p.in_force_on(day) for p in stay):
            return [p for p in stay if p.granted_on <= day]
    return []


def _first_of_each_ground(stay: Sequence[Permit]) -> list[Permit]:
    """The first permit of each stated ground in the stay: a later one on a ground already seen
    is a renewal of it, and a silent ground extends the stay without a ground of its own."""
    seen: set[str] = set()
    firsts: list[Permit] = []
    for permit in stay:
        if permit.ground not in _SILENT_GROUNDS and permit.ground not in seen:
            seen.add(permit.ground)
            firsts.append(permit)
    return firsts


def _gives(ground: str, age: int | None, act: str) -> tuple[Category, Category, list[str]]:
    """What a ground gives to a person of `age` (None: not known) under `act`, and why the age
    took something away."""
    training, programme, _ = _BY_GROUND.get(ground, (_NA, _NA, False))
    notes: list[str] = []
    if age is None:
        return training, programme, notes
    youngest = TRAINING_FROM[act]
    if training is not _NA and not youngest <= age < TRAINING_UNTIL:
        training = _NA
        notes.append(
            f"training: age {age} when the permit was granted is outside {youngest}-{TRAINING_UNTIL - 1}"
        )
    if programme is not _NA and not PROGRAMME_FROM <= age < PROGRAMME_UNTIL:
        programme = _NA
        notes.append(
            f"programme: age {age} when the permit was granted is outside "
            f"{PROGRAMME_FROM}-{PROGRAMME_UNTIL - 1} (unconfirmed)"
        )
    return training, programme, notes


def _claimed_in_window(granted_on: dt.date, claims: Iterable[dt.date], on: dt.date) -> bool:
    """Whether § 34's right to training is still open on `on`: within 12 months of the permit,
    or claimed in them. The window opens on the grant: a claim dated before it is no claim."""
    last_day = deadline(granted_on, months=COLLECTIVE_PROTECTION_CLAIM_MONTHS)
    return on <= last_day or any(granted_on <= claim <= last_day for claim in claims)


def _leap_day_decides(birth_date: dt.date, days: Iterable[dt.date]) -> bool:
    """Whether an age is read on 28 February of a common year for someone born on 29 February:
    the one day where DOMAIN.md's "the same for years" (`calendar.age_on`) and a birthday on
    1 March would differ, so a category resting on it rests on an unconfirmed reading."""
    return (birth_date.month, birth_date.day) == (2, 29) and any(
        (d.month, d.day) == (2, 28) and not calendar.isleap(d.year) for d in days
    )


def categories(
    permits: Iterable[Permit],
    *,
    on: dt.date,
    birth_date: dt.date | None,
    training_claims: Iterable[dt.date] = (),
) -> Categories:
    """The person's category for each scheme on `on` (the rules in the module's docstring).

    `birth_date` comes from the fødselsnummer or D-number; without one (a DUF number only) the
    age limits cannot be checked, which the notes say. `training_claims` are the days the person
    claimed training, which keep collective protection's right open after 12 months.
    """
    stay = stay_on(permits, on)
    if not stay:
        return Categories(_NA, _NA, None, ("no residence permit in force on the date",))
    claims = tuple(training_claims)
    firsts = _first_of_each_ground(stay)
    notes: list[str] = []
    if not firsts:
        notes.append(f"the permit's ground ({stay[0].ground}) gives no category")

    def age_at(day: dt.date) -> int | None:
        return None if birth_date is None else age_on(birth_date, day)

    basis = next((p for p in firsts if _gives(p.ground, age_at(p.granted_on), p.act)[:2] != (_NA, _NA)), None)
    training = programme = _NA
    if basis is None:  # nothing given: say why, of the first permit the stay rests on
        shown = firsts[0] if firsts else stay[0]
        notes += _gives(shown.ground, age_at(shown.granted_on), shown.act)[2]
    else:
        age = age_at(basis.granted_on)
        for permit in firsts[firsts.index(basis) :]:
            gives_training, gives_programme, why = _gives(permit.ground, age, basis.act)
            notes += why
            if _BY_GROUND.get(permit.ground, (_NA, _NA, False))[2] and gives_programme is not _NA:
                notes.append(f"the programme rule for {permit.ground} is unconfirmed (DOMAIN.md)")
            if (
                permit.ground == COLLECTIVE_PROTECTION
                and gives_training is not _NA
                and not _claimed_in_window(permit.granted_on, claims, on)
            ):
                gives_training = _NA
                notes.append("the right to training was not claimed within 12 months of the permit")
            training, programme = _union(training, gives_training), _union(programme, gives_programme)
        if len(firsts) > 1:
            grounds = ", ".join(p.ground for p in firsts)
            notes.append(
                f"the residence ground changed ({grounds}): the act and the age follow the permit of "
                f"{basis.granted_on}, a later ground only adds (unconfirmed, DOMAIN.md)"
            )
    shown_basis = basis or (firsts[0] if firsts else stay[0])
    if any(p.appeal_granted_on is not None for p in stay):
        notes.append("a refused renewal granted on appeal continues the stay (unconfirmed, DOMAIN.md)")
    if any(p.granted_on_appeal for p in stay) and not any(p.appeal_granted_on is not None for p in stay):
        notes.append("a permit granted on appeal follows no refused renewal of this stay")

    if birth_date is not None and _leap_day_decides(birth_date, [*(p.granted_on for p in firsts or stay), on]):
        notes.append(
            "age: a 29 February birthday is taken to be reached on 28 February in a common year "
            "(unconfirmed: the law on ages could not be checked)"
        )
    if birth_date is None:
        notes.append("age not known (no fødselsnummer or D-number): age limits not checked")
    elif training is not _NA and age_on(birth_date, on) >= TRAINING_UNTIL:
        training = _NA
        notes.append(f"training: the right and duty end at age {TRAINING_UNTIL}")
    return Categories(training, programme, shown_basis, tuple(notes))


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
    return categories(permits, on=on, birth_date=birth_date, training_claims=claims)
