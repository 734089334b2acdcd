"""What a sender's text may look like once the hub writes it anywhere: a receipt, a dead-letter
header, a ticket, a log line or the command line's output.

Input is hostile: a field may hold a fødselsnummer where a municipality belongs, a NUL byte, a
zero-width space, a line break that forges a log line, or 600 KB. Everything the hub echoes goes
through `clean` (or `echo`, for one value quoted inside a message): control and format
characters are dropped, every run of eleven or more digits is masked as an identifier would be,
and the text is cut to a documented length.
"""

from __future__ import annotations

import re
import unicodedata

from hub.domain.identifiers import mask

# The longest an echoed value may be inside a message, and a message as a whole, in characters.
ECHO_LIMIT = 64
MESSAGE_LIMIT = 1000
ELLIPSIS = "…"

# Eleven digits or more in a row: a fødselsnummer, D-number or DUF number, or something that could
# be one. `\d` matches every script's digits, so Arabic-Indic digits are masked too.
_IDENTIFIER_RUN = re.compile(r"\d{11,}")
# Cc (control: NUL, line breaks, escapes), Cf (format: zero-width and direction marks), Cs
# (lone surrogates, which no encoder accepts), Zl and Zp (line and paragraph separators).
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_printable(text: str) -> bool:
    """Whether `text` has no control or format characters (the hub's rule for text fields)."""
    return text.isprintable() or not any(unicodedata.category(c) in _UNPRINTABLE for c in text)


def is_plain(text: str, limit: int) -> bool:
    """Whether `text` is printable and at most `limit` characters: what a field may hold as is."""
    return len(text) <= limit and is_printable(text)


def mask_identifiers(text: str) -> str:
    """`text` with every run of eleven or more digits replaced by its mask."""
    return _IDENTIFIER_RUN.sub(lambda m: mask(m.group()), text)


def clean(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` made safe to write: unprintable characters dropped, identifiers masked, and at most
    `limit` characters (the end replaced by an ellipsis)."""
    if not is_printable(text):
        text = "".join(c for c in text if unicodedata.category(c) not in _UNPRINTABLE)
    text = mask_identifiers(text)
    if len(text) > limit:
        text = text[: limit - len(ELLIPSIS)] + ELLIPSIS
    return text


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """One value a sender sent, quoted for a message: `'0301'`; cleaned and cut as above."""
    return "'" + clean(str(value), limit) + "'"


def fits(text: str | None, limit: int) -> str | None:
    """A value for a text column of `limit` characters: cleaned and cut, or None if nothing is left."""
    if text is None:
        return None
    cleaned = clean(text, limit)
    return cleaned or None
