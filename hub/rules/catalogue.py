"""The rules. Each is one function: it returns None when the event passes, else an Explanation.

Codes are stable: fagsystems and support staff rely on them. Never reuse a retired code.
Messages never contain a person identifier in clear text.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hub.domain.calendar import iso_utc, norwegian_date, period_end
from hub.domain.deadlines import (
    LATE_AFTER_MONTHS,
    TOO_OLD_AFTER_MONTHS,
    has_deadline,
    is_late,
    is_too_old,
    may_be_late,
)
from hub.domain.events import DATE_FIELDS, Registration, event_type_of
from hub.domain.identifiers import InvalidIdentifier, check_duf_number, parse_national_id, passes_duf_checksum
from hub.domain.lifecycle import (
    ROLES,
    Action,
    Fact,
    Problem,
    Role,
    has_lifecycle,
    transition_problem,
)
from hub.domain.municipalities import (
    in_force_between,
    is_municipality_number,
    numbers_on,
    same_municipality,
)
from hub.domain.redaction import echo, is_printable
from hub.domain.residence import residence_on
from hub.domain.rights import (
    INTEGRATION_ACT_FROM,
    Categories,
    Category,
    Permit,
    categories_from_facts,
)
from hub.domain.snapshot import TWO_PERSONS
from hub.rules.base import Advice, Check, Explanation, RuleContext, Severity, Tier, rule

T = TypeVar("T")

# How far a fagsystem's clock may run ahead of ours before sentAt counts as in the future.
CLOCK_SKEW = dt.timedelta(minutes=5)
# The codes the decision names (`hub.pipeline.decide`, `hub.support.tickets`).
IDENTITY_CONFLICT = "NIR-ID-005"
EVENT_ID_REUSED = "NIR-EVENT-001"


# --- Shape: the alphabet, length and range of every value. A value that fails here is never
# read for its meaning (see `Tier.SHAPE`), so the rules below can trust what they read.

# Free text in a payload (a refusal reason, a complaint's subject), and the envelope's names.
PAYLOAD_TEXT_LIMIT = 500
ENVELOPE_TEXT_LIMIT = 64
LIST_LIMIT = 50
# The dates the register can mean: facts and plans of living persons' cases, and when they were
# sent (no transfer to NIR is older than the hub's predecessor's web service).
EARLIEST_DATE, LATEST_DATE = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
EARLIEST_SENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# Upper bounds of whole numbers and hours, by payload field; any other number: NUMBER_MAX.
# Training in Norwegian and social studies was at most 3,000 hours under the introduction act;
# the social-studies test has 38 questions; the programme lasts at most a few years.
NUMBER_MAX = 100_000
_NUMBER_MAX_BY_FIELD: dict[str, float] = {
    "scopeHours": 3_000,
    "correctAnswers": 38,
    "durationMonths": 60,
    "durationDays": 731,
    "absentHours": 10_000,
    "scheduledHours": 10_000,
    "norwegianHours": 10_000,
    "socialStudiesHours": 10_000,
    "extraNorwegianHours": 10_000,
    "totalHours": 10_000,
    "hoursCompleted": 10_000,
}


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every value that is not an object or a list, with its path, and every list itself."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, f"{path}.{key}")
    elif isinstance(value, list):
        yield path, value
        for index, child in enumerate(value):
            yield from _leaves(child, f"{path}[{index}]")
    else:
        yield path, value


def _for_the_last(slot: threading.local, key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """`compute()`, answered once for the same `key` (its objects themselves, by identity) in a
    row: several rules ask the same question of one event. A slot always gets keys of one
    shape; its entry (one per thread) holds the key's objects, so a new event never sees an old
    answer."""
    last = getattr(slot, "entry", None)
    # By identity, in C (`map`): a generator here cost more than the payload walk it saved.
    if last is not None and all(map(operator.is_, last[0], key)):
        return last[1]  # type: ignore[no-any-return]
    answer = compute()
    slot.entry = (key, answer)
    return answer


# Several rules walk the same event's payload: walk it once.
_last_walk = threading.local()


def _walked(event: Registration) -> tuple[list[tuple[str, Any]], list[tuple[str, dict[str, Any]]]]:
    return _for_the_last(
        _last_walk,
        (event,),
        lambda: (list(_leaves(event.payload, "payload")), list(_objects(event.payload))),
    )


def _payload_leaves(event: Registration) -> list[tuple[str, Any]]:
    """Every value of the payload that is not an object or a list, with its path, and every list."""
    return _walked(event)[0]


def _payload_objects(event: Registration) -> list[tuple[str, dict[str, Any]]]:
    """Every object of the payload (itself included), with its path."""
    return _walked(event)[1]


def _texts(event: Registration) -> Iterator[tuple[str, str, int]]:
    """Every text of the event with its path and its length limit (the identifiers and the
    municipality number have rules of their own)."""
    yield "sourceSystem", event.source_system, ENVELOPE_TEXT_LIMIT
    if event.fagsystem_version is not None:
        yield "fagsystemVersion", event.fagsystem_version, ENVELOPE_TEXT_LIMIT
    for path, value in _payload_leaves(event):
        if isinstance(value, str):
            yield path, value, PAYLOAD_TEXT_LIMIT


@rule(
    "NIR-TEXT-001",
    "Text has no control characters",
    "Tekst har ingen kontrolltegn",
    tier=Tier.SHAPE,
    advice=Advice(
        "Remove the control character (often pasted text) in the fagsystem and send again.",
        "Fjern kontrolltegnet (ofte innlimt tekst) i fagsystemet og send på nytt.",
    ),
)
def printable_text(event: Registration, ctx: RuleContext) -> Explanation | None:
    for path, value, _ in _texts(event):
        if not is_printable(value):
            return Explanation(
                f"{path} has a control or format character (a NUL, a line break, a zero-width space...)",
                f"{path} har et kontroll- eller formateringstegn (NUL, linjeskift, nullbreddes mellomrom ...)",
            )
    return None


@rule(
    "NIR-TEXT-002",
    "Text and lists are no longer than their field allows",
    "Tekst og lister er ikke lengre enn feltet tillater",
    tier=Tier.SHAPE,
    advice=Advice(
        "Shorten the text or list named in the message in the fagsystem and send again.",
        "Forkort teksten eller listen som meldingen nevner, i fagsystemet og send på nytt.",
    ),
)
def text_within_length(event: Registration, ctx: RuleContext) -> Explanation | None:
    for path, value, limit in _texts(event):
        if len(value) > limit:
            return Explanation(
                f"{path} has {len(value)} characters; at most {limit} are allowed",
                f"{path} har {len(value)} tegn; høyst {limit} er tillatt",
            )
    for path, value in _payload_leaves(event):
        if isinstance(value, list) and len(value) > LIST_LIMIT:
            return Explanation(
                f"{path} has {len(value)} entries; at most {LIST_LIMIT} are allowed",
                f"{path} har {len(value)} elementer; høyst {LIST_LIMIT} er tillatt",
            )
    return None


@rule(
    "NIR-MUNI-003",
    "The municipality number is four digits",
    "Kommunenummeret er fire sifre",
    tier=Tier.SHAPE,
    advice=Advice(
        "Correct the municipality number to four digits (keep the leading zero) and send again.",
        "Rett kommunenummeret til fire sifre (behold null foran) og send på nytt.",
    ),
)
def municipality_number_shape(event: Registration, ctx: RuleContext) -> Explanation | None:
    if not is_municipality_number(event.municipality):
        return Explanation(
            "municipality must be four digits 0-9 (for example 0301)",
            "kommunenummeret må være fire sifre 0-9 (for eksempel 0301)",
        )
    return None


def _dates(event: Registration) -> Iterator[tuple[str, dt.date | None]]:
    yield "factDate", event.fact_date
    for path, value in _payload_leaves(event):
        if value is not None and path.rsplit(".", 1)[-1] in DATE_FIELDS:
            yield path, _iso_date(value)


def _iso_date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@rule(
    "NIR-DATE-005",
    "Dates are within the years the register can mean",
    "Datoene er innenfor årene registeret kan gjelde",
    tier=Tier.SHAPE,
    advice=Advice(
        "A date is mistyped (year out of range): correct it in the fagsystem and send again.",
        "En dato er feilskrevet (året er utenfor gyldig område): rett den i fagsystemet og send på nytt.",
    ),
)
def dates_in_window(event: Registration, ctx: RuleContext) -> Explanation | None:
    first, last = EARLIEST_DATE.isoformat(), LATEST_DATE.isoformat()
    for path, date in _dates(event):
        if date is None or not EARLIEST_DATE <= date <= LATEST_DATE:
            return Explanation(
                f"{path} must be a date from {first} to {last}",
                f"{path} må være en dato fra {first} til {last}",
            )
    if not EARLIEST_SENT <= event.sent_at <= dt.datetime.combine(LATEST_DATE, dt.time.max, dt.UTC):
        return Explanation(
            f"sentAt must be a moment from {EARLIEST_SENT.date()} to {last}",
            f"sentAt må være et tidspunkt fra {EARLIEST_SENT.date()} til {last}",
        )
    return None


@rule(
    "NIR-QTY-002",
    "Numbers are finite and within their field's bounds",
    "Tall er endelige og innenfor feltets grenser",
    tier=Tier.SHAPE,
    advice=Advice(
        "A number is out of bounds (often a typing error): correct it and send again.",
        "Et tall er utenfor grensene (ofte en skrivefeil): rett det og send på nytt.",
    ),
)
def numbers_in_bounds(event: Registration, ctx: RuleContext) -> Explanation | None:
    for path, value in _payload_leaves(event):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            return Explanation(f"{path} is not a finite number", f"{path} er ikke et endelig tall")
        bound = _NUMBER_MAX_BY_FIELD.get(path.rsplit(".", 1)[-1], NUMBER_MAX)
        if abs(value) > bound:
            return Explanation(
                f"{path} is {value:g}; at most {bound:g} is plausible",
                f"{path} er {value:g}; høyst {bound:g} er plausibelt",
            )
    return None


@rule(
    "NIR-SCHEMA-001",
    "The event type is one this hub knows",
    "Hendelsestypen er kjent for huben",
    advice=Advice(
        "The fagsystem sends an event type this hub does not know: ask the vendor, or IMDi to update the hub.",
        "Fagsystemet sender en hendelsestype huben ikke kjenner: spør leverandøren, eller be IMDi oppdatere huben.",
    ),
)
def known_event_type(event: Registration, ctx: RuleContext) -> Explanation | None:
    if event.event_type == "UNKNOWN":
        return Explanation(
            "the event type is not known to this version of the hub",
            "hendelsestypen er ukjent for denne versjonen av huben",
        )
    return None


@rule(
    "NIR-SCHEMA-002",
    "The payload's record matches the event type",
    "Innholdet passer til hendelsestypen",
    advice=Advice(
        "The event type and the payload do not match: a fault in the fagsystem; report it to the vendor.",
        "Hendelsestypen og innholdet passer ikke sammen: en feil i fagsystemet; meld den til leverandøren.",
    ),
)
def payload_matches_event_type(event: Registration, ctx: RuleContext) -> Explanation | None:
    expected = event_type_of(event.payload_record)
    if event.event_type != "UNKNOWN" and expected != event.event_type:
        return Explanation(
            f"eventType is {event.event_type} but the payload is a {expected} record",
            f"eventType er {event.event_type}, men innholdet er en {expected}-post",
        )
    return None


@rule(
    "NIR-ID-001",
    "The person has a fødselsnummer, D-number or DUF number",
    "Personen har fødselsnummer, D-nummer eller DUF-nummer",
    advice=Advice(
        "Add the person's fødselsnummer, D-number or DUF number in the fagsystem and send again.",
        "Legg inn personens fødselsnummer, D-nummer eller DUF-nummer i fagsystemet og send på nytt.",
    ),
    tier=Tier.PERSON,
)
def has_identifier(event: Registration, ctx: RuleContext) -> Explanation | None:
    if not event.national_id and not event.duf_number:
        return Explanation(
            "the person has neither a national identity number nor a DUF number",
            "personen har verken fødselsnummer, D-nummer eller DUF-nummer",
        )
    return None


@rule(
    "NIR-ID-002",
    "The fødselsnummer or D-number is valid",
    "Fødselsnummeret eller D-nummeret er gyldig",
    advice=Advice(
        "Check the number against Folkeregisteret, correct it in the fagsystem and send again.",
        "Kontroller nummeret mot Folkeregisteret, rett det i fagsystemet og send på nytt.",
    ),
    tier=Tier.PERSON,
)
def valid_national_id(event: Registration, ctx: RuleContext) -> Explanation | None:
    if not event.national_id:
        return None
    try:
        parse_national_id(
            event.national_id,
            rule=ctx.check_digit_rule,
            allow_synthetic=ctx.allow_synthetic_identifiers,
            today=ctx.today,
        )
    except InvalidIdentifier as exc:
        return Explanation(
            f"the national identity number {exc}", f"fødselsnummeret eller D-nummeret er ugyldig: {exc}"
        )
    return None


@rule(
    "NIR-ID-003",
    "The DUF number has a valid shape",
    "DUF-nummeret har gyldig form",
    advice=Advice(
        "A DUF number has 12 digits, the first four the year of the first application: correct it.",
        "Et DUF-nummer har 12 sifre, de fire første er året for første søknad: rett det.",
    ),
    tier=Tier.PERSON,
)
def valid_duf_number(event: Registration, ctx: RuleContext) -> Explanation | None:
    if not event.duf_number:
        return None
    try:
        check_duf_number(event.duf_number, today=ctx.today)
    except InvalidIdentifier as exc:
        return Explanation(f"the DUF number {exc}", f"DUF-nummeret er ugyldig: {exc}")
    return None


@rule(
    "NIR-ID-004",
    "The DUF number passes the usual checksum (a warning: UDI publishes none)",
    "DUF-nummeret stemmer med den vanlige kontrollsummen (en advarsel: UDI publiserer ingen)",
    Severity.WARNING,
    advice=Advice(
        "A warning only: check the DUF number against UDI's papers; nothing to do if it is right.",
        "Bare en advarsel: kontroller DUF-nummeret mot UDIs papirer; ingenting å gjøre om det stemmer.",
    ),
    tier=Tier.PERSON,
)
def duf_checksum_holds(event: Registration, ctx: RuleContext) -> Explanation | None:
    duf = event.duf_number
    if duf is not None and len(duf) == 12 and not passes_duf_checksum(duf):  # shape: NIR-ID-003
        return Explanation(
            "the DUF number's last two digits do not match the usual checksum; UDI publishes no "
            "check-digit rule, so check the number against the case, it may still be right",
            "de to siste sifrene i DUF-nummeret stemmer ikke med den vanlige kontrollsummen; UDI "
            "publiserer ingen regel, så sjekk nummeret mot saken, det kan likevel være riktig",
        )
    return None


# What each kind of number is called in a message (`hub.domain.snapshot.identifier_kind`).
_NUMBER_NAMES = {
    "duf": ("DUF number", "DUF-nummer"),
    "fodselsnummer": ("fødselsnummer", "fødselsnummer"),
    "d-number": ("D-number", "D-nummer"),
    "h-number": ("H-number", "H-nummer"),
}


@rule(
    IDENTITY_CONFLICT,
    "The person's numbers name one person in the register",
    "Personens numre peker på én person i registeret",
    advice=Advice(
        "Check both numbers with the person and in the fagsystem: if one is wrong, correct it and send "
        "again; if they are one person, IMDi merges the records (hub person merge) and replays the event.",
        "Kontroller begge numrene med personen og i fagsystemet: er ett feil, rett det og send på nytt; "
        "er de én person, slår IMDi sammen oppføringene (hub person merge) og sender hendelsen på nytt.",
    ),
    tier=Tier.PERSON,
)
def numbers_name_one_person(event: Registration, ctx: RuleContext) -> Explanation | None:
    # A register of record never guesses: numbers that point at two known persons are a conflict
    # for a person to resolve, never a proof that they are one (`Snapshot.resolve`). A number
    # that is not one is NIR-ID-002's or NIR-ID-003's to report.
    conflict = ctx.identity
    if conflict is None or valid_national_id(event, ctx) or valid_duf_number(event, ctx):
        return None
    if conflict.kind == TWO_PERSONS:
        return Explanation(
            "the national identity number and the DUF number belong to two different persons in the "
            "register; one event does not join two persons",
            "fødselsnummeret og DUF-nummeret tilhører to ulike personer i registeret; én hendelse slår "
            "ikke sammen to personer",
        )
    en, nb = _NUMBER_NAMES.get(conflict.number_kind or "", ("number", "nummer"))
    return Explanation(
        f"the person already has another {en}; a second one is added only on Folkeregisteret's word "
        "or by IMDi",
        f"personen har allerede et annet {nb}; et nummer til legges bare til etter melding fra "
        "Folkeregisteret eller av IMDi",
    )


@rule(
    EVENT_ID_REUSED,
    "The event id is the event's own, not one the register holds for another event",
    "Hendelses-id-en er hendelsens egen, ikke en registeret har for en annen hendelse",
    advice=Advice(
        "Give every new event a new event id (a UUID); to change a registration, send a CORRECT naming it.",
        "Gi hver nye hendelse en ny hendelses-id (en UUID); for å endre en registrering, send en CORRECT "
        "som viser til den.",
    ),
    on_demand=True,
)
def event_id_is_its_own(event: Registration, ctx: RuleContext) -> Explanation | None:
    # Asked by the decision when the id is taken: only a redelivery of the same event may repeat
    # an outcome, and a silent DUPLICATE would tell the sender it was registered.
    if ctx.reused_id == "held":
        return Explanation(
            "another source's event with this event id is waiting in the register's hold",
            "en annen kildes hendelse med denne hendelses-id-en venter i registerets kø",
        )
    if ctx.reused_id is not None:
        return Explanation(
            "the register already holds another event with this event id (from another source, or "
            "with other content)",
            "registeret har allerede en annen hendelse med denne hendelses-id-en (fra en annen kilde, "
            "eller med annet innhold)",
        )
    return None


@rule(
    "NIR-SOURCE-001",
    "The event comes from the source that owns the topic",
    "Hendelsen kommer fra kilden som eier topicen",
    advice=Advice(
        "The event came on another source's topic: the fagsystem's set-up is wrong; contact IMDi.",
        "Hendelsen kom på en annen kildes topic: fagsystemet er satt opp feil; kontakt IMDi.",
    ),
)
def source_matches_topic(event: Registration, ctx: RuleContext) -> Explanation | None:
    if ctx.registry.get(ctx.topic_source) is None:
        return Explanation(
            f"source {echo(ctx.topic_source)} is not in the source registry",
            f"kilden {echo(ctx.topic_source)} finnes ikke i kilderegisteret",
        )
    if event.source_system != ctx.topic_source:
        return Explanation(
            f"sourceSystem is {echo(event.source_system)} but the event was sent on the topic "
            f"of source {echo(ctx.topic_source)}",
            f"sourceSystem er {echo(event.source_system)}, men hendelsen kom på topicen til "
            f"kilden {echo(ctx.topic_source)}",
        )
    return None


@rule(
    "NIR-SOURCE-003",
    "The source's access has not been revoked",
    "Kildens tilgang er ikke trukket tilbake",
    advice=Advice(
        "IMDi has revoked this source's access: nothing it sends is registered. Contact IMDi.",
        "IMDi har trukket tilbake kildens tilgang: ingenting den sender, blir registrert. Kontakt IMDi.",
    ),
    tier=Tier.SHAPE,  # asked first: nothing of a revoked source's event is read for its meaning
)
def source_not_revoked(event: Registration, ctx: RuleContext) -> Explanation | None:
    # Also what was already on the topic when the source was revoked, and replays of it: a
    # revocation holds from the first batch after it (`RegisterRepository.revoked_sources`).
    revoked = ctx.source_revoked
    if revoked is None:
        return None
    since = iso_utc(revoked.since)
    return Explanation(
        f"the access of source {echo(ctx.topic_source)} was revoked {since}",
        f"tilgangen til kilden {echo(ctx.topic_source)} ble trukket tilbake {since}",
    )


@rule(
    "NIR-SOURCE-002",
    "The source may report for the municipality",
    "Kilden kan rapportere for kommunen",
    advice=Advice(
        "The source is not registered for this municipality: check the municipality number, or ask IMDi to add it.",
        "Kilden er ikke registrert for denne kommunen: kontroller kommunenummeret, eller be IMDi legge den til.",
    ),
)
def source_may_report_for_municipality(event: Registration, ctx: RuleContext) -> Explanation | None:
    # The predicate is the source's own (`Source.may_report`), so the support desk's check of a
    # replay says exactly what this rule will.
    source = ctx.registry.get(ctx.topic_source)
    if source is None or source.may_report(event.municipality, event.fact_date, ctx.today):
        return None
    current = source.municipalities_on(ctx.today)
    then = source.past_numbers(event.fact_date, ctx.today)
    allowed = ", ".join(sorted(current)) or "-"
    date = event.fact_date.isoformat()
    listed = ", ".join(sorted(then))
    also = f" (for a fact of {date} also {listed})" if then else ""
    også = f" (for et faktum {date} også {listed})" if then else ""
    return Explanation(
        f"source {source.id!r} may not report for municipality {event.municipality}; "
        f"it may report for {allowed}{also}",
        f"kilden {source.id!r} kan ikke rapportere for kommune {event.municipality}; "
        f"den kan rapportere for {allowed}{også}",
    )


@rule(
    "NIR-MUNI-001",
    "The municipality exists on the fact's date",
    "Kommunen finnes på faktadatoen",
    advice=Advice(
        "The municipality number did not exist on the fact's date (e.g. the 2024 changes): use the number in force "
        "then, or the municipality's number today.",
        "Kommunenummeret fantes ikke på faktadatoen (f.eks. endringene i 2024): bruk nummeret som gjaldt da, eller "
        "kommunens nummer i dag.",
    ),
)
def municipality_exists(event: Registration, ctx: RuleContext) -> Explanation | None:
    # The number in force on the fact's date, or one the municipality has had since (DOMAIN.md:
    # a municipality keeps reporting its own past under its current number): Bærum's 0219 for a
    # fact of 2019, and its 3024 or 3201 too; Haram's 1580 for 2023, when it was part of 1507.
    # An old number is no municipality after it ended (0219 in 2021, 3024 in 2024).
    if not (
        in_force_between(event.municipality, event.fact_date, ctx.today)
        and numbers_on(event.municipality, event.fact_date)
    ):
        date = event.fact_date.isoformat()
        return Explanation(
            f"municipality {event.municipality} does not exist on {date}",
            f"kommune {event.municipality} finnes ikke {date}",
        )
    return None


@rule(
    "NIR-MUNI-002",
    "The municipality is the person's municipality on the fact's date",
    "Kommunen er personens bostedskommune på faktadatoen",
    Severity.WARNING,
    advice=Advice(
        "A warning: the person lived elsewhere on that date (see residence below); check which municipality is responsible.",
        "En advarsel: personen bodde et annet sted den dagen (se bosted under); avklar hvilken kommune som har ansvaret.",
    ),
)
def municipality_of_residence(event: Registration, ctx: RuleContext) -> Explanation | None:
    # A warning, not a rejection: Folkeregisteret's data can lag behind a move. A protected
    # residence is never compared, so a message cannot reveal where the person lives. Both
    # numbers are read on the fact's date, through SSB's correspondence where one is from
    # another list (a residence recorded in 3024 Bærum is in 3201 Bærum from 2024, and 1507
    # Ålesund is in 1508 Ålesund or 1580 Haram).
    residence = residence_on(ctx.residences, event.fact_date)
    if residence is None or residence.protected or residence.municipality is None:
        return None
    if not same_municipality(residence.municipality, event.municipality, event.fact_date):
        date = event.fact_date.isoformat()
        # Named by the numbers in force on the date, as the reporting municipality knows them.
        recorded = residence.municipality
        numbers = sorted(numbers_on(recorded, event.fact_date)) or [recorded]
        lived_in = " or ".join(numbers) + (f" (recorded as {recorded})" if numbers != [recorded] else "")
        bodde_i = " eller ".join(numbers) + (f" (registrert som {recorded})" if numbers != [recorded] else "")
        return Explanation(
            f"municipality {event.municipality} reports, but the person lived in municipality "
            f"{lived_in} on {date} according to Folkeregisteret",
            f"kommune {event.municipality} rapporterer, men personen bodde i kommune "
            f"{bodde_i} {date} ifølge Folkeregisteret",
        )
    return None


@rule(
    "NIR-PERSON-001",
    "The person was not reported dead before the fact's date",
    "Personen var ikke meldt død før faktadatoen",
    Severity.WARNING,
    advice=Advice(
        "A warning: Folkeregisteret reported the person dead before this date; check the date and the person.",
        "En advarsel: Folkeregisteret har meldt personen død før denne datoen; kontroller dato og person.",
    ),
)
def not_dead_before_fact(event: Registration, ctx: RuleContext) -> Explanation | None:
    # A warning, not a rejection: a death can be registered in error and corrected, and an error
    # in NIR must never stop a person from taking part (DOMAIN.md).
    died = [s.on for s in ctx.person_states if s.state == "dead" and s.on < event.fact_date]
    if not died:
        return None
    on, fact = min(died).isoformat(), event.fact_date.isoformat()
    return Explanation(
        f"Folkeregisteret reports the person dead on {on}, before the fact's date {fact}: "
        "check the identity number",
        f"Folkeregisteret melder personen død {on}, før faktadatoen {fact}: kontroller identitetsnummeret",
    )


@rule(
    "NIR-PERSON-002",
    "The person's record was not ceased as a duplicate",
    "Personens oppføring er ikke opphørt som dublett",
    Severity.WARNING,
    advice=Advice(
        "A warning: the person's number was ceased as a duplicate; use the number in use now.",
        "En advarsel: personens nummer er opphørt som dublett; bruk nummeret som er i bruk nå.",
    ),
)
def not_ceased_as_duplicate(event: Registration, ctx: RuleContext) -> Explanation | None:
    # A warning: the registration is kept on the person the register knows; once Folkeregisteret
    # or a fagsystem links the record that continues, the two are one person.
    ceased = [s.on for s in ctx.person_states if s.state == "ceased_as_duplicate"]
    if not ceased:
        return None
    on = min(ceased).isoformat()
    return Explanation(
        f"Folkeregisteret ceased a record of this person as a duplicate on {on}: check that the "
        "identity number is the one in use",
        f"Folkeregisteret opphørte en oppføring av denne personen som dublett {on}: kontroller at "
        "identitetsnummeret er det som er i bruk",
    )


@rule(
    "NIR-DATE-001",
    "The fact's date is not in the future",
    "Faktadatoen er ikke fram i tid",
    advice=Advice(
        "The fact's date is in the future: register it when it has happened, or correct the date.",
        "Faktadatoen er fram i tid: registrer når det har skjedd, eller rett datoen.",
    ),
)
def fact_not_in_future(event: Registration, ctx: RuleContext) -> Explanation | None:
    if event.fact_date > ctx.today:
        date = event.fact_date.isoformat()
        return Explanation(f"factDate {date} is in the future", f"faktadatoen {date} er fram i tid")
    return None


@rule(
    "NIR-DATE-002",
    "The event was sent after the fact and not in the future",
    "Hendelsen ble sendt etter faktadatoen og ikke fram i tid",
    advice=Advice(
        "sentAt is before the fact or in the future: the fagsystem's clock or the date is wrong; correct and send again.",
        "sentAt er før faktadatoen eller fram i tid: fagsystemets klokke eller datoen er feil; rett og send på nytt.",
    ),
)
def sent_after_fact(event: Registration, ctx: RuleContext) -> Explanation | None:
    if event.sent_at > ctx.now + CLOCK_SKEW:
        sent = event.sent_at.isoformat()
        return Explanation(f"sentAt {sent} is in the future", f"sentAt {sent} er fram i tid")
    sent_on = norwegian_date(event.sent_at)
    # A fact in the future is NIR-DATE-001's to report; do not report it twice.
    if sent_on < event.fact_date <= ctx.today:
        sent, fact = sent_on.isoformat(), event.fact_date.isoformat()
        return Explanation(
            f"sentAt {sent} is before factDate {fact}", f"sentAt {sent} er før faktadatoen {fact}"
        )
    return None


# Pairs of (earlier, later) date fields that must be in order wherever they occur in a payload.
_ORDERED_PAIRS = (("periodStart", "periodEnd"), ("startDate", "endDate"))


def _objects(value: Any, path: str = "payload") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        yield path, value
        for key, child in value.items():
            yield from _objects(child, f"{path}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _objects(child, f"{path}[{index}]")


@rule(
    "NIR-DATE-003",
    "Periods in the payload end on or after they start",
    "Perioder i innholdet slutter samme dag eller etter at de starter",
    advice=Advice(
        "A period ends before it starts: swap or correct the dates, then edit and replay.",
        "En periode slutter før den starter: bytt om eller rett datoene, og rett og send på nytt.",
    ),
)
def periods_in_order(event: Registration, ctx: RuleContext) -> Explanation | None:
    for path, obj in _payload_objects(event):
        for first, last in _ORDERED_PAIRS:
            if obj.get(first) and obj.get(last) and obj[last] < obj[first]:
                return Explanation(
                    f"{path}.{last} {obj[last]} is before {path}.{first} {obj[first]}",
                    f"{path}.{last} {obj[last]} er før {path}.{first} {obj[first]}",
                )
    for later in ("plannedEndDate", "stoppedUntil"):
        value = event.payload.get(later)
        if value and value < event.fact_date.isoformat():
            fact = event.fact_date.isoformat()
            return Explanation(
                f"payload.{later} {value} is before factDate {fact}",
                f"payload.{later} {value} er før faktadatoen {fact}",
            )
    return None


# The rule whose warning marks a registration as late: the register keeps the mark, IMDi counts them.
LATE_REGISTRATION = "NIR-DEADLINE-001"


@rule(
    LATE_REGISTRATION,
    "Received within two months of the fact (else counted as late)",
    "Mottatt innen to måneder etter faktadatoen (ellers telt som for sent)",
    Severity.WARNING,
    advice=Advice(
        "A warning: registered more than two months after the fact; it is kept and counted as late.",
        "En advarsel: registrert mer enn to måneder etter faktadatoen; den er lagret og telles som for sen.",
    ),
)
def registered_in_time(event: Registration, ctx: RuleContext) -> Explanation | None:
    # Which registrations the deadline applies to, and how it is counted: `hub.domain.deadlines`.
    received_on = ctx.received_on
    if may_be_late(event.action, event.event_type) and is_late(event.fact_date, received_on):
        fact, received = event.fact_date.isoformat(), received_on.isoformat()
        return Explanation(
            f"received {received}, more than {LATE_AFTER_MONTHS} months after factDate {fact}",
            f"mottatt {received}, mer enn {LATE_AFTER_MONTHS} måneder etter faktadatoen {fact}",
        )
    return None


@rule(
    "NIR-DEADLINE-002",
    "Not more than 24 months back in time",
    "Ikke mer enn 24 måneder tilbake i tid",
    advice=Advice(
        "More than 24 months back cannot be registered: contact IMDi if the fact must still be recorded.",
        "Mer enn 24 måneder tilbake kan ikke registreres: kontakt IMDi hvis opplysningen likevel må inn.",
    ),
)
def not_too_old(event: Registration, ctx: RuleContext) -> Explanation | None:
    received_on = ctx.received_on
    if has_deadline(event.action, event.event_type) and is_too_old(event.fact_date, received_on):
        fact, received = event.fact_date.isoformat(), received_on.isoformat()
        return Explanation(
            f"factDate {fact} is more than {TOO_OLD_AFTER_MONTHS} months before {received}, "
            "when the hub received it",
            f"faktadatoen {fact} er mer enn {TOO_OLD_AFTER_MONTHS} måneder før {received}, "
            "da huben mottok den",
        )
    return None


# Upper bounds of plausible quantities, by payload field (hours per week in a full-time
# programme is 37.5; asylum seekers' training is a few hours a week).
_HOURS_PER_WEEK_MAX = 37.5
_HOURS_IN_PERIOD_PER_DAY_MAX = 10.0


@rule(
    "NIR-QTY-001",
    "Hours and durations are plausible",
    "Timer og varigheter er plausible",
    advice=Advice(
        "Hours or a duration are implausible: check the figure (often a typing error) and send again.",
        "Timer eller varighet er usannsynlige: kontroller tallet (ofte en skrivefeil) og send på nytt.",
    ),
)
def plausible_quantities(event: Registration, ctx: RuleContext) -> Explanation | None:
    for path, obj in _payload_objects(event):
        for name, value in obj.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                return Explanation(f"{path}.{name} is negative", f"{path}.{name} er negativ")
        per_week = obj.get("hoursPerWeek")
        if per_week is not None and per_week > _HOURS_PER_WEEK_MAX:
            return Explanation(
                f"{path}.hoursPerWeek {per_week} is more than {_HOURS_PER_WEEK_MAX}",
                f"{path}.hoursPerWeek {per_week} er mer enn {_HOURS_PER_WEEK_MAX}",
            )
        if obj.get("periodStart") and obj.get("periodEnd"):
            days = (
                dt.date.fromisoformat(obj["periodEnd"]) - dt.date.fromisoformat(obj["periodStart"])
            ).days + 1
            hours = sum(
                obj.get(k) or 0.0
                for k in (
                    "absentHours",
                    "norwegianHours",
                    "socialStudiesHours",
                    "extraNorwegianHours",
                    "totalHours",
                )
            )
            if days > 0 and hours > days * _HOURS_IN_PERIOD_PER_DAY_MAX:  # reversed periods: NIR-DATE-003
                return Explanation(
                    f"{path} has {hours:g} hours in {days} days",
                    f"{path} har {hours:g} timer på {days} dager",
                )
        absent, scheduled = obj.get("absentHours"), obj.get("scheduledHours")
        if absent is not None and scheduled is not None and absent > scheduled:
            return Explanation(
                f"{path}.absentHours is more than {path}.scheduledHours",
                f"{path}.absentHours er mer enn {path}.scheduledHours",
            )
    return None


_LANGUAGE_CODE = re.compile(r"^[a-z]{3}$")


@rule(
    "NIR-CODE-001",
    "Language codes are ISO 639-3",
    "Språkkoder er ISO 639-3",
    advice=Advice(
        "Use a three-letter ISO 639-3 language code (e.g. 'tir', 'ara') and send again.",
        "Bruk en språkkode på tre bokstaver etter ISO 639-3 (f.eks. 'tir', 'ara') og send på nytt.",
    ),
)
def language_codes(event: Registration, ctx: RuleContext) -> Explanation | None:
    for path, obj in _payload_objects(event):
        for name in ("motherTongue", "language"):
            value = obj.get(name)
            if value is not None and not _LANGUAGE_CODE.match(value):
                return Explanation(
                    f"{path}.{name} is not an ISO 639-3 code (three lower-case letters)",
                    f"{path}.{name} er ikke en ISO 639-3-kode (tre små bokstaver)",
                )
        for value in obj.get("otherLanguages") or []:
            if not _LANGUAGE_CODE.match(value):
                return Explanation(
                    f"{path}.otherLanguages has a code that is not ISO 639-3",
                    f"{path}.otherLanguages har en kode som ikke er ISO 639-3",
                )
    return None


@rule(
    "NIR-CODE-002",
    "Every code is one this hub knows",
    "Alle koder er kjent for huben",
    Severity.WARNING,
    advice=Advice(
        "A warning: a code this hub does not know yet was kept as UNKNOWN; ask IMDi if it should be added.",
        "En advarsel: en kode huben ikke kjenner ennå, er lagret som UNKNOWN; spør IMDi om den skal legges til.",
    ),
)
def known_codes(event: Registration, ctx: RuleContext) -> Explanation | None:
    # A symbol a newer writer added arrives as the enum's default (UNKNOWN, NOT_REGISTERED...).
    for path, obj in _payload_objects(event):
        for name, value in obj.items():
            if value == "UNKNOWN":
                return Explanation(
                    f"{path}.{name} has a value this hub does not know; it was kept as UNKNOWN",
                    f"{path}.{name} har en verdi huben ikke kjenner; den er lagret som UNKNOWN",
                )
    return None


@rule(
    "NIR-CODE-003",
    "An end has its reason",
    "En avslutning har sin årsak",
    Severity.WARNING,
    advice=Advice(
        "A warning: add the end reason in the fagsystem and send a correction.",
        "En advarsel: legg inn årsaken til avslutningen i fagsystemet og send en retting.",
    ),
)
def end_has_reason(event: Registration, ctx: RuleContext) -> Explanation | None:
    # SSB's exit figures count ends by reason; NOT_REGISTERED is also what a reason this hub does
    # not know arrives as. A warning: the end-reason list is unconfirmed (DOMAIN.md).
    ended = event.event_type in ROLES and ROLES[event.event_type][1] is Role.END
    if ended and event.payload.get("endReason") == "NOT_REGISTERED":
        return Explanation(
            "the end has no reason (endReason NOT_REGISTERED); register why the participation "
            "ended (the list of end reasons is not yet confirmed)",
            "avslutningen har ingen årsak (endReason NOT_REGISTERED); registrer hvorfor deltakelsen "
            "ble avsluttet (listen over avslutningsårsaker er ikke bekreftet ennå)",
        )
    return None


# --- Code-list semantics (issue 15, fault 4): what a value means, beyond its being on the list.
# These records are what a person later documents permanent residence and citizenship with.

_DECISIONS = ("INTRODUCTION_PROGRAMME_DECISION", "TRAINING_DECISION")
_STOPS = ("INTRODUCTION_PROGRAMME_STOPPED", "TRAINING_STOPPED")
_FINAL_TESTS = ("TRAINING_FINAL_TEST", "ASYLUM_SEEKER_FINAL_TEST")


def _blank(text: Any) -> bool:
    return not isinstance(text, str) or not text.strip()


def _of_type(event: Registration, *event_types: str) -> bool:
    """Whether the event registers or corrects a fact of one of these types. An annulment is not
    judged on its payload (it is the original's, ignored): a record registered before these rules
    existed must stay possible to withdraw."""
    return event.event_type in event_types and event.action != Action.ANNUL.value


@rule(
    "NIR-CODE-004",
    "A refusal has its reasons",
    "Et avslag har sine begrunnelser",
    advice=Advice(
        "Add the reasons for the refusal in the fagsystem and send again.",
        "Legg inn begrunnelsene for avslaget i fagsystemet og send på nytt.",
    ),
)
def refusal_has_reasons(event: Registration, ctx: RuleContext) -> Explanation | None:
    # The law asks for a refused programme "with the reason" and refused training "with reasons".
    if not _of_type(event, *_DECISIONS) or event.payload.get("outcome") != "REFUSED":
        return None
    if event.event_type == "INTRODUCTION_PROGRAMME_DECISION":
        missing = _blank(event.payload.get("refusalReason"))
    else:
        reasons = event.payload.get("refusalReasons") or []
        missing = not reasons or any(_blank(r) for r in reasons)
    if missing:
        return Explanation(
            "a refusal must give its reasons (refusalReason or refusalReasons, none blank)",
            "et avslag må oppgi begrunnelsen (refusalReason eller refusalReasons, ingen tomme)",
        )
    return None


@rule(
    "NIR-CODE-005",
    "A granted decision has its measures and duration, or its scope",
    "Et innvilget vedtak har sine tiltak og sin varighet, eller sitt omfang",
    advice=Advice(
        "Add the measures with hours per week and the duration (or the training's scope) and send again.",
        "Legg inn tiltakene med timer per uke og varigheten (eller opplæringens omfang) og send på nytt.",
    ),
)
def grant_has_measures_and_duration(event: Registration, ctx: RuleContext) -> Explanation | None:
    # The law asks for a granted programme with the scope and duration of its measures, and for
    # granted training with its scope.
    if not _of_type(event, *_DECISIONS) or event.payload.get("outcome") != "GRANTED":
        return None
    if event.event_type == "TRAINING_DECISION":
        if not event.payload.get("scopeHours"):
            return Explanation(
                "granted training must give its scope in hours (scopeHours)",
                "innvilget opplæring må oppgi omfanget i timer (scopeHours)",
            )
        return None
    measures = event.payload.get("measures") or []
    if not measures or not event.payload.get("durationMonths"):
        return Explanation(
            "a granted programme must list its measures and give its duration (measures, durationMonths)",
            "et innvilget program må liste tiltakene og oppgi varigheten (measures, durationMonths)",
        )
    for index, measure in enumerate(measures):
        if not measure.get("hoursPerWeek"):
            return Explanation(
                f"payload.measures[{index}] has no scope (hoursPerWeek)",
                f"payload.measures[{index}] har ikke noe omfang (hoursPerWeek)",
            )
    return None


# A temporary stop lasts at most three months (DOMAIN.md: programme end).
TEMPORARY_STOP_MONTHS = 3


@rule(
    "NIR-DATE-006",
    "A temporary stop has its end date",
    "En midlertidig stans har sin sluttdato",
    advice=Advice(
        "Add the end date of the temporary stop and send again.",
        "Legg inn sluttdatoen for den midlertidige stansen og send på nytt.",
    ),
)
def temporary_stop_has_end(event: Registration, ctx: RuleContext) -> Explanation | None:
    if (
        _of_type(event, *_STOPS)
        and event.payload.get("stopKind") == "TEMPORARY"
        and not event.payload.get("stoppedUntil")
    ):
        return Explanation(
            "a temporary stop must say until when (stoppedUntil)",
            "en midlertidig stans må oppgi hvor lenge den varer (stoppedUntil)",
        )
    return None


@rule(
    "NIR-DATE-007",
    "A temporary stop lasts at most three months",
    "En midlertidig stans varer høyst tre måneder",
    advice=Advice(
        "A temporary stop lasts at most three months: correct the dates, or register a permanent stop.",
        "En midlertidig stans varer høyst tre måneder: rett datoene, eller registrer permanent stans.",
    ),
)
def temporary_stop_at_most_three_months(event: Registration, ctx: RuleContext) -> Explanation | None:
    if not _of_type(event, *_STOPS) or event.payload.get("stopKind") != "TEMPORARY":
        return None
    until = event.payload.get("stoppedUntil")
    # stoppedUntil is the stop's last day; the stop begins on its fact date.
    latest = period_end(event.fact_date, months=TEMPORARY_STOP_MONTHS).isoformat()
    if until and until > latest:
        return Explanation(
            f"a temporary stop lasts at most {TEMPORARY_STOP_MONTHS} months: stoppedUntil {until} is "
            f"after {latest}; a longer stop is a permanent one",
            f"en midlertidig stans varer høyst {TEMPORARY_STOP_MONTHS} måneder: stoppedUntil {until} er "
            f"etter {latest}; en lengre stans er permanent",
        )
    return None


@rule(
    "NIR-DATE-008",
    "A permanent stop has no end date",
    "En permanent stans har ingen sluttdato",
    advice=Advice(
        "Remove the end date of the permanent stop (or register it as temporary) and send again.",
        "Fjern sluttdatoen på den permanente stansen (eller registrer den som midlertidig) og send på nytt.",
    ),
)
def permanent_stop_has_no_end(event: Registration, ctx: RuleContext) -> Explanation | None:
    if (
        _of_type(event, *_STOPS)
        and event.payload.get("stopKind") == "PERMANENT"
        and event.payload.get("stoppedUntil")
    ):
        return Explanation(
            "a permanent stop has no end date (stoppedUntil must be empty); a stop that ends is temporary",
            "en permanent stans har ingen sluttdato (stoppedUntil skal være tom); en stans som tar slutt, "
            "er midlertidig",
        )
    return None


# The longest leave each reason allows, in days, from DOMAIN.md's code list: pregnancy up to 10
# days; birth 20 days for the mother (7 for the father: the register cannot tell them apart);
# care after birth or adoption up to ten months (306 days: the longest ten calendar months); long
# illness up to a year. Welfare and other leave have no stated limit. Whether the law counts these
# in calendar or working days is not confirmed, hence a warning.
LEAVE_DAYS_MAX: dict[str, int] = {
    "PREGNANCY": 10,
    "BIRTH": 20,
    "CARE_AFTER_BIRTH_OR_ADOPTION": 306,
    "LONG_ILLNESS": 366,
}


@rule(
    "NIR-QTY-003",
    "A leave is no longer than its reason allows",
    "En permisjon er ikke lengre enn årsaken gir rett til",
    Severity.WARNING,
    advice=Advice(
        "A warning: the leave is longer than its reason usually allows; check the dates and the reason.",
        "En advarsel: permisjonen er lengre enn årsaken vanligvis gir rett til; kontroller datoer og årsak.",
    ),
)
def leave_length_fits_reason(event: Registration, ctx: RuleContext) -> Explanation | None:
    leave = event.payload.get("leave")
    if not _of_type(event, "INTRODUCTION_PROGRAMME_LEAVE", "TRAINING_LEAVE") or not isinstance(leave, dict):
        return None
    reason, days = leave.get("reason"), leave.get("durationDays")
    limit = LEAVE_DAYS_MAX.get(reason) if isinstance(reason, str) else None
    if limit is not None and isinstance(days, int) and days > limit:
        return Explanation(
            f"a leave for {reason} of {days} days is longer than the {limit} days that reason "
            "allows; check the duration or the reason (the exact limits are not yet confirmed)",
            f"en permisjon for {reason} på {days} dager er lengre enn de {limit} dagene årsaken gir "
            "rett til; kontroller varigheten eller årsaken (de nøyaktige grensene er ikke bekreftet ennå)",
        )
    return None


@rule(
    "NIR-CODE-006",
    "A doctor's-note exemption covers the final test only",
    "Fritak med legeerklæring gjelder bare avsluttende prøve",
    advice=Advice(
        "A doctor's note exempts from the final test only: change the exemption's ground or scope.",
        "Legeerklæring gir bare fritak fra avsluttende prøve: endre grunnlaget eller omfanget for fritaket.",
    ),
)
def doctors_note_for_final_test_only(event: Registration, ctx: RuleContext) -> Explanation | None:
    if (
        _of_type(event, "TRAINING_EXEMPTION")
        and event.payload.get("ground") == "HEALTH_DOCTORS_NOTE"
        and event.payload.get("exemptFrom") == "PARTICIPATION"
    ):
        return Explanation(
            "a doctor's note (HEALTH_DOCTORS_NOTE) exempts from the final test only, not from "
            "taking part; for participation the ground is HEALTH_OR_WEIGHTY_REASONS",
            "legeerklæring (HEALTH_DOCTORS_NOTE) gir bare fritak fra avsluttende prøve, ikke fra "
            "deltakelse; for deltakelse er grunnlaget HEALTH_OR_WEIGHTY_REASONS",
        )
    return None


@rule(
    "NIR-CODE-007",
    "C1 is a goal level, not a partial-test result",
    "C1 er et mål, ikke et resultat på en delprøve",
    advice=Advice(
        "C1 is a goal, not a result: record the result actually reached (at most B2).",
        "C1 er et mål, ikke et resultat: registrer resultatet som faktisk ble oppnådd (høyst B2).",
    ),
)
def no_c1_test_result(event: Registration, ctx: RuleContext) -> Explanation | None:
    if not _of_type(event, *_FINAL_TESTS):
        return None
    for index, partial in enumerate(event.payload.get("partialResults") or []):
        if partial.get("result") == "C1":
            return Explanation(
                f"payload.partialResults[{index}] is C1; a partial test in Norwegian gives at most "
                "B2 (C1 is only a goal level)",
                f"payload.partialResults[{index}] er C1; en delprøve i norsk gir høyst B2 (C1 er "
                "bare et mål)",
            )
    return None


@rule(
    "NIR-CODE-008",
    "Each partial test appears once in a result",
    "Hver delprøve står én gang i et resultat",
    advice=Advice(
        "One final test gives one result per partial test: remove the repeated one, or send the retake as its own "
        "final test with its own date.",
        "En avsluttende prøve gir ett resultat per delprøve: fjern den som står to ganger, eller send den nye prøven "
        "som en egen avsluttende prøve med sin egen dato.",
    ),
)
def each_partial_test_once(event: Registration, ctx: RuleContext) -> Explanation | None:
    # Two results for one skill in one test cannot both be the person's: the register would have
    # to guess which one documents the level. UNKNOWN is a skill this reader does not know (a
    # newer writer's), so two of them may be two different skills.
    if not _of_type(event, *_FINAL_TESTS):
        return None
    seen: dict[str, int] = {}
    for index, partial in enumerate(event.payload.get("partialResults") or []):
        skill = partial.get("skill")
        if skill in seen and skill != "UNKNOWN":
            return Explanation(
                f"payload.partialResults[{index}] repeats the partial test {skill} of "
                f"payload.partialResults[{seen[skill]}]",
                f"payload.partialResults[{index}] gjentar delprøven {skill} fra "
                f"payload.partialResults[{seen[skill]}]",
            )
        if isinstance(skill, str):
            seen.setdefault(skill, index)
    return None


# The social-studies test has 38 questions and is passed at 29 (the 38 is enforced on the value's
# shape, NIR-QTY-002).
SOCIAL_STUDIES_PASS_AT = 29
SOCIAL_STUDIES_QUESTIONS = 38


@rule(
    "NIR-QTY-004",
    "A social-studies result agrees with its score (passed at 29 of 38)",
    "Resultatet i samfunnskunnskap stemmer med poengene (bestått ved 29 av 38)",
    advice=Advice(
        "Passed or not must agree with the score (pass at 29 of 38): correct one of them.",
        "Bestått eller ikke må stemme med poengene (bestått ved 29 av 38): rett det ene.",
    ),
)
def social_studies_pass_fits_score(event: Registration, ctx: RuleContext) -> Explanation | None:
    test = event.payload.get("socialStudiesTest") if _of_type(event, *_FINAL_TESTS) else None
    if not isinstance(test, dict) or test.get("correctAnswers") is None:
        return None
    correct, passed = test["correctAnswers"], test.get("passed")
    if passed is (correct >= SOCIAL_STUDIES_PASS_AT):
        return None
    q, at = SOCIAL_STUDIES_QUESTIONS, SOCIAL_STUDIES_PASS_AT
    said_en, said_nb = ("passed", "bestått") if passed else ("not passed", "ikke bestått")
    return Explanation(
        f"the social-studies test is {said_en} with {correct} of {q} correct; it is passed at {at}",
        f"prøven i samfunnskunnskap er {said_nb} med {correct} av {q} riktige; den er bestått ved {at}",
    )


@rule(
    "NIR-QTY-005",
    "A completed culture-and-values course has its hours",
    "Et fullført kurs i kultur og verdier har sine timer",
    advice=Advice(
        "Add the hours of the completed course and send again.",
        "Legg inn timene for det fullførte kurset og send på nytt.",
    ),
)
def completed_culture_course_has_hours(event: Registration, ctx: RuleContext) -> Explanation | None:
    if (
        _of_type(event, "CULTURE_AND_VALUES_TRAINING")
        and event.payload.get("completed") is True
        and not event.payload.get("hoursCompleted")
    ):
        return Explanation(
            "a completed course in Norwegian culture and values must give the hours taken (hoursCompleted)",
            "et fullført kurs i norsk kultur og norske verdier må oppgi timene (hoursCompleted)",
        )
    return None


def _fact_of(event: Registration, ctx: RuleContext) -> Fact:
    """The incoming event as a fact of the person's timeline."""
    key = ctx.target.key if ctx.target is not None else str(event.event_id)
    action = Action.__members__.get(event.action, Action.REGISTER)  # the actions' names are their values
    return Fact(
        key,
        event.event_type,
        event.fact_date,
        event.payload,
        sequence=2**62,
        action=action,
        sent_at=event.sent_at,
    )


# The lifecycle rules all ask the same question of the same event: answer it once.
_last_transition = threading.local()


def _transition_problem(event: Registration, ctx: RuleContext) -> Problem | None:
    return _for_the_last(
        _last_transition, (event, ctx), lambda: transition_problem(ctx.history, _fact_of(event, ctx))
    )


def _lifecycle(code: str) -> Check:
    """A rule that reports `code` when the lifecycle finds that problem with the event."""

    def check(event: Registration, ctx: RuleContext) -> Explanation | None:
        if not has_lifecycle(event.event_type) or event.action == "ANNUL":
            return None
        if event.action == "CORRECT" and ctx.target is None:
            return None  # it waits for what it corrects (NIR-CORR-002); its place is judged then
        problem = _transition_problem(event, ctx)
        if problem is not None and problem.code == code:
            return Explanation(problem.en, problem.nb)
        return None

    check.__name__ = f"lifecycle_{code.lower().replace('-', '_')}"
    return check


rule(
    "NIR-LIFE-001",
    "What the event depends on has arrived (else it is held)",
    "Det hendelsen bygger på, er kommet (ellers holdes den tilbake)",
    Severity.HOLD,
    advice=Advice(
        "Held until what it builds on arrives (e.g. the start): send that registration first; it is then tried again.",
        "Holdt tilbake til det den bygger på kommer (f.eks. starten): send den registreringen først; så prøves den igjen.",
    ),
)(_lifecycle("NIR-LIFE-001"))
rule(
    "NIR-LIFE-002",
    "No second start of a running programme or training",
    "Ingen ny start av et program eller en opplæring som er i gang",
    advice=Advice(
        "The programme or training is already running (see the state below): correct the date, or send an end first.",
        "Programmet eller opplæringen er allerede i gang (se tilstanden under): rett datoen, eller send en avslutning først.",
    ),
)(_lifecycle("NIR-LIFE-002"))
rule(
    "NIR-LIFE-003",
    "No facts after a stop without a new decision",
    "Ingen opplysninger etter stans uten nytt vedtak",
    advice=Advice(
        "After a permanent stop only an end is allowed: register a new decision first, or send the end.",
        "Etter permanent stans er bare avslutning tillatt: registrer et nytt vedtak først, eller send avslutningen.",
    ),
)(_lifecycle("NIR-LIFE-003"))
rule(
    "NIR-LIFE-004",
    "No participation facts after the end",
    "Ingen deltakelsesopplysninger etter avslutning",
    advice=Advice(
        "The scheme has ended (see the state below): correct the dates, or correct the end if it was wrong.",
        "Ordningen er avsluttet (se tilstanden under): rett datoene, eller rett avslutningen hvis den var feil.",
    ),
)(_lifecycle("NIR-LIFE-004"))
rule(
    "NIR-DATE-004",
    "Dates are in order with the person's other facts",
    "Datoene stemmer med personens andre opplysninger",
    advice=Advice(
        "The date does not fit the person's other facts (see the registrations below): correct the date or the earlier fact.",
        "Datoen passer ikke med personens andre opplysninger (se registreringene under): rett datoen eller den tidligere opplysningen.",
    ),
)(_lifecycle("NIR-DATE-004"))


@rule(
    "NIR-CORR-001",
    "A correction or annulment names what it corrects; a registration does not",
    "En retting eller annullering viser til det den retter; en registrering gjør ikke det",
    advice=Advice(
        "A correction or annulment must name the event it corrects, and a registration must not: fix the action or the reference.",
        "En retting eller annullering må vise til hendelsen den retter, og en registrering skal ikke: rett handlingen eller henvisningen.",
    ),
)
def correction_reference(event: Registration, ctx: RuleContext) -> Explanation | None:
    if event.action == "UNKNOWN":
        return Explanation("the action is not known to this hub", "handlingen er ukjent for huben")
    if event.action == "REGISTER" and event.corrects_event_id is not None:
        return Explanation(
            "a REGISTER event must not have correctsEventId",
            "en REGISTER-hendelse skal ikke ha correctsEventId",
        )
    if event.action in {"CORRECT", "ANNUL"} and event.corrects_event_id is None:
        return Explanation(
            f"a {event.action} event needs correctsEventId",
            f"en {event.action}-hendelse må ha correctsEventId",
        )
    return None


@rule(
    "NIR-CORR-002",
    "The registration being corrected has arrived (else the correction is held)",
    "Registreringen som rettes, er kommet (ellers holdes rettingen tilbake)",
    Severity.HOLD,
    advice=Advice(
        "Held until the registration it corrects arrives: send that first, or check the referenced event id.",
        "Holdt tilbake til registreringen som rettes, kommer: send den først, eller kontroller hendelses-id-en det vises til.",
    ),
)
def correction_target_arrived(event: Registration, ctx: RuleContext) -> Explanation | None:
    if event.corrects_event_id is not None and event.action in {"CORRECT", "ANNUL"} and ctx.target is None:
        return Explanation(
            "the registration it corrects is not in the register",
            "registreringen den retter, finnes ikke i registeret",
        )
    return None


@rule(
    "NIR-CORR-003",
    "A correction fits the registration it corrects",
    "En retting passer til registreringen den retter",
    advice=Advice(
        "A correction must be of the same person and event type, and not of an annulled registration: check the reference.",
        "En retting må gjelde samme person og hendelsestype, og ikke en annullert registrering: kontroller henvisningen.",
    ),
)
def correction_fits_target(event: Registration, ctx: RuleContext) -> Explanation | None:
    target = ctx.target
    if target is None or event.action not in {"CORRECT", "ANNUL"}:
        return None
    if not target.same_person:
        return Explanation(
            "the registration it corrects belongs to another person",
            "registreringen den retter, gjelder en annen person",
        )
    if target.event_type != event.event_type:
        return Explanation(
            f"it corrects a {target.event_type} with a {event.event_type}",
            f"den retter en {target.event_type} med en {event.event_type}",
        )
    return None


@rule(
    "NIR-CORR-004",
    "A correction or annulment comes from a source of the municipality that registered the original",
    "En retting eller annullering kommer fra en kilde for kommunen som registrerte originalen",
    advice=Advice(
        "Only the municipality that registered it (or the one it became) may correct or annul a "
        "registration: ask that municipality, or IMDi, who can approve this correction on the ticket.",
        "Bare kommunen som registrerte den (eller kommunen den ble til) kan rette eller annullere en "
        "registrering: be den kommunen, eller IMDi, som kan godkjenne rettingen på saken.",
    ),
)
def correction_by_the_owner(event: Registration, ctx: RuleContext) -> Explanation | None:
    # A record a person later shows for permanent residence belongs to the municipality that
    # registered it; a municipality merged or renumbered since lives on in its successor(s).
    target, source = ctx.target, ctx.registry.get(ctx.topic_source)
    if (
        target is None
        or source is None
        or event.action not in {"CORRECT", "ANNUL"}
        or not target.municipality
    ):
        return None
    if "NIR-CORR-004" in ctx.approved:  # IMDi approved this very message on its ticket
        return None
    owners = {target.municipality, *numbers_on(target.municipality, ctx.today)}
    if any(source.reports_for(number, ctx.today) for number in owners):
        return None
    now = ", ".join(sorted(owners - {target.municipality}))
    became, ble = (f" (now {now})", f" (nå {now})") if now else ("", "")
    return Explanation(
        f"the registration was made by municipality {target.municipality}{became}, and source "
        f"{source.id!r} does not report for it",
        f"registreringen ble gjort av kommune {target.municipality}{ble}, og kilden {source.id!r} "
        "rapporterer ikke for den",
    )


def _category_rule(
    event_type: str, scheme_en: str, scheme_nb: str, pick: Callable[[Categories], Category]
) -> Check:
    """A warning when a granted decision meets a person whose category for the scheme is "not
    applicable" on the decision's date (only when the register knows a residence permit)."""

    def check(event: Registration, ctx: RuleContext) -> Explanation | None:
        if event.event_type != event_type or event.payload.get("outcome") != "GRANTED":
            return None
        result = categories_from_facts(ctx.history, on=event.fact_date, birth_date=_birth_date(event, ctx))
        if result is None or pick(result) is not Category.NOT_APPLICABLE:
            return None
        why = (
            "; ".join(result.notes)
            or f"the permit's ground is {result.basis.ground if result.basis else '-'}"
        )
        unconfirmed_en, unconfirmed_nb = _unconfirmed(result)
        return Explanation(
            # The unconfirmed mark before the notes: a long message is cut at the end.
            f"{scheme_en} granted, but the person's category is not applicable on {event.fact_date}"
            f"{unconfirmed_en} ({why})",
            f"{scheme_nb} innvilget, men personens kategori er ikke gjeldende {event.fact_date}"
            f"{unconfirmed_nb} ({why})",
        )

    check.__name__ = f"category_{event_type.lower()}"
    return check


def _unconfirmed(result: Categories) -> tuple[str, str]:
    """What a category warning adds where the category rests on a rule DOMAIN.md marks
    unconfirmed (its notes say which): that it is only a warning for that reason."""
    if not any("unconfirmed" in note for note in result.notes):
        return "", ""
    return (
        "; a rule DOMAIN.md marks unconfirmed decides this, so it is a warning only",
        "; en regel DOMAIN.md merker som ubekreftet avgjør dette, så det er bare en advarsel",
    )


def _birth_date(event: Registration, ctx: RuleContext) -> dt.date | None:
    if not event.national_id:
        return None
    try:
        return parse_national_id(
            event.national_id, rule=ctx.check_digit_rule, allow_synthetic=ctx.allow_synthetic_identifiers
        ).birth_date
    except InvalidIdentifier:
        return None


rule(
    "NIR-RIGHT-001",
    "A granted programme decision fits the person's category",
    "Et innvilget programvedtak passer personens kategori",
    Severity.WARNING,
    advice=Advice(
        "A warning: the person's category (see below) gives no right or duty here; check the residence permit.",
        "En advarsel: personens kategori (se under) gir ikke rett eller plikt her; kontroller oppholdstillatelsen.",
    ),
)(
    _category_rule(
        "INTRODUCTION_PROGRAMME_DECISION",
        "the introduction programme is",
        "introduksjonsprogram er",
        lambda c: c.programme,
    )
)
rule(
    "NIR-RIGHT-002",
    "A granted training decision fits the person's category",
    "Et innvilget opplæringsvedtak passer personens kategori",
    Severity.WARNING,
    advice=Advice(
        "A warning: the person's category (see below) does not fit this fact; check the permit and the age.",
        "En advarsel: personens kategori (se under) passer ikke med opplysningen; kontroller tillatelsen og alderen.",
    ),
)(
    _category_rule(
        "TRAINING_DECISION",
        "training in Norwegian and social studies is",
        "opplæring i norsk og samfunnskunnskap er",
        lambda c: c.training,
    )
)


@rule(
    "NIR-RIGHT-003",
    "Training records a track or a goal level as the person's act asks",
    "Opplæringen registrerer spor eller mål slik personens lov krever",
    Severity.WARNING,
    advice=Advice(
        "A warning: a track belongs to the introduction act, a goal level to the integration act; check the permit date.",
        "En advarsel: spor hører til introduksjonsloven, mål til integreringsloven; kontroller datoen for tillatelsen.",
    ),
)
def track_or_goal_by_act(event: Registration, ctx: RuleContext) -> Explanation | None:
    # Permits granted before 2021 fall under the introduction act, which records a track; later
    # ones under the integration act, which records a goal level instead. The act runs from the
    # permit the person's category rests on (the first of the ground that counts, `hub.domain.
    # rights`). A warning: the register may not hold every earlier permit.
    if not _of_type(event, "TRAINING_STARTED"):
        return None
    track, goal = event.payload.get("track"), event.payload.get("goalLevel")
    result = categories_from_facts(ctx.history, on=event.fact_date, birth_date=_birth_date(event, ctx))
    basis = result.basis if result is not None else None
    if basis is None or "UNKNOWN" in (track, goal):
        return None
    granted = basis.granted_on.isoformat()
    explanation = _track_or_goal(basis, track, goal, granted)
    if explanation is None or result is None:
        return explanation
    # A change of ground or an appeal decided which permit counts: DOMAIN.md has it unconfirmed.
    unconfirmed_en, unconfirmed_nb = _unconfirmed(result)
    return Explanation(explanation.en + unconfirmed_en, explanation.nb + unconfirmed_nb)


def _track_or_goal(basis: Permit, track: Any, goal: Any, granted: str) -> Explanation | None:
    if basis.granted_on < INTEGRATION_ACT_FROM and (track is None or goal is not None):
        return Explanation(
            f"the residence permit the person's rights rest on was granted {granted}, before "
            f"{INTEGRATION_ACT_FROM.year}: under the introduction act training records a track, not a "
            "goal level (if the register lacks a permit, register it)",
            f"oppholdstillatelsen personens rettigheter bygger på, ble gitt {granted}, før "
            f"{INTEGRATION_ACT_FROM.year}: etter introduksjonsloven registreres spor, ikke mål (mangler "
            "registeret en tillatelse, registrer den)",
        )
    if basis.granted_on >= INTEGRATION_ACT_FROM and (goal is None or track is not None):
        return Explanation(
            f"the residence permit the person's rights rest on was granted {granted}, in "
            f"{INTEGRATION_ACT_FROM.year} or later: under the integration act training records a goal "
            "level, not a track (if the register lacks an earlier permit, register it)",
            f"oppholdstillatelsen personens rettigheter bygger på, ble gitt {granted}, i "
            f"{INTEGRATION_ACT_FROM.year} eller senere: etter integreringsloven registreres mål, ikke "
            "spor (mangler registeret en tidligere tillatelse, registrer den)",
        )
    return None
