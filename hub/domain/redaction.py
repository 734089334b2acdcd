"""What a sender's text may look like once the hub writes it anywhere: a receipt, a dead-letter
header, a ticket, a log line or the command line's output.

Input is hostile: a field may hold a fødselsnummer where a municipality belongs, a NUL byte, a
zero-width space, a line break that forges a log line, or 600 KB. Everything the hub echoes goes
through `clean` (or `echo`, for one value quoted inside a message): control and format
characters are dropped, every identifier-shaped run of digits is masked as an identifier would be
(eleven or more digits in a row, or digit groups joined by spaces, dashes or dots that together
make eleven or twelve digits: `170587 42341`, `2018-1234-5604`), and the text is cut to a
documented length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from hub.domain.identifiers import mask

# The longest an echoed value may be inside a message, and a message as a whole, in characters.
ECHO_LIMIT = 64
MESSAGE_LIMIT = 1000
ELLIPSIS = "…"

# Digit groups joined by separators, the candidates for an identifier: `\d` matches every script's
# digits, so Arabic-Indic digits are masked too. A separator is one to three spaces (of any kind),
# dashes (of any kind) or dots: how people write a number out (`170587 42341`, `170587-42341`,
# `2018-1234-5604`, `17.05.87 423 41`).
_SEPARATOR = r"[\s.\-\u2010-\u2015\u2212]{1,3}"
_DIGIT_GROUPS = re.compile(rf"\d+(?:{_SEPARATOR}\d+)*")
_GROUP = re.compile(r"\d+")
# A date written out, ISO (`2026-11-21`) or Norwegian (`21.11.2026`), is eight digits that are never
# part of an identifier: no identifier holds a four-digit year with its month and day, and
# messages name a municipality beside a date (`kommune 4601 2026-11-21`), twelve digits together.
_DATE = re.compile(r"(?<!\d)(?:(\d{4})-(\d{2})-(\d{2})|(\d{1,2})\.(\d{1,2})\.(\d{4}))(?!\d)")
# Eleven digits: a fødselsnummer, D-number or H-number; twelve: a DUF number.
_IDENTIFIER_DIGITS = frozenset({11, 12})
# Eleven digits or more in a row are masked however they are surrounded: something that could be
# an identifier.
_LONG_RUN = 11
# Cc (control: NUL, line breaks, escapes), Cf (format: zero-width and direction marks), Cs
# (lone surrogates, which no encoder accepts), Zl and Zp (line and paragraph separators).
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_printable(text: str) -> bool:
    """Whether `text` has no control or format characters (the hub's rule for text fields)."""
    return text.isprintable() or not any(unicodedata.category(c) in _UNPRINTABLE for c in text)


def is_plain(text: str, limit: int) -> bool:
    """Whether `text` is printable and at most `limit` characters: what a field may hold as is."""
    return len(text) <= limit and is_printable(text)


def mask_identifiers(text: str, masker: Callable[[str], str] = mask) -> str:
    """`text` with every identifier-shaped run of digits replaced by its mask: eleven or more digits
    in a row, and consecutive digit groups joined by separators that make eleven or twelve digits
    together. A number is masked by its digits alone, in ASCII, so `170587 42341`, `17058742341`
    and the same in Arabic-Indic digits have one mask, and support staff can match them.
    `masker` is `mask` but where no key can be had (`blind`)."""
    return _DIGIT_GROUPS.sub(lambda match: _mask_groups(match.group(), masker), text)


def blind(identifier: str) -> str:
    """An identifier's stand-in with no hash at all, `<id:11:unkeyed>`: for a log line written
    before the process has its mask key, which must neither fail nor fall back to an unkeyed hash
    (that could be reversed)."""
    return f"<id:{len(identifier)}:unkeyed>"


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in text if c.isdecimal())


def _is_date(match: re.Match[str]) -> bool:
    month, day = match.group(2, 3) if match.group(1) is not None else match.group(5, 4)
    return 1 <= int(month) <= 12 and 1 <= int(day) <= 31


def _mask_groups(chain: str, masker: Callable[[str], str]) -> str:
    """One run of digit groups with its identifiers masked; a date in it (`_DATE`) is kept and
    joins neither neighbour."""
    out, kept_to = [], 0
    for date in _DATE.finditer(chain):
        if _is_date(date):
            out += [_mask_undated(chain[kept_to : date.start()], masker), date.group()]
            kept_to = date.end()
    out.append(_mask_undated(chain[kept_to:], masker))
    return "".join(out)


def _mask_undated(chain: str, masker: Callable[[str], str]) -> str:
    """Digit groups with their identifiers masked: from each group on, the longest run of
    consecutive groups with eleven or twelve digits is one identifier, and a group of eleven digits
    or more is one by itself; whatever is left (a short number) is kept."""
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(chain)]
    if len(groups) == 1:
        start, stop = groups[0]
        if stop - start < _LONG_RUN:
            return chain
        return chain[:start] + masker(_ascii_digits(chain[start:stop])) + chain[stop:]
    out: list[str] = []
    kept_to = 0  # how far `chain` is written to `out`
    i = 0
    while i < len(groups):
        end: int | None = None
        if groups[i][1] - groups[i][0] >= _LONG_RUN:
            end = i  # alone, so that it has the mask it has anywhere else
        else:
            total = 0
            for j in range(i, len(groups)):
                total += groups[j][1] - groups[j][0]
                if total in _IDENTIFIER_DIGITS:
                    end = j
                elif total > max(_IDENTIFIER_DIGITS):
                    break
        if end is None:
            i += 1
            continue
        start, stop = groups[i][0], groups[end][1]
        out.append(chain[kept_to:start])
        out.append(masker(_ascii_digits(chain[start:stop])))
        kept_to, i = stop, end + 1
    out.append(chain[kept_to:])
    return "".join(out)


def clean(text: str, limit: int = MESSAGE_LIMIT, masker: Callable[[str], str] = mask) -> str:
    """`text` made safe to write: unprintable characters dropped, identifiers masked (by `masker`),
    and at most `limit` characters (the end replaced by an ellipsis)."""
    if not is_printable(text):
        text = "".join(c for c in text if unicodedata.category(c) not in _UNPRINTABLE)
    text = mask_identifiers(text, masker)
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
