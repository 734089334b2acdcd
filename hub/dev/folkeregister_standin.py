"""A local stand-in for Folkeregisteret's event feed, in the real API's shape, for the tests and
`hub demo` (and for a fagsystem vendor who wants to see the connector work).

It serves, under `/folkeregisteret/offentlig-med-hjemmel/api/v1`:
`GET /hendelser/siste/sekvensnummer`, `GET /hendelser/feed?seq=N` (at most `page_size` items
from N), `GET /hendelser/{id}` and `GET /personer/{id}`. Persons move by calling `move()` (or
`POST /standin/moves` from another process); `change_identity()`, `die()` and
`cease_as_duplicate()` publish the person events `endringIIdentifikasjonsnummer`,
`personErDoed` and `personErOpphoertSomDublett`. Only the parts of the documents the connector
reads are filled in. It can ask for a bearer token (a given one, or any a check `accepts`, such as
a Maskinporten stand-in's), and answer 429 with Retry-After to every
`throttle_every`-th request, to exercise the connector's handling of both, and answer person
look-ups slowly (`person_delay`), so a test can stop the connector in the middle of a page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from hub.dev.localrun import serve_in_background

API = "/folkeregisteret/offentlig-med-hjemmel/api/v1"


class FolkeregisterStandIn:
    def __init__(
        self,
        *,
        page_size: int = 1000,
        token: str | None = None,
        accepts: Callable[[str], bool] | None = None,
        throttle_every: int = 0,
        person_delay: float = 0.0,
    ) -> None:
        self.page_size = page_size
        self.person_delay = person_delay  # seconds per person look-up, to make a slow service
        self.token = token
        self.accepts = accepts  # a bearer token check, e.g. a Maskinporten stand-in's `accepts`
        self.throttle_every = throttle_every
        self.requests = 0
        self.requests_for_persons = 0
        self._items: list[dict[str, Any]] = []
        self._documents: dict[str, dict[str, Any]] = {}
        self._persons: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # --- what happens in the population register --------------------------------------------

    def move(
        self,
        national_id: str,
        municipality: str,
        moved_on: dt.date,
        *,
        protection: str = "ugradert",
        street: str = "Eksempelveien",
        house_number: str = "1",
        postal_code: str = "0150",
        postal_place: str = "OSLO",
        event_type: str = "endringIBostedsadresse",
        at: dt.datetime | None = None,
    ) -> int:
        """The person moves (or is settled): a new current residential address and a feed item."""
        address = {
            "erGjeldende": True,
            "flyttedato": moved_on.isoformat(),
            "adressegradering": protection,
            "vegadresse": {
                "kommunenummer": municipality,
                "adressenavn": street,
                "adressenummer": {"husnummer": house_number},
                "poststed": {"postnummer": postal_code, "poststedsnavn": postal_place},
            },
        }
        with self._lock:
            person = self._person(national_id)
            for earlier in person["bostedsadresse"]:
                earlier["erGjeldende"] = False
            person["bostedsadresse"].insert(0, address)
            return self._add_item(national_id, event_type, at)

    def renumber(self, national_id: str, municipality: str, *, at: dt.datetime | None = None) -> int:
        """The person's municipality gets a new number without their moving (a municipality
        reform): the current residential address keeps its moving date and a feed item says it
        changed without moving (`endringIBostedsadresseUtenFlytting`)."""
        with self._lock:
            person = self._person(national_id)
            current = next(a for a in person["bostedsadresse"] if a["erGjeldende"])
            current["vegadresse"]["kommunenummer"] = municipality
            return self._add_item(national_id, "endringIBostedsadresseUtenFlytting", at)

    def emigrate(self, national_id: str, *, at: dt.datetime | None = None) -> int:
        with self._lock:
            for earlier in self._person(national_id)["bostedsadresse"]:
                earlier["erGjeldende"] = False
            return self._add_item(national_id, "personErUtflyttet", at)

    def change_identity(self, old: str, new: str, *, at: dt.datetime | None = None) -> int:
        """The person gets a new number (a D-number replaced by a fødselsnummer): the document
        lists the old one as ceased (`opphoert`) and the new one in use, answers under both, and
        the feed item names the new one."""
        with self._lock:
            person = self._person(old)
            for number in person["identifikasjonsnummer"]:
                number.update(status="opphoert", erGjeldende=False)
            person["identifikasjonsnummer"].insert(0, _number(new))
            self._persons[new] = person
            return self._add_item(new, "endringIIdentifikasjonsnummer", at)

    def die(self, national_id: str, died_on: dt.date, *, at: dt.datetime | None = None) -> int:
        with self._lock:
            person = self._person(national_id)
            person["doedsfall"] = [{"doedsdato": died_on.isoformat(), "erGjeldende": True}]
            person["folkeregisterpersonstatus"] = [{"status": "doed", "erGjeldende": True}]
            return self._add_item(national_id, "personErDoed", at)

    def cease_as_duplicate(
        self, national_id: str, ceased_on: dt.date, *, at: dt.datetime | None = None
    ) -> int:
        """The person's record is ceased as a duplicate of another record."""
        with self._lock:
            person = self._person(national_id)
            for number in person["identifikasjonsnummer"]:
                number.update(status="opphoert", erGjeldende=False)
            person["folkeregisterpersonstatus"] = [
                {
                    "status": "opphoert",
                    "erGjeldende": True,
                    "gyldighetstidspunkt": f"{ceased_on.isoformat()}T00:00:00Z",
                }
            ]
            return self._add_item(national_id, "personErOpphoertSomDublett", at)

    def other_event(self, national_id: str, event_type: str, *, at: dt.datetime | None = None) -> int:
        """Any other feed item, with nothing changed in the person document (e.g. a change of
        name, which the connector passes over)."""
        with self._lock:
            self._person(national_id)
            return self._add_item(national_id, event_type, at)

    def add_raw_item(self, item: Any) -> int:
        """A feed item exactly as given, however malformed: what a broken or hostile feed sends."""
        with self._lock:
            self._items.append(item)
            return len(self._items)

    def set_raw_person(self, national_id: str, document: Any) -> None:
        """The person document `/personer/{id}` answers, exactly as given."""
        with self._lock:
            self._persons[national_id] = document

    @property
    def latest_sequence(self) -> int:
        with self._lock:
            return len(self._items)

    def _person(self, national_id: str) -> dict[str, Any]:
        return self._persons.setdefault(
            national_id,
            {
                "identifikasjonsnummer": [_number(national_id)],
                "bostedsadresse": [],
            },
        )

    def _add_item(self, national_id: str, event_type: str, at: dt.datetime | None) -> int:
        sequence = len(self._items) + 1
        document_id = f"h{sequence:08d}"
        recorded = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(timespec="milliseconds")
        event = {
            "hendelsetype": event_type,
            "folkeregisteridentifikator": national_id,
            "hendelsesdokument": document_id,
            "persondokument": national_id,
            "ajourholdstidspunkt": recorded.replace("+00:00", "Z"),
        }
        self._items.append({"sekvensnummer": sequence, "hendelse": event})
        self._documents[document_id] = {"hendelsesidentifikator": document_id, **event}
        return sequence

    # --- the API ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get(f"{API}/hendelser/siste/sekvensnummer", self._latest)
        app.router.add_get(f"{API}/hendelser/feed", self._feed)
        app.router.add_get(API + "/hendelser/{id}", self._document)
        app.router.add_get(API + "/personer/{id}", self._person_document)
        app.router.add_post("/standin/moves", self._post_move)
        app.router.add_post("/standin/identity-changes", self._post_identity_change)
        app.router.add_post("/standin/deaths", self._post_death)
        app.router.add_post("/standin/duplicates", self._post_duplicate)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        if self.throttle_every and self.requests % self.throttle_every == 0:
            return web.json_response(
                {"melding": "for mange kall"}, status=429, headers={"Retry-After": "0.2"}
            )
        authorization = request.headers.get("Authorization", "")
        bearer = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        if (self.token is not None and bearer != self.token) or (
            self.accepts is not None and (bearer is None or not self.accepts(bearer))
        ):
            return web.json_response({"melding": "mangler gyldig token"}, status=401)
        return await handler(request)  # type: ignore[no-any-return]

    async def _latest(self, request: web.Request) -> web.Response:
        return web.json_response({"sekvensnummer": self.latest_sequence})

    async def _feed(self, request: web.Request) -> web.Response:
        try:
            sequence = int(request.query["seq"])
        except (KeyError, ValueError):
            return web.json_response({"melding": "seq mangler"}, status=400)
        with self._lock:
            page = self._items[max(sequence, 1) - 1 : max(sequence, 1) - 1 + self.page_size]
            return web.json_response(page)

    async def _document(self, request: web.Request) -> web.Response:
        with self._lock:
            document = self._documents.get(request.match_info["id"])
        return web.json_response(document) if document else web.json_response({}, status=404)

    async def _person_document(self, request: web.Request) -> web.Response:
        self.requests_for_persons += 1
        if self.person_delay:
            await asyncio.sleep(self.person_delay)
        with self._lock:
            person = self._persons.get(request.match_info["id"])
            return web.json_response(person) if person else web.json_response({}, status=404)

    async def _post_move(self, request: web.Request) -> web.Response:
        return await _published(
            request,
            lambda body: self.move(
                body["nationalId"],
                body["municipality"],
                dt.date.fromisoformat(body["movedOn"]),
                protection=body.get("protection", "ugradert"),
            ),
        )

    async def _post_identity_change(self, request: web.Request) -> web.Response:
        """`{"oldNationalId", "nationalId"}`: the person gets a new number."""
        return await _published(
            request, lambda body: self.change_identity(body["oldNationalId"], body["nationalId"])
        )

    async def _post_death(self, request: web.Request) -> web.Response:
        """`{"nationalId", "diedOn"}`."""
        return await _published(
            request, lambda body: self.die(body["nationalId"], dt.date.fromisoformat(body["diedOn"]))
        )

    async def _post_duplicate(self, request: web.Request) -> web.Response:
        """`{"nationalId", "ceasedOn"}`: the person's record is ceased as a duplicate."""
        return await _published(
            request,
            lambda body: self.cease_as_duplicate(body["nationalId"], dt.date.fromisoformat(body["ceasedOn"])),
        )


async def _published(request: web.Request, publish: Callable[[dict[str, Any]], int]) -> web.Response:
    """Publish a feed item from a JSON body; a body without what `publish` reads is a 400 that
    says what is missing or wrong."""
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise TypeError("the body is not a JSON object")
        sequence = publish(body)
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
    return web.json_response({"sekvensnummer": sequence})


def _number(national_id: str) -> dict[str, Any]:
    """A number in use, as a person document lists it."""
    kind = "dNummer" if int(national_id[0]) >= 4 else "foedselsnummer"
    return {
        "foedselsEllerDNummer": national_id,
        "identifikatortype": kind,
        "status": "iBruk",
        "erGjeldende": True,
    }


@contextmanager
def serving(stand_in: FolkeregisterStandIn, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the stand-in from a background thread; yields the API's base URL."""
    with serve_in_background(stand_in.app(), host, port, name="folkeregister-stand-in") as bound:
        yield f"http://{host}:{bound}{API}"
