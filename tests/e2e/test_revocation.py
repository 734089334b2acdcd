"""Revoking a source holds everywhere, at once (issue 29, point 6): what the revoked source had
already put on its topic is rejected with its own code (NIR-SOURCE-003) by a worker that was
never restarted, other sources go on, and a restored source is accepted again. On the real
broker and both databases. (The gateway's half is tests/e2e/test_gateway.py's.)"""

from __future__ import annotations

from collections import Counter

from hub.register.database import make_session_factory
from hub.register.source_states import current_source_states
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from tests.factories import event, synthetic_person
from tests.harness import HubHarness, hub_command

OSLO, VESTLAND = "oslo-fagsystem", "vestland-fagsystem"


def _codes(receipt: dict) -> set[str]:  # type: ignore[type-arg]
    return {v["code"] for v in receipt["violations"]}


def _source(receipt: dict) -> str:  # type: ignore[type-arg]
    """The source whose topic the event came on (`<prefix>.source.<id>.registrations`)."""
    return str(receipt["originalTopic"]).split(".source.")[1].removesuffix(".registrations")


def test_a_revoked_sources_events_already_on_its_topic_are_rejected_and_a_restored_one_is_accepted_again(
    harness: HubHarness,
) -> None:
    harness.start_worker()
    harness.publish([event(synthetic_person(), source=OSLO)])
    [before], _ = harness.wait_for_receipts(1)
    assert before["outcome"] == "ACCEPTED"

    revoked = hub_command(harness.admin, "sources", "revoke", OSLO, "--reason", "contract ended", "--by", "imdi")
    assert revoked.returncode == 0, revoked.stderr
    # Events on its topic that the worker reads after the revocation (sent before it, in flight,
    # or replayed): written here as the admin, since the source's own credential is gone.
    topic = harness.hub.names.registrations(OSLO)
    for e in [event(synthetic_person(), source=OSLO) for _ in range(3)]:
        harness.publish_raw(topic, catalog().encode(REGISTRATION, from_json(e)))
    harness.publish([event(synthetic_person(), source=VESTLAND, municipality="4601")])
    receipts, _ = harness.wait_for_receipts(5)
    by_source = Counter((_source(r), r["outcome"]) for r in receipts)
    assert by_source == {(OSLO, "ACCEPTED"): 1, (OSLO, "REJECTED"): 3, (VESTLAND, "ACCEPTED"): 1}
    assert all("NIR-SOURCE-003" in _codes(r) for r in receipts if r["outcome"] == "REJECTED")
    assert len(harness.registrations()) == 2

    with make_session_factory(harness.hub.engine)() as session:
        state = current_source_states(session)[OSLO]
    assert (state.revoked, state.by, state.reason) == (True, "imdi", "contract ended")

    restored = hub_command(harness.admin, "sources", "restore", OSLO, "--reason", "new contract")
    assert restored.returncode == 0, restored.stderr
    harness.publish([event(synthetic_person(), source=OSLO)])
    receipts, _ = harness.wait_for_receipts(6)
    assert Counter((_source(r), r["outcome"]) for r in receipts)[(OSLO, "ACCEPTED")] == 2
