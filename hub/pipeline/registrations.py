"""The registration flow for one message: decode → validate against the rules and the person's
history → write, hold or reject → receipt (and dead letter). Every failure is handled here and
turned into an outcome; nothing escapes as an exception except cancellation, so the agent never
crashes on bad input.

Events that depend on one that has not arrived (an end before its start, a correction before
its original) are held in the register and tried again each time the person's register gains a
fact; those still waiting when the hold limit passes are dead-lettered (`expire_held`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from hub import metrics
from hub.bootstrap import Hub
from hub.domain.calendar import norwegian_date
from hub.domain.events import Origin, Registration
from hub.domain.lifecycle import Fact
from hub.domain.residence import Residence
from hub.errors import HubError
from hub.pipeline.deadletter import Failure
from hub.pipeline.decode import decode_registration
from hub.pipeline.flow import Flow, Message, count_dead_letters, failure_from, set_aside_failure
from hub.pipeline.ports import Outgoing, Publisher
from hub.pipeline.receipts import ReceiptOutcome, encode_receipt
from hub.register.batch import plan_batch
from hub.register.models import HeldEvent
from hub.register.operations import (
    WriteOutcome,
    already_registered,
    expired_held,
    held_for_persons,
    hold_event,
    load_history,
    record_registration,
    release_held,
)
from hub.rules import RuleContext, Severity, Target, Violation, evaluate
from hub.support.tickets import close_tickets_for_accepted

ACCEPTED = {ReceiptOutcome.ACCEPTED, ReceiptOutcome.ACCEPTED_WITH_WARNINGS}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    """What happened to one message (returned for metrics and tests)."""

    outcome: ReceiptOutcome
    violations: list[Violation]
    failure: Failure | None = None
    registered_at: dt.datetime | None = field(default=None, compare=False)


class RegistrationFlow(Flow):
    def __init__(self, hub: Hub, publisher: Publisher) -> None:
        super().__init__(hub, publisher)
        self._held_lock = asyncio.Lock()

    async def process(self, message: Message) -> Processed:
        return await self._process(message, from_hold=False)

    async def _process(self, message: Message, *, from_hold: bool) -> Processed:
        processed, registration = await self._handle(message, from_hold=from_hold)
        if not (from_hold and processed.outcome is ReceiptOutcome.HELD):  # counted when first held
            self._observe(processed, registration)
        return processed

    async def process_batch(self, messages: list[Message]) -> list[Processed]:
        """Messages in order, with one register transaction for the whole batch and the
        receipts sent together: the same outcomes as one by one, with far fewer round trips.

        If the batch's transaction fails for a reason that is not transient (a fault with one
        event), the batch is taken one by one, so that only that event is dead-lettered.
        """
        decoded: list[tuple[Message, Registration | None]] = []
        undecodable: dict[int, Processed] = {}  # by index: the rejection, with its reason
        for index, message in enumerate(messages):
            try:
                decoded.append((message, decode_registration(self.hub.catalog, message.value)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                decoded.append((message, None))
                undecodable[index] = _rejected_for(exc, message)
        writable = [(m, r) for m, r in decoded if r is not None]

        def decide_all(session: Session) -> list[Processed]:
            fast = self._decide_together(session, writable)
            if fast is not None:
                return fast
            return [self._decide(session, r, m, self._source(m)) for m, r in writable]

        try:
            decisions = iter(await self.in_transaction(lambda uow: decide_all(uow.session), "register write"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "a batch of %d could not be decided together (%s); deciding it one by one",
                len(messages),
                exc.code if isinstance(exc, HubError) else type(exc).__name__,
            )
            return [await self.process(m) for m in messages]

        # Receipts and dead letters are sent in message order and confirmed together, so each
        # source's receipts keep the order of its events.
        results: list[Processed] = []
        outgoing: list[Outgoing] = []
        for index, (message, registration) in enumerate(decoded):
            if registration is None:
                processed = undecodable[index]
            else:
                final = _final(next(decisions), from_hold=False)
                assert final is not None  # only a held event's retry has nothing to send
                processed = final
            outgoing += self._answers(message, registration.event_id if registration else None, processed)
            results.append(processed)
        await self.publish(outgoing, "receipt send")
        count_dead_letters(p.failure for p in results if p.failure)
        self._observe_all([(p, r) for p, (_, r) in zip(results, decoded, strict=True)])
        accepted = [r for (_, r), p in zip(decoded, results, strict=True) if r and p.outcome in ACCEPTED]
        await self.retry_held(accepted)
        return results

    async def set_aside(self, message: Message, times: int) -> None:
        """Rejected unread (the crash guard's way out): a dead letter and a receipt."""
        failure = set_aside_failure(times)
        violation = Violation(
            failure.code,
            Severity.REJECT,
            failure.message,
            f"{failure.code}: huben stoppet {times} ganger på denne meldingen; den er lagt til side ulest",
        )
        self._observe(await self._reject(message, None, failure, [violation], False), None)

    def _source(self, message: Message) -> str:
        return self.hub.names.source_of(message.origin.topic) or ""

    def _observe(self, processed: Processed, registration: Registration | None) -> None:
        self._observe_all([(processed, registration)])

    def _observe_all(self, outcomes: list[tuple[Processed, Registration | None]]) -> None:
        metrics.observe_registrations(
            metrics.RegistrationOutcome(
                event_type=registration.event_type if registration else "UNDECODABLE",
                municipality=registration.municipality if registration else None,
                outcome=processed.outcome.value,
                violations=tuple((v.code, v.severity.value) for v in processed.violations),
            )
            for processed, registration in outcomes
        )

    async def _answer(
        self, message: Message, registration: Registration, decided: Processed, *, from_hold: bool
    ) -> Processed:
        """Dead letter and receipt, or receipt, for a decided registration."""
        processed = _final(decided, from_hold=from_hold)
        if processed is None:
            return decided  # still waiting: the fagsystem already has its HELD receipt
        return await self._settle(message, registration.event_id, processed, from_hold)

    def _answers(self, message: Message, event_id: uuid.UUID | None, processed: Processed) -> list[Outgoing]:
        """What to publish for a final outcome: the dead letter of a rejected event, and the
        receipt (none for an unregistered source: the dead letter is the record)."""
        answers = [self.dead_letter_of(message, processed.failure)] if processed.failure else []
        source = self._source(message)
        if self.hub.registry.get(source) is not None:
            value = encode_receipt(
                self.hub.catalog,
                event_id=event_id,
                outcome=processed.outcome,
                violations=processed.violations,
                origin=message.origin,
                now=self.hub.clock(),
                registered_at=processed.registered_at,
            )
            answers.append(Outgoing(self.hub.names.receipts(source), source.encode(), value, []))
        return answers

    async def _settle(
        self, message: Message, event_id: uuid.UUID | None, processed: Processed, from_hold: bool
    ) -> Processed:
        """Publish a final outcome's answers; a rejected held event leaves the hold after that."""
        await self.publish(self._answers(message, event_id, processed), "receipt send")
        if processed.failure is not None:
            count_dead_letters([processed.failure])
            if from_hold and event_id is not None:
                # Only now, with the dead letter confirmed: its Kafka offset was committed long ago.
                await self.in_transaction(
                    lambda uow: release_held(uow.session, str(event_id)), "release held"
                )
        return processed

    async def _handle(self, message: Message, *, from_hold: bool) -> tuple[Processed, Registration | None]:
        source = self._source(message)
        event_id: uuid.UUID | None = None
        registration: Registration | None = None
        try:
            registration = decode_registration(self.hub.catalog, message.value)
            event_id = registration.event_id
            decided = await self.in_transaction(
                lambda uow: self._decide(uow.session, registration, message, source), "register write"
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            rejected = _rejected_for(exc, message)
            assert rejected.failure is not None
            settled = await self._reject(message, event_id, rejected.failure, rejected.violations, from_hold)
            return settled, registration

        processed = await self._answer(message, registration, decided, from_hold=from_hold)
        if processed.outcome in ACCEPTED and not from_hold:
            await self.retry_held([registration])
        return processed, registration

    def _decide_together(
        self, session: Session, items: list[tuple[Message, Registration]]
    ) -> list[Processed] | None:
        """`_decide` for a whole batch in a fixed number of statements, or None when the batch
        needs the one-by-one path (see `hub.register.batch`)."""
        plan = plan_batch(session, [r for _, r in items])
        if plan is None:
            return None
        now = self.hub.clock()
        decided = []
        for index, (message, registration) in enumerate(items):
            history, residences = plan.history(index)
            context = self.rule_context(self._source(message), history, None, residences, now=now)
            violations = evaluate(registration, context)
            stopped = _rejected_or_held(session, registration, message, violations, now)
            if stopped is not None:
                decided.append(stopped)
                continue
            warnings = _warnings(violations)
            plan.accept(index, registration, message.origin, warnings, now)
            decided.append(_accepted(warnings, now))
        plan.write(session, now)
        return decided

    def _decide(
        self, session: Session, registration: Registration, message: Message, source: str
    ) -> Processed:
        """Everything that needs the register, in one transaction."""
        now = self.hub.clock()
        previous = already_registered(session, registration, message.origin)
        if previous is not None:
            release_held(session, str(registration.event_id))
            close_tickets_for_accepted(session, registration, now)  # e.g. a replay of an accepted event
            if previous.outcome is WriteOutcome.DUPLICATE:
                return Processed(ReceiptOutcome.DUPLICATE, [], registered_at=previous.registered_at)
            return _accepted(previous.warnings, previous.registered_at)

        history, target, residences = load_history(session, registration)
        violations = evaluate(registration, self.rule_context(source, history, target, residences, now=now))
        stopped = _rejected_or_held(session, registration, message, violations, now)
        if stopped is not None:
            return stopped
        warnings = _warnings(violations)
        result = record_registration(
            session,
            registration,
            message.origin,
            warnings,
            now,
            registration_key=target.key if target is not None else None,
        )
        release_held(session, str(registration.event_id))
        close_tickets_for_accepted(session, registration, now)
        return _accepted(warnings, result.registered_at)

    def rule_context(
        self,
        source: str,
        history: tuple[Fact, ...],
        target: Target | None,
        residences: tuple[Residence, ...] = (),
        *,
        now: dt.datetime,
    ) -> RuleContext:
        """What the rules see of an event from `source`'s topic, at `now`."""
        return RuleContext(
            today=norwegian_date(now),
            now=now,
            topic_source=source,
            registry=self.hub.registry,
            allow_synthetic_identifiers=self.hub.settings.allow_synthetic_identifiers,
            history=history,
            target=target,
            residences=residences,
        )

    async def retry_held(self, registrations: list[Registration]) -> None:
        """Try the held events of these registrations' persons again until a pass accepts none."""
        identifiers = [i for r in registrations for i in (r.national_id, r.duf_number) if i]
        if not identifiers:
            return
        async with self._held_lock:
            while True:
                held = await self.in_transaction(
                    lambda uow: held_for_persons(uow.session, identifiers), "held events"
                )
                results = [await self._process(_message_of(h), from_hold=True) for h in held]
                if not any(r.outcome in ACCEPTED for r in results):
                    return

    async def expire_held(self, assigned: Collection[tuple[str, int]]) -> int:
        """Dead-letter the held events of the assigned partitions that waited too long."""
        async with self._held_lock:  # not while this worker is retrying them
            return await self._expire_held(assigned)

    async def _expire_held(self, assigned: Collection[tuple[str, int]]) -> int:
        limit = self.hub.clock() - dt.timedelta(seconds=self.hub.settings.hold_seconds)
        expired = await self.in_transaction(lambda uow: expired_held(uow.session, limit), "held events")
        count = 0
        for held in expired:
            if (held.topic, held.partition) not in assigned:
                continue  # another worker owns that partition, and its held events
            waited = (
                f"held since {held.held_at:%Y-%m-%d %H:%M}, longer than {self.hub.settings.hold_seconds:g} s"
            )
            violation = Violation(
                held.reason_code, Severity.REJECT, f"{held.reason} ({waited})", f"{held.reason_nb} ({waited})"
            )
            failure = Failure("rule", held.reason_code, f"{held.reason_code}: {violation.message}")
            await self._reject(_message_of(held), uuid.UUID(held.event_id), failure, [violation], True)
            count += 1
        return count

    async def _reject(
        self,
        message: Message,
        event_id: uuid.UUID | None,
        failure: Failure,
        violations: list[Violation],
        from_hold: bool,
    ) -> Processed:
        return await self._settle(
            message, event_id, Processed(ReceiptOutcome.REJECTED, violations, failure), from_hold
        )


def _rejected_or_held(
    session: Session,
    registration: Registration,
    message: Message,
    violations: list[Violation],
    now: dt.datetime,
) -> Processed | None:
    """The outcome when a rule rejects or holds the event (a held event is kept), else None."""
    if any(v.severity is Severity.REJECT for v in violations):
        return Processed(ReceiptOutcome.REJECTED, violations)
    holds = [v for v in violations if v.severity is Severity.HOLD]
    if holds:
        hold_event(session, registration, message.origin, message.key, message.value or b"", holds[0], now)
        return Processed(ReceiptOutcome.HELD, holds)
    return None


def _rejected_for(exc: Exception, message: Message) -> Processed:
    """The rejection of a message whose handling failed (undecodable, or a fault), with its reason."""
    failure = failure_from(exc, message.origin)
    return Processed(
        ReceiptOutcome.REJECTED, [Violation(failure.code, Severity.REJECT, failure.message)], failure
    )


def _final(decided: Processed, *, from_hold: bool) -> Processed | None:
    """The outcome to answer for a decision: a rejection gets its dead-letter reason; None for a
    held event that is still waiting on a retry (its HELD receipt went out when it was held)."""
    if decided.outcome is ReceiptOutcome.REJECTED:
        rejects = [v for v in decided.violations if v.severity is Severity.REJECT]
        text = "; ".join(f"{v.code}: {v.message}" for v in rejects)
        return Processed(ReceiptOutcome.REJECTED, decided.violations, Failure("rule", rejects[0].code, text))
    if decided.outcome is ReceiptOutcome.HELD and from_hold:
        return None
    return decided


def _warnings(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity is Severity.WARNING]


def _accepted(warnings: list[Violation], registered_at: dt.datetime | None) -> Processed:
    outcome = ReceiptOutcome.ACCEPTED_WITH_WARNINGS if warnings else ReceiptOutcome.ACCEPTED
    return Processed(outcome, warnings, registered_at=registered_at)


def _message_of(held: HeldEvent) -> Message:
    return Message(Origin(held.topic, held.partition, held.offset), held.message_key, held.message_value)
