"""The support page's words in Norwegian (bokmål, the default) and English: one table.

Every label and message the page shows is a key here; templates call `t(key, **values)`, and the
web layer does the same for its messages. A user's choice is kept on the user
(`User.language`); before sign-in the page speaks Norwegian unless the sign-in form was asked for
in English. Rule titles and advice are the rule catalogue's own (`hub.rules.describe_code`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.support.replay import CLOSED, OUT_OF_SCOPE, ReplayStep

NORWEGIAN, ENGLISH = "nb", "en"
LANGUAGES = (NORWEGIAN, ENGLISH)
DEFAULT_LANGUAGE = NORWEGIAN

# key: (bokmål, English). Values in braces are filled in by `translate`.
TEXTS: dict[str, tuple[str, str]] = {
    # Frame and sign-in
    "app.name": ("NIR-huben · brukerstøtte", "NIR hub · support"),
    "nav.tickets": ("Saker", "Tickets"),
    "nav.incidents": ("Hendelser", "Incidents"),
    "role.imdi": ("IMDi brukerstøtte", "IMDi support"),
    "nav.users": ("Brukere", "Users"),
    "users.title": ("Brukere", "Users"),
    "users.username": ("Brukernavn", "Username"),
    "users.password": ("Passord", "Password"),
    "users.role": ("Rolle", "Role"),
    "users.state": ("Status", "State"),
    "users.active": ("aktiv", "active"),
    "users.disabled": ("sperret", "disabled"),
    "users.disable": ("Sperr", "Disable"),
    "users.enable": ("Åpne", "Enable"),
    "users.set_role": ("Sett rolle", "Set role"),
    "users.reset": ("Nullstill engangskode-appen", "Reset the code app"),
    "users.done.reset": (
        "Brukeren {username} setter opp en ny app ved neste innlogging.",
        "User {username} sets up a new app at their next sign-in.",
    ),
    "users.add": ("Legg til bruker", "Add user"),
    "users.role.imdi_support": ("IMDi brukerstøtte", "IMDi support"),
    "users.role.municipality_superuser": ("kommunens superbruker", "municipality super user"),
    "users.role.municipality_admin": ("kommunens administrative bruker", "municipality administrator"),
    "users.done.add": ("Brukeren {username} er lagt til.", "User {username} added."),
    "users.done.disable": ("Brukeren {username} er sperret.", "User {username} is disabled."),
    "users.done.enable": ("Brukeren {username} er åpnet.", "User {username} is enabled."),
    "users.done.role": ("Brukeren {username} har fått ny rolle.", "User {username} has a new role."),
    "users.password_weak": (
        "passordet må ha minst {length} tegn og ikke være brukernavnet",
        "the password must have at least {length} characters and not be the username",
    ),
    "users.exists": (
        "det finnes alt en bruker med det brukernavnet",
        "a user with that username exists already",
    ),
    "refused.not_administrator": (
        "bare IMDi og kommunens administrative bruker forvalter brukere, og bare kommunens egne",
        "only IMDi and a municipality's administrative user manage users, and only the municipality's own",
    ),
    "role.municipality": ("kommune {municipality}", "municipality {municipality}"),
    "sign_out": ("Logg ut", "Sign out"),
    "language.switch": ("English", "Norsk"),
    "sign_in.title": ("Logg inn", "Sign in"),
    "sign_in.username": ("Brukernavn", "Username"),
    "sign_in.password": ("Passord", "Password"),
    "sign_in.button": ("Logg inn", "Sign in"),
    "sign_in.wrong": ("feil brukernavn eller passord", "wrong username or password"),
    "sign_in.locked": (
        "Innlogging er avvist inntil videre; prøv igjen senere.",
        "Sign-in refused for now; try again later.",
    ),
    "sign_in.signed_out": ("logget ut", "signed out"),
    "sign_in.expired": ("økten er utløpt; logg inn igjen", "the session has expired; sign in again"),
    "sign_in.disabled": ("brukeren er deaktivert", "the user is disabled"),
    "sign_in.pending_ended": (
        "innloggingen ble ikke fullført i tide; logg inn igjen",
        "the sign-in was not completed in time; sign in again",
    ),
    "second_factor.title": ("Engangskode", "One-time code"),
    "second_factor.ask": (
        "Skriv inn koden fra autentiseringsappen, eller en av gjenopprettingskodene dine.",
        "Enter the code from your authenticator app, or one of your recovery codes.",
    ),
    "second_factor.enrol": (
        "Kontoen din trenger en andre faktor. Skann QR-koden med en autentiseringsapp "
        "(for eksempel Microsoft Authenticator eller Google Authenticator), og skriv inn koden appen viser.",
        "Your account needs a second factor. Scan the QR code with an authenticator app "
        "(for example Microsoft Authenticator or Google Authenticator), and enter the code it shows.",
    ),
    "second_factor.manual": ("Eller skriv inn denne nøkkelen i appen:", "Or enter this key in the app:"),
    "second_factor.code": ("Kode", "Code"),
    "second_factor.button": ("Bekreft", "Confirm"),
    "second_factor.wrong": (
        "feil eller allerede brukt kode; vent på neste kode og prøv igjen",
        "wrong or already used code; wait for the next code and try again",
    ),
    "recovery.title": ("Gjenopprettingskoder", "Recovery codes"),
    "recovery.explain": (
        "Skriv ut eller lagre disse kodene et trygt sted nå: de vises bare denne ene gangen. Hver kode kan "
        "brukes én gang i stedet for appens kode, hvis du mister telefonen.",
        "Print or store these codes somewhere safe now: they are shown this once only. Each code can be "
        "used once instead of the app's code, if you lose your phone.",
    ),
    "recovery.continue": ("Fortsett", "Continue"),
    # Sign-in through an identity provider (hub.support.oidc); one message per refusal.
    "oidc.button": ("Logg inn med {provider}", "Sign in with {provider}"),
    "oidc.off": (
        "Innlogging via identitetsleverandør er ikke satt opp her.",
        "Sign-in through an identity provider is not set up here.",
    ),
    "oidc.signed_in": ("Logget inn", "Signed in"),
    "oidc.continue": ("Fortsett", "Continue"),
    "oidc.refused.no_sign_in": (
        "Innloggingen ble ikke startet i denne nettleseren, eller den tok for lang tid. Start på nytt.",
        "The sign-in was not started in this browser, or it took too long. Start again.",
    ),
    "oidc.refused.state": (
        "Svaret fra identitetsleverandøren hører ikke til innloggingen du startet. Start på nytt.",
        "The identity provider's answer does not belong to the sign-in you started. Start again.",
    ),
    "oidc.refused.provider_error": (
        "Identitetsleverandøren fullførte ikke innloggingen (avbrutt eller avvist).",
        "The identity provider did not complete the sign-in (cancelled or refused).",
    ),
    "oidc.refused.code": (
        "Innloggingen kunne ikke fullføres: koden fra identitetsleverandøren ble ikke godtatt. Start på nytt.",
        "The sign-in could not be completed: the identity provider's code was not accepted. Start again.",
    ),
    "oidc.refused.signature": (
        "Identitetsbeviset er ikke signert av identitetsleverandøren. Innloggingen er avvist.",
        "The identity token is not signed by the identity provider. Sign-in refused.",
    ),
    "oidc.refused.issuer": (
        "Identitetsbeviset er utstedt av en annen enn identitetsleverandøren vi bruker. Innloggingen er avvist.",
        "The identity token was issued by someone other than our identity provider. Sign-in refused.",
    ),
    "oidc.refused.audience": (
        "Identitetsbeviset er utstedt til en annen tjeneste. Innloggingen er avvist.",
        "The identity token was issued to another service. Sign-in refused.",
    ),
    "oidc.refused.expired": (
        "Identitetsbeviset er utløpt. Start innloggingen på nytt.",
        "The identity token has expired. Start the sign-in again.",
    ),
    "oidc.refused.nonce": (
        "Identitetsbeviset hører ikke til innloggingen du startet. Innloggingen er avvist.",
        "The identity token does not belong to the sign-in you started. Sign-in refused.",
    ),
    "oidc.refused.acr": (
        "Innloggingen har for lavt sikkerhetsnivå. Logg inn med et høyere nivå (for eksempel BankID).",
        "The sign-in's assurance level is too low. Sign in with a higher level (BankID, for example).",
    ),
    "oidc.refused.token": (
        "Identitetsbeviset fra identitetsleverandøren er ugyldig. Innloggingen er avvist.",
        "The identity provider's identity token is not valid. Sign-in refused.",
    ),
    "oidc.refused.unknown_person": (
        "Du har ingen bruker i NIR-huben. Be IMDi eller kommunens administrator om å opprette og "
        "koble en bruker til deg.",
        "You have no user in the NIR hub. Ask IMDi or your municipality's administrator to create a "
        "user and link it to you.",
    ),
    "oidc.refused.disabled": ("Brukeren din er deaktivert.", "Your user is disabled."),
    "oidc.refused.unavailable": (
        "Identitetsleverandøren svarer ikke nå. Prøv igjen om litt, eller logg inn med passord.",
        "The identity provider is not answering now. Try again shortly, or sign in with a password.",
    ),
    # Answers that are not a page of their own
    "refused.title": ("Avvist", "Refused"),
    "refused.foreign_form": (
        "Skjemaet kom ikke fra denne siden, så ingenting ble gjort. Last inn siden på nytt og prøv igjen.",
        "The form did not come from this page, so nothing was done. Reload the page and try again.",
    ),
    "refused.imdi_only": (
        "Bare IMDis brukerstøtte kan slå sammen eller skille personer og godkjenne hendelser forbi en regel. "
        "Ingenting ble endret.",
        "Only IMDi's support staff may merge or split persons and approve events past a rule. "
        "Nothing was changed.",
    ),
    "not_found.title": ("Finnes ikke", "Not found"),
    "not_found.ticket": ("det finnes ingen sak {ticket}", "there is no ticket {ticket}"),
    "bad_request.title": ("Ugyldig forespørsel", "Bad request"),
    "failed.title": ("Noe gikk galt", "Something went wrong"),
    "failed.message": (
        "Siden kunne ikke vises. Ingenting ble endret; prøv igjen, eller kontakt IMDis brukerstøtte.",
        "The page could not be shown. Nothing was changed; try again, or tell IMDi's support.",
    ),
    "back": ("Tilbake til sakene", "Back to the tickets"),
    "bad.text": (
        "{name} må være lesbar tekst på høyst {limit} tegn",
        "{name} must be printable text of at most {limit} characters",
    ),
    "bad.date": (
        "datoer skrives DD.MM.ÅÅÅÅ, for eksempel 01.12.2026",
        "dates are written DD.MM.YYYY, for example 01.12.2026",
    ),
    "bad.date_range": (
        "datoer er fra 01.01.1900 til 31.12.2100",
        "dates are from 01.01.1900 to 31.12.2100",
    ),
    "bad.identifier": (
        "søk med et helt DUF-nummer (12 sifre) eller fødselsnummer/D-nummer (11 sifre)",
        "search by a whole DUF number (12 digits) or fødselsnummer/D-number (11 digits)",
    ),
    "bad.identifier_in_url": (
        "et fødselsnummer eller DUF-nummer hører ikke hjemme i en adresse: bruk søkefeltet for person",
        "a national id or DUF number does not belong in an address: use the person search field",
    ),
    "search.button": ("Søk etter person", "Search for person"),
    "bad.choice": ("{name} har en verdi siden ikke tilbyr", "{name} has a value the page does not offer"),
    "bad.page": ("sidenummeret må være et helt tall fra 1", "the page number must be a whole number from 1"),
    "bad.settle": ("løs eller forkast", "resolve or discard"),
    "bad.required": ("{name} må fylles ut", "{name} is required"),
    "field.description": ("beskrivelsen", "the description"),
    "field.username": ("brukernavnet", "the username"),
    "field.note": ("notatet", "the note"),
    "field.status": ("status", "the status"),
    "field.code": ("feilkoden", "the error code"),
    "field.source": ("kilden", "the source"),
    "field.municipality": ("kommunen", "the municipality"),
    "field.identifier": ("identifikatoren", "the identifier"),
    "field.duf": ("DUF-nummeret", "the DUF number"),
    "field.sort": ("sorteringen", "the sort order"),
    "field.action": ("handlingen", "the action"),
    "field.language": ("språket", "the language"),
    "field.reason": ("begrunnelsen", "the reason"),
    "field.keep": ("hvem som beholdes", "whom to keep"),
    "field.number": ("nummeret", "the number"),
    "field.mixed_to": ("hvor blandede registreringer skal", "where mixed registrations go"),
    "field.merge": ("sammenslåingen", "the merge"),
    "field.format": ("formatet", "the format"),
    # Statuses
    "status.open": ("åpen", "open"),
    "status.replayed": ("sendt på nytt", "replayed"),
    "status.resolved": ("løst", "resolved"),
    "status.discarded": ("forkastet", "discarded"),
    # The ticket list
    "tickets.title": ("Saker", "Case tickets"),
    "filter.status": ("Status", "Status"),
    "filter.any": ("alle", "any"),
    "filter.code": ("Feilkode", "Error code"),
    "filter.source": ("Kilde", "Source"),
    "filter.municipality": ("Kommune", "Municipality"),
    "filter.identifier": ("DUF-nr. eller fødselsnr. (helt)", "DUF or national id (whole)"),
    "filter.from": ("Feilet fra", "Failed from"),
    "filter.until": ("til", "until"),
    "filter.date_hint": ("dd.mm.åååå", "dd.mm.yyyy"),
    "filter.apply": ("Filtrer", "Filter"),
    "filter.clear": ("Nullstill", "Clear"),
    "counts.title": ("Etter feilkode", "By error code"),
    "counts.tickets": ("Saker", "Tickets"),
    "none": ("ingen", "none"),
    "list.heading": ("Saker {first}-{last} av {total}", "Tickets {first}-{last} of {total}"),
    "list.empty": ("Ingen saker passer.", "No tickets match."),
    "col.id": ("Nr.", "#"),
    "col.status": ("Status", "Status"),
    "col.code": ("Feilkode", "Error code"),
    "col.source": ("Kilde", "Source"),
    "col.municipality": ("Kommune", "Municipality"),
    "col.event_type": ("Hendelsestype", "Event type"),
    "col.duf": ("DUF-nummer", "DUF number"),
    "col.national_id": ("Fødselsnummer", "National id"),
    "col.attempts": ("Forsøk", "Attempts"),
    "col.last_failed": ("Siste feil", "Last failure"),
    "col.first_failed": ("Første feil", "First failure"),
    "sort.title": ("Sorter", "Sort"),
    "sort.ascending": ("stigende", "ascending"),
    "sort.descending": ("synkende", "descending"),
    "page.previous": ("Forrige side", "Previous page"),
    "page.next": ("Neste side", "Next page"),
    "page.of": ("Side {page} av {pages}", "Page {page} of {pages}"),
    "file.title": ("Meld en sak manuelt", "File a case by hand"),
    "file.duf": ("DUF-nummer", "DUF number"),
    "file.description": ("Hva gjelder saken?", "What is the case about?"),
    "file.button": ("Meld sak", "File case"),
    "file.not_filed": ("Saken ble ikke meldt", "Case not filed"),
    "file.duf_invalid": (
        "DUF-nummeret må være 12 sifre, og de fire første et år søknaden kan være fra",
        "the DUF number must be 12 digits, the first four a year the application can be from",
    ),
    "file.description_required": ("en beskrivelse er påkrevd", "a description is required"),
    # Done (after an action)
    "done.replayed": ("sendt på nytt", "replayed"),
    "done.edited": ("rettingen er lagret", "the edit is kept"),
    "done.filed": ("saken er meldt", "the case is filed"),
    "done.resolved": ("løst", "resolved"),
    "done.discarded": ("forkastet", "discarded"),
    "done.not_replayed": (
        "ikke sendt på nytt: saken er lukket eller har ingenting å sende",
        "not replayed: the ticket is closed or has nothing to replay",
    ),
    "done.not_settled": (
        "ikke lukket: saken er lukket allerede, eller notatet mangler",
        "not closed: the ticket is closed already, or the note is missing",
    ),
    "done.language": ("språket er endret", "the language is changed"),
    "done.merged": (
        "personene er slått sammen, og saken er sendt på nytt",
        "the persons are merged, and the ticket is replayed",
    ),
    "done.merged_not_replayed": (
        "personene er slått sammen; saken ble ikke sendt på nytt (den er lukket eller har ingenting å sende)",
        "the persons are merged; the ticket was not replayed (it is closed or has nothing to replay)",
    ),
    "done.merged_replay_failed": (
        "personene er slått sammen, men saken kunne ikke sendes på nytt nå; send den på nytt senere",
        "the persons are merged, but the ticket could not be replayed now; replay it later",
    ),
    "done.split": ("personene er skilt igjen", "the persons are split again"),
    "done.approved": (
        "hendelsen er godkjent, og saken er sendt på nytt",
        "the event is approved, and the ticket is replayed",
    ),
    "done.approved_not_replayed": (
        "hendelsen er godkjent; saken ble ikke sendt på nytt (den er lukket eller har ingenting å sende)",
        "the event is approved; the ticket was not replayed (it is closed or has nothing to replay)",
    ),
    "done.approved_replay_failed": (
        "hendelsen er godkjent, men saken kunne ikke sendes på nytt nå; send den på nytt senere",
        "the event is approved, but the ticket could not be replayed now; replay it later",
    ),
    # The ticket
    "ticket.title": ("Sak {ticket}", "Ticket {ticket}"),
    "ticket.error": ("Feil", "Error"),
    "ticket.rule": ("Regel", "Rule"),
    "ticket.message": ("Melding", "Message"),
    "ticket.advice": ("Hva gjør jeg?", "What to do"),
    "ticket.sender": ("Sendt av (kildens emne)", "Sent by (the source's topic)"),
    "ticket.no_sender": ("ingen registrert kilde: bare IMDi", "no registered source: IMDi's only"),
    "ticket.claimed_source": ("Kildesystem (som hendelsen oppgir)", "Source system (as the event says)"),
    "ticket.claimed_municipality": ("Kommune (som hendelsen oppgir)", "Municipality (as the event says)"),
    "ticket.source": ("Kildesystem", "Source system"),
    "ticket.municipality": ("Kommune", "Municipality"),
    "ticket.event_type": ("Hendelsestype", "Event type"),
    "ticket.fact_date": ("Faktadato", "Fact date"),
    "ticket.event_id": ("Hendelses-id", "Event id"),
    "ticket.duf": ("DUF-nummer", "DUF number"),
    "ticket.national_id": ("Fødselsnummer/D-nummer", "National id"),
    "ticket.read_from": ("Lest fra", "Read from"),
    "ticket.read_from_value": (
        "{topic} partisjon {partition} posisjon {offset}",
        "{topic} partition {partition} offset {offset}",
    ),
    "ticket.failures": ("Første / siste feil", "First / last failure"),
    "ticket.counts": ("Forsøk / nye sendinger", "Attempts / replays"),
    "ticket.description": ("Beskrivelse", "Description"),
    "ticket.closed": ("Lukket", "Closed"),
    "ticket.closed_by_event": (
        "lukket av den godtatte hendelsen {event}",
        "closed by the accepted event {event}",
    ),
    "ticket.event": ("Hendelsen slik den kom", "The event as it arrived"),
    "ticket.no_event": ("Kan ikke leses, eller meldt manuelt.", "Not decodable, or filed by hand."),
    "ticket.edit_by": ("Retting av {user} {at}", "Edit by {user} at {at}"),
    "ticket.edit_changes": ("Endret fra originalen:", "Changed from the original:"),
    "ticket.edit_same": ("Ingen endring fra originalen.", "No change from the original."),
    "diff.path": ("Felt", "Field"),
    "diff.before": ("Original", "Original"),
    "diff.after": ("Rettet", "Edited"),
    "diff.absent": ("(mangler)", "(absent)"),
    "ticket.edit_and_replay": ("Rett og send på nytt", "Edit and replay"),
    "ticket.problems": ("Rettingen ble ikke lagret:", "The edit was not kept:"),
    "ticket.save_and_replay": ("Lagre og send på nytt", "Save and replay"),
    "ticket.save": ("Bare lagre rettingen", "Save edit only"),
    "ticket.replay_edit": ("Send den nyeste rettingen på nytt", "Replay the newest edit"),
    "ticket.replay_original": ("Send på nytt slik den kom", "Replay as it arrived"),
    "ticket.close": ("Lukk uten ny sending", "Close without replay"),
    "ticket.note": ("Hvorfor (lagres på saken)", "Why (kept on the ticket)"),
    "ticket.resolve": ("Løs", "Resolve"),
    "ticket.discard": ("Forkast", "Discard"),
    "decide.not_done": ("Ikke gjort:", "Not done:"),
    # An identity conflict: the persons its numbers name, and IMDi's decision on them
    "identity.title": ("Personene numrene tilhører", "The persons the numbers belong to"),
    "identity.intro": (
        "Fødselsnummeret og DUF-nummeret i hendelsen tilhører to ulike personer i registeret. "
        "Registeret slår dem ikke sammen på én hendelses ord: avgjør om de er én person.",
        "The event's fødselsnummer and DUF number belong to two different persons in the register. "
        "The register does not join them on one event's word: decide whether they are one person.",
    ),
    "identity.imdi_only": (
        "Saken gjelder en identitetskonflikt: numrene i hendelsen tilhører to ulike personer i registeret. "
        "IMDis brukerstøtte avgjør identitetskonflikter; kontakt IMDi om saken.",
        "This ticket is an identity conflict: the event's numbers belong to two different persons in the "
        "register. IMDi's support staff resolve identity conflicts; contact IMDi about the case.",
    ),
    "identity.person": ("Person {person}", "Person {person}"),
    "identity.found_by": ("Funnet med", "Found by"),
    "identity.by_national_id": ("fødselsnummeret", "the national id"),
    "identity.by_duf": ("DUF-nummeret", "the DUF number"),
    "identity.numbers": ("Numre", "Numbers"),
    "identity.ceased": ("opphørt {at}", "ceased {at}"),
    "identity.not_found_national_id": (
        "Fødselsnummeret {number} finnes ikke i registeret.",
        "The national id {number} is not in the register.",
    ),
    "identity.not_found_duf": (
        "DUF-nummeret {number} finnes ikke i registeret.",
        "The DUF number {number} is not in the register.",
    ),
    "identity.second_number": (
        "Hendelsen gir personen over et andre nummer av et slag personen alt har. Rett hendelsen, "
        "eller forkast den, om nummeret er feil; IMDi slår bare sammen personer som begge er i registeret.",
        "The event gives the person above a second number of a kind they already have. Edit the event, "
        "or discard it, if the number is wrong; IMDi only merges persons who are both in the register.",
    ),
    "identity.one_person": (
        "Begge numrene tilhører nå samme person.",
        "Both numbers now belong to the same person.",
    ),
    "number_kind.fodselsnummer": ("fødselsnummer", "fødselsnummer"),
    "number_kind.d-number": ("D-nummer", "D-number"),
    "number_kind.h-number": ("H-nummer", "H-number"),
    "number_kind.duf": ("DUF-nummer", "DUF number"),
    "number_kind.unknown": ("ukjent slags nummer", "unknown kind of number"),
    "merge.title": ("Slå sammen personene", "Merge the persons"),
    "merge.explain": (
        "Den andre personens registreringer, numre og adresser flyttes til den som beholdes. "
        "Sammenslåingen logges og kan skilles igjen.",
        "The other person's registrations, numbers and addresses move to the one kept. "
        "The merge is audited and can be split again.",
    ),
    "merge.keep": ("Behold", "Keep"),
    "merge.keep_national_id": (
        "personen med fødselsnummeret {number} (person {person})",
        "the person with the national id {number} (person {person})",
    ),
    "merge.keep_duf": (
        "personen med DUF-nummeret {number} (person {person})",
        "the person with the DUF number {number} (person {person})",
    ),
    "merge.reason": ("Hvorfor er de én person? (påkrevd)", "Why are they one person? (required)"),
    "merge.button": ("Slå sammen og send på nytt", "Merge and replay"),
    "merges.title": ("Sammenslåinger inn i person {person}", "Merges into person {person}"),
    "merges.id": ("Nr.", "#"),
    "merges.other": ("Slått inn", "Merged in"),
    "merges.at": ("Når", "When"),
    "merges.by": ("Av", "By"),
    "merges.reason": ("Hvorfor", "Why"),
    "merges.state": ("Status", "State"),
    "merges.in_force": ("gjelder", "in force"),
    "merges.split": ("skilt {at} av {user}: {reason}", "split {at} by {user}: {reason}"),
    "merges.person": ("person {person}", "person {person}"),
    "split.title": ("Skill sammenslåing {merge}", "Split merge {merge}"),
    "split.reason": ("Hvorfor er de ikke én person? (påkrevd)", "Why are they not one person? (required)"),
    "split.mixed_to": (
        "Registreringer siden sammenslåingen med numre fra begge går til",
        "Registrations since the merge with numbers of both go to",
    ),
    "split.mixed_none": ("ingen valgt (avvis om det finnes slike)", "none chosen (refuse if there are any)"),
    "split.mixed_keeper": ("personen som ble beholdt", "the person kept"),
    "split.mixed_other": ("personen som skilles ut", "the person split off"),
    "split.button": ("Skill personene", "Split the persons"),
    # A person's request of access (GDPR art. 15)
    "export.title": ("Innsyn for personen", "Access request of the person"),
    "export.help": (
        "Alt registeret har om personen, til personen selv (skjermet adresse også). Uttaket logges.",
        "Everything the register holds about the person, for the person themself (a protected "
        "address too). The export is logged.",
    ),
    "export.person": ("Personen med", "The person with"),
    "export.format": ("Format", "Format"),
    "export.html": ("side på norsk", "page in Norwegian"),
    "export.button": ("Last ned innsyn", "Download the export"),
    # The export's page for the person (`hub.support.export`, person_export.html)
    "export.page.lookups": ("Oppslag i Folkeregisteret", "Look-ups in Folkeregisteret"),
    "export.page.requested": ("Bedt om", "Requested"),
    "export.page.completed": ("Fullført", "Completed"),
    "export.page.merged_record": (
        "for posten slått sammen med deg (sammenslåing {merge})",
        "for the record merged into you (merge {merge})",
    ),
    "export.page.person_events": ("Hendelser fra Folkeregisteret", "Events from Folkeregisteret"),
    "export.page.event": ("Hendelse", "Event"),
    "export.page.date": ("Dato", "Date"),
    "export.page.received": ("Mottatt", "Received"),
    "export.page.numbers": ("Numre", "Numbers"),
    "export.page.ceased": ("opphørt", "ceased"),
    "export.page.held": ("Registreringer som venter", "Registrations waiting"),
    "export.page.held_help": (
        "Registreringer som venter på en tidligere opplysning (for eksempel en start før en slutt) før de kan tas inn.",
        "Registrations that wait for an earlier fact (a start before its end, for example) before they can be taken in.",
    ),
    "export.page.held_at": ("Venter siden", "Waiting since"),
    "export.page.why": ("Hvorfor", "Why"),
    "export.page.attempts": ("Forsøk", "Attempts"),
    "export.page.content": ("Innhold", "Content"),
    "export.page.moved": ("Flyttet", "Moved"),
    "export.page.split_out": (
        "Du ble skilt ut igjen fra en sammenslåing",
        "You were split out of a merge again",
    ),
    "export.page.ticket": ("Sak {ticket}", "Ticket {ticket}"),
    "export.page.approval": (
        "Godkjent forbi regelen {code} av {who} {at}",
        "Approved past the rule {code} by {who} on {at}",
    ),
    "export.page.description": ("Beskrivelse", "Description"),
    "export.page.note": ("Merknad ved avslutning", "Note on closing"),
    "export.page.audit": ("Logg over saken", "The ticket's log"),
    "approve.title": ("Godkjenn hendelsen", "Approve the event"),
    "approve.explain": (
        "IMDi kan godkjenne denne ene hendelsen forbi regelen {code}. Godkjenningen gjelder hendelsen "
        "slik den sendes nå; en ny retting opphever den.",
        "IMDi may approve this one event past the rule {code}. The approval holds for the event as it "
        "is sent now; a new edit cancels it.",
    ),
    "approve.note": ("Hvorfor godkjenner IMDi? (påkrevd)", "Why does IMDi approve? (required)"),
    "approve.button": ("Godkjenn og send på nytt", "Approve and replay"),
    "approve.approved": ("Godkjent forbi {code} av {user} {at}", "Approved past {code} by {user} at {at}"),
    # Bulk actions
    "bulk.title": ("Alle saker i utvalget", "Every ticket the filter matches"),
    "bulk.intro": (
        "Gjelder de åpne og sendte sakene som passer filteret over, høyst 1000 om gangen.",
        "For the open and replayed tickets the filter above matches, at most 1000 at a time.",
    ),
    "bulk.preview_replay": ("Send alle på nytt …", "Replay all …"),
    "bulk.preview_resolve": ("Løs alle …", "Resolve all …"),
    "bulk.note": ("Notat (påkrevd for å løse)", "Note (required to resolve)"),
    "bulk.note_required": ("et notat er påkrevd for å løse saker", "a note is required to resolve tickets"),
    "bulk.title_replay": ("Send på nytt: prøvekjøring", "Replay: dry run"),
    "bulk.title_resolve": ("Løs saker", "Resolve tickets"),
    "bulk.dry_run": (
        "Ingenting er sendt ennå. Dette ville skjedd med {count} saker:",
        "Nothing is sent yet. This is what would happen to {count} tickets:",
    ),
    "bulk.would_resolve": (
        "Disse {count} sakene ville blitt løst med notatet «{note}»:",
        "These {count} tickets would be resolved with the note “{note}”:",
    ),
    "bulk.more": (
        "{rest} saker til passer; kjør igjen når disse er ferdige.",
        "{rest} more tickets match; run again when these are done.",
    ),
    "bulk.changed": (
        "Sakene har endret seg siden prøvekjøringen; se over på nytt før du bekrefter.",
        "The tickets changed since the dry run; look again before you confirm.",
    ),
    "bulk.none": ("Ingen åpne saker passer filteret.", "No open tickets match the filter."),
    "bulk.confirm_replay": ("Bekreft: send {count} saker på nytt", "Confirm: replay {count} tickets"),
    "bulk.confirm_resolve": ("Bekreft: løs {count} saker", "Confirm: resolve {count} tickets"),
    "bulk.resolved": ("{count} saker er løst.", "{count} tickets are resolved."),
    "bulk.progress_title": ("Sender på nytt", "Replaying"),
    "bulk.progress": ("{done} av {total} behandlet", "{done} of {total} handled"),
    "bulk.finished": ("Ferdig.", "Finished."),
    "bulk.failed": (
        "Stoppet: meglerne kunne ikke ta imot. Sakene som ikke ble sendt, er fortsatt åpne.",
        "Stopped: the broker could not take the events. The tickets not sent are still open.",
    ),
    "bulk.no_job": ("det finnes ingen slik kjøring", "there is no such run"),
    # Incidents: the active tickets of one cause (`hub.support.incidents`)
    "incidents.title": ("Hendelser", "Incidents"),
    "incidents.intro": (
        "Åpne og sendte saker med samme årsak (kilde, feilkode, hendelsestype og fagsystemversjon) "
        "der feilene kommer mindre enn {hours} timer fra hverandre, er én hendelse. Nyeste først; "
        "kommuner og personer telles, de vises ikke.",
        "Open and replayed tickets of one cause (source, error code, event type and fagsystem "
        "version) whose failures come less than {hours} hours apart are one incident. Newest first; "
        "municipalities and persons are counted, never shown.",
    ),
    "incidents.none": ("Ingen hendelser: ingen åpne saker.", "No incidents: no open tickets."),
    "incidents.more": (
        "Bare de {limit} nyeste hendelsene vises.",
        "Only the {limit} newest incidents are shown.",
    ),
    "incidents.open": ("Åpne", "Open"),
    "incidents.back": ("Tilbake til hendelsene", "Back to the incidents"),
    "col.version": ("Fagsystemversjon", "Fagsystem version"),
    "col.tickets": ("Saker", "Tickets"),
    "col.first_seen": ("Første feil", "First seen"),
    "col.last_seen": ("Siste feil", "Last seen"),
    "col.sample": ("Eksempelsak", "Sample ticket"),
    "col.municipalities": ("Kommuner", "Municipalities"),
    "col.persons": ("Personer", "Persons"),
    "incident.title": ("Hendelse", "Incident"),
    "incident.intro": (
        "Handlingene gjelder alle sakene i hendelsen som du ser, i omganger på 1000, og hver sak loggføres.",
        "The actions apply to every ticket of the incident you see, 1000 at a time, and each "
        "ticket is audited.",
    ),
    "incident.changed": (
        "Hendelsen har endret seg siden du så den; se over på nytt før du bekrefter.",
        "The incident changed since you saw it; look again before you confirm.",
    ),
    "incident.gone": (
        "sak {ticket} hører ikke lenger til noen hendelse (den er avsluttet)",
        "ticket {ticket} is no longer in an incident (it is closed)",
    ),
    "incident.resolve_heading": ("Løs alle sakene", "Resolve every ticket"),
    "incident.note": ("Notat (påkrevd)", "Note (required)"),
    "incident.resolve_button": ("Løs {count} saker …", "Resolve {count} tickets …"),
    "incident.would_resolve": (
        "Ingenting er endret ennå. {count} saker ville blitt løst med notatet «{note}».",
        "Nothing is changed yet. {count} tickets would be resolved with the note “{note}”.",
    ),
    "incident.confirm_resolve": ("Bekreft: løs {count} saker", "Confirm: resolve {count} tickets"),
    "incident.replay_heading": ("Send alle på nytt", "Replay every ticket"),
    "incident.replay_explain": (
        "Når leverandøren har rettet feilen: først en prøvekjøring som ikke sender noe, så bekrefter du.",
        "Once the vendor has fixed the fault: first a dry run that sends nothing, then you confirm.",
    ),
    "incident.replay_button": ("Prøvekjør sending på nytt …", "Dry run of the replay …"),
    "incident.confirm_replay": ("Bekreft: send {count} saker på nytt", "Confirm: replay {count} tickets"),
    "incident.nothing_to_replay": (
        "Ingen av sakene kan sendes på nytt.",
        "None of the tickets can be replayed.",
    ),
    "incident.back": ("Tilbake til hendelsen", "Back to the incident"),
    "incident.progress_title_resolve": ("Løser hendelsens saker", "Resolving the incident's tickets"),
    "incident.progress_title_dry_run": (
        "Send på nytt: prøvekjøring (ingenting sendes)",
        "Replay: dry run (nothing is sent)",
    ),
    "incident.progress_title_replay": ("Sender hendelsens saker på nytt", "Replaying the incident's tickets"),
    "incident.failed_resolve": (
        "Stoppet: registeret svarte ikke. Sakene som ikke ble løst, er fortsatt åpne.",
        "Stopped: the register did not answer. The tickets not resolved are still open.",
    ),
    "incident.failed_dry_run": (
        "Stoppet: prøvekjøringen ble ikke ferdig. Ingenting er sendt.",
        "Stopped: the dry run did not finish. Nothing was sent.",
    ),
    "incident.failed_replay": (
        "Stoppet: meglerne kunne ikke ta imot. Sakene som ikke ble sendt, er fortsatt åpne.",
        "Stopped: the broker could not take the events. The tickets not sent are still open.",
    ),
    "incident.outcome.would_replay": ("sendes på nytt", "would be replayed"),
    "incident.outcome.replayed": ("sendt på nytt", "replayed"),
    "incident.outcome.closed": ("hoppet over: avsluttet", "skipped: closed"),
    "incident.outcome.filed_by_hand": ("hoppet over: registrert for hånd", "skipped: filed by hand"),
    "incident.outcome.out_of_scope": (
        "avvist: utenfor det du har tilgang til",
        "refused: outside your scope",
    ),
    "incident.more_steps": (
        "… og {rest} saker til (telt over).",
        "… and {rest} more tickets (counted above).",
    ),
    "step.would_replay": ("sendes på nytt til {topic}", "would replay to {topic}"),
    "step.replayed": ("sendt på nytt til {topic}", "replayed to {topic}"),
    "step.closed": ("hoppet over: saken er {status}", "skipped: the ticket is {status}"),
    "step.filed_by_hand": (
        "hoppet over: ingenting å sende (en sak registrert for hånd)",
        "skipped: nothing to replay (a case filed by hand)",
    ),
    "step.out_of_scope": ("avvist: {why}", "refused: {why}"),
    # Why an edit or a replay is outside the user's scope (`hub.support.scope`)
    "scope.source": (
        "Hendelsen ville blitt sendt på nytt til en kilde som ikke er kommunens. Ingenting ble sendt.",
        "The event would be replayed to a source that is not your municipality's. Nothing was sent.",
    ),
    "scope.sender": (
        "Hendelsens sourceSystem må være {source}, kilden den kom fra. Ingenting ble lagret eller sendt.",
        "The event's sourceSystem must be {source}, the source it came from. Nothing was kept or sent.",
    ),
    "scope.municipality": (
        "Kommune {municipality} er ikke din kommune, eller kilden {source} kan ikke rapportere for den. "
        "Her kan hendelsen gjelde {allowed}. Ingenting ble lagret eller sendt.",
        "Municipality {municipality} is not yours, or source {source} may not report for it. "
        "Here the event may be for {allowed}. Nothing was kept or sent.",
    ),
    "scope.unreadable": (
        "Hendelsen kan ikke leses, så den kan ikke kontrolleres; bare IMDis brukerstøtte kan sende den. "
        "Ingenting ble sendt.",
        "The event cannot be read, so it cannot be checked; only IMDi's support may send it. "
        "Nothing was sent.",
    ),
    "sort.by": ("Sorter etter {column}", "Sort by {column}"),
    # The ticket's story
    "story.title": ("Sakens historie", "The ticket's story"),
    "story.when": ("Når", "When"),
    "story.what": ("Hva", "What"),
    "story.who": ("Hvem", "Who"),
    "story.outcome": ("Utfall", "Outcome"),
    "story.failed": ("feilet: {code}", "failed: {code}"),
    "story.accepted": ("godtatt som hendelse {event}", "accepted as event {event}"),
    "story.file_case": ("meldt manuelt", "filed by hand"),
    "story.edit": ("rettet", "edited"),
    "story.replay": ("sendt på nytt", "replayed"),
    "story.replay_failed": ("ny sending mislyktes (ikke sendt)", "replay failed (not sent)"),
    "story.resolved": ("løst", "resolved"),
    "story.discarded": ("forkastet", "discarded"),
    "story.approve": ("godkjent forbi regelen", "approved past the rule"),
    "story.merge_persons": ("personene slått sammen", "persons merged"),
    "story.split_persons": ("personene skilt", "persons split"),
    "story.by_hub": ("huben", "the hub"),
    "story.waiting": ("venter på svar", "waiting for the answer"),
    # The person's register beside the error
    "register.title": ("Personen i registeret", "The person in the register"),
    "register.hidden": (
        "Registeret viser deg bare det kommunen din har registrert om personen og om personen bor i "
        "kommunen din; her er det ingenting av det.",
        "The register shows you only what your municipality registered about the person and whether "
        "they live in your municipality; here there is nothing of either.",
    ),
    "register.own_only": (
        "Bare kommunens egne registreringer vises, og bosted bare om det er i kommunen.",
        "Only your municipality's own registrations are shown, and the residence only if it is in "
        "your municipality.",
    ),
    "register.unknown": (
        "Personen finnes ikke i registeret ennå (ingen registrering er godtatt).",
        "The person is not in the register yet (no registration has been accepted).",
    ),
    "register.residence": ("Bostedskommune {day}", "Municipality of residence on {day}"),
    "register.protected": ("skjermet adresse", "protected address"),
    "register.categories": ("Kategori {day}", "Category on {day}"),
    "register.training": ("opplæring", "training"),
    "register.programme": ("introduksjonsprogram", "introduction programme"),
    "register.states": ("Folkeregisteret", "Folkeregisteret"),
    "register.schemes": ("Ordninger", "Schemes"),
    "register.scheme": ("Ordning", "Scheme"),
    "register.status": ("Tilstand", "State"),
    "register.started": ("Startet", "Started"),
    "register.stopped": ("Stanset", "Stopped"),
    "register.ended": ("Avsluttet", "Ended"),
    "register.recent": (
        "Nyeste registreringer ({shown} av {total})",
        "Newest registrations ({shown} of {total})",
    ),
    "register.received": ("Mottatt", "Received"),
    "register.action": ("Handling", "Action"),
    "chains.title": ("Rettede og annullerte registreringer", "Corrected and annulled registrations"),
    "chains.registration": ("Registrering {registration}", "Registration {registration}"),
    "chains.standing": ("gjelder", "in force"),
    "chains.annulled": ("annullert", "annulled"),
    "chains.event": ("Hendelse", "Event"),
    "chains.effect": ("Virkning", "Effect"),
    "chains.sent": ("Sendt", "Sent"),
    "effect.original": ("original", "original"),
    "effect.corrected": ("rettet", "corrected"),
    "effect.annulled": ("annullert", "annulled"),
    "effect.restored": ("gjenopprettet", "restored"),
    "scheme.introductionProgramme": ("introduksjonsprogram", "introduction programme"),
    "scheme.norwegianAndSocialStudies": (
        "opplæring i norsk og samfunnskunnskap",
        "training in Norwegian and social studies",
    ),
    "scheme.asylumSeekerTraining": (
        "norskopplæring for asylsøkere",
        "Norwegian training for asylum seekers",
    ),
    "scheme.cultureAndValues": ("kultur og verdier", "culture and values"),
    "scheme_status.not_started": ("ikke startet", "not started"),
    "scheme_status.claimed": ("krav fremmet", "claimed"),
    "scheme_status.granted": ("innvilget", "granted"),
    "scheme_status.refused": ("avslått", "refused"),
    "scheme_status.running": ("i gang", "running"),
    "scheme_status.stopped": ("stanset", "stopped"),
    "scheme_status.ended": ("avsluttet", "ended"),
    "category.right_and_duty": ("rett og plikt", "right and duty"),
    "category.right_only": ("bare rett", "right only"),
    "category.duty_only": ("bare plikt", "duty only"),
    "category.not_applicable": ("ikke gjeldende", "not applicable"),
    "person_state.dead": ("meldt død {day}", "reported dead on {day}"),
    "person_state.ceased_as_duplicate": ("opphørt som dublett {day}", "ceased as a duplicate on {day}"),
    "not_json": ("ikke JSON: {message} (linje {line})", "not JSON: {message} (line {line})"),
    "not_object": ("hendelsen må være et JSON-objekt", "the event must be a JSON object"),
}

Translate = Callable[..., str]


def language_of(value: object) -> str:
    """A language the page speaks: `value` if it is one, else the default (input is hostile)."""
    return value if isinstance(value, str) and value in LANGUAGES else DEFAULT_LANGUAGE


def translate(language: str, key: str, **values: Any) -> str:
    """The text for `key` in `language`, with `values` filled in."""
    nb, en = TEXTS[key]
    text = en if language == ENGLISH else nb
    return text.format(**values) if values else text


def step_text(language: str, step: ReplayStep) -> str:
    """What became of a ticket in a replay, in `language`."""
    if step.skipped == CLOSED:
        return translate(language, "step.closed", status=translate(language, f"status.{step.status}"))
    if step.skipped == OUT_OF_SCOPE and step.why is not None:
        why = translate(language, step.why, **dict(step.values))
        return translate(language, "step.out_of_scope", why=why)
    if step.skipped is not None:
        return translate(language, f"step.{step.skipped}")
    return translate(language, "step.would_replay" if step.dry_run else "step.replayed", topic=step.topic)


def translator(language: str) -> Translate:
    """`translate` for one language, as the templates' `t`."""
    language = language_of(language)
    return lambda key, **values: translate(language, key, **values)
