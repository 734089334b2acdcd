"""Dead letters: the original message, unchanged, with why and where it failed as headers.

A dead letter must always be sendable, whatever the original was: header values are cleaned and
cut (`hub.domain.redaction`), and an original too large to send again with its headers goes by
reference: an empty value, and a header saying how large it was and where it still is.
"""

from __future__ import annotations

import datetime as dt

from hub.domain.events import Origin
from hub.domain.redaction import clean
from hub.domain.transfer import Failure
from hub.pipeline.ports import Outgoing

# Header names on every dead letter. Values are UTF-8 text.
H_TOPIC = "nir.original.topic"
H_PARTITION = "nir.original.partition"
H_OFFSET = "nir.original.offset"
H_ERROR_CLASS = "nir.error.class"
H_ERROR_CODE = "nir.error.code"
H_ERROR_MESSAGE = "nir.error.message"
H_ERROR_MESSAGE_NB = "nir.error.message.nb"
H_DEAD_LETTERED_AT = "nir.dead-lettered-at"
# Only on a dead letter by reference: the original value's size in bytes (the value is empty).
H_OMITTED = "nir.original.omitted-bytes"

# What a dead letter keeps of the original's key when the value goes by reference.
KEY_LIMIT = 1024
# Room for the record's own framing beside key, value and headers.
_RECORD_OVERHEAD = 512


def dead_letter_headers(origin: Origin, failure: Failure, now: dt.datetime) -> list[tuple[str, bytes]]:
    values = {
        H_TOPIC: origin.topic,
        H_PARTITION: str(origin.partition),
        H_OFFSET: str(origin.offset),
        H_ERROR_CLASS: failure.error_class,
        H_ERROR_CODE: clean(failure.code, 64),
        H_ERROR_MESSAGE: clean(failure.message),
        H_ERROR_MESSAGE_NB: clean(failure.message_nb),
        H_DEAD_LETTERED_AT: now.isoformat(),
    }
    return [(name, value.encode()) for name, value in values.items()]


def dead_letter(
    topic: str,
    origin: Origin,
    key: bytes | None,
    value: bytes | None,
    failure: Failure,
    now: dt.datetime,
    *,
    max_bytes: int,
) -> Outgoing:
    """The dead letter of a message for `topic`: whole if it fits in `max_bytes`, else by reference."""
    letter = Outgoing(topic, key, value or b"", dead_letter_headers(origin, failure, now))
    if _size(letter) > max_bytes:
        return by_reference(letter)
    return letter


def by_reference(letter: Outgoing) -> Outgoing:
    """The dead letter without the original's value (and an oversized key): the headers say
    where the original is and how large it was."""
    if any(name == H_OMITTED for name, _ in letter.headers):
        return letter
    key = letter.key if letter.key is None or len(letter.key) <= KEY_LIMIT else None
    return Outgoing(letter.topic, key, b"", [*letter.headers, (H_OMITTED, str(len(letter.value)).encode())])


def _size(m: Outgoing) -> int:
    return len(m.key or b"") + len(m.value) + sum(len(n) + len(v) for n, v in m.headers) + _RECORD_OVERHEAD


def read_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers as text, for inspecting a dead letter (undecodable bytes replaced, never raised)."""
    return {name: value.decode(errors="replace") for name, value in headers or [] if value is not None}
