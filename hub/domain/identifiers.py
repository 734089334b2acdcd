"""Norwegian person identifiers: fødselsnummer, D-number and DUF number.

Validation follows `DOMAIN.md`: two mod-11 check digits for fødselsnummer and D-number (the
check-digit rule is a parameter so that the 2032 rule, under which more remainders are accepted,
can be switched on), and a shape check for DUF numbers, which have no published check digit.

`mask` is the only way an identifier may appear in a log line or an error message. A mask is keyed
(HMAC-SHA-256): without the key, nobody can tell whose number it stands for, however small the
space of valid numbers is. The domain reads no files, so the key is handed in once at start by
the process's wiring (`hub.bootstrap.install_masks`, which reads `NIR_MASK_KEY_FILE`) through
`use_masker`; until then `mask` raises `MaskKeyMissing` rather than fall back to an unkeyed hash.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import hmac
import operator
from dataclasses import dataclass

_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)
_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


class NationalIdKind(enum.Enum):
    """What an 11-digit national identity number is."""

    FODSELSNUMMER = "fodselsnummer"
    D_NUMBER = "d-number"
    H_NUMBER = "h-number"


@dataclass(frozen=True)
class CheckDigitRule:
    """Which remainders of the weighted sums (check digit included, weight 1) are accepted.

    The classic rule accepts only remainder 0 for both checks. From 2032 new numbers drop the
    gender digit and the second check accepts more remainders; pass those sets here.
    """

    first: frozenset[int] = frozenset({0})
    second: frozenset[int] = frozenset({0})


CLASSIC_RULE = CheckDigitRule()


@dataclass(frozen=True)
class NationalIdInfo:
    kind: NationalIdKind
    birth_date: dt.date
    synthetic: bool


class InvalidIdentifier(ValueError):
    """An identifier failed validation; the message never contains the identifier itself."""


def is_ascii_digits(value: str) -> bool:
    """Only 0-9: `str.isdigit` also accepts other scripts' digits and superscripts, which `int`
    then reads or refuses; identifiers and municipality numbers are written in ASCII digits."""
    return value.isascii() and value.isdigit()


def _weighted_remainder(digits: list[int], weights: tuple[int, ...]) -> int:
    assert len(digits) == len(weights)
    return sum(map(operator.mul, digits, weights)) % 11


# Several rules read the same event's number; a person's events come close together.
@functools.lru_cache(maxsize=4096)
def parse_national_id(
    value: str,
    *,
    rule: CheckDigitRule = CLASSIC_RULE,
    allow_synthetic: bool = False,
    today: dt.date | None = None,
) -> NationalIdInfo:
    """Check a fødselsnummer, D-number or H-number and return what it encodes. With `today`, a
    birth date after it is refused (nobody registered is born tomorrow).

    Raises `InvalidIdentifier` with a reason that does not repeat the number.
    """
    if len(value) != 11 or not is_ascii_digits(value):
        raise InvalidIdentifier("must be exactly 11 digits 0-9")
    digits = [int(c) for c in value]
    if _weighted_remainder(digits[:10], _WEIGHTS_1) not in rule.first:
        raise InvalidIdentifier("first check digit is wrong")
    if _weighted_remainder(digits, _WEIGHTS_2) not in rule.second:
        raise InvalidIdentifier("second check digit is wrong")

    day, month, year2 = int(value[0:2]), int(value[2:4]), int(value[4:6])
    kind = NationalIdKind.FODSELSNUMMER
    if day > 40:
        kind, day = NationalIdKind.D_NUMBER, day - 40
    synthetic = False
    if month > 80:
        synthetic, month = True, month - 80
    elif month > 40:
        if kind is NationalIdKind.D_NUMBER:
            raise InvalidIdentifier("is marked both as a D-number and as an H-number")
        kind, month = NationalIdKind.H_NUMBER, month - 40
    if synthetic and not allow_synthetic:
        raise InvalidIdentifier("is a synthetic test number, not accepted here")

    year = _century(int(value[6:9]), year2) + year2
    try:
        birth_date = dt.date(year, month, day)
    except ValueError:
        raise InvalidIdentifier("does not encode a valid birth date") from None
    if today is not None and birth_date > today:
        raise InvalidIdentifier("encodes a birth date in the future")
    return NationalIdInfo(kind=kind, birth_date=birth_date, synthetic=synthetic)


def _century(individual: int, year2: int) -> int:
    """The century encoded by the individual number (Skatteetaten's ranges)."""
    if individual < 500:
        return 1900
    if individual < 750 and year2 >= 54:
        return 1800
    if individual >= 900 and year2 >= 40:
        return 1900
    return 2000 if year2 < 40 else 1900


# The kind of each number in a person's identifier history (`person_identifiers.number_kind`).
DUF_NUMBER = "duf"
UNKNOWN_KIND = "unknown"


def number_kind(value: str) -> str:
    """What a stored identifier is: `fodselsnummer`, `d-number`, `h-number` (the values of
    `NationalIdKind`) or `duf`, read from the number's shape only (the register stores validated
    numbers; the check digits are not tried again, so a number under the 2032 rule has its kind
    too). Synthetic test numbers have the kind of what they imitate; `unknown` is for a value of
    neither shape."""
    if len(value) == 12 and is_ascii_digits(value):
        return DUF_NUMBER
    if len(value) != 11 or not is_ascii_digits(value):
        return UNKNOWN_KIND
    day, month = int(value[0:2]), int(value[2:4])
    month -= 80 if month > 80 else 0  # a synthetic number's month
    if day > 40:
        return NationalIdKind.D_NUMBER.value
    if month > 40:
        return NationalIdKind.H_NUMBER.value
    return NationalIdKind.FODSELSNUMMER.value


def check_duf_number(value: str, *, today: dt.date) -> None:
    """Check a DUF number's shape: 12 digits, the first four a year UDI could have used.

    UDI publishes no check-digit rule, so no checksum is enforced (see DOMAIN.md).
    """
    if len(value) != 12 or not is_ascii_digits(value):
        raise InvalidIdentifier("must be exactly 12 digits 0-9")
    year = int(value[:4])
    if year < 1950 or year > today.year:
        raise InvalidIdentifier("does not start with a plausible application year")


# The checksum people use for DUF numbers: the last two digits are the weighted sum of the first
# ten, mod 11. UDI has not published it, and UDI's own example fails it (DOMAIN.md): a number that
# fails is only warned about, never refused.
_DUF_WEIGHTS = (4, 6, 3, 2, 4, 6, 3, 2, 7, 5)


def duf_checksum(first_ten: str) -> str:
    """The two check digits the community checksum gives these ten digits."""
    return f"{sum(int(d) * w for d, w in zip(first_ten, _DUF_WEIGHTS, strict=True)) % 11:02d}"


def passes_duf_checksum(value: str) -> bool:
    """Whether a DUF number of the right shape passes the community checksum."""
    return len(value) == 12 and is_ascii_digits(value) and value[10:] == duf_checksum(value[:10])


# A key shorter than this is refused: 32 random bytes are what the first start makes.
MASK_KEY_BYTES = 32
# Hex digits of the HMAC a mask keeps: the format's own (`<id:11:1a2b3c4d>`), which support staff
# compare and tests read. Eight hex digits tell two persons apart but for one pair in four
# billion; the key, not the length, is what keeps the number secret. Never more than ten: a mask
# must not itself hold eleven digits in a row, or cleaning a text twice would mask the mask.
MASK_HEX_DIGITS = 8


class MaskKeyMissing(RuntimeError):
    """An identifier was to be masked before the process's wiring handed the domain its mask key."""


class Masker:
    """Masks identifiers with one secret key: HMAC-SHA-256 of the identifier, cut to
    `MASK_HEX_DIGITS` hex digits. The same key gives the same mask, so two lines about one person
    can be matched; without the key no enumeration of valid numbers finds the one behind a mask."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MASK_KEY_BYTES:
            raise ValueError(f"a mask key is at least {MASK_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Masker(key=***)"  # the key never reaches a log line or a traceback's locals

    def __call__(self, value: str) -> str:
        digest = hmac.digest(self._key, value.encode(), hashlib.sha256).hex()[:MASK_HEX_DIGITS]
        return f"<id:{len(value)}:{digest}>"

    def subject_key(self, value: str) -> str:
        """The whole keyed hash of an identifier under its own label, for the access log: long
        enough never to name two persons alike, and unlike a mask never shown anywhere."""
        return hmac.digest(self._key, b"access-log:" + value.encode(), hashlib.sha256).hex()


# Set once by the wiring at start (`use_masker`); a module-level object rather than a parameter
# because every message the hub builds, in rules, pipeline and support alike, is cleaned, and
# threading a key through all of them would put it in every signature for no gain.
_masker: Masker | None = None


def use_masker(masker: Masker | None) -> None:
    """Make `masker` the one `mask` uses in this process (None: none, so masking raises)."""
    global _masker
    _masker = masker


def has_mask_key() -> bool:
    """Whether this process has been handed its mask key (`use_masker`)."""
    return _masker is not None


def mask(value: str | None) -> str:
    """A stable, non-reversible stand-in for an identifier, safe for logs and messages:
    `<id:LENGTH:HMAC>`, keyed with the process's mask key (`use_masker`).

    Keeps the length and a short keyed hash, so two log lines about the same person can be matched
    without revealing who it is. Raises `MaskKeyMissing` if no key was handed in.
    """
    if not value:
        return "<none>"
    if _masker is None:
        raise MaskKeyMissing(
            "no mask key in this process: the wiring calls hub.bootstrap.install_masks at start"
        )
    return _masker(value)


def subject_key(value: str) -> str:
    """The access log's key for an identifier (`Masker.subject_key`): the same number gives the
    same key under this installation's mask key, so "who has read this person's data" is asked
    by the person's numbers without the log holding any of them. Raises `MaskKeyMissing` like
    `mask`."""
    if _masker is None:
        raise MaskKeyMissing(
            "no mask key in this process: the wiring calls hub.bootstrap.install_masks at start"
        )
    return _masker.subject_key(value)


def link_key(subject: str) -> str:
    """What a support user's link to a person at an identity provider keeps of the person's
    subject: a keyed hash, never the subject (for ID-porten, the staff member's fødselsnummer),
    which sign-in only compares. Under a label of its own, so it is never the access log's key for
    the same number. Raises `MaskKeyMissing` like `mask`."""
    return subject_key("oidc-subject:" + subject)


# How many of an identifier's last digits a person may be shown in a list: enough to tell a
# caller's case from the next one when they read out their number, too few to name anyone (the
# birth date, the DUF number's year and most of the individual number stay hidden).
SHOWN_DIGITS = 4


def last_digits(value: str | None) -> str | None:
    """An identifier as a list shows it, `…5604`: its last digits only. Not for logs (`mask`)."""
    if not value:
        return None
    return "…" + value[-SHOWN_DIGITS:]


def make_national_id(
    birth_date: dt.date, individual: int, *, synthetic: bool = True, d_number: bool = False
) -> str | None:
    """Build a number with valid check digits, or None if this individual number has none.

    For test data and the demo: synthetic (Tenor, month + 80) unless told otherwise.
    """
    day = birth_date.day + (40 if d_number else 0)
    month = birth_date.month + (80 if synthetic else 0)
    base = [int(c) for c in f"{day:02d}{month:02d}{birth_date.year % 100:02d}{individual:03d}"]
    for weights in (_WEIGHTS_1, _WEIGHTS_2):
        check = (11 - sum(d * w for d, w in zip(base, weights[:-1], strict=True)) % 11) % 11
        if check == 10:
            return None
        base.append(check)
    return "".join(map(str, base))
