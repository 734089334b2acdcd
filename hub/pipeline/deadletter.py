"""Dead letters: the original message, unchanged, with why and where it failed as headers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hub.domain.events import Origin

# Header names on every dead letter. Values are UTF-8 text.
H_TOPIC = "nir.original.topic"
H_PARTITION = "nir.original.partition"
H_OFFSET = "nir.original.offset"
H_ERROR_CLASS = "nir.error.class"
H_ERROR_CODE = "nir.error.code"
H_ERROR_MESSAGE = "nir.error.message"
H_DEAD_LETTERED_AT = "nir.dead-lettered-at"


@dataclass(frozen=True)
class Failure:
    """Why a message could not be transferred. `error_class` is one of: decode, schema, rule,
    internal. The message never contains an identifier in clear text."""

    error_class: str
    code: str
    message: str


def dead_letter_headers(origin: Origin, failure: Failure, now: dt.datetime) -> list[tuple[str, bytes]]:
    values = {
        H_TOPIC: origin.topic,
        H_PARTITION: str(origin.partition),
        H_OFFSET: str(origin.offset),
        H_ERROR_CLASS: failure.error_class,
        H_ERROR_CODE: failure.code,
        H_ERROR_MESSAGE: failure.message,
        H_DEAD_LETTERED_AT: now.isoformat(),
    }
    return [(name, value.encode()) for name, value in values.items()]


def read_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers as text, for inspecting a dead letter."""
    return {name: value.decode() for name, value in headers or []}
