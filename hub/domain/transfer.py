"""What one transfer is made of, as the decision sees it: the message as it was consumed, the
outcome its source is answered with, and why a message could not be transferred."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from hub.domain.events import Origin


@dataclass(frozen=True)
class Message:
    """A consumed Kafka message, as the pipeline needs it."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    # When the broker appended it (its LogAppendTime), or None when the topic keeps the time the
    # producer gave instead: that is the sender's clock, and the hub's own reading time applies.
    received_at: dt.datetime | None = None


class ReceiptOutcome(enum.Enum):
    """The outcome a receipt tells the sending fagsystem."""

    ACCEPTED = "ACCEPTED"
    ACCEPTED_WITH_WARNINGS = "ACCEPTED_WITH_WARNINGS"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"
    HELD = "HELD"


@dataclass(frozen=True)
class Failure:
    """Why a message could not be transferred. `error_class` is one of: decode, schema, rule,
    register, poison, internal. The message never contains an identifier in clear text."""

    error_class: str
    code: str
    message: str
    message_nb: str = ""  # the same in Norwegian, for the support page (rules give both)
