"""The registration deadlines (DOMAIN.md, "Deadlines"): which registrations they apply to, and
when one is late or too old. The rules (NIR-DEADLINE-001/002) and the statistics (the late share)
both ask here, so a registration counted as late is one the deadline applies to.

- A municipality registers its decisions and facts at the latest two months after the fact;
  later is kept, but counted as late.
- Up to 24 months back is allowed for now; older is refused.
- Both limits count forward from the fact, as the law counts (`hub.domain.calendar.deadline`),
  to the day the hub received the event, never to sentAt (the fagsystem's own clock).

A residence permit is history from the immigration authorities, dated by its grant (a permit
granted years ago may be what the person's rights still rest on), and an annulment withdraws a
wrong record, which must stay possible however old the record is: neither is late, neither is
too old. A correction (and a restoration) puts right a fact received earlier: it counts to when
the hub first received the original (`hub.pipeline.decide.counted_from`), so it is too old only
if it moves its fact more than 24 months before the original came, and it is never counted as
late a second time (whether the registration was late is its original's to say).
"""

from __future__ import annotations

import datetime as dt

from hub.domain.calendar import is_after_deadline
from hub.domain.lifecycle import Action
from hub.domain.rights import PERMIT_EVENT

LATE_AFTER_MONTHS = 2
TOO_OLD_AFTER_MONTHS = 24


def has_deadline(action: str, event_type: str) -> bool:
    """Whether the 24-month limit applies: to the municipality's own registrations and their
    corrections, not to permits or annulments."""
    return action != Action.ANNUL.value and event_type != PERMIT_EVENT


def may_be_late(action: str, event_type: str) -> bool:
    """Whether the two-month deadline applies, so the registration counts in the late share:
    a municipality's own first registration of a fact."""
    return action == Action.REGISTER.value and has_deadline(action, event_type)


def is_late(fact_date: dt.date, received_on: dt.date) -> bool:
    """Received after the two months, but not so late that it is refused."""
    return is_after_deadline(received_on, fact_date, months=LATE_AFTER_MONTHS) and not is_too_old(
        fact_date, received_on
    )


def is_too_old(fact_date: dt.date, received_on: dt.date) -> bool:
    return is_after_deadline(received_on, fact_date, months=TOO_OLD_AFTER_MONTHS)
