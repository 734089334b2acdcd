"""The support page: case tickets in the browser, served by the worker's Faust web server
under /support/.

Server-rendered HTML (Jinja2, autoescaped) and no JavaScript. Each request is one transaction:
the session cookie is checked, the user's work is done through `hub.support.desk` (scoped and
audited there), and the answer is a page or a redirect. Forms carry an anti-forgery value
derived from a cookie (the session's; before sign-in, a cookie of the sign-in form's own), and
cookies are HttpOnly and SameSite=Strict. Sign-in is throttled in `hub.support.access`; the
answer to a failed one waits without holding up the event loop. The security headers every
answer carries are set in `hub.ops.webserver`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import urlencode

import faust
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from hub.bootstrap import Hub, read_mask_key
from hub.domain.calendar import (
    OSLO,
    norwegian_date,
    norwegian_day_text,
    norwegian_time_text,
    parse_norwegian_day,
)
from hub.domain.identifiers import InvalidIdentifier, check_duf_number, is_ascii_digits
from hub.domain.redaction import clean, is_plain
from hub.errors import HubError, safe_traceback
from hub.register.models import User
from hub.register.unit_of_work import UnitOfWork, in_transaction
from hub.schemas.contract import ContractError
from hub.support import administration, desk, export, oidc, second_factor
from hub.support.access import (
    PASSWORD_MIN_LENGTH,
    PENDING_LIFETIME,
    SESSION_LIFETIME,
    AccessDenied,
    NoSuchTicket,
    Refusal,
    Role,
    SessionEnded,
    Throttle,
    check_new_password,
    form_token,
    give_second_factor,
    open_session,
    pending_sign_in,
    sign_in,
    sign_out,
    user_for_token,
)
from hub.support.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    language_of,
    step_text,
    translate,
    translator,
)
from hub.support.incidents import Incident, resolve_incident
from hub.support.replay import OUT_OF_SCOPE, ReplayStep, replay_incident, replay_tickets
from hub.support.scope import OutOfScope, Scope, Sources
from hub.support.second_factor import Sealer
from hub.support.tickets import ACTIVE, SORT_COLUMNS, TicketError, TicketFilter, TicketStatus

log = logging.getLogger(__name__)
COOKIE = "nir_support_session"
SIGN_IN_FORM_COOKIE = "nir_support_sign_in"  # before sign-in, the anti-forgery value's source
PENDING_COOKIE = "nir_support_pending"  # a sign-in whose second factor is still to come
USERNAME_LIMIT = 128  # the users table's column
DESCRIPTION_LIMIT = 4000  # the case tickets' column
PREFIX = "/support"
T = TypeVar("T")

_templates = Environment(
    loader=PackageLoader("hub.support", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _moment(value: str | dt.datetime | None) -> str:
    """A timestamp (ISO 8601 or datetime) as people here write it, in Norway's time."""
    if not value:
        return "-"
    return norwegian_time_text(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)


def _day(value: str | dt.date | None) -> str:
    if not value:
        return "-"
    return norwegian_day_text(dt.date.fromisoformat(value) if isinstance(value, str) else value)


_templates.filters["moment"] = _moment
_templates.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
_templates.filters["day"] = _day


def _style_hashes() -> list[str]:
    """The pages' one inline style sheet, hashed for the Content-Security-Policy."""
    page = _templates.get_template("base.html").render(prefix=PREFIX, t=translator(DEFAULT_LANGUAGE))
    return [
        base64.b64encode(hashlib.sha256(sheet.encode()).digest()).decode()
        for sheet in re.findall(r"<style>(.*?)</style>", page, flags=re.DOTALL)
    ]


STYLE_HASHES = _style_hashes()
# Why the sign-in page was shown, as the `reason` it may be given (anything else is not shown).
SIGN_IN_REASONS = {
    "signed_out": "sign_in.signed_out",
    "expired": "sign_in.expired",
    "disabled": "sign_in.disabled",
    "pending_ended": "sign_in.pending_ended",
}
LANGUAGE = aiohttp_web.RequestKey("language", str)  # the language a request is answered in

blueprint = faust.web.Blueprint("support")


class _NotSignedIn(Exception):
    def __init__(self, reason: str | None) -> None:
        self.reason = reason


class _ForeignForm(Exception):
    """A post without this session's anti-forgery value: not sent from our own page."""


class SupportView(View):
    """What every support page shares: rendering, redirects, and running the user's work."""

    hub: ClassVar[Hub]  # set by `register_support_page`
    secure_cookie: ClassVar[bool] = False
    throttle: ClassVar[Throttle] = Throttle()
    sealer: ClassVar[Sealer]  # seals the second factor's secrets; set by `register_support_page`
    oidc: ClassVar[oidc.Provider | None] = None  # sign-in through an identity provider, if configured

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        """A page in the request's language (the user's; before sign-in, the one asked for)."""
        language = self.language(request)
        body = _templates.get_template(template).render(
            prefix=PREFIX,
            t=translator(language),
            step_text=functools.partial(step_text, language),
            language=language,
            here=_here(request),
            **context,
        )
        return self.html(body, status=status)

    @property
    def sources(self) -> Sources:
        """The registry and topic names users' scopes are read from (`hub.support.scope`)."""
        return Sources.of(self.hub)

    def language(self, request: Request) -> str:
        """The language the request is answered in (known once the user is)."""
        return language_of(_aiohttp_request(request).get(LANGUAGE))

    def message(self, request: Request, status: int, title: str, message: str, **values: Any) -> Response:
        """A page that only says something: `title` and `message` are keys of the translations."""
        language = self.language(request)
        text = translate(language, message, **_translated_values(language, values))
        return self.page(
            request, "message.html", status=status, title=translate(language, title), message=text
        )

    def redirect(self, path: str, **query: Any) -> Response:
        location = PREFIX + path + ("?" + urlencode(query) if query else "")
        return self.html("", status=303, headers={"Location": location})

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        _aiohttp(response).set_cookie(
            name,
            value,
            path=PREFIX,
            max_age=max_age,
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookie,
        )

    def to_sign_in(self, request: Request, reason: str | None = None) -> Response:
        response = self.redirect("/login", next=_path_of(request), **({"reason": reason} if reason else {}))
        _aiohttp(response).del_cookie(COOKIE, path=PREFIX)
        return response

    async def as_user(
        self, request: Request, work: Callable[[UnitOfWork, User], T], *, ticket_id: int | None = None
    ) -> T:
        """Run `work` for the signed-in user in one unit of work, and answer the request in the
        user's language. A refused ticket is audited."""
        token = _cookie(request)
        now = self.hub.clock()

        def run() -> tuple[T, str]:
            with self.hub.unit_of_work() as uow:
                try:
                    user = user_for_token(uow, token or "", now)
                except SessionEnded as exc:
                    raise _NotSignedIn(
                        ("disabled" if exc.disabled else "expired") if token else None
                    ) from exc
                language = language_of(user.language)
                try:
                    result = work(uow, user)
                except (AccessDenied, OutOfScope) as exc:
                    uow.rollback()
                    if ticket_id is not None or isinstance(exc, OutOfScope):
                        desk.record_refusal(uow, user, ticket_id, now, exc)
                        uow.commit()
                    _aiohttp_request(request)[LANGUAGE] = language
                    raise
                uow.commit()
                return result, language

        result, language = await asyncio.to_thread(run)
        _aiohttp_request(request)[LANGUAGE] = language
        return result

    async def ticket_page(
        self,
        request: Request,
        ticket_id: int,
        *,
        status: int = 200,
        problems: list[str] | None = None,
        draft: str | None = None,
        refusal: str | None = None,
    ) -> Response:
        """The ticket in full (audited), with what an edit that was refused said, or why a
        merge, split or approval was not done (`refusal`, in the register's words)."""
        now = self.hub.clock()

        def work(uow: UnitOfWork, user: User) -> dict[str, Any]:
            return {
                "user": user,
                "ticket": desk.view_ticket(
                    uow, self.hub.catalog, user, ticket_id, now, sources=self.sources
                ),
            }

        found = await self.as_user(request, work, ticket_id=ticket_id)
        ticket = found["ticket"]
        return self.page(
            request,
            "ticket.html",
            status=status,
            form_token=form_token(_cookie(request) or ""),
            done=_done_key(_aiohttp_request(request).query.get("done")),
            problems=problems or [],
            refusal=refusal,
            draft=draft if draft is not None else _pretty(ticket["editable"]),
            event_json=_pretty(ticket["event"]),
            edits=[{**e, "event": _pretty(e["event"])} for e in ticket["edits"]],
            active=ticket["status"] in ACTIVE,
            **found,
        )

    async def replay(self, request: Request, ticket_id: int) -> Response:
        """Replay the ticket's event if the user may send it (checked first, for a clear answer,
        and again as it is sent: `hub.support.replay`); a refusal is shown on the ticket's page
        with why, and audited."""
        today = norwegian_date(self.hub.clock())

        def checked(uow: UnitOfWork, user: User) -> Scope:
            desk.check_replay_as(
                uow, self.hub.catalog, user, ticket_id, sources=self.sources, today=today
            )
            return Scope.of(user, self.sources)

        try:
            scope = await self.as_user(request, checked, ticket_id=ticket_id)
        except OutOfScope as exc:
            return await self.out_of_scope(request, ticket_id, exc.key, exc.values)
        report = await replay_tickets(self.hub, [ticket_id], user=scope.username, scope=scope)
        step = report.skipped.get(ticket_id)
        if step is not None and step.skipped == OUT_OF_SCOPE and step.why is not None:
            return await self.out_of_scope(request, ticket_id, step.why, dict(step.values))
        if step is not None:
            return self.redirect(f"/tickets/{ticket_id}", done="not_replayed")
        return self.redirect(f"/tickets/{ticket_id}", done="replayed")

    async def out_of_scope(
        self, request: Request, ticket_id: int, key: str, values: Mapping[str, str]
    ) -> Response:
        """The ticket's page with why the user may not send its event, in their language."""
        text = translate(self.language(request), key, **values)
        return await self.ticket_page(request, ticket_id, status=403, refusal=text)

    async def decide(
        self,
        request: Request,
        ticket_id: int,
        work: Callable[[UnitOfWork, User], Any],
        done: str,
        *,
        then_replay: bool,
    ) -> Response:
        """Do one of IMDi's decisions on a ticket (a merge, a split, an approval) in one
        transaction, then, if asked, replay the ticket. A decision the register or the ticket
        refuses is shown on the ticket's page with why, nothing changed; one the user may not
        make is refused (`guarded`). The decision stands even when the replay cannot be sent,
        and the page says so: the ticket can be replayed again."""

        def decided(uow: UnitOfWork, user: User) -> Scope:
            work(uow, user)
            return Scope.of(user, self.sources)

        try:
            scope = await self.as_user(request, decided, ticket_id=ticket_id)
        except AccessDenied:
            raise
        except HubError as exc:
            return await self.ticket_page(request, ticket_id, status=400, refusal=str(exc))
        if not then_replay:
            return self.redirect(f"/tickets/{ticket_id}", done=done)
        try:
            report = await replay_tickets(self.hub, [ticket_id], user=scope.username, scope=scope)
        except Exception as exc:
            log.error("replay after %s failed: %s", done, safe_traceback(exc))
            return self.redirect(f"/tickets/{ticket_id}", done=f"{done}_replay_failed")
        if ticket_id in report.skipped:
            return self.redirect(f"/tickets/{ticket_id}", done=f"{done}_not_replayed")
        return self.redirect(f"/tickets/{ticket_id}", done=done)

    async def form(self, request: Request, cookie: str = COOKIE) -> Mapping[str, str]:
        """The posted form, after checking its anti-forgery value against the cookie it was
        derived from (the session's, or the sign-in form's own)."""
        data = await _aiohttp_request(request).post()
        token = _cookie(request, cookie)
        if token is None and cookie == COOKIE:
            raise _NotSignedIn(None)
        if token is None or not hmac.compare_digest(str(data.get("form_token", "")), form_token(token)):
            raise _ForeignForm()
        return {k: v for k, v in data.items() if isinstance(v, str)}

    async def job_page(self, request: Request, job_id: str, kind: type[_Job], template: str) -> Response:
        """The progress page of a job of `kind` (`_start_job`): only its starter sees it."""

        async def handle() -> Response:
            user = await self.as_user(request, lambda uow, u: u)
            job = _JOBS.get(job_id)
            if not isinstance(job, kind) or job.owner != user.username:
                return self.message(request, 404, "not_found.title", "bulk.no_job")
            return self.page(
                request, template, user=user, form_token=form_token(_cookie(request) or ""), job=job
            )

        return await self.guarded(request, handle)

    async def guarded(self, request: Request, handler: Callable[[], Any]) -> Response:
        """Turn "not signed in" and "not yours" into the right page."""
        try:
            return await handler()
        except _NotSignedIn as exc:
            return self.to_sign_in(request, exc.reason)
        except _ForeignForm:
            return self.message(request, 403, "refused.title", "refused.foreign_form")
        except NoSuchTicket as exc:
            return self.message(request, 404, "not_found.title", "not_found.ticket", ticket=exc.ticket_id)
        except AccessDenied:
            # A ticket the user may see, and a decision only IMDi's support staff make (audited
            # as refused by `as_user`).
            return self.message(request, 403, "refused.title", "refused.imdi_only")
        except _BadInput as exc:
            if LANGUAGE not in _aiohttp_request(request) and _cookie(request):
                # Refused before the user was looked up: answered in their language all the same.
                with contextlib.suppress(_NotSignedIn, AccessDenied):
                    await self.as_user(request, lambda uow, user: None)
            return self.message(request, 400, "bad_request.title", exc.key, **exc.values)
        except Exception as exc:
            # Logged by where it happened, never by its text or the request's parameters: either
            # can carry an identifier.
            log.error("support page %s failed: %s", _aiohttp_request(request).path, safe_traceback(exc))
            return self.message(request, 500, "failed.title", "failed.message")


def _aiohttp(response: Response) -> aiohttp_web.Response:
    return response  # type: ignore[return-value]  # Faust's aiohttp driver returns aiohttp's


def _aiohttp_request(request: Request) -> aiohttp_web.Request:
    return request  # type: ignore[return-value]


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _cookie(request: Request, name: str = COOKIE) -> str | None:
    return _aiohttp_request(request).cookies.get(name)


def _path_of(request: Request) -> str:
    path = _aiohttp_request(request).path
    return path[len(PREFIX) :] if path.startswith(PREFIX) else "/tickets"


def _here(request: Request) -> str:
    """The page's own address inside the support page, to come back to after switching language."""
    return _path_of(request) + (
        f"?{_aiohttp_request(request).query_string}" if _aiohttp_request(request).query_string else ""
    )


def _safe_next(value: str | None) -> str:
    """Only a path inside the support page (never another site) is a place to go back to."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and is_plain(value, 2000)
    ):
        return value
    return "/tickets"


# The failure dates a filter can mean; outside them a date is a typing error (and 0001-01-01 in
# Oslo's time is before the calendar's first day in UTC).
_EARLIEST, _LATEST = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
_FILTER_TEXT_LIMIT = 64


class _BadInput(ValueError):
    """A parameter the page cannot use; the message (a translation key and its values) says which
    and why, without repeating it."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key, self.values = key, values


# What `done=` may say after an action; anything else in the query is not shown.
_DONE = frozenset(
    {
        "replayed",
        "edited",
        "filed",
        "resolved",
        "discarded",
        "not_replayed",
        "not_settled",
        "language",
        "merged",
        "merged_not_replayed",
        "merged_replay_failed",
        "split",
        "approved",
        "approved_not_replayed",
        "approved_replay_failed",
    }
)


def _done_key(value: str | None) -> str | None:
    return f"done.{value}" if value in _DONE else None


def _day_start(value: str, *, end: bool = False) -> dt.datetime | None:
    """A date from the filter form (DD.MM.YYYY) as the start (or end) of that day in Norway."""
    if not value.strip():
        return None
    try:
        day = parse_norwegian_day(value)
    except ValueError:
        raise _BadInput("bad.date") from None
    if not _EARLIEST <= day <= _LATEST:
        raise _BadInput("bad.date_range")
    start = dt.datetime.combine(day, dt.time(), tzinfo=OSLO)
    return (start + dt.timedelta(days=1, microseconds=-1) if end else start).astimezone(dt.UTC)


def _text(value: str, name: str, limit: int = _FILTER_TEXT_LIMIT) -> str:
    """A text parameter, refused unless printable and at most `limit` characters: the register
    must never be the one to refuse it (PostgreSQL refuses a NUL where SQLite would not).
    `name` is the translation key of the field's name."""
    if not is_plain(value, limit):
        raise _BadInput("bad.text", name=_FieldName(name), limit=limit)
    return value


class _FieldName(str):
    """A field's name in a message: a translation key, put in the message's language on output."""


def _translated_values(language: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: translate(language, v) if isinstance(v, _FieldName) else v for k, v in values.items()}


def _whole_identifier(value: str) -> tuple[str, ...]:
    """The search by person: a whole DUF number (12 digits) or fødselsnummer/D-number (11), never
    a part of one (a part would list others' cases by their numbers)."""
    value = value.strip()
    if not value:
        return ()
    if len(value) not in (11, 12) or not is_ascii_digits(value):
        raise _BadInput("bad.identifier")
    return (value,)


PAGE_SIZE = 50
# The query parameters that make up a filter (paging and sorting are not part of it).
_FILTER_PARAMETERS = ("status", "code", "source", "municipality", "person", "from", "until")
PERSON = "person"  # the filter that names a person: sent only in a POSTed form's body


@dataclass(frozen=True)
class _Ordering:
    """Which page of the list, sorted by what, in which direction."""

    page: int = 1
    sort: str = "last_failed"
    descending: bool = True

    @property
    def direction(self) -> str:
        return "desc" if self.descending else "asc"


def _ordering(query: Mapping[str, str]) -> _Ordering:
    page_text, sort, direction = (
        query.get("page", "1"),
        query.get("sort", "last_failed"),
        query.get("dir", "desc"),
    )
    if not (1 <= len(page_text) <= 7 and is_ascii_digits(page_text) and int(page_text) >= 1):
        raise _BadInput("bad.page")
    if sort not in SORT_COLUMNS:
        raise _BadInput("bad.choice", name=_FieldName("field.sort"))
    if direction not in ("asc", "desc"):
        raise _BadInput("bad.choice", name=_FieldName("field.sort"))
    return _Ordering(int(page_text), sort, direction == "desc")


def _ticket_filter(query: Mapping[str, str]) -> TicketFilter:
    def text(name: str, field: str) -> str | None:
        return _text(query.get(name, ""), field).strip() or None

    return TicketFilter(
        status=text("status", "field.status"),
        error_code=text("code", "field.code"),
        source_system=text("source", "field.source"),
        municipality=text("municipality", "field.municipality"),
        identifiers=_whole_identifier(query.get("person", "")),
        failed_from=_day_start(query.get("from", "")),
        failed_until=_day_start(query.get("until", ""), end=True),
    )


@blueprint.route("/", name="index")
class Index(SupportView):
    async def get(self, request: Request) -> Response:
        return self.redirect("/tickets")


@blueprint.route("/login", name="login")
class Login(SupportView):
    async def get(self, request: Request) -> Response:
        query = _aiohttp_request(request).query
        reason = SIGN_IN_REASONS.get(query.get("reason", ""))
        return self.sign_in_page(
            request, query.get("lang"), next=_safe_next(query.get("next")), reason=reason
        )

    async def post(self, request: Request) -> Response:
        return await self.guarded(request, lambda: self.sign_in(request))

    def sign_in_page(
        self, request: Request, language: str | None, status: int = 200, **context: Any
    ) -> Response:
        """The sign-in form in `language` (Norwegian unless English was asked for), with the
        anti-forgery value of this browser's sign-in cookie (a new one if it has none)."""
        _aiohttp_request(request)[LANGUAGE] = language_of(language)
        seed = _cookie(request, SIGN_IN_FORM_COOKIE) or secrets.token_urlsafe(32)
        response = self.page(
            request,
            "login.html",
            status=status,
            form_token=form_token(seed),
            oidc_provider=self.oidc.config.name if self.oidc is not None else None,
            **context,
        )
        self.set_cookie(response, SIGN_IN_FORM_COOKIE, seed, int(SESSION_LIFETIME.total_seconds()))
        return response

    async def sign_in(self, request: Request) -> Response:
        try:
            data = await self.form(request, SIGN_IN_FORM_COOKIE)
        except _ForeignForm:
            return self.sign_in_page(request, None, status=403, next="/tickets", error="refused.foreign_form")
        username, password = data.get("username", ""), data.get("password", "")
        next_path = _safe_next(data.get("next", ""))
        language = language_of(data.get("lang"))
        now = self.hub.clock()
        if not is_plain(username, USERNAME_LIMIT):
            return self.sign_in_page(request, language, status=400, next=next_path, error="sign_in.wrong")
        address = _aiohttp_request(request).remote or "unknown"
        outcome = await asyncio.to_thread(
            sign_in,
            self.hub.unit_of_work,
            username,
            password,
            now,
            client_address=address,
            sealer=self.sealer,
            throttle=self.throttle,
        )
        if outcome.token is None:
            await asyncio.sleep(outcome.delay)  # slows guessing down; other requests go on meanwhile
            locked = outcome.refusal is Refusal.LOCKED
            return self.sign_in_page(
                request,
                language,
                status=429 if locked else 401,
                next=next_path,
                error="sign_in.locked" if locked else "sign_in.wrong",
                username=username,
            )
        # The password alone opens nothing: on to the second factor, in this browser only.
        response = self.redirect("/login/second-factor", next=next_path, lang=language)
        self.set_cookie(response, PENDING_COOKIE, outcome.token, int(PENDING_LIFETIME.total_seconds()))
        _aiohttp(response).del_cookie(SIGN_IN_FORM_COOKIE, path=PREFIX)
        return response


@blueprint.route("/login/second-factor", name="second_factor")
class SecondFactorStep(SupportView):
    """The second step of a local account's sign-in: a code from the authenticator app (or a
    recovery code); for a user without a second factor, its enrolment by QR code first. Only a
    browser holding the pending sign-in's cookie gets here, within `PENDING_LIFETIME`."""

    async def get(self, request: Request) -> Response:
        query = _aiohttp_request(request).query
        return await self.guarded(
            request,
            lambda: self.code_page(request, language_of(query.get("lang")), _safe_next(query.get("next"))),
        )

    async def post(self, request: Request) -> Response:
        return await self.guarded(request, lambda: self.give_code(request))

    async def code_page(
        self, request: Request, language: str, next_path: str, status: int = 200, error: str | None = None
    ) -> Response:
        _aiohttp_request(request)[LANGUAGE] = language
        token = _cookie(request, PENDING_COOKIE) or ""
        now = self.hub.clock()
        pending = await in_transaction(
            self.hub.unit_of_work, lambda uow: pending_sign_in(uow, token, now, self.sealer)
        )
        if pending is None:
            return self.redirect("/login", next=next_path, reason="pending_ended", lang=language)
        context: dict[str, Any] = {}
        if pending.enrol_secret is not None:
            uri = second_factor.provisioning_uri(pending.enrol_secret, pending.username)
            context = {
                "qr_svg": Markup(second_factor.qr_svg(uri)),
                "secret": second_factor.grouped(pending.enrol_secret),
            }
        return self.page(
            request,
            "second_factor.html",
            status=status,
            form_token=form_token(token),
            next=next_path,
            enrolling=pending.enrol_secret is not None,
            error=error,
            **context,
        )

    async def give_code(self, request: Request) -> Response:
        data = await self.form(request, PENDING_COOKIE)  # a foreign form is refused by `guarded`
        next_path = _safe_next(data.get("next", ""))
        language = language_of(data.get("lang"))
        code = data.get("code", "")
        if not is_plain(code, 64):
            code = ""
        outcome = await asyncio.to_thread(
            give_second_factor,
            self.hub.unit_of_work,
            _cookie(request, PENDING_COOKIE) or "",
            code,
            self.hub.clock(),
            client_address=_aiohttp_request(request).remote or "unknown",
            sealer=self.sealer,
            throttle=self.throttle,
        )
        if outcome.token is None:
            await asyncio.sleep(outcome.delay)
            if outcome.refusal in (Refusal.PENDING_ENDED, Refusal.DISABLED):
                return self.redirect("/login", next=next_path, reason="pending_ended", lang=language)
            locked = outcome.refusal is Refusal.LOCKED
            return await self.code_page(
                request,
                language,
                next_path,
                status=429 if locked else 401,
                error="sign_in.locked" if locked else "second_factor.wrong",
            )
        if outcome.recovery_codes:
            _aiohttp_request(request)[LANGUAGE] = language
            response = self.page(request, "recovery_codes.html", codes=outcome.recovery_codes, next=next_path)
        else:
            response = self.redirect(next_path)
        self.set_cookie(response, COOKIE, outcome.token, int(SESSION_LIFETIME.total_seconds()))
        _aiohttp(response).del_cookie(PENDING_COOKIE, path=PREFIX)
        return response


@blueprint.route("/logout", name="logout")
class Logout(SupportView):
    async def post(self, request: Request) -> Response:
        async def handle() -> Response:
            await self.form(request)
            token = _cookie(request) or ""
            await in_transaction(self.hub.unit_of_work, lambda uow: sign_out(uow, token))
            response = self.redirect("/login", reason="signed_out")
            _aiohttp(response).del_cookie(COOKIE, path=PREFIX)
            return response

        return await self.guarded(request, handle)


OIDC_COOKIE = "nir_support_oidc"  # binds a sign-in at the identity provider to this browser
OIDC_PATH = "/login/oidc"
# How each refusal of an identity provider's answer is answered (`hub.support.oidc`).
_OIDC_STATUS = {
    oidc.Refusal.NO_SIGN_IN: 400,
    oidc.Refusal.STATE: 400,
    oidc.Refusal.PROVIDER_ERROR: 401,
    oidc.Refusal.UNKNOWN_PERSON: 403,
    oidc.Refusal.DISABLED: 403,
    oidc.Refusal.UNAVAILABLE: 503,
}


class OidcView(SupportView):
    """What the two halves of a sign-in through the identity provider share."""

    def provider(self) -> oidc.Provider:
        if self.oidc is None:
            raise _OidcOff()
        return self.oidc

    def redirect_url(self, request: Request) -> str:
        """Where the provider sends the browser back: as registered there, else this server's
        own address as the browser reached it (the same at both ends of one sign-in)."""
        assert self.oidc is not None
        if self.oidc.config.redirect_url:
            return self.oidc.config.redirect_url
        url = _aiohttp_request(request).url
        return f"{url.scheme}://{url.raw_authority}{PREFIX}{OIDC_PATH}/callback"

    async def refused(self, request: Request, exc: oidc.Refused, language: str, next_path: str) -> Response:
        """The sign-in page again, saying why in the user's language; the refusal is audited
        (never with the person's number: only the kind of refusal and the client's address)."""
        address = _aiohttp_request(request).remote or "unknown"
        detail = f"oidc {exc.refusal.value}{': ' + exc.detail if exc.detail else ''} from {address}"
        username = exc.username or "-"

        def record(uow: UnitOfWork) -> None:
            uow.audit.record(username, "sign_in_failed", self.hub.clock(), detail=detail[:500])

        await in_transaction(self.hub.unit_of_work, record)
        # The sign-in page as `Login` renders it (it needs nothing of `Login` but `SupportView`).
        response = Login.sign_in_page(
            cast(Login, self),
            request,
            language,
            status=_OIDC_STATUS.get(exc.refusal, 401),
            next=next_path,
            error=f"oidc.refused.{exc.refusal.value}",
        )
        _aiohttp(response).del_cookie(OIDC_COOKIE, path=PREFIX + OIDC_PATH)
        return response

    async def oidc_guarded(self, request: Request, language: str, handler: Callable[[], Any]) -> Response:
        try:
            return await handler()
        except _OidcOff:
            _aiohttp_request(request)[LANGUAGE] = language
            return self.message(request, 404, "not_found.title", "oidc.off")
        except Exception as exc:
            log.error("sign-in through the identity provider failed: %s", safe_traceback(exc))
            _aiohttp_request(request)[LANGUAGE] = language
            return self.message(request, 500, "failed.title", "failed.message")


class _OidcOff(Exception):
    """No identity provider is configured."""


@blueprint.route(OIDC_PATH, name="oidc_begin")
class OidcBegin(OidcView):
    """The button on the sign-in page: a new sign-in, and off to the identity provider."""

    async def get(self, request: Request) -> Response:
        query = _aiohttp_request(request).query
        language = language_of(query.get("lang"))
        next_path = _safe_next(query.get("next"))

        async def handle() -> Response:
            provider = self.provider()
            try:
                await provider.metadata()  # before anything is stored: the provider may be away
                cookie, pending = await in_transaction(
                    self.hub.unit_of_work,
                    lambda uow: oidc.begin(uow, next_path, language, self.hub.clock()),
                )
                location = await provider.authorization_url(pending, self.redirect_url(request), language)
            except oidc.Refused as exc:
                return await self.refused(request, exc, language, next_path)
            response = self.html("", status=303, headers={"Location": location})
            # Lax, not Strict: the provider's answer comes back as a top-level navigation from
            # another site, and must bring this cookie.
            _aiohttp(response).set_cookie(
                OIDC_COOKIE,
                cookie,
                path=PREFIX + OIDC_PATH,
                max_age=int(oidc.PENDING_LIFETIME.total_seconds()),
                httponly=True,
                samesite="Lax",
                secure=self.secure_cookie,
            )
            return response

        return await self.oidc_guarded(request, language, handle)


@blueprint.route(OIDC_PATH + "/callback", name="oidc_callback")
class OidcCallback(OidcView):
    """The identity provider's answer: every check of `hub.support.oidc`, then a session."""

    async def get(self, request: Request) -> Response:
        query = _aiohttp_request(request).query
        cookie = _cookie(request, OIDC_COOKIE)
        now = self.hub.clock()

        async def handle() -> Response:
            provider = self.provider()
            pending = await in_transaction(
                self.hub.unit_of_work, lambda uow: oidc.take(uow, cookie, now)
            )
            language = pending.language if pending is not None else DEFAULT_LANGUAGE
            next_path = pending.next_path if pending is not None else "/tickets"
            try:
                if pending is None:
                    raise oidc.Refused(oidc.Refusal.NO_SIGN_IN)
                if not hmac.compare_digest(query.get("state", ""), pending.state):
                    raise oidc.Refused(oidc.Refusal.STATE)
                if "error" in query or not query.get("code"):
                    raise oidc.Refused(
                        oidc.Refusal.PROVIDER_ERROR, detail=clean(query.get("error", "no code"), 64)
                    )
                id_token = await provider.exchange(query["code"], pending, self.redirect_url(request))
                person = await provider.verify(id_token, pending.nonce, now)
                address = _aiohttp_request(request).remote or "unknown"

                def sign_in_person(uow: UnitOfWork) -> str:
                    user = oidc.linked_user(uow, person)
                    how = f"oidc {person.acr or 'no acr'} from {address}"
                    return open_session(uow, user, now, detail=how)

                token = await in_transaction(self.hub.unit_of_work, sign_in_person)
            except oidc.Refused as exc:
                return await self.refused(request, exc, language, next_path)
            # A page, not a redirect: the session cookie is SameSite=Strict, and a browser may
            # leave it off a redirect that began at the provider's site. The page's own refresh
            # is a navigation from this site.
            _aiohttp_request(request)[LANGUAGE] = language
            response = self.page(request, "oidc_signed_in.html", next=next_path)
            self.set_cookie(response, COOKIE, token, int(SESSION_LIFETIME.total_seconds()))
            _aiohttp(response).del_cookie(OIDC_COOKIE, path=PREFIX + OIDC_PATH)
            return response

        return await self.oidc_guarded(request, DEFAULT_LANGUAGE, handle)


@blueprint.route("/tickets", name="tickets")
class Tickets(SupportView):
    async def get(self, request: Request) -> Response:
        query = dict(_aiohttp_request(request).query)

        async def handle() -> Response:
            # A person is searched for by POST (`/tickets/search`): a number in a URL stays in
            # the browser's history and in every proxy's log.
            if query.get(PERSON):
                raise _BadInput("bad.identifier_in_url")
            return await self.ticket_list(request, query)

        return await self.guarded(request, handle)

    async def ticket_list(self, request: Request, query: dict[str, str]) -> Response:
        """The list of tickets `query` filters (with `person` only from a POSTed search)."""
        where = _ticket_filter(query)
        now = self.hub.clock()
        order = _ordering(query)

        def work(uow: UnitOfWork, user: User) -> dict[str, Any]:
            if where.identifiers:
                desk.record_search(uow, user, where.identifiers[0], now)
            total = desk.ticket_count(uow, user, where, sources=self.sources)
            page = min(order.page, max(1, -(-total // PAGE_SIZE)))
            listed = desk.ticket_list(
                uow,
                self.hub.catalog,
                user,
                where,
                PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
                sort=order.sort,
                descending=order.descending,
                sources=self.sources,
            )
            return {
                "user": user,
                "tickets": listed,
                "total": total,
                "page": page,
                "counts": desk.error_code_counts(uow, user, where, sources=self.sources),
            }

        found = await self.as_user(request, work)
        filters = {k: v for k, v in query.items() if k in _FILTER_PARAMETERS and v}
        # Links (paging, sorting, a code's count) are URLs: never with the person searched for.
        linked = {k: v for k, v in filters.items() if k != PERSON}
        return self.page(
            request,
            "tickets.html",
            query=query,
            filters=filters,
            order=order,
            page_size=PAGE_SIZE,
            sorts=list(SORT_COLUMNS),
            link=lambda **change: urlencode({**linked, "sort": order.sort, "dir": order.direction, **change}),
            form_token=form_token(_cookie(request) or ""),
            statuses=[s.value for s in TicketStatus],
            without_code=urlencode({k: v for k, v in linked.items() if k != "code"}),
            **found,
        )

    async def post(self, request: Request) -> Response:
        """File a case about a person by hand."""

        async def handle() -> Response:
            data = await self.form(request)
            now = self.hub.clock()

            description = _text(data.get("description", ""), "field.description", DESCRIPTION_LIMIT)
            municipality = _text(data.get("municipality", ""), "field.municipality").strip() or None
            duf_number = _text(data.get("duf", ""), "field.duf").strip()
            if not description.strip():
                raise _BadInput("file.description_required")
            try:
                check_duf_number(duf_number, today=norwegian_date(now))
            except InvalidIdentifier:
                raise _BadInput("file.duf_invalid") from None

            def work(uow: UnitOfWork, user: User) -> int:
                return desk.file_case_as(
                    uow,
                    user,
                    duf_number=duf_number,
                    description=description,
                    municipality=municipality,
                    now=now,
                ).id

            ticket_id = await self.as_user(request, work)
            return self.redirect(f"/tickets/{ticket_id}", done="filed")

        return await self.guarded(request, handle)


@blueprint.route("/tickets/search", name="ticket_search")
class TicketSearch(Tickets):
    """The tickets about one person: the number comes in the form's body, never in a URL."""

    async def get(self, request: Request) -> Response:
        return self.redirect("/tickets")

    async def post(self, request: Request) -> Response:
        async def handle() -> Response:
            data = await self.form(request)
            query = {k: str(data.get(k, "")) for k in (*_FILTER_PARAMETERS, "sort", "dir") if data.get(k)}
            return await self.ticket_list(request, query)

        return await self.guarded(request, handle)


@blueprint.route("/tickets/{ticket_id:\\d+}", name="ticket")
class Ticket(SupportView):
    async def get(self, request: Request, ticket_id: str) -> Response:
        return await self.guarded(request, lambda: self.ticket_page(request, int(ticket_id)))


@blueprint.route("/tickets/{ticket_id:\\d+}/edit", name="edit")
class Edit(SupportView):
    """Keep a corrected event on the ticket, and replay it when asked to."""

    async def post(self, request: Request, ticket_id: str) -> Response:
        number = int(ticket_id)

        async def handle() -> Response:
            data = await self.form(request)
            draft = data.get("event", "")
            now = self.hub.clock()
            try:
                event = json.loads(draft)
                if not isinstance(event, dict):
                    raise _BadInput("not_object")
                await self.as_user(
                    request,
                    lambda uow, user: desk.edit_as(
                        uow, self.hub.catalog, user, number, event, now, sources=self.sources
                    ),
                    ticket_id=number,
                )
            except json.JSONDecodeError as exc:
                problem = translate(self.language(request), "not_json", message=exc.msg, line=exc.lineno)
                return await self.refused(request, number, [problem], draft)
            except _BadInput as exc:
                return await self.refused(
                    request, number, [translate(self.language(request), exc.key)], draft
                )
            except ContractError as exc:
                return await self.refused(request, number, list(exc.problems), draft)
            except OutOfScope as exc:  # audited by `as_user`
                text = translate(self.language(request), exc.key, **exc.values)
                return await self.refused(request, number, [text], draft)
            except AccessDenied:
                raise
            except HubError as exc:
                return await self.refused(request, number, [str(exc)], draft)
            if data.get("replay"):
                return await self.replay(request, number)
            return self.redirect(f"/tickets/{number}", done="edited")

        return await self.guarded(request, handle)

    async def refused(self, request: Request, number: int, problems: list[str], draft: str) -> Response:
        return await self.ticket_page(request, number, status=400, problems=problems, draft=draft)


@blueprint.route("/tickets/{ticket_id:\\d+}/replay", name="replay")
class Replay(SupportView):
    async def post(self, request: Request, ticket_id: str) -> Response:
        async def handle() -> Response:
            await self.form(request)
            return await self.replay(request, int(ticket_id))

        return await self.guarded(request, handle)


@blueprint.route("/tickets/{ticket_id:\\d+}/settle", name="settle")
class Settle(SupportView):
    """Resolve or discard a ticket, with a note."""

    async def post(self, request: Request, ticket_id: str) -> Response:
        number = int(ticket_id)

        async def handle() -> Response:
            data = await self.form(request)
            try:
                status = TicketStatus(data.get("status", ""))
            except ValueError:
                status = TicketStatus.OPEN
            if status not in (TicketStatus.RESOLVED, TicketStatus.DISCARDED):
                raise _BadInput("bad.settle")
            now = self.hub.clock()
            try:
                await self.as_user(
                    request,
                    lambda uow, user: desk.settle_as(
                        uow,
                        user,
                        number,
                        status,
                        data.get("note", ""),
                        now,
                        sources=self.sources,
                    ),
                    ticket_id=number,
                )
            except AccessDenied:
                raise
            except HubError:
                return self.redirect(f"/tickets/{number}", done="not_settled")
            return self.redirect(f"/tickets/{number}", done=status.value)

        return await self.guarded(request, handle)


REASON_LIMIT = 2000  # the person merges' reason columns


def _required(data: Mapping[str, str], name: str, field: str, limit: int) -> str:
    """A text the decision needs, its lines joined into one (a text box sends line breaks):
    printable, at most `limit` characters, and not blank."""
    value = _text(" ".join(data.get(name, "").split()), field, limit)
    if not value:
        raise _BadInput("bad.required", name=_FieldName(field))
    return value


def _number_kind(data: Mapping[str, str], name: str) -> str:
    """Which of the ticket's numbers a form names: `national_id` or `duf`."""
    value = data.get(name, "")
    if value not in desk.NUMBER_KINDS:
        raise _BadInput("bad.choice", name=_FieldName(f"field.{name}"))
    return value


@blueprint.route("/tickets/{ticket_id:\\d+}/merge", name="merge")
class Merge(SupportView):
    """Settle an identity conflict: the two persons its numbers name are one (IMDi only); then
    the ticket is replayed, to be accepted for the one person."""

    async def post(self, request: Request, ticket_id: str) -> Response:
        number = int(ticket_id)

        async def handle() -> Response:
            data = await self.form(request)
            keep = _number_kind(data, "keep")
            reason = _required(data, "reason", "field.reason", REASON_LIMIT)
            now = self.hub.clock()
            return await self.decide(
                request,
                number,
                lambda uow, user: desk.merge_as(
                    uow, user, number, keep=keep, reason=reason, now=now, sources=self.sources
                ),
                "merged",
                then_replay=True,
            )

        return await self.guarded(request, handle)


# What a split does with the registrations since the merge that named numbers of both persons.
_MIXED_TO = {"": None, "keeper": "keeper", "other": "other"}


@blueprint.route("/tickets/{ticket_id:\\d+}/split", name="split")
class Split(SupportView):
    """Undo a merge in force into the person one of the ticket's numbers names (IMDi only)."""

    async def post(self, request: Request, ticket_id: str) -> Response:
        number = int(ticket_id)

        async def handle() -> Response:
            data = await self.form(request)
            kind = _number_kind(data, "number")
            reason = _required(data, "reason", "field.reason", REASON_LIMIT)
            if data.get("mixed_to", "") not in _MIXED_TO:
                raise _BadInput("bad.choice", name=_FieldName("field.mixed_to"))
            mixed_to = _MIXED_TO[data.get("mixed_to", "")]
            merge_text = data.get("merge_id", "").strip()
            if merge_text and not (len(merge_text) <= 9 and is_ascii_digits(merge_text)):
                raise _BadInput("bad.choice", name=_FieldName("field.merge"))
            merge_id = int(merge_text) if merge_text else None
            now = self.hub.clock()
            return await self.decide(
                request,
                number,
                lambda uow, user: desk.split_as(
                    uow,
                    user,
                    number,
                    number=kind,
                    merge_id=merge_id,
                    reason=reason,
                    mixed_to=mixed_to,
                    now=now,
                    sources=self.sources,
                ),
                "split",
                then_replay=False,
            )

        return await self.guarded(request, handle)


@blueprint.route("/tickets/{ticket_id:\\d+}/approve", name="approve")
class Approve(SupportView):
    """Approve the ticket's event past a rule IMDi may set aside (`hub.support.approval`), with a
    note (IMDi only); then the ticket is replayed."""

    async def post(self, request: Request, ticket_id: str) -> Response:
        number = int(ticket_id)

        async def handle() -> Response:
            data = await self.form(request)
            note = _required(data, "note", "field.note", DESCRIPTION_LIMIT)
            now = self.hub.clock()
            return await self.decide(
                request,
                number,
                lambda uow, user: desk.approve_as(
                    uow, user, number, note=note, now=now, sources=self.sources
                ),
                "approved",
                then_replay=True,
            )

        return await self.guarded(request, handle)


@blueprint.route("/tickets/{ticket_id:\\d+}/export", name="export")
class Export(SupportView):
    """A person's request of access (GDPR art. 15): everything the register holds about the
    person one of the ticket's numbers names, as a download, JSON or a page in Norwegian for them
    (IMDi only; in the access log)."""

    async def post(self, request: Request, ticket_id: str) -> Response:
        number = int(ticket_id)

        async def handle() -> Response:
            data = await self.form(request)
            kind = _number_kind(data, "number")
            form = data.get("format", "json")
            if form not in export.FORMATS:
                raise _BadInput("bad.choice", name=_FieldName("field.format"))
            now = self.hub.clock()
            try:
                found = await self.as_user(
                    request,
                    lambda uow, user: desk.export_as(
                        uow,
                        self.hub.catalog,
                        user,
                        number,
                        number=kind,
                        now=now,
                        sources=self.sources,
                    ),
                    ticket_id=number,
                )
            except AccessDenied:
                raise
            except HubError as exc:
                return await self.ticket_page(request, number, status=400, refusal=str(exc))
            body = export.export_html(found) if form == "html" else _pretty(found)
            response = self.html(body, status=200)
            answer = _aiohttp(response)
            answer.content_type = "text/html" if form == "html" else "application/json"
            answer.headers["Content-Disposition"] = (
                f'attachment; filename="innsyn-person-{found["person"]["personId"] or "sak-" + ticket_id}.{form}"'
            )
            answer.headers["Cache-Control"] = "no-store"
            return response

        return await self.guarded(request, handle)


@dataclass(kw_only=True)
class _Job:
    """A long action running as a task of this worker (a bulk replay, an action over an
    incident's tickets), for its progress page, which only its starter sees. What it does is in
    the register (each ticket audited as it is done); this is only how far it is."""

    owner: str
    finished: bool = False
    failed: bool = False
    task: asyncio.Task[Any] | None = None


# The running and finished jobs by their random id, kept in the worker that runs them: a job
# lives as long as its worker (a restart ends it, and the tickets it did not reach stay active,
# to be acted on again); each is small, and none is removed.
_JOBS: dict[str, _Job] = {}


def _start_job(job: _Job, work: Awaitable[Any], what: str) -> str:
    """Run `work` as a task of this worker, `job` saying how it went; the job's id."""
    job_id = secrets.token_urlsafe(18)

    async def run() -> None:
        try:
            await work
        except Exception as exc:
            job.failed = True
            log.error("%s failed: %s", what, safe_traceback(exc))
        finally:
            job.finished = True

    job.task = asyncio.create_task(run())
    _JOBS[job_id] = job
    return job_id


@dataclass(kw_only=True)
class _BulkReplay(_Job):
    """A bulk replay: the steps done so far, of `total`."""

    total: int
    done: list[ReplayStep] = field(default_factory=list)


BULK_REPLAY_PER_SECOND = 20.0


def _fingerprint(ticket_ids: list[int]) -> str:
    """What a confirmation was shown: if the tickets changed since, it is shown again."""
    return hashlib.sha256(",".join(map(str, ticket_ids)).encode()).hexdigest()[:32]


@blueprint.route("/tickets/bulk", name="bulk")
class Bulk(SupportView):
    """Replay or resolve every open or replayed ticket the current filter matches: first what
    would be done (a dry run), then, confirmed, done, with progress for a replay."""

    async def post(self, request: Request) -> Response:
        async def handle() -> Response:
            data = await self.form(request)
            action = data.get("action", "")
            if action not in ("replay", "resolve"):
                raise _BadInput("bad.choice", name=_FieldName("field.action"))
            where = _ticket_filter(data)
            note = _text(data.get("note", ""), "field.note", DESCRIPTION_LIMIT).strip()
            now = self.hub.clock()

            def targets(uow: UnitOfWork, user: User) -> tuple[User, list[int], int]:
                ids, total = desk.bulk_targets(uow, user, where, now, sources=self.sources)
                return user, ids, total

            user, ids, total = await self.as_user(request, targets)
            fingerprint = _fingerprint(ids)
            confirmed = data.get("step") == "confirm" and hmac.compare_digest(
                data.get("expected", ""), fingerprint
            )
            if action == "resolve" and not note:
                raise _BadInput("bulk.note_required")
            if confirmed and ids and action == "replay":
                return self.redirect(f"/tickets/bulk/{self.start_replay(Scope.of(user, self.sources), ids)}")
            if confirmed and ids:
                count = await self.as_user(
                    request,
                    lambda uow, u: desk.settle_many_as(
                        uow, u, ids, TicketStatus.RESOLVED, note, now, sources=self.sources
                    ),
                )
                return self.message(request, 200, "bulk.title_resolve", "bulk.resolved", count=count)
            plan: list[ReplayStep] = []
            if action == "replay":  # the dry run: what would be sent where, and what not, and why
                await replay_tickets(
                    self.hub, ids, dry_run=True, on_each=plan.append, scope=Scope.of(user, self.sources)
                )
            else:
                plan = [ReplayStep(i) for i in ids]
            return self.page(
                request,
                "bulk.html",
                user=user,
                form_token=form_token(_cookie(request) or ""),
                action=action,
                plan=plan,
                total=total,
                note=note,
                expected=fingerprint,
                changed=data.get("step") == "confirm",
                filters={k: data[k] for k in _FILTER_PARAMETERS if data.get(k)},
            )

        return await self.guarded(request, handle)

    def start_replay(self, scope: Scope, ticket_ids: list[int]) -> str:
        job = _BulkReplay(owner=scope.username, total=len(ticket_ids))
        replay = replay_tickets(
            self.hub,
            ticket_ids,
            per_second=BULK_REPLAY_PER_SECOND,
            on_each=job.done.append,
            user=scope.username,
            scope=scope,
        )
        return _start_job(job, replay, "bulk replay")


@blueprint.route("/tickets/bulk/{job_id:[A-Za-z0-9_-]{24}}", name="bulk_progress")
class BulkProgress(SupportView):
    async def get(self, request: Request, job_id: str) -> Response:
        return await self.job_page(request, job_id, _BulkReplay, "bulk_progress.html")


# The incidents listed on their page at most (the newest last failure first).
INCIDENT_LIST_LIMIT = 100
# An incident's replay from the desk: as fast as `hub cases replay-incident` by default.
INCIDENT_REPLAY_PER_SECOND = 50.0
# The steps of an incident's replay (or its dry run) its progress page lists; the rest are counted.
INCIDENT_STEPS_SHOWN = 200
# What an incident's action is: resolve, the replay's dry run, the replay.
RESOLVE, DRY_RUN, REPLAY = "resolve", "dry_run", "replay"


@dataclass(kw_only=True)
class _IncidentJob(_Job):
    """An action over all of an incident's tickets (a resolve, a replay, or the replay's dry
    run): how many it handled, of `total`, and what became of them."""

    action: str
    ticket_id: int  # the ticket the incident was chosen by, for the page's links
    total: int
    expected: str  # the incident's fingerprint as it started: a dry run's confirmation carries it
    handled: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # a replay's steps by what became of them
    shown: list[ReplayStep] = field(default_factory=list)  # its first steps

    def record(self, step: ReplayStep) -> None:
        self.handled += 1
        kind = step.skipped or ("would_replay" if step.dry_run else "replayed")
        self.outcomes[kind] = self.outcomes.get(kind, 0) + 1
        if len(self.shown) < INCIDENT_STEPS_SHOWN:
            self.shown.append(step)


def _incident_fingerprint(incident: Incident) -> str:
    """What a confirmation was shown: if the incident changed since (a ticket more or fewer, a
    later failure), it is shown again."""
    parts = [*(v or "" for v in incident.cause.as_tuple()), incident.first_seen.isoformat()]
    parts += [incident.last_seen.isoformat(), str(incident.tickets)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class IncidentView(SupportView):
    """What the incidents' pages share: the window that groups tickets, and the incident of one
    of the user's tickets."""

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(hours=self.hub.settings.incident_window_hours)

    async def incident_of(self, request: Request, ticket_id: int) -> tuple[User, Incident | None]:
        """The user and the incident of their ticket among the tickets they see (None: the
        ticket is closed, in no incident); a ticket they do not see is `NoSuchTicket` (audited)."""

        def work(uow: UnitOfWork, user: User) -> tuple[User, Incident | None]:
            try:
                return user, desk.incident_as(
                    uow, user, ticket_id, self.window, sources=self.sources
                )
            except TicketError:
                return user, None

        return await self.as_user(request, work, ticket_id=ticket_id)

    def gone(self, request: Request, ticket_id: int) -> Response:
        return self.message(request, 404, "not_found.title", "incident.gone", ticket=ticket_id)


@blueprint.route("/incidents", name="incidents")
class Incidents(IncidentView):
    """The incidents of the tickets the user sees, newest last failure first."""

    async def get(self, request: Request) -> Response:
        async def handle() -> Response:
            def work(uow: UnitOfWork, user: User) -> dict[str, Any]:
                return {
                    "user": user,
                    "incidents": desk.incidents_as(
                        uow, user, self.window, INCIDENT_LIST_LIMIT, sources=self.sources
                    ),
                }

            found = await self.as_user(request, work)
            return self.page(
                request,
                "incidents.html",
                form_token=form_token(_cookie(request) or ""),
                limit=INCIDENT_LIST_LIMIT,
                window_hours=self.hub.settings.incident_window_hours,
                **found,
            )

        return await self.guarded(request, handle)


@blueprint.route("/incidents/{ticket_id:\\d+}", name="incident")
class IncidentPage(IncidentView):
    """One incident, chosen by one of its tickets, and its actions over all its tickets: resolve
    with a note (confirmed first), and replay (its dry run first, then confirmed); each runs in
    batches behind a progress page."""

    async def get(self, request: Request, ticket_id: str) -> Response:
        return await self.guarded(request, lambda: self.incident_page(request, int(ticket_id)))

    async def incident_page(
        self, request: Request, ticket_id: int, *, changed: bool = False, note: str = ""
    ) -> Response:
        user, incident = await self.incident_of(request, ticket_id)
        if incident is None:
            return self.gone(request, ticket_id)
        return self.page(
            request,
            "incident.html",
            user=user,
            incident=incident,
            ticket_id=ticket_id,
            form_token=form_token(_cookie(request) or ""),
            changed=changed,
            note=note,
        )

    async def post(self, request: Request, ticket_id: str) -> Response:
        number = int(ticket_id)

        async def handle() -> Response:
            data = await self.form(request)
            action = data.get("action", "")
            if action not in (RESOLVE, REPLAY):
                raise _BadInput("bad.choice", name=_FieldName("field.action"))
            note = _text(data.get("note", ""), "field.note", DESCRIPTION_LIMIT).strip()
            if action == RESOLVE and not note:
                raise _BadInput("bulk.note_required")
            user, incident = await self.incident_of(request, number)
            if incident is None:
                return self.gone(request, number)
            fingerprint = _incident_fingerprint(incident)
            confirmed = data.get("step") == "confirm"
            if confirmed and not hmac.compare_digest(data.get("expected", ""), fingerprint):
                return await self.incident_page(request, number, changed=True, note=note)
            if action == RESOLVE and not confirmed:
                return self.page(
                    request,
                    "incident_confirm.html",
                    user=user,
                    incident=incident,
                    ticket_id=number,
                    note=note,
                    expected=fingerprint,
                    form_token=form_token(_cookie(request) or ""),
                )
            kind = action if confirmed else DRY_RUN
            job_id = await self.start(Scope.of(user, self.sources), kind, incident, number, note)
            return self.redirect(f"/incidents/jobs/{job_id}")

        return await self.guarded(request, handle)

    async def start(self, scope: Scope, action: str, incident: Incident, ticket_id: int, note: str) -> str:
        """Start the action over the incident's tickets (those of the user's scope) as a task of
        this worker; its id. The action is audited as it starts, and each ticket as it is done
        (`resolve_incident`, `replay_incident`); a dry run changes nothing and is not."""
        hub = self.hub
        job = _IncidentJob(
            owner=scope.username,
            action=action,
            ticket_id=ticket_id,
            total=incident.tickets,
            expected=_incident_fingerprint(incident),
        )
        if action != DRY_RUN:
            detail = f"{incident.tickets} tickets"
            await in_transaction(
                hub.unit_of_work,
                lambda uow: uow.audit.record(
                    scope.username,
                    f"incident_{action}",
                    hub.clock(),
                    ticket_id=ticket_id,
                    detail=detail,
                ),
            )

        async def work() -> None:
            if action == RESOLVE:
                batches = resolve_incident(
                    hub.unit_of_work,
                    incident,
                    note,
                    hub.clock(),
                    username=scope.username,
                    within=scope.tickets(),
                )
                # Each batch is its own transaction, on a thread: the event loop never waits.
                while (count := await asyncio.to_thread(next, batches, None)) is not None:
                    job.handled += count
            else:
                await replay_incident(
                    hub,
                    incident,
                    per_second=INCIDENT_REPLAY_PER_SECOND,
                    dry_run=action == DRY_RUN,
                    on_each=job.record,
                    user=None if action == DRY_RUN else scope.username,
                    scope=scope,
                )

        return _start_job(job, work(), f"incident {action}")


@blueprint.route("/incidents/jobs/{job_id:[A-Za-z0-9_-]{24}}", name="incident_progress")
class IncidentProgress(SupportView):
    """How far an incident's action is; refreshes itself until it is done. A finished dry run
    offers the replay it showed, confirmed."""

    async def get(self, request: Request, job_id: str) -> Response:
        return await self.job_page(request, job_id, _IncidentJob, "incident_progress.html")


@blueprint.route("/language", name="language")
class Language(SupportView):
    """The user's choice of language, kept on the user."""

    async def post(self, request: Request) -> Response:
        async def handle() -> Response:
            data = await self.form(request)
            chosen = data.get("language", "")
            if chosen not in LANGUAGES:
                raise _BadInput("bad.choice", name=_FieldName("field.language"))

            def work(uow: UnitOfWork, user: User) -> None:
                user.language = chosen

            await self.as_user(request, work)
            return self.redirect(_safe_next(data.get("next")))

        return await self.guarded(request, handle)


def register_support_page(app: faust.App, hub: Hub) -> None:
    """Serve the support page from `app`'s web server, working on `hub`'s register."""
    SupportView.hub = hub
    SupportView.secure_cookie = hub.settings.served_over_tls
    SupportView.throttle = Throttle.from_settings(hub.settings)
    SupportView.sealer = Sealer(read_mask_key(Path(hub.settings.mask_key_file)))
    provider = oidc.ProviderSettings.from_settings(hub.settings)
    SupportView.oidc = oidc.Provider(provider) if provider is not None else None
    blueprint.register(app, url_prefix=PREFIX)


@blueprint.route("/users", name="users")
class Users(SupportView):
    """The users the signed-in user manages (`hub.support.administration`): IMDi every one, a
    municipality's administrative user its municipality's; everyone else is refused."""

    async def get(self, request: Request) -> Response:
        query = _aiohttp_request(request).query
        # What the last change was (the post's redirect says): shown only for a known action and
        # a plain username, so a crafted link can neither break the page nor put words in it.
        done, done_user = query.get("done"), query.get("user", "")
        if done not in _USER_ACTIONS or not is_plain(done_user, USERNAME_LIMIT):
            done = None
        return await self.guarded(request, lambda: self.users_page(request, done=done, done_user=done_user))

    async def users_page(self, request: Request, *, done: str | None, done_user: str) -> Response:
        def work(uow: UnitOfWork, user: User) -> dict[str, Any]:
            roles = administration.roles_given_by(user)
            if not roles:
                raise _NotAdministrator
            return {
                "user": user,
                "users": administration.users_managed_by(uow, user),
                "roles": [r.value for r in roles],
            }

        try:
            found = await self.as_user(request, work)
        except _NotAdministrator:
            return self.message(request, 403, "refused.title", "refused.not_administrator")
        return self.page(
            request,
            "users.html",
            form_token=form_token(_cookie(request) or ""),
            done=done,
            done_user=done_user,
            **found,
        )

    async def post(self, request: Request) -> Response:
        async def handle() -> Response:
            data = await self.form(request)
            action, username = data.get("action", ""), _text(data.get("username", ""), "users.username")
            role_text = data.get("role", "")
            if action not in _USER_ACTIONS or not is_plain(username, USERNAME_LIMIT):
                raise _BadInput("bad.choice", name=_FieldName("users.username"))
            if action in ("add", "role") and role_text not in {r.value for r in Role}:
                raise _BadInput("bad.choice", name=_FieldName("users.role"))
            now = self.hub.clock()

            def work(uow: UnitOfWork, user: User) -> bool:
                """True when done; False when refused (the refusal is audited and kept)."""
                if action == "add":
                    try:
                        check_new_password(username, data.get("password", ""))
                    except AccessDenied:
                        raise _BadInput("users.password_weak", length=PASSWORD_MIN_LENGTH) from None
                    if uow.users.named(username) is not None:
                        raise _BadInput("users.exists")
                try:
                    if action == "add":
                        municipality = (
                            _text(data.get("municipality", ""), "filter.municipality").strip() or None
                        )
                        administration.add_user(
                            uow,
                            user,
                            username,
                            data.get("password", ""),
                            Role(role_text),
                            municipality,
                            now,
                        )
                    elif action == "role":
                        administration.set_role(uow, user, username, Role(role_text), now)
                    elif action == "reset":
                        administration.reset_factor(uow, user, username, now)
                    else:
                        administration.set_disabled(uow, user, username, action == "disable", now)
                except administration.NotYours:
                    return False
                return True

            if not await self.as_user(request, work):
                return self.message(request, 403, "refused.title", "refused.not_administrator")
            return self.redirect("/users", done=action, user=username)

        return await self.guarded(request, handle)


# What the users page's forms do (`Users.post`), each with its "done" message (users.done.*).
_USER_ACTIONS = ("add", "disable", "enable", "role", "reset")


class _NotAdministrator(Exception):
    """The signed-in user manages no users."""
