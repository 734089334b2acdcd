"""The registration flow for one message: decode → validate → deduplicate and write → receipt,
or dead letter. Every failure is handled here and turned into an outcome; nothing escapes as
an exception except cancellation, so the agent never crashes on bad input.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from hub.domain.events import Origin
from hub.pipeline.deadletter import Failure
from hub.pipeline.decode import decode_registration
from hub.pipeline.flow import Flow, Message, failure_from
from hub.pipeline.receipts import ReceiptOutcome, encode_receipt
from hub.register.operations import WriteOutcome, WriteResult, record_registration
from hub.rules import RuleContext, Severity, Violation, evaluate


@dataclass(frozen=True)
class Processed:
    """What happened to one message (returned for metrics and tests)."""

    outcome: ReceiptOutcome
    violations: list[Violation]
    failure: Failure | None = None


class RegistrationFlow(Flow):
    async def process(self, message: Message) -> Processed:
        source = self.hub.names.source_of(message.origin.topic) or ""
        event_id: uuid.UUID | None = None
        try:
            registration = decode_registration(self.hub.catalog, message.value)
            event_id = registration.event_id
            violations = evaluate(registration, self._context(source))
            rejects = [v for v in violations if v.severity is Severity.REJECT]
            if rejects:
                message_text = "; ".join(f"{v.code}: {v.message}" for v in rejects)
                return await self._reject(
                    message, source, event_id, Failure("rule", rejects[0].code, message_text), violations
                )
            result = await self.in_transaction(
                lambda uow: record_registration(
                    uow.session, registration, message.origin, violations, self.hub.clock()
                ),
                "register write",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = failure_from(exc, message.origin)
            violation = Violation(failure.code, Severity.REJECT, failure.message)
            return await self._reject(message, source, event_id, failure, [violation])

        if result.outcome is WriteOutcome.DUPLICATE:
            outcome = ReceiptOutcome.DUPLICATE
        elif violations:  # only warnings reach this point
            outcome = ReceiptOutcome.ACCEPTED_WITH_WARNINGS
        else:
            outcome = ReceiptOutcome.ACCEPTED
        await self._send_receipt(source, event_id, outcome, violations, message.origin, result)
        return Processed(outcome=outcome, violations=violations)

    def _context(self, source: str) -> RuleContext:
        return RuleContext(
            today=self.hub.today(),
            now=self.hub.clock(),
            topic_source=source,
            registry=self.hub.registry,
            allow_synthetic_identifiers=self.hub.settings.allow_synthetic_identifiers,
        )

    async def _reject(
        self,
        message: Message,
        source: str,
        event_id: uuid.UUID | None,
        failure: Failure,
        violations: list[Violation],
    ) -> Processed:
        await self.dead_letter(message, failure)
        await self._send_receipt(source, event_id, ReceiptOutcome.REJECTED, violations, message.origin, None)
        return Processed(outcome=ReceiptOutcome.REJECTED, violations=violations, failure=failure)

    async def _send_receipt(
        self,
        source: str,
        event_id: uuid.UUID | None,
        outcome: ReceiptOutcome,
        violations: list[Violation],
        origin: Origin,
        result: WriteResult | None,
    ) -> None:
        if self.hub.registry.get(source) is None:
            return  # an unregistered source has no receipts topic; the dead letter is the record
        value = encode_receipt(
            self.hub.catalog,
            event_id=event_id,
            outcome=outcome,
            violations=violations,
            origin=origin,
            now=self.hub.clock(),
            registered_at=result.registered_at if result else None,
        )
        await self.retry(
            lambda: self.publisher.send(self.hub.names.receipts(source), source.encode(), value, []),
            "receipt send",
        )
