"""Sign-in to the support page through OpenID Connect, against the ID-porten stand-in served in
this process: the whole flow, and each answer the hub must refuse (a clear page in the user's
language, an audit entry, no session), on SQLite and PostgreSQL; `hub users link`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import ClientResponse
from sqlalchemy import select

from hub.bootstrap import Hub
from hub.dev.idporten_standin import BUILT_IN_PERSONS, IdportenStandIn, StandInClient, serving
from hub.domain.identifiers import link_key
from hub.maskinporten import generate_rsa_key
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, User
from hub.register.unit_of_work import UnitOfWork
from hub.support.i18n import translate
from hub.support.oidc import link_user
from tests.harness import hub_command
from tests.integration.test_support_web import Client, serve, web_hub

CLIENT_ID = "nir-support"
SECRET = "a client secret for the tests"
KARI, OLA, UNLINKED = BUILT_IN_PERSONS  # kari and ola are linked to users; the third to none
# One key for every test: making an RSA key takes a while.
STAND_IN_KEY = generate_rsa_key()
OTHER_KEY = generate_rsa_key()


@pytest.fixture
def stand_in() -> Iterator[IdportenStandIn]:
    provider = IdportenStandIn(STAND_IN_KEY, {CLIENT_ID: StandInClient(CLIENT_ID, secret=SECRET)})
    with serving(provider):
        yield provider


def oidc_hub(database_url: str, stand_in: IdportenStandIn, tmp_path: Path, **settings: Any) -> Hub:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(SECRET + "\n")
    assert stand_in.issuer is not None
    hub = web_hub(
        database_url,
        oidc_issuer=stand_in.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret_file=str(secret_file),
        **settings,
    )
    with hub.unit_of_work() as uow:
        link_user(uow, "kari", stand_in.issuer, KARI.pid, "admin", hub.clock())
        uow.commit()
    return hub


async def begin(client: Client, language: str | None = None) -> str:
    """The sign-in page's button: the address at the provider the browser is sent to."""
    page = await (await client.get("/support/login" + (f"?lang={language}" if language else ""))).text()
    found = re.search(r'id="sign-in-oidc" href="([^"]+)"', page)
    assert found is not None, "the sign-in page offers the identity provider"
    started = await client.get(found.group(1).replace("&amp;", "&"), allow_redirects=False)
    assert started.status == 303
    return started.headers["Location"]


async def at_provider(authorize: str, **choice: str) -> str:
    """The person picks a test person at the stand-in; the address it sends the browser back to."""
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(authorize + "&" + urlencode(choice), allow_redirects=False) as answer,
    ):
        assert answer.status == 303, await answer.text()
        return answer.headers["Location"]


async def back_at_hub(client: Client, callback: str, **changes: str) -> ClientResponse:
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return await client.get(parts.path + "?" + urlencode(query), allow_redirects=False)


async def sign_in_through(client: Client, language: str | None = None, **choice: str) -> ClientResponse:
    callback = await at_provider(await begin(client, language), **({"pid": KARI.pid} | choice))
    return await back_at_hub(client, callback)


def sign_in_failures(hub: Hub) -> list[str]:
    with make_session_factory(hub.engine)() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in_failed")).all()
        return [f"{entry.username} {entry.detail}" for entry in entries]


def every_audit_text(hub: Hub) -> str:
    with make_session_factory(hub.engine)() as session:
        return "\n".join(f"{e.username} {e.action} {e.detail}" for e in session.scalars(select(AuditEntry)))


def test_a_linked_person_signs_in_through_the_provider_and_lands_on_the_tickets_as_their_user(
    database_url: str, stand_in: IdportenStandIn, tmp_path: Path
) -> None:
    hub = oidc_hub(database_url, stand_in, tmp_path)

    async def work(client: Client) -> None:
        answer = await sign_in_through(client)
        assert answer.status == 200 and "nir_support_session" in answer.cookies
        page = await answer.text()
        assert 'http-equiv="refresh" content="0; url=/support/tickets"' in page
        tickets = await client.get("/support/tickets", allow_redirects=False)
        assert tickets.status == 200 and "kari" in await tickets.text()

    serve(hub, work)
    audit = every_audit_text(hub)
    assert "kari sign_in oidc idporten-loa-high from 127.0.0.1" in audit
    assert KARI.pid not in audit  # the link's entry masks the number too
    assert "kari link_user" not in audit and "admin link_user user kari to <id:11:" in audit
    assert stand_in.refused == {}


# What the provider's answer is made into, what the hub must then refuse, and the audit entry's
# reason. Each is one way an answer is hostile.
def tampered(**claims: Any) -> Callable[[IdportenStandIn], None]:
    def tamper(stand_in: IdportenStandIn) -> None:
        def change(token: dict[str, Any]) -> dict[str, Any]:
            token = token | claims
            return {k: v for k, v in token.items() if v is not None}

        stand_in.tamper = change

    return tamper


def signed_by_another_key(stand_in: IdportenStandIn) -> None:
    stand_in.sign_with = OTHER_KEY


def untouched(stand_in: IdportenStandIn) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class Hostile:
    name: str
    make: Callable[[IdportenStandIn], None]
    reason: str
    status: int
    choice: dict[str, str] = dataclasses.field(default_factory=dict)
    callback: dict[str, str] = dataclasses.field(default_factory=dict)


HOSTILE = [
    Hostile("a state that is not the sign-in's", untouched, "state", 400, callback={"state": "forged"}),
    Hostile("an ID token signed by another key", signed_by_another_key, "signature", 401),
    Hostile("an ID token from another issuer", tampered(iss="https://evil.example/"), "issuer", 401),
    Hostile("an ID token for another client", tampered(aud="another-client"), "audience", 401),
    Hostile("an expired ID token", tampered(exp=1_000_000_000, iat=999_999_000), "expired", 401),
    Hostile("an ID token with another nonce", tampered(nonce="not-the-sign-in-s"), "nonce", 401),
    Hostile("an ID token without a nonce", tampered(nonce=None), "nonce", 401),
    Hostile("a lower assurance level", untouched, "acr", 401, choice={"acr": "idporten-loa-substantial"}),
    Hostile("an ID token without acr", tampered(acr=None), "acr", 401),
    Hostile("a person no user is linked to", untouched, "unknown_person", 403, choice={"pid": UNLINKED.pid}),
    Hostile("a sign-in the person cancelled", untouched, "provider_error", 401, choice={"cancel": "1"}),
    Hostile("a made-up code", untouched, "code", 401, callback={"code": "made-up"}),
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.name for h in HOSTILE])
def test_each_hostile_answer_is_refused_with_a_clear_page_an_audit_entry_and_no_session(
    sqlite_url: str, stand_in: IdportenStandIn, tmp_path: Path, hostile: Hostile
) -> None:
    hub = oidc_hub(sqlite_url, stand_in, tmp_path)
    hostile.make(stand_in)

    async def work(client: Client) -> None:
        callback = await at_provider(await begin(client), **({"pid": KARI.pid} | hostile.choice))
        answer = await back_at_hub(client, callback, **hostile.callback)
        text = await answer.text()
        assert answer.status == hostile.status
        assert translate("nb", f"oidc.refused.{hostile.reason}") in text  # Norwegian until chosen
        assert "Traceback" not in text and "nir_support_session" not in answer.cookies
        assert (await client.get("/support/tickets", allow_redirects=False)).status == 303

    serve(hub, work)
    assert sign_in_failures(hub) == [f"- oidc {hostile.reason}" + _detail(hostile) + " from 127.0.0.1"]
    assert KARI.pid not in every_audit_text(hub) and UNLINKED.pid not in every_audit_text(hub)


def _detail(hostile: Hostile) -> str:
    """What the audit entry adds after the reason, where the hub can say more."""
    return {
        "acr": ": acr idporten-loa-substantial" if hostile.choice else ": acr None",
        "provider_error": ": access_denied",
        "code": ": OAuthError",
    }.get(hostile.reason, "")


def test_every_refusal_is_audited_and_explained_on_both_databases_in_english_when_asked(
    database_url: str, stand_in: IdportenStandIn, tmp_path: Path
) -> None:
    hub = oidc_hub(database_url, stand_in, tmp_path)
    tampered(aud="another-client")(stand_in)

    async def work(client: Client) -> None:
        answer = await sign_in_through(client, language="en")
        assert answer.status == 401
        assert translate("en", "oidc.refused.audience") in await answer.text()

    serve(hub, work)
    assert sign_in_failures(hub) == ["- oidc audience from 127.0.0.1"]


def test_a_code_is_exchanged_once_and_a_replayed_answer_is_refused_without_reaching_the_provider(
    database_url: str, stand_in: IdportenStandIn, tmp_path: Path
) -> None:
    hub = oidc_hub(database_url, stand_in, tmp_path)

    async def work(client: Client) -> None:
        callback = await at_provider(await begin(client), pid=KARI.pid)
        assert (await back_at_hub(client, callback)).status == 200
        # The same answer again: the sign-in it belonged to is spent.
        replayed = await back_at_hub(client, callback)
        assert replayed.status == 400
        assert translate("nb", "oidc.refused.no_sign_in") in await replayed.text()
        # The code again, under a new sign-in's state: the provider refuses it, and so the hub.
        fresh = await at_provider(await begin(client), pid=KARI.pid)
        state = parse_qs(urlsplit(fresh).query)["state"][0]
        code = parse_qs(urlsplit(callback).query)["code"][0]
        again = await back_at_hub(client, fresh, code=code, state=state)
        assert again.status == 401 and translate("nb", "oidc.refused.code") in await again.text()

    serve(hub, work)
    assert stand_in.refused == {"invalid_grant": 1}  # the hub asked once with the used code, never twice
    assert sign_in_failures(hub) == [
        "- oidc no_sign_in from 127.0.0.1",
        "- oidc code: OAuthError from 127.0.0.1",
    ]


def test_an_answer_in_a_browser_that_did_not_begin_the_sign_in_is_refused(
    sqlite_url: str, stand_in: IdportenStandIn, tmp_path: Path
) -> None:
    hub = oidc_hub(sqlite_url, stand_in, tmp_path)

    async def work(client: Client) -> None:
        callback = await at_provider(await begin(client), pid=KARI.pid)
        client.session.cookie_jar.clear()  # another browser: an attacker's link in the victim's
        answer = await back_at_hub(client, callback)
        assert answer.status == 400 and translate("nb", "oidc.refused.no_sign_in") in await answer.text()

    serve(hub, work)
    assert sign_in_failures(hub) == ["- oidc no_sign_in from 127.0.0.1"]
    assert stand_in.refused == {}  # the code was never sent


def test_a_disabled_linked_user_is_refused(
    sqlite_url: str, stand_in: IdportenStandIn, tmp_path: Path
) -> None:
    hub = oidc_hub(sqlite_url, stand_in, tmp_path)
    with hub.unit_of_work() as uow:
        uow.session.scalars(select(User).where(User.username == "kari")).one().disabled = True
        uow.commit()

    async def work(client: Client) -> None:
        answer = await sign_in_through(client)
        assert answer.status == 403 and translate("nb", "oidc.refused.disabled") in await answer.text()

    serve(hub, work)
    assert sign_in_failures(hub) == ["kari oidc disabled from 127.0.0.1"]


def test_without_a_provider_the_sign_in_page_offers_none_and_the_routes_say_so(sqlite_url: str) -> None:
    hub = web_hub(sqlite_url)

    async def work(client: Client) -> None:
        assert 'id="sign-in-oidc"' not in await (await client.get("/support/login")).text()
        answer = await client.get("/support/login/oidc", allow_redirects=False)
        assert answer.status == 404 and translate("nb", "oidc.off") in await answer.text()

    serve(hub, work)


def test_hub_users_link_reads_the_number_from_stdin_masks_it_in_the_audit_and_refuses_a_second_user(
    database_url: str, stand_in: IdportenStandIn, tmp_path: Path
) -> None:
    hub = oidc_hub(database_url, stand_in, tmp_path)
    assert stand_in.issuer is not None
    with hub.unit_of_work() as uow:
        from hub.support.access import Role, create_user

        create_user(uow, "ola", "correct horse battery", Role.IMDI_SUPPORT, None, hub.clock())
        uow.commit()
    linked = hub_command(
        hub.settings,
        "users",
        "link",
        "ola",
        "--issuer",
        stand_in.issuer,
        "--subject",
        "-",
        "--user",
        "admin",
        stdin=OLA.pid + "\n",
    )
    assert linked.returncode == 0, linked.stderr
    taken = hub_command(
        hub.settings,
        "users",
        "link",
        "ola",
        "--issuer",
        stand_in.issuer,
        "--subject",
        "-",
        "--user",
        "admin",
        stdin=KARI.pid + "\n",
    )
    assert taken.returncode != 0 and "already linked to the user 'kari'" in taken.stderr
    assert KARI.pid not in taken.stderr
    on_the_line = hub_command(
        hub.settings, "users", "link", "ola", "--issuer", stand_in.issuer, "--subject", OLA.pid
    )
    assert on_the_line.returncode != 0 and "on standard input" in on_the_line.stderr  # not in shell history
    with make_session_factory(hub.engine)() as session:
        ola = session.scalars(select(User).where(User.username == "ola")).one()
        assert (ola.external_issuer, ola.external_subject) == (stand_in.issuer, link_key(OLA.pid))
        assert OLA.pid not in ola.external_subject  # kept as a keyed hash, never in clear
    audit = every_audit_text(hub)
    assert "admin link_user user ola to <id:11:" in audit and OLA.pid not in audit


def test_in_chromium_a_person_picks_themselves_at_the_stand_in_and_lands_on_the_tickets_as_their_user(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The provider on another site than the hub (localhost, the hub 127.0.0.1), as ID-porten is:
    the sign-in's cookie must come back on the provider's redirect, and the session's be sent on
    the first page after it."""
    from tests.integration.test_support_web import support_page_in_chromium

    provider = IdportenStandIn(STAND_IN_KEY, {CLIENT_ID: StandInClient(CLIENT_ID, secret=SECRET)})
    with serving(provider) as issuer:
        provider.issuer = issuer.replace("127.0.0.1", "localhost")
        hub = oidc_hub(sqlite_url, provider, tmp_path)
        with support_page_in_chromium(hub) as (base, browser):
            tab = browser.new_page()
            refused: list[str] = []
            tab.on("console", lambda message: refused.append(message.text))
            tab.goto(base + "/support/tickets?lang=en")
            assert tab.url.startswith(base + "/support/login")
            tab.click("#sign-in-oidc")
            assert tab.url.startswith(provider.issuer + "authorize")
            assert tab.locator("a.person").count() == len(BUILT_IN_PERSONS)
            tab.click(f'a.person[data-pid="{KARI.pid}"]')
            tab.wait_for_url(base + "/support/tickets")
            assert "kari" in tab.inner_text("header")
            # No policy violation on the hub's pages (the stand-in has no favicon: a 404 there).
            assert [text for text in refused if "Content Security Policy" in text] == []
            # Back at the provider as someone no user is linked to: refused, told why, no session.
            tab.goto(base + "/support/login")
            tab.click("#sign-in-oidc")
            tab.click(f'a.person[data-pid="{UNLINKED.pid}"]')
            assert translate("nb", "oidc.refused.unknown_person") in tab.inner_text("#error")
    assert sign_in_failures(hub) == ["- oidc unknown_person from 127.0.0.1"]


def test_with_private_key_jwt_the_client_proves_itself_by_its_key_and_a_wrong_key_is_refused(
    tmp_path: Path,
) -> None:
    from hub.maskinporten import write_private_key
    from hub.register.database import make_engine
    from hub.register.migrate import upgrade

    write_private_key(tmp_path / "client.pem", OTHER_KEY)
    write_private_key(tmp_path / "wrong.pem", STAND_IN_KEY)
    provider = IdportenStandIn(
        STAND_IN_KEY, {CLIENT_ID: StandInClient(CLIENT_ID, public_key=OTHER_KEY.public_key())}
    )

    async def work(client: Client) -> int:
        return (await sign_in_through(client)).status

    outcomes = []
    with serving(provider) as issuer:
        for key_file in ("client.pem", "wrong.pem"):
            url = f"sqlite:///{tmp_path}/{key_file}.sqlite3"
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            hub = web_hub(
                url,
                oidc_issuer=issuer,
                oidc_client_id=CLIENT_ID,
                oidc_private_key_file=str(tmp_path / key_file),
                oidc_key_id="the-client-key",
            )
            with hub.unit_of_work() as uow:
                link_user(uow, "kari", issuer, KARI.pid, "admin", hub.clock())
                uow.commit()
            outcomes.append(serve(hub, work))
    assert outcomes == [200, 401]  # the second: the code is not exchanged (`code`)
    assert provider.refused == {"invalid_client": 1}


def test_a_link_made_before_subjects_were_hashed_is_hashed_by_the_migration_and_still_signs_in(
    tmp_path: Path,
) -> None:
    from hub.register.database import make_engine, make_session_factory
    from hub.register.migrate import upgrade
    from hub.support.access import Role, create_user
    from hub.support.oidc import Person, linked_user

    engine = make_engine(f"sqlite:///{tmp_path}/old.sqlite3")
    upgrade(engine, "0020")
    issuer = "https://idporten.example/"
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with UnitOfWork(make_session_factory(engine)) as uow:
        create_user(uow, "kari", "a long password 1", Role.IMDI_SUPPORT, None, now)
        uow.session.flush()
        user = uow.session.scalars(select(User)).one()
        user.external_issuer, user.external_subject = issuer, KARI.pid  # as 0019 kept it
        uow.commit()
    upgrade(engine)
    with UnitOfWork(make_session_factory(engine)) as uow:
        user = uow.session.scalars(select(User)).one()
        assert user.external_subject == link_key(KARI.pid) and KARI.pid not in user.external_subject
        assert linked_user(uow, Person(issuer, KARI.pid, None)).username == "kari"
    engine.dispose()


def test_a_link_made_before_subjects_were_hashed_stops_an_upgrade_that_has_no_key_to_hash_it(
    tmp_path: Path,
) -> None:
    """Alembic run by hand hands the migration no key: it refuses rather than keep the subject in
    clear or drop the link."""
    from alembic import command

    from hub.register.database import make_engine, make_session_factory
    from hub.register.migrate import _config, current_revision, upgrade
    from hub.support.access import Role, create_user

    engine = make_engine(f"sqlite:///{tmp_path}/old.sqlite3")
    upgrade(engine, "0020")
    with UnitOfWork(make_session_factory(engine)) as uow:
        create_user(uow, "kari", "a long password 1", Role.IMDI_SUPPORT, None, dt.datetime.now(dt.UTC))
        uow.session.flush()
        user = uow.session.scalars(select(User)).one()
        user.external_issuer, user.external_subject = "https://idporten.example/", KARI.pid
        uow.commit()
    config = _config()
    with pytest.raises(RuntimeError, match="hub db upgrade"), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert current_revision(engine) == "0020"
    with make_session_factory(engine)() as session:
        assert session.scalars(select(User.external_subject)).one() == KARI.pid  # untouched
    engine.dispose()
