"""Hostile input: what an attacker or a careless fagsystem could put on the hub's topics.

`hostile_messages` makes a seeded, repeatable mix of every kind the hub must survive: random
bytes, empty and null values, truncated and bit-flipped events, unknown and known schema
fingerprints with garbage bodies, values of 900 KB and just under the broker's limit, events that
are valid Avro but absurd (dates at the ends of the calendar, NaN and huge numbers), identifiers in
other scripts' digits, NUL and zero-width characters, SQL and `<script>` strings, and fødselsnumre
where no identifier belongs. Each comes with the fødselsnumre it carries, so a test can look for
them in everything the hub writes.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hub.domain.identifiers import InvalidIdentifier, parse_national_id
from hub.kafka.topics import TopicNames
from hub.schemas.codec import ADDRESS_CHANGE, MARKER, REGISTRATION, SchemaCatalog
from hub.schemas.contract import from_json
from tests.factories import PAYLOADS, event, synthetic_person

# Just under the broker's default message.max.bytes (1,048,588) with the record's own framing.
NEAR_BROKER_LIMIT = 1_048_400
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
NASTY_TEXTS = (
    "'; DROP TABLE persons; --",
    "<script>alert('nir')</script>",
    "0301\u200b",
    "oslo-fagsystem\x00",
    "line one\nFORGED 2026-12-01 ERROR hub: all is lost",
    "\u202eevil",
    "\ud800" if False else "\x1b[31mred\x1b[0m",
)


# The absurd events that are still acceptable: printable text of a fitting length is the
# fagsystem's to choose, even where it quotes a fødselsnummer (it is stored, never echoed).
ACCEPTABLE = frozenset(
    {"fødselsnummer in fagsystemVersion", "script in fagsystemVersion", "fødselsnummer in a refusal reason"}
)


@dataclass
class Hostile:
    """One message for a topic kind: `registrations`, `addresses` or `dead_letters`."""

    kind: str
    description: str
    key: bytes | None
    value: bytes | None
    identifiers: list[str] = field(default_factory=list)  # fødselsnumre carried where none belongs


def _fnr() -> str:
    person = synthetic_person()
    assert person.national_id
    return person.national_id


def _valid_datum(catalog: SchemaCatalog, source: str, event_type: str = "TRAINING_CLAIM") -> dict[str, Any]:
    municipality = "0301" if source == "oslo-fagsystem" else "4601"
    e = event(synthetic_person(), event_type, source=source, municipality=municipality)
    return from_json(e, catalog.current(REGISTRATION))


def _encode(catalog: SchemaCatalog, datum: dict[str, Any]) -> bytes:
    return catalog.encode(REGISTRATION, datum, validated=False)


def _absurd(
    catalog: SchemaCatalog, rng: random.Random, source: str
) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
    """Schema-valid events with values no rule may let through, nor crash on."""
    fnr = _fnr()

    def with_(
        description: str,
        change: Callable[[dict[str, Any]], None],
        event_type: str = "TRAINING_CLAIM",
        identifiers: list[str] | None = None,
    ) -> tuple[str, dict[str, Any], list[str]]:
        datum = _valid_datum(catalog, source, event_type)
        change(datum)
        return description, datum, identifiers or []

    def payload(**values: Any) -> Callable[[dict[str, Any]], None]:
        def change(datum: dict[str, Any]) -> None:
            name, body = datum["payload"]
            datum["payload"] = (name, {**body, **values})

        return change

    def envelope(**values: Any) -> Callable[[dict[str, Any]], None]:
        return lambda datum: datum.update(values)

    def person(**values: Any) -> Callable[[dict[str, Any]], None]:
        return lambda datum: datum["person"].update(values)

    yield with_(
        "sentAt at the calendar's end", envelope(sentAt=dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC))
    )
    yield with_("sentAt at the calendar's start", envelope(sentAt=dt.datetime(1, 1, 1, tzinfo=dt.UTC)))
    yield with_("factDate at the calendar's start", envelope(factDate=dt.date(1, 1, 1)))
    yield with_("factDate at the calendar's end", envelope(factDate=dt.date(9999, 12, 31)))
    yield with_("municipality of five digits", envelope(municipality="03011"))
    yield with_("municipality with a zero-width space", envelope(municipality="0301\u200b"))
    yield with_("municipality in Arabic-Indic digits", envelope(municipality="0301".translate(ARABIC_INDIC)))
    yield with_("fødselsnummer as municipality", envelope(municipality=fnr), identifiers=[fnr])
    yield with_("fødselsnummer as sourceSystem", envelope(sourceSystem=fnr), identifiers=[fnr])
    yield with_(
        "fødselsnummer in fagsystemVersion", envelope(fagsystemVersion=f"v1 {fnr}"), identifiers=[fnr]
    )
    yield with_("NUL in sourceSystem", envelope(sourceSystem=source + "\x00"))
    yield with_("65-character sourceSystem", envelope(sourceSystem="s" * 65))
    yield with_("600 KB sourceSystem", envelope(sourceSystem="x" * 600_000))
    yield with_("17-character nationalId", person(nationalId="1" * 17))
    yield with_("nationalId in Arabic-Indic digits", person(nationalId=fnr.translate(ARABIC_INDIC)))
    yield with_("dufNumber in Arabic-Indic digits", person(dufNumber="201812345604".translate(ARABIC_INDIC)))
    yield with_("nationalId of 600 KB", person(nationalId="9" * 600_000))
    yield with_("SQL in sourceSystem", envelope(sourceSystem=NASTY_TEXTS[0]))
    yield with_("script in fagsystemVersion", envelope(fagsystemVersion=NASTY_TEXTS[1]))
    yield with_("forged log line in fagsystemVersion", envelope(fagsystemVersion=NASTY_TEXTS[4]))
    yield with_(
        "scopeHours at int's end",
        payload(scopeHours=2_147_483_647, outcome="GRANTED", refusalReasons=[]),
        "TRAINING_DECISION",
    )
    yield with_("NaN hours", payload(norwegianHours=float("nan")), "TRAINING_HOURS")
    yield with_("infinite hours", payload(socialStudiesHours=float("inf")), "TRAINING_HOURS")
    yield with_("1e38 hours", payload(extraNorwegianHours=1e38), "TRAINING_HOURS")
    yield with_(
        "period at the calendar's ends",
        payload(periodStart=dt.date(1, 1, 1), periodEnd=dt.date(9999, 12, 31)),
        "TRAINING_HOURS",
    )
    yield with_(
        "fødselsnummer in a refusal reason",
        payload(outcome="REFUSED", refusalReasons=[f"see {fnr}"], scopeHours=None),
        "TRAINING_DECISION",
        [fnr],
    )
    yield with_(
        "NUL in a complaint",
        payload(complaint={"subject": "a\x00b", "outcome": "PENDING", "decidedOn": None}),
        "TRAINING_COMPLAINT",
    )
    yield with_(
        "900 KB complaint",
        payload(complaint={"subject": "k" * 900_000, "outcome": "PENDING", "decidedOn": None}),
        "TRAINING_COMPLAINT",
    )
    yield with_("a thousand languages", payload(otherLanguages=["eng"] * 1000), "TRAINING_LANGUAGES")
    yield with_("script as mother tongue", payload(motherTongue=NASTY_TEXTS[1]), "TRAINING_LANGUAGES")
    yield with_(
        "negative leave",
        payload(leave={"reason": "WELFARE", "durationDays": -2_147_483_648, "absenceReasonAfterLeave": None}),
        "TRAINING_LEAVE",
    )


def hostile_messages(catalog: SchemaCatalog, seed: int, count: int, sources: list[str]) -> list[Hostile]:
    """`count` hostile messages of every kind, the same for the same seed."""
    rng = random.Random(seed)
    registration = catalog.current(REGISTRATION)
    address = catalog.current(ADDRESS_CHANGE)
    absurd = [(s, a) for s in sources for a in _absurd(catalog, rng, s)]
    small_absurd = [datum for _, (_, datum, _) in absurd if len(_encode(catalog, datum)) < 10_000]
    messages: list[Hostile] = []

    def valid_bytes(source: str) -> bytes:
        return _encode(catalog, _valid_datum(catalog, source, rng.choice(list(PAYLOADS))))

    makers: list[Callable[[], Hostile]] = [
        lambda: Hostile(
            "registrations", "random bytes", rng.randbytes(8), rng.randbytes(rng.randrange(1, 300))
        ),
        lambda: Hostile("registrations", "empty value", rng.randbytes(8), b""),
        lambda: Hostile("registrations", "null value (a tombstone)", rng.randbytes(8), None),
        lambda: Hostile(
            "registrations",
            "truncated event",
            None,
            (v := valid_bytes(rng.choice(sources)))[: rng.randrange(1, len(v))],
        ),
        lambda: Hostile(
            "registrations", "bit-flipped event", b"k", _flip(rng, valid_bytes(rng.choice(sources)))
        ),
        lambda: Hostile(
            "registrations", "unknown fingerprint", None, MARKER + rng.randbytes(8) + rng.randbytes(40)
        ),
        lambda: Hostile(
            "registrations",
            "known fingerprint, garbage body",
            None,
            registration.header + rng.randbytes(rng.randrange(0, 200)),
        ),
        lambda: Hostile(
            "registrations",
            "address change on a registrations topic",
            None,
            address.header + rng.randbytes(30),
        ),
        lambda: Hostile("addresses", "random bytes", None, rng.randbytes(rng.randrange(0, 200))),
        lambda: Hostile(
            "addresses", "known fingerprint, garbage body", b"x", address.header + rng.randbytes(60)
        ),
        lambda: _absurd_address(catalog, rng),
        lambda: Hostile("dead_letters", "garbage dead letter", rng.randbytes(4), rng.randbytes(50)),
        lambda: Hostile(
            "dead_letters",
            "dead letter with a hostile event",
            None,
            _encode(catalog, copy.deepcopy(rng.choice(small_absurd))),
        ),
    ]
    # Every absurd event once per source, then the rest at random.
    for source, (description, datum, identifiers) in absurd:
        messages.append(Hostile("registrations", description, None, _encode(catalog, datum), identifiers))
        messages[-1].description += f" ({source})"
    messages.append(
        Hostile("registrations", "900 KB of garbage", None, registration.header + b"\x02" * 900_000)
    )
    messages.append(
        Hostile(
            "registrations",
            "just under the broker's limit",
            b"k" * 100,
            registration.header + rng.randbytes(NEAR_BROKER_LIMIT - 110),
        )
    )
    while len(messages) < count:
        messages.append(rng.choice(makers)())
    rng.shuffle(messages)
    return messages


def routed(messages: list[Hostile], names: TopicNames, sources: list[str]) -> list[tuple[str, Hostile]]:
    """Each message with the topic it goes to: registrations alternate between the sources."""
    topics = {"addresses": names.address_changes, "dead_letters": names.dead_letters}
    return [
        (topics.get(m.kind) or names.registrations(sources[i % len(sources)]), m)
        for i, m in enumerate(messages)
    ]


def _flip(rng: random.Random, data: bytes) -> bytes:
    flipped = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        index = rng.randrange(len(flipped))
        flipped[index] ^= 1 << rng.randrange(8)
    return bytes(flipped)


def _absurd_address(catalog: SchemaCatalog, rng: random.Random) -> Hostile:
    fnr = _fnr()
    text = rng.choice([*NASTY_TEXTS, "x" * 300, fnr])
    change = {
        "sequenceNumber": rng.randrange(-(2**63), 2**63),
        "eventType": "endringIBostedsadresse",
        "nationalId": rng.choice([fnr, "\u0661" * 11, "0" * 17, ""]),
        "recordedAt": dt.datetime.now(dt.UTC),
        "movedOn": rng.choice([None, dt.date(1, 1, 1), dt.date(9999, 12, 31)]),
        "municipality": rng.choice([None, "03011", "0301\u200b", fnr, "0301"]),
        "protection": "UNGRADED",
        "addressKind": "STREET_ADDRESS",
        "addressLine": text,
        "postalCode": rng.choice([None, "0150", "123456789", "\x00"]),
        "postalPlace": rng.choice([None, "OSLO", text]),
    }
    value = catalog.encode(ADDRESS_CHANGE, _address_datum(catalog, change), validated=False)
    return Hostile("addresses", "absurd address change", fnr.encode(), value, [fnr])


def _address_datum(catalog: SchemaCatalog, change: dict[str, Any]) -> dict[str, Any]:
    """An address change as Avro data (the symbols the schema has, whatever the values)."""
    raw = catalog.current(ADDRESS_CHANGE).raw
    symbols = {
        f["name"]: f["type"]["symbols"]
        for f in raw["fields"]
        if isinstance(f["type"], dict) and f["type"].get("type") == "enum"
    }
    datum = dict(change)
    for name, allowed in symbols.items():
        if datum[name] not in allowed:
            datum[name] = allowed[0]
    return datum


_ELEVEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{11}(?![0-9])")


def identifiers_in(text: str) -> set[str]:
    """Every 11-digit run in `text` that is a valid fødselsnummer or D-number (synthetic too)."""
    found = set()
    for run in _ELEVEN_DIGITS.findall(text):
        try:
            parse_national_id(run, allow_synthetic=True)
        except InvalidIdentifier:
            continue
        found.add(run)
    return found
