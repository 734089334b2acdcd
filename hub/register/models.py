"""SQLAlchemy 2.x models of the register. Alembic migrations beside this module create them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Person(Base):
    """A person; identified by one or more identifiers (DUF number, D-number, fødselsnummer)."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    identifiers: Mapped[list[PersonIdentifier]] = relationship(back_populates="person")


class PersonIdentifier(Base):
    """One identifier of a person, and its history.

    `kind` is what the register matches on: `national_id` (a fødselsnummer, D- or H-number, the
    contract's `nationalId`) or `duf` (`dufNumber`); the decision core compares (kind, value).
    `number_kind` says what the number is: `fodselsnummer`, `d-number`, `h-number` or `duf`
    (`hub.domain.identifiers.number_kind`). `ceased_at` is set when Folkeregisteret stopped
    using the number (an identity change or a duplicate cessation, feed item
    `ceased_sequence`); the row stays, so the person is still found by the old number."""

    __tablename__ = "person_identifiers"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_person_identifiers_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(16), index=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    number_kind: Mapped[str] = mapped_column(String(16))
    ceased_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ceased_sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    person: Mapped[Person] = relationship(back_populates="identifiers")


class PersonEvent(Base):
    """A person event from Folkeregisteret's feed: an identity change (`IDENTITY_CHANGED`), a
    death (`PERSON_DIED`) or a duplicate cessation (`PERSON_CEASED_AS_DUPLICATE`). The last two
    are the person's states; `event_date` is the date of death, or of the cessation.
    `sequence_number` is the feed's (a look-up's is its id, negated) and with the event type
    unique, so reading the feed twice writes nothing twice.

    `person_id` is None while no person has any of the numbers it names (`numbers`): it is
    kept, and becomes the person's when one first appears (`hub.domain.snapshot`)."""

    __tablename__ = "person_events"
    __table_args__ = (
        UniqueConstraint("sequence_number", "event_type", name="uq_person_events_sequence_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence_number: Mapped[int] = mapped_column(BigInteger)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True, index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    event_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class PersonEventNumber(Base):
    """A number a person event names: for an identity change the number in use (`ceased` false)
    and each it ceases; for a death or a cessation the person's number."""

    __tablename__ = "person_event_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_event_id: Mapped[int] = mapped_column(ForeignKey("person_events.id"), index=True)
    value: Mapped[str] = mapped_column(String(16), index=True)
    ceased: Mapped[bool] = mapped_column(Boolean, default=False)


class PersonMerge(Base):
    """Two persons joined into one (`keeper_id` kept, `other_id` gone): by Folkeregisteret's
    identity change (`by` folkeregisteret) or by IMDi's support staff (`by` the user, with the
    conflict ticket it settled). It records what moved (`PersonMergeMove`), the other person's
    creation and look-up, and the highest row id of each table then (`marks`), so that a split
    (`split_at`) puts back exactly what was there and sorts out what came since."""

    __tablename__ = "person_merges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    keeper_id: Mapped[int] = mapped_column(Integer, index=True)
    other_id: Mapped[int] = mapped_column(Integer, index=True)
    other_created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The other person's Folkeregister look-up, as it was: {"id", "requested_at", "completed_at"}.
    other_lookup: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    marks: Mapped[dict[str, int]] = mapped_column(JSON)
    merged_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    merged_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(2000))
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    split_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    split_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    split_reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)


class PersonMergeMove(Base):
    """One row a merge moved from the other person to the keeper: its table and id."""

    __tablename__ = "person_merge_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merge_id: Mapped[int] = mapped_column(ForeignKey("person_merges.id"), index=True)
    table_name: Mapped[str] = mapped_column(String(32))
    row_id: Mapped[int] = mapped_column(Integer)


class RegistrationRecord(Base):
    """An accepted registration event, kept as sent. `event_id` is unique: the register, not
    memory, decides what is a duplicate."""

    __tablename__ = "registrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    # REGISTER, CORRECT or ANNUL; a correction or annulment shares the original's key.
    action: Mapped[str] = mapped_column(String(16), default="REGISTER")
    registration_key: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    fact_date: Mapped[dt.date] = mapped_column(Date)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    source_system: Mapped[str] = mapped_column(String(64))
    municipality: Mapped[str] = mapped_column(String(4))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    warnings: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    # Registered more than two months after the fact (rule NIR-DEADLINE-001): IMDi counts these.
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    writer_schema: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    accepted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # When the hub received it (the broker's time): the deadlines count to this, not to sentAt.
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The numbers the event named (None on rows from before revision 0015).
    national_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    duf_number: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AddressRecord(Base):
    """One address change from Folkeregisteret. `sequence_number` is the feed's and unique, so
    reading the feed twice writes nothing twice. Protected addresses keep no address text."""

    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence_number: Mapped[int] = mapped_column(BigInteger, unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    moved_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    municipality: Mapped[str | None] = mapped_column(String(4), nullable=True)
    protection: Mapped[str] = mapped_column(String(32))
    address_kind: Mapped[str] = mapped_column(String(32))
    address_line: Mapped[str | None] = mapped_column(String(256), nullable=True)
    postal_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    postal_place: Mapped[str | None] = mapped_column(String(128), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The number Folkeregisteret sent it for (None on rows from before revision 0015).
    national_id: Mapped[str | None] = mapped_column(String(16), nullable=True)


class FolkeregisterLookup(Base):
    """The Folkeregister connector's look-up of a person's current address, made once when the
    person becomes known, so an address that changed before then is not missed. Its id, negated,
    is the address change's sequence number (feed items have positive ones)."""

    __tablename__ = "folkeregister_lookups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), unique=True)
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )


class HeldEvent(Base):
    """An event that waits for one it depends on (a start before its end, an original before its
    correction). It is tried again whenever the person's register changes, and dead-lettered
    when it has waited longer than the hold limit. The message is kept as it arrived."""

    __tablename__ = "held_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    national_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    duf_number: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    fact_date: Mapped[dt.date] = mapped_column(Date)
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    message_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    message_value: Mapped[bytes] = mapped_column(LargeBinary)
    reason_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(512))
    reason_nb: Mapped[str] = mapped_column(String(512))
    held_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The broker's append time of the message (`HeldEntry.received_at`); None on older rows.
    received_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    # The registration a held correction or annulment refers to (the snapshot reads it too).
    corrects_event_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Set when the person's numbers changed outside the registration flow (Folkeregisteret's
    # identity change, IMDi's merge or split): the worker that owns its partition tries it
    # again on its next round (`RegistrationFlow.retry_held`), and clears it.
    nudged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


class TicketStatus(enum.Enum):
    OPEN = "open"
    REPLAYED = "replayed"
    RESOLVED = "resolved"
    DISCARDED = "discarded"


# A ticket still waiting for a fix.
ACTIVE = (TicketStatus.OPEN.value, TicketStatus.REPLAYED.value)
# The same as SQL, for the partial index of the active tickets (the queries say `status IN
# ACTIVE` in these words, so that the planner sees the index covers them).
_ACTIVE_SQL = "status IN ('open', 'replayed')"


class CaseTicket(Base):
    """A failed transfer (or a case filed by hand) that support staff inspect, fix and replay.

    Every failure of the same event attaches to one ticket: by its source's topic and event id
    when the message could be decoded (event ids are a source's own), else by where it was read
    from. The original message is kept as it arrived.
    """

    __tablename__ = "case_tickets"
    __table_args__ = (
        UniqueConstraint("original_topic", "event_id", name="uq_case_tickets_topic_event"),
        # An undecodable message's ticket is found by where the message was read.
        Index("ix_case_tickets_origin", "original_topic", "original_partition", "original_offset"),
        # An incident (`hub.support.incidents`): the active tickets of one cause, in time order;
        # on PostgreSQL with all the grouping of every incident reads, so that it reads the index
        # alone, in its order, rather than the whole table (migration 0025).
        Index(
            "ix_case_tickets_incident",
            "source_system",
            "error_code",
            "event_type",
            "fagsystem_version",
            "last_failed_at",
            "id",
            postgresql_where=text(_ACTIVE_SQL),
            postgresql_include=["municipality", "national_id", "duf_number"],
            sqlite_where=text(_ACTIVE_SQL),
        ),
        # A ticket's number, and with it the first ticket that names it: the gateway's view
        # (`gateway_incident_tickets`, migration 0026) counts a person the register does not
        # know by that ticket instead of the number, one index step per ticket however many
        # tickets name the same number.
        Index("ix_case_tickets_national_id", "national_id", "id"),
        Index("ix_case_tickets_duf_number", "duf_number", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # a TicketStatus value
    # dead_letter, identity_conflict (two persons in one event), quarantined or manual
    kind: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    error_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    error_message: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # The same in Norwegian, where the failure gave one (a rule's message; else its title).
    error_message_nb: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    source_system: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    municipality: Mapped[str | None] = mapped_column(String(4), nullable=True, index=True)
    event_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The fagsystem's release that sent the failed event (`fagsystemVersion`, as of its last
    # failure): a vendor's bad release is one incident (`hub.support.incidents`).
    fagsystem_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fact_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # When the failed event was sent: only an event sent after it is its fix.
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duf_number: Mapped[str | None] = mapped_column(String(16), nullable=True)
    national_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    original_topic: Mapped[str | None] = mapped_column(String(249), nullable=True)
    original_partition: Mapped[int | None] = mapped_column(Integer, nullable=True)
    original_offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    original_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    original_value: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # partition:offset of the last dead letter counted, so a redelivered one is not counted twice
    last_dead_letter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str | None] = mapped_column(String(4000), nullable=True)
    first_failed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_failed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    resolution_note: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    linked_event_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # What IMDi's support staff approved setting aside for this event (a rule's code), bound to
    # the message then replayed (SHA-256 of its value): see `hub.support.approval`.
    approved_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    approved_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # When retention took the personal data out of this closed ticket instead of deleting it (a
    # merge record names it): see `hub.register.retention`.
    anonymised_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


OUTCOME_FAILED, OUTCOME_ACCEPTED = "failed", "accepted"  # a TicketOutcome's kinds


class TicketOutcome(Base):
    """What happened to a ticket's event without anyone acting: each failure (`failed`, with the
    reason it failed that time) and its acceptance (`accepted`, by which event). Who acted on the
    ticket, and when, is in the audit log; together they are the ticket's story."""

    __tablename__ = "ticket_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("case_tickets.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16))  # failed or accepted
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    error_message_nb: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class TicketEdit(Base):
    """A support user's corrected version of a ticket's event, kept beside the original."""

    __tablename__ = "ticket_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("case_tickets.id"), index=True)
    edited_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    edited_by: Mapped[str] = mapped_column(String(128))
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class User(Base):
    """A support user. `role` is imdi_support (sees everything) or municipality_superuser (sees
    and acts on its own municipality's tickets only). Passwords are stored as scrypt hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    municipality: Mapped[str | None] = mapped_column(String(4), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sign_in_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The support page's language (`hub.support.i18n`); None is the default, Norwegian.
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    # The second factor (`hub.support.second_factor`): the TOTP secret, sealed; when it was
    # enrolled; and the last time step whose code was used (a code is accepted once).
    totp_secret: Mapped[str | None] = mapped_column(String(256), nullable=True)
    totp_enrolled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The person behind the user at an identity provider (`hub.support.oidc`): its issuer and the
    # claim that names them (ID-porten's pid, else sub). Set by `hub users link`; None for a user
    # who signs in with a password only.
    external_issuer: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # The person's subject at that provider as a keyed hash (`hub.domain.identifiers.link_key`).
    external_subject: Mapped[str | None] = mapped_column(String(256), nullable=True)

    __table_args__ = (
        Index("ux_users_external_identity", "external_issuer", "external_subject", unique=True),
    )


class SignInAttempt(Base):
    """A sign-in that failed, or is being checked (it counts as failed until it succeeds). Kept by
    the username tried, whether or not such a user exists, so a lockout says nothing about which
    usernames exist; forgotten once too old to count (see `hub.support.access`)."""

    __tablename__ = "sign_in_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str] = mapped_column(String(128), index=True)
    client_address: Mapped[str] = mapped_column(String(64), index=True)


class UserSession(Base):
    """A signed-in session; only the token's hash is stored, and it expires."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class PendingSignIn(Base):
    """A sign-in whose password was right and whose second factor is still to come: it opens
    nothing but the second factor's page, lives minutes, and is bound to the browser by a cookie
    holding its token (only the hash is stored). `enrol_secret` (sealed) is the TOTP secret
    offered to a user who has none yet, until they confirm it with a code."""

    __tablename__ = "pending_sign_ins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    enrol_secret: Mapped[str | None] = mapped_column(String(256), nullable=True)


class RecoveryCode(Base):
    """A single-use recovery code of a user's second factor, by its SHA-256 only."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OidcSignIn(Base):
    """A sign-in begun at the identity provider and not yet come back: what its answer must match
    (`hub.support.oidc`). Found by the hash of the browser's cookie, used once, and forgotten after
    a few minutes."""

    __tablename__ = "oidc_sign_ins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str] = mapped_column(String(2000))
    language: Mapped[str] = mapped_column(String(2))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditEntry(Base):
    """Who looked at personal data or acted on a ticket, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    detail: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # The operating-system user of a `hub` command's change (`username` is its `--user`).
    os_user: Mapped[str | None] = mapped_column(String(128), nullable=True)


class AccessLogEntry(Base):
    """One read of one person's personal data (`hub.register.access_log`): who (`actor`, and for
    the command line the operating-system user too), when, through what (`channel`, `action`),
    why (`reason`), and whom: the person's register id when the read found one, and the keyed
    hash of the number it was asked by (`subject_key`, `hub.domain.identifiers.subject_key`),
    never the number itself. A read of several persons is a row for each."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    os_user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    person_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    subject_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class UnfinishedWork(Base):
    """Messages of one partition that a flow began and has not finished: a batch's range, or one
    message and how many times it was begun. A mark that is still there when the messages come
    again means the worker stopped while working on them (see `hub.pipeline.crash_guard`)."""

    __tablename__ = "unfinished_work"
    __table_args__ = (Index("ix_unfinished_work_place", "flow", "topic", "partition"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    first_offset: Mapped[int] = mapped_column(BigInteger)
    last_offset: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    began_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SourceStateChange(Base):
    """Each revocation or restoration of a source (`hub sources revoke` / `restore`), kept as
    history; a source's state is its newest row (`hub.sources.SourceState`)."""

    __tablename__ = "source_states"
    __table_args__ = (Index("ix_source_states_source", "source_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(100))
    revoked: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(512))
