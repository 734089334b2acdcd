"""The Folkeregister connector: follows Folkeregisteret's event feed and publishes the address
changes of persons known to the register, keyed by national id.

- **Position.** The next sequence number to read is kept on a compacted topic, written in the
  same Kafka transaction as the page's address changes. A restart resumes exactly after the
  last committed page: no page is skipped and none is published twice.
- **Only known persons.** Feed items about persons the register does not know are passed over.
  A person who becomes known later is looked up once (`/personer/{id}`): their current address,
  so an address that changed before they became known is not missed, and what the document
  says that the feed told before (other numbers: an identity change; a death; a duplicate
  ceased), so that their registrations under another number are not a second person and one
  after a death is warned about. A look-up's changes carry the look-up's number, negated, as
  their sequence number.
- **References.** A feed item names the person but not the address, so the connector fetches the
  person as they are now. Items other than address changes and person events are passed over.
- **Person events.** An identity change (`endringIIdentifikasjonsnummer`), a death
  (`personErDoed`) and a duplicate cessation (`personErOpphoertSomDublett`) are published on
  the same topic as `IDENTITY_CHANGED`, `PERSON_DIED` and `PERSON_CEASED_AS_DUPLICATE`
  (contract v2). For an identity change the person document is read first, whoever it is
  about: it lists the number in use (`status: iBruk`) and the ceased ones (`opphoert`), and the
  change is published when the register knows any of them. After it, the page's later items
  about the new number count as known.
- **Authentication** is a `TokenProvider` chosen by `NIR_FOLKEREGISTER_AUTH`; the real service
  wants a Maskinporten access token with scope `folkeregister:deling/offentligmedhjemmel`, which
  the connector can get itself (`hub.maskinporten`) or read from a file another process renews.
- **Politeness.** A 429 answer is retried after its `Retry-After`; a 5xx or a broken connection
  after a growing pause.

Nothing here logs an identifier or an address: a protected address must never be shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.calendar import norwegian_date
from hub.domain.identifiers import is_ascii_digits
from hub.errors import ConfigurationError, HubError
from hub.kafka.connection import KafkaConnection
from hub.maskinporten import MaskinportenTokens, client_from_settings
from hub.ops import metrics
from hub.register.unit_of_work import in_transaction
from hub.schemas.codec import ADDRESS_CHANGE
from hub.schemas.contract import ContractError, from_json

log = logging.getLogger(__name__)

POSITION_KEY = b"position"
# Folkeregisteret's event types (hendelsetype) that concern a residential address.
EVENT_TYPES = {
    "endringIBostedsadresse": "ADDRESS_CHANGED",
    "endringIBostedsadresseUtenFlytting": "ADDRESS_CHANGED_WITHOUT_MOVING",
    "endringIOppholdsadresse": "TEMPORARY_ADDRESS_CHANGED",
    "personErBosatt": "PERSON_SETTLED",
    "personErUtflyttet": "PERSON_EMIGRATED",
    "endringIAdressebeskyttelse": "ADDRESS_PROTECTION_CHANGED",
}
# Event types about the person rather than an address (contract v2); see `person_event`.
PERSON_EVENT_TYPES = {
    "endringIIdentifikasjonsnummer": "IDENTITY_CHANGED",
    "personErDoed": "PERSON_DIED",
    "personErOpphoertSomDublett": "PERSON_CEASED_AS_DUPLICATE",
}
PROTECTION = {
    "ugradert": "UNGRADED",
    "klientadresse": "CLIENT_ADDRESS",
    "fortrolig": "CONFIDENTIAL",
    "strengtFortrolig": "STRICTLY_CONFIDENTIAL",
}


class FolkeregisterUnavailable(HubError):
    retriable = True
    code = "NIR-FREG-UNAVAILABLE"


# --- authentication ------------------------------------------------------------------------


class TokenProvider(Protocol):
    async def token(self) -> str | None: ...


class NoToken:
    """For the local stand-in."""

    async def token(self) -> str | None:
        return None


@dataclass(frozen=True)
class TokenFile:
    """A bearer token read from a file before every request, so a separate Maskinporten client
    (which holds the business certificate) can renew it without restarting the connector."""

    path: Path

    async def token(self) -> str | None:
        try:
            value = (await asyncio.to_thread(self.path.read_text, encoding="utf-8")).strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the Folkeregister token file {self.path}: {exc}") from None
        if not value:
            raise ConfigurationError(f"the Folkeregister token file {self.path} is empty")
        return value


def token_provider(settings: Settings, session: aiohttp.ClientSession) -> TokenProvider:
    """`NIR_FOLKEREGISTER_AUTH`: `none`, `token-file:PATH`, or `maskinporten`: the connector's own
    grant for `NIR_FOLKEREGISTER_SCOPE` with the hub's Maskinporten client, over `session`."""
    setting = settings.folkeregister_auth
    if setting == "none":
        return NoToken()
    if setting.startswith("token-file:"):
        return TokenFile(Path(setting.removeprefix("token-file:")))
    if setting == "maskinporten":
        client = client_from_settings(settings, settings.folkeregister_scope)
        return MaskinportenTokens(client, session=session)
    raise ConfigurationError("NIR_FOLKEREGISTER_AUTH must be none, token-file:PATH or maskinporten")


# --- the API ---------------------------------------------------------------------------------


class FeedClient:
    """Folkeregisteret's feed and person look-up, with retries."""

    def __init__(
        self,
        base_url: str,
        auth: TokenProvider,
        session: aiohttp.ClientSession,
        *,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.session = session
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.throttled = 0  # how often the service said "too fast"

    async def latest_sequence(self) -> int:
        answer = await self._get("/hendelser/siste/sekvensnummer")
        return int(answer["sekvensnummer"])

    async def page(self, sequence: int) -> list[Any]:
        """Feed items from `sequence` on, in order (at most one page), as the feed sent them:
        `FolkeregisterConnector` reads each item's shape. An answer that is not a list is no page."""
        answer = await self._get("/hendelser/feed", params={"seq": str(sequence)})
        if not isinstance(answer, list):
            log.warning("Folkeregisteret's feed answered something other than a list of items")
            return []
        return sorted(answer, key=lambda item: _sequence_of(item) or 0)

    async def person(self, national_id: str) -> dict[str, Any] | None:
        return await self._get(f"/personer/{national_id}", missing_ok=True)  # type: ignore[no-any-return]

    async def _get(self, path: str, *, params: dict[str, str] | None = None, missing_ok: bool = False) -> Any:
        # The path can hold a national id: errors name the kind of call, never the URL.
        what = path.split("/")[1]
        backoff = 0.5
        while True:
            headers = {"Accept": "application/json"}
            try:
                token = await self.auth.token()
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                async with self.session.get(self.base_url + path, params=params, headers=headers) as response:
                    if response.status == 429:
                        self.throttled += 1
                        await self.sleep(_retry_after(response.headers.get("Retry-After"), backoff))
                        continue
                    if response.status == 404 and missing_ok:
                        return None
                    if response.status in (401, 403):
                        raise ConfigurationError(
                            f"Folkeregisteret refused the connector's credentials (HTTP {response.status})"
                        )
                    if response.status >= 500:
                        raise FolkeregisterUnavailable(f"{what}: HTTP {response.status}")
                    if response.status != 200:
                        raise ConfigurationError(
                            f"Folkeregisteret answered {what} with HTTP {response.status}"
                        )
                    return await response.json()
            except (aiohttp.ClientError, TimeoutError, HubError) as exc:
                # A retriable hub error is an outage (a 5xx, Maskinporten unreachable); others are not.
                if isinstance(exc, HubError) and not exc.retriable:
                    raise
                log.warning(
                    "Folkeregisteret %s failed (%s); again in %.1fs", what, type(exc).__name__, backoff
                )
                await self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)


def _retry_after(header: str | None, fallback: float) -> float:
    try:
        return max(0.0, float(header)) if header is not None else fallback
    except ValueError:
        return fallback


# --- from Folkeregisteret's shapes to the contract --------------------------------------------


@dataclass(frozen=True)
class FeedItem:
    """What the connector reads of a feed item, once it has checked the item's shape."""

    sequence: int
    event_type: str  # Folkeregisteret's hendelsetype
    national_id: str
    recorded_at: str | None  # ajourholdstidspunkt, ISO 8601


def _sequence_of(item: Any) -> int | None:
    value = item.get("sekvensnummer") if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        sequence = int(value)
    except ValueError:
        return None
    return sequence if 0 < sequence < 2**63 else None


def feed_item(item: Any) -> FeedItem | None:
    """The item, or None if it does not have the feed's shape (the feed is input like any other)."""
    sequence = _sequence_of(item)
    event = item.get("hendelse") if isinstance(item, dict) else None
    if sequence is None or not isinstance(event, dict):
        return None
    event_type, national_id = event.get("hendelsetype"), event.get("folkeregisteridentifikator")
    recorded_at = event.get("ajourholdstidspunkt")
    if not isinstance(event_type, str) or not isinstance(national_id, str) or len(national_id) != 11:
        return None
    if not is_ascii_digits(national_id) or not (recorded_at is None or _is_timestamp(recorded_at)):
        return None
    return FeedItem(sequence, event_type, national_id, recorded_at)


def _is_timestamp(value: Any) -> bool:
    try:
        return (
            isinstance(value, str)
            and dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
        )
    except ValueError:
        return False


def _without_address(
    sequence_number: int, event_type: str, national_id: str, recorded_at: str
) -> dict[str, Any]:
    """The contract's address change (natural JSON) with no address in it yet."""
    return {
        "sequenceNumber": sequence_number,
        "eventType": event_type,
        "nationalId": national_id,
        "recordedAt": recorded_at,
        "movedOn": None,
        "municipality": None,
        "protection": "UNKNOWN",
        "addressKind": "UNKNOWN",
        "addressLine": None,
        "postalCode": None,
        "postalPlace": None,
    }


def address_change(
    sequence_number: int, event_type: str, national_id: str, recorded_at: str, person: dict[str, Any] | None
) -> dict[str, Any]:
    """The contract's address change (natural JSON) for a person document as it is now."""
    current = next((a for a in (person or {}).get("bostedsadresse", []) if a.get("erGjeldende")), None)
    change = _without_address(sequence_number, event_type, national_id, recorded_at)
    if current is None or event_type == "PERSON_EMIGRATED":
        return {**change, "protection": "UNGRADED"} if event_type == "PERSON_EMIGRATED" else change
    protection = PROTECTION.get(current.get("adressegradering", ""), "UNKNOWN")
    change.update(movedOn=current.get("flyttedato"), protection=protection)
    if "vegadresse" in current:
        street = current["vegadresse"]
        number = street.get("adressenummer", {})
        place = street.get("poststed", {})
        line = " ".join(
            str(part)
            for part in (street.get("adressenavn"), number.get("husnummer"), number.get("husbokstav"))
            if part
        )
        change.update(
            municipality=street.get("kommunenummer"),
            addressKind="STREET_ADDRESS",
            addressLine=line or None,
            postalCode=place.get("postnummer"),
            postalPlace=place.get("poststedsnavn"),
        )
    elif "matrikkeladresse" in current:
        cadastral = current["matrikkeladresse"]
        change.update(
            municipality=cadastral.get("kommunenummer"),
            addressKind="CADASTRAL_ADDRESS",
            postalCode=cadastral.get("poststed", {}).get("postnummer"),
            postalPlace=cadastral.get("poststed", {}).get("poststedsnavn"),
        )
    elif "ukjentBosted" in current:
        change.update(
            municipality=current["ukjentBosted"].get("bostedskommune"), addressKind="UNKNOWN_RESIDENCE"
        )
    if protection not in ("UNGRADED", "CLIENT_ADDRESS"):
        change.update(addressLine=None, postalCode=None, postalPlace=None)
    return change


def _numbers_of(person: Any) -> set[str]:
    """Every identity number a person document lists (for deciding whether the register knows
    the person); nothing from a document without the expected shape."""
    numbers = person.get("identifikasjonsnummer") if isinstance(person, dict) else None
    if not isinstance(numbers, list):
        return set()
    found = (n.get("foedselsEllerDNummer") for n in numbers if isinstance(n, dict))
    return {n for n in found if isinstance(n, str)}


def _person_events_in(person: Any, national_id: str) -> list[str]:
    """What a person document says that the feed would have told as person events, had the
    person been known then: other numbers (an identity change), a death, a duplicate ceased.
    A look-up publishes them beside the address, so a person who becomes known after them is
    not split in two, nor registered after a death without a warning."""
    if not isinstance(person, dict):
        return []
    found = []
    numbers = person.get("identifikasjonsnummer")
    listed = [n for n in numbers if isinstance(n, dict)] if isinstance(numbers, list) else []
    # Another number in use or ceased, as `person_event` reads them: the person's identity changed.
    if {n.get("foedselsEllerDNummer") for n in listed if n.get("status") in ("iBruk", "opphoert")} - {
        national_id
    }:
        found.append("IDENTITY_CHANGED")
    deaths = person.get("doedsfall")
    if isinstance(deaths, list) and any(isinstance(d, dict) and d.get("erGjeldende", True) for d in deaths):
        found.append("PERSON_DIED")
    statuses = person.get("folkeregisterpersonstatus")
    if isinstance(statuses, list) and any(
        isinstance(st, dict) and st.get("status") == "opphoert" and st.get("erGjeldende", True)
        for st in statuses
    ):
        found.append("PERSON_CEASED_AS_DUPLICATE")
    return found


def _day_of(moment: str) -> str:
    """The day in Norway of a Folkeregister time (`gyldighetstidspunkt`): an instant, often
    Oslo's midnight written in UTC ("2026-10-31T23:00:00Z" is 1 November), so its first ten
    characters can be the day before. A bare date or a time without a zone is taken as written;
    text that is no time is passed on as before, for the contract to refuse."""
    try:
        parsed = dt.datetime.fromisoformat(moment)
    except ValueError:
        return moment[:10]
    return (norwegian_date(parsed) if parsed.tzinfo is not None else parsed.date()).isoformat()


def person_event(
    sequence_number: int, event_type: str, national_id: str, recorded_at: str, person: dict[str, Any] | None
) -> dict[str, Any]:
    """The contract's person event (natural JSON) for a person document as it is now.

    IDENTITY_CHANGED: `nationalId` is the number in use (`status: iBruk`, else the feed item's)
    and `formerNationalIds` the ceased ones. PERSON_DIED: `eventDate` is the date of death
    (`doedsfall`). PERSON_CEASED_AS_DUPLICATE: `eventDate` is when the person status became
    `opphoert` (`folkeregisterpersonstatus`), else null (the register then keeps when it was
    recorded)."""
    document = person or {}
    numbers = document.get("identifikasjonsnummer", [])
    former: list[str] = []
    event_date = None
    if event_type == "IDENTITY_CHANGED":
        asked = national_id  # the feed item's number, or the one a look-up asked for
        national_id = next(
            (n["foedselsEllerDNummer"] for n in numbers if n.get("status") == "iBruk"), national_id
        )
        former = [
            n["foedselsEllerDNummer"]
            for n in numbers
            if n.get("status") == "opphoert" and n["foedselsEllerDNummer"] != national_id
        ]
        if asked != national_id and asked not in former:
            former.append(asked)
    elif event_type == "PERSON_DIED":
        death = next((d for d in document.get("doedsfall", []) if d.get("erGjeldende", True)), None)
        event_date = death.get("doedsdato") if death else None
    elif event_type == "PERSON_CEASED_AS_DUPLICATE":
        status = next(
            (s for s in document.get("folkeregisterpersonstatus", []) if s.get("status") == "opphoert"), None
        )
        valid_from = status.get("gyldighetstidspunkt") if status else None
        event_date = _day_of(valid_from) if isinstance(valid_from, str) else None
    return {
        **_without_address(sequence_number, event_type, national_id, recorded_at),
        "formerNationalIds": former,
        "eventDate": event_date,
    }


# --- the connector ----------------------------------------------------------------------------


@dataclass
class ConnectorStatus:
    """What the connector has done, for logs, metrics and tests."""

    position: int | None = None  # the next sequence number to read
    pages: int = 0
    published: int = 0
    passed_over: int = 0  # feed items about unknown persons, or not about addresses
    malformed: int = 0  # feed items or person documents without the feed's shape
    looked_up: int = 0
    last_recorded_at: str | None = None  # ajourholdstidspunkt of the last item read
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)


class FolkeregisterConnector:
    def __init__(self, hub: Hub, client: FeedClient, *, page_limit: int | None = None) -> None:
        self.hub = hub
        self.client = client
        self.status = ConnectorStatus()
        self.page_limit = page_limit
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> FolkeregisterConnector:
        settings = self.hub.settings
        self._producer = AIOKafkaProducer(
            **settings.kafka.aiokafka(),
            # One connector per hub: a second one with the same id fences the first.
            transactional_id=f"{settings.app_id}-folkeregister-connector",
            enable_idempotence=True,
            acks="all",
        )
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the feed until `stop` is set."""
        position = await self.start_position()
        while not stop.is_set():
            looked_up = await self.look_up_new_persons()
            items = await self.client.page(position)
            metrics.FOLKEREGISTER_LAST_READ.set_to_current_time()
            if items:
                position = await self.publish_page(items, position)
                continue
            self.status.caught_up.set()
            if not looked_up:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.hub.settings.folkeregister_poll_seconds)

    async def start_position(self) -> int:
        stored = await read_position(self.hub.settings.kafka, self.hub.names.connector_position)
        if stored is not None:
            position = stored
        else:
            if self.hub.settings.folkeregister_start == "beginning":
                position = 1
            else:
                position = await self.client.latest_sequence() + 1
            # Kept at once: a restart before the first page must not re-read "latest".
            await self._publish([], position)
        self.status.position = position
        metrics.FOLKEREGISTER_POSITION.set(position)
        log.info("following Folkeregisteret's feed from sequence number %d", position)
        return position

    async def publish_page(self, items: list[Any], position: int) -> int:
        """Publish a page's address changes and the next position in one transaction.

        An item without the feed's shape, or whose person document cannot be read into an address
        change, is passed over, counted (`malformed`) and logged by its sequence number, never by
        its content: one bad item must not stop every municipality's addresses."""
        readable = [f for f in map(feed_item, items) if f is not None]
        malformed = len(items) - len(readable)
        event_types = EVENT_TYPES | PERSON_EVENT_TYPES
        events = [f for f in readable if f.sequence >= position and f.event_type in event_types]
        # An identity change may name a number the register does not know yet: the person
        # document says which numbers the person had.
        documents = {
            f.sequence: await self.client.person(f.national_id)
            for f in events
            if f.event_type == "endringIIdentifikasjonsnummer"
        }
        numbers = {f.sequence: {f.national_id, *_numbers_of(documents.get(f.sequence))} for f in events}
        known = await in_transaction(
            self.hub.unit_of_work,
            lambda uow: uow.folkeregister.known_national_ids(n for ns in numbers.values() for n in ns),
        )
        changes = []
        for item in events:
            if not numbers[item.sequence] & known:
                continue
            if item.sequence in documents:
                person = documents[item.sequence]
            else:
                person = await self.client.person(item.national_id)
            recorded_at = item.recorded_at or _now_iso(self.hub)
            change = self._datum(
                item.sequence, event_types[item.event_type], item.national_id, recorded_at, person
            )
            if change is None:
                malformed += 1
            else:
                changes.append(change)
                known.add(change["nationalId"])
        # A page of which nothing is readable still moves on, by its length.
        next_position = max((f.sequence for f in readable), default=position + len(items) - 1) + 1
        await self._publish(changes, next_position)
        passed_over = len(items) - len(changes) - malformed
        self.status.pages += 1
        self.status.published += len(changes)
        self.status.passed_over += passed_over
        self.status.malformed += malformed
        self.status.position = next_position
        metrics.FOLKEREGISTER_ITEMS.labels("published").inc(len(changes))
        metrics.FOLKEREGISTER_ITEMS.labels("passed_over").inc(passed_over)
        metrics.FOLKEREGISTER_ITEMS.labels("malformed").inc(malformed)
        metrics.FOLKEREGISTER_POSITION.set(next_position)
        if malformed:
            log.warning(
                "%d feed item(s) before sequence number %d were malformed; passed over",
                malformed,
                next_position,
            )
        last_recorded = next((f.recorded_at for f in reversed(readable) if f.recorded_at), None)
        if last_recorded:
            self.status.last_recorded_at = last_recorded
            recorded = dt.datetime.fromisoformat(last_recorded.replace("Z", "+00:00"))
            metrics.FOLKEREGISTER_DELAY_SECONDS.set(max(0.0, (self.hub.clock() - recorded).total_seconds()))
        return next_position

    def _datum(
        self, sequence: int, event_type: str, national_id: str, recorded_at: str, person: Any
    ) -> dict[str, Any] | None:
        """The address change as Avro data, or None if the person document cannot be read into one."""
        try:
            if event_type in PERSON_EVENT_TYPES.values():
                change = person_event(sequence, event_type, national_id, recorded_at, person)
            else:
                change = address_change(sequence, event_type, national_id, recorded_at, person)
            return from_json(change, self.hub.catalog.current(ADDRESS_CHANGE))
        except (ContractError, AttributeError, KeyError, TypeError, ValueError):
            log.warning("the person document for feed item %d could not be read; passed over", sequence)
            return None

    async def look_up_new_persons(self) -> bool:
        """Publish the current address of every person who became known since the last look."""
        pending = await in_transaction(
            self.hub.unit_of_work, lambda uow: uow.folkeregister.pending_lookups(self.hub.clock())
        )
        if not pending:
            return False
        changes = []
        for lookup_id, national_id in pending:
            person = await self.client.person(national_id)
            if person is not None:
                for event_type in ("ADDRESS_CHANGED", *_person_events_in(person, national_id)):
                    change = self._datum(-lookup_id, event_type, national_id, _now_iso(self.hub), person)
                    changes += [change] if change is not None else []
        await self._publish(changes, None)
        now = self.hub.clock()
        await in_transaction(
            self.hub.unit_of_work,
            lambda uow: uow.folkeregister.complete_lookups([i for i, _ in pending], now),
        )
        self.status.looked_up += len(pending)
        metrics.FOLKEREGISTER_ITEMS.labels("looked_up").inc(len(pending))
        return True

    async def _publish(self, changes: Iterable[dict[str, Any]], next_position: int | None) -> None:
        assert self._producer is not None, "use the connector as an async context manager"
        catalog, names = self.hub.catalog, self.hub.names
        async with self._producer.transaction():
            for change in changes:  # Avro data, checked against the contract by `_datum`
                value = catalog.encode(ADDRESS_CHANGE, change)
                await self._producer.send(names.address_changes, value, key=change["nationalId"].encode())
            if next_position is not None:
                position = json.dumps({"next": next_position}).encode()
                await self._producer.send(names.connector_position, position, key=POSITION_KEY)


def _now_iso(hub: Hub) -> str:
    return hub.clock().astimezone(dt.UTC).isoformat()


async def read_position(kafka: KafkaConnection, topic: str) -> int | None:
    """The next sequence number from the last committed position record, if there is one."""
    consumer = AIOKafkaConsumer(
        **kafka.aiokafka(), enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]  # the last stable offset
        # Transaction markers and aborted records take offsets too: look back until a record.
        window = 64
        while True:
            start = max(0, end - window)
            last = await _last_position(consumer, partition, start, end)
            if last is not None or start == 0:
                return last
            window *= 4
    finally:
        await consumer.stop()


async def _last_position(
    consumer: AIOKafkaConsumer, partition: TopicPartition, start: int, end: int
) -> int | None:
    consumer.seek(partition, start)
    last = None
    while start < end and await consumer.position(partition) < end:
        batch = await consumer.getmany(partition, timeout_ms=1000)
        for record in batch.get(partition, []):
            if record.key == POSITION_KEY and record.value is not None:
                last = int(json.loads(record.value)["next"])
    return last


async def run_connector(
    hub: Hub, stop: asyncio.Event, *, ready: Callable[[FolkeregisterConnector], None] | None = None
) -> ConnectorStatus:
    """Run the connector with the configured API and credentials until `stop` is set."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        client = FeedClient(hub.settings.folkeregister_url, token_provider(hub.settings, session), session)
        async with FolkeregisterConnector(hub, client) as connector:
            if ready is not None:
                ready(connector)
            await connector.run(stop)
            return connector.status
