"""The gateway's memory is bounded (issue 29, point 8), and a revoked source is refused by a
running gateway (the in-process half of point 6; tests/e2e/test_gateway.py has it on the broker)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

import pytest

from hub.domain.sources import SourceState
from hub.gateway.intake import Checked
from hub.gateway.tokens import SigningKeys
from tests.factories import event, synthetic_person
from tests.offline_gateway import (
    OTHER_CLIENT,
    SOURCE,
    Clock,
    JwksEndpoint,
    client_of,
    offline_gateway,
    settings,
    signing_key,
    token,
)


def test_a_flood_of_posts_and_receipts_keeps_the_gateways_memory_within_its_bounds() -> None:
    async def run() -> None:
        gateway = offline_gateway(settings(gateway_pending_max=1000, gateway_receipts_kept=2000))
        receipts_offset = 0
        for n in range(50_000):
            event_id = str(uuid.uuid4())
            [result] = await gateway._send(SOURCE, [Checked(0, event_id, b"key", b"value")])
            assert result["status"] == "accepted"
            if n % 3:  # two in three get their receipt; the others never do
                gateway.receipts.add(SOURCE, receipts_offset, {"eventId": event_id, "outcome": "ACCEPTED"})
                receipts_offset += 1
            assert len(gateway.pending) <= 1000
            assert len(gateway.receipts) <= 2000
        kept = gateway.receipts.sources[SOURCE]
        assert len(kept) == len(gateway.receipts) == 2000
        assert len(kept.by_offset) == 2000 and sum(map(len, kept.by_event.values())) == 2000
        assert kept.kept_from == receipts_offset - 2000
        # What is kept is the latest, in order, and found by cursor.
        page, after = kept.after(kept.kept_from, 10)
        assert [r["cursor"] for r in page] == [r["cursor"] for r in list(kept.by_offset.values())[:10]]
        assert after == kept.kept_from + 10

    asyncio.run(run())


def test_a_sent_event_is_forgotten_when_its_receipt_comes_or_after_the_pending_time() -> None:
    async def run() -> None:
        clock = Clock()
        gateway = offline_gateway(settings(gateway_pending_seconds=600))
        gateway.pending.clock = clock
        first, second, rejected = (str(uuid.uuid4()) for _ in range(3))
        for event_id in (first, second, rejected):
            [result] = await gateway._send(SOURCE, [Checked(0, event_id, b"k", b"v")])
            assert result["status"] == "accepted"
        [again] = await gateway._send(SOURCE, [Checked(0, first, b"k", b"v")])
        assert again["status"] == "already-received"

        # A rejected event may come again, corrected, under its id: it is sent again.
        gateway.receipts.add(SOURCE, 0, {"eventId": rejected, "outcome": "REJECTED"})
        assert len(gateway.pending) == 2
        [corrected] = await gateway._send(SOURCE, [Checked(0, rejected, b"k", b"v")])
        assert corrected["status"] == "accepted"

        clock.now += 601
        assert gateway.pending.get((SOURCE, first)) is None and len(gateway.pending) == 0
        [late] = await gateway._send(SOURCE, [Checked(0, second, b"k", b"v")])
        assert late["status"] == "accepted", "sent again: the register writes it once"

    asyncio.run(run())


def state(source: str, revoked: bool) -> SourceState:
    return SourceState(source, revoked, dt.datetime.now(dt.UTC), "imdi-support", "test")


def test_a_revoked_source_gets_403_for_posts_and_receipts_until_a_later_state_restores_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        key = signing_key()
        async with JwksEndpoint(key).serving() as endpoint:
            gateway = offline_gateway(settings(), SigningKeys(endpoint.url))
            mine = {"Authorization": f"Bearer {token(key)}"}
            other = {"Authorization": f"Bearer {token(key, OTHER_CLIENT)}"}
            body = event(synthetic_person(), source=SOURCE, municipality="0301")
            async with client_of(gateway) as client:
                assert (await client.post("/v1/events", json=body, headers=mine)).status == 202

                gateway.states.apply(SOURCE.encode(), state(SOURCE, True).as_bytes(), 0)
                for call in (
                    client.post("/v1/events", json=body, headers=mine),
                    client.get("/v1/receipts", headers=mine),
                    client.get(f"/v1/events/{body['eventId']}", headers=mine),
                ):
                    refused = await call
                    assert refused.status == 403
                    problem = await refused.json(content_type=None)
                    assert problem["type"] == "urn:nir:problem:source-revoked"
                    assert problem["title"] and "revoked" in problem["detail"]
                assert (await client.get("/v1/receipts", headers=other)).status == 200

                # What does not parse, or names another source than its key, changes nothing.
                with caplog.at_level(logging.WARNING, "hub.gateway.revocations"):
                    gateway.states.apply(SOURCE.encode(), b'{"source": "12345678901"', 1)
                    gateway.states.apply(SOURCE.encode(), state("vestland-fagsystem", True).as_bytes(), 2)
                assert (await client.get("/v1/receipts", headers=mine)).status == 403
                assert gateway.states.revoked("vestland-fagsystem") is None  # not its key: not applied
                # Said, and without the number. (How many lines: the log's repeat filter, if an
                # earlier test installed it, lets one of a kind through per interval.)
                assert "12345678901" not in caplog.text and "ignored" in caplog.text

                gateway.states.apply(SOURCE.encode(), state(SOURCE, False).as_bytes(), 3)
                again = await client.post(
                    "/v1/events",
                    json=event(synthetic_person(), source=SOURCE, municipality="0301"),
                    headers=mine,
                )
                assert again.status == 202
            await gateway.keys.close()

    asyncio.run(run())


def test_the_gateway_takes_no_request_until_it_has_read_the_source_states() -> None:
    async def run() -> None:
        key = signing_key()
        async with JwksEndpoint(key).serving() as endpoint:
            gateway = offline_gateway(settings(), SigningKeys(endpoint.url), caught_up=False)
            gateway.receipts.mark_caught_up()
            headers = {"Authorization": f"Bearer {token(key)}"}
            async with client_of(gateway) as client:
                starting = await client.get("/v1/receipts", headers=headers)
                assert starting.status == 503 and starting.headers["Retry-After"]
                assert (await starting.json(content_type=None))["type"] == "urn:nir:problem:starting"
                gateway.states.mark_caught_up()
                assert (await client.get("/v1/receipts", headers=headers)).status == 200
            await gateway.keys.close()

    asyncio.run(run())


def test_a_reader_waiting_at_a_cursor_whose_receipts_were_let_go_meanwhile_is_served_from_the_topic() -> None:
    async def run() -> None:
        receipts = offline_gateway(settings(gateway_receipts_kept=3)).receipts
        asked: list[int] = []

        async def from_topic(source: Any, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
            asked.append(offset)
            return [], offset

        receipts._from_topic = from_topic  # type: ignore[method-assign]
        reading = asyncio.create_task(receipts.read(SOURCE, 0, 10, wait=10))
        await asyncio.sleep(0.01)  # the reader waits: nothing has come yet
        assert not reading.done()
        for offset in range(5):  # more come at once than are kept
            receipts.add(SOURCE, offset, {"eventId": str(uuid.uuid4()), "outcome": "ACCEPTED"})
        receipts.sources[SOURCE].arrived.set()
        assert await asyncio.wait_for(reading, 5) == ([], 0)
        assert asked == [0], "the first receipts are read from the topic, not skipped"

    asyncio.run(run())
