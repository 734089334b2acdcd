"""The gateway's cache of Maskinporten's keys (issue 29, point 5): a JWKS endpoint that hangs or
fails must not stall requests whose key is known, unknown key ids must not become a flood of
reads, and keys are trusted only for a bounded time after the last good read."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hub.gateway.tokens import SigningKeys, TokenVerifier
from hub.sources import SourceRegistry
from tests.maskinporten import GATEWAY_AUDIENCE, GATEWAY_SCOPE
from tests.offline_gateway import (
    ISSUER,
    REGISTRY,
    Clock,
    JwksEndpoint,
    client_of,
    kid,
    offline_gateway,
    settings,
    signing_key,
    token,
)


def verifier(keys: SigningKeys) -> TokenVerifier:
    return TokenVerifier(
        keys,
        SourceRegistry.from_mapping(REGISTRY),
        issuer=ISSUER,
        audience=GATEWAY_AUDIENCE,
        scope=GATEWAY_SCOPE,
    )


def test_requests_with_a_known_key_all_finish_while_the_jwks_endpoint_hangs() -> None:
    async def run() -> None:
        key, clock = signing_key(), Clock()
        async with JwksEndpoint(key).serving() as endpoint:
            # A read that hangs would hold a waiting request for 30 s.
            keys = SigningKeys(endpoint.url, timeout=30, refresh_seconds=100, clock=clock)
            tokens = verifier(keys)
            assert (await tokens.claims(token(key)))["client_id"]
            assert endpoint.reads == 1

            endpoint.mode, clock.now = "hang", clock.now + 150  # the keys are due to be read again
            endpoint.entered.clear()
            await tokens.claims(token(key))  # starts the read in the background
            await asyncio.wait_for(endpoint.entered.wait(), 10)

            # The read hangs; twenty requests with the known key are all answered meanwhile.
            answered = await asyncio.wait_for(
                asyncio.gather(*(tokens.claims(token(key)) for _ in range(20))), 10
            )
            assert len(answered) == 20
            assert not endpoint.release.is_set(), "answered while the JWKS endpoint still hangs"
            assert endpoint.reads == 2, "one read in flight, not one per request"
            await keys.close()

    asyncio.run(run())


def test_unknown_key_ids_make_at_most_one_jwks_read_per_interval_shared_by_every_waiter() -> None:
    async def run() -> None:
        key, rotated, clock = signing_key(), signing_key(14), Clock()
        async with JwksEndpoint(key).serving() as endpoint:
            keys = SigningKeys(endpoint.url, timeout=30, unknown_kid_seconds=60, clock=clock)
            assert await keys.key(kid(key)) is not None
            assert endpoint.reads == 1

            # Within the interval after a read, made-up key ids cause no read at all.
            clock.now += 30
            assert [await keys.key(f"made-up-{i}") for i in range(50)] == [None] * 50
            assert endpoint.reads == 1

            # After it, fifty at once share one read, which they wait for together.
            clock.now += 31
            endpoint.mode = "hang"
            endpoint.entered.clear()
            waiting = asyncio.gather(*(keys.key(f"made-up-{i}") for i in range(50)))
            await asyncio.wait_for(endpoint.entered.wait(), 10)
            endpoint.mode = "serve"
            endpoint.release.set()
            assert await asyncio.wait_for(waiting, 10) == [None] * 50
            assert endpoint.reads == 2

            # A key Maskinporten really added is found by the first read after the interval.
            endpoint.keys.append(rotated)
            assert await keys.key(kid(rotated)) is None  # still within the interval
            clock.now += 61
            assert await keys.key(kid(rotated)) is not None
            assert endpoint.reads == 3

    asyncio.run(run())


def test_a_failing_jwks_endpoint_is_read_again_only_after_a_pause_that_doubles_up_to_its_cap() -> None:
    async def run() -> None:
        key, clock = signing_key(), Clock()
        async with JwksEndpoint(key).serving() as endpoint:
            endpoint.mode = "fail"
            keys = SigningKeys(endpoint.url, unknown_kid_seconds=0.001, backoff_max_seconds=4, clock=clock)
            reads_at: list[float] = []
            start = clock.now
            while clock.now - start < 20:
                before = endpoint.reads
                assert await keys.key(kid(key)) is None
                if endpoint.reads > before:
                    reads_at.append(clock.now - start)
                clock.now += 0.25
            pauses = [round(b - a, 2) for a, b in itertools.pairwise(reads_at)]
            assert pauses[:3] == [1.0, 2.0, 4.0] and set(pauses[3:]) == {4.0}, pauses

            # Once it answers again, the keys are there.
            endpoint.mode = "serve"
            clock.now += 4
            assert await keys.key(kid(key)) is not None

    asyncio.run(run())


def test_keys_serve_while_reads_fail_until_the_staleness_bound_then_tokens_get_the_usual_401() -> None:
    async def run() -> None:
        key, clock = signing_key(), Clock()
        async with JwksEndpoint(key).serving() as endpoint:
            keys = SigningKeys(
                endpoint.url, refresh_seconds=60, max_stale_seconds=3600, backoff_max_seconds=30, clock=clock
            )
            gateway = offline_gateway(settings(), keys)
            headers = {"Authorization": f"Bearer {token(key)}"}
            async with client_of(gateway) as client:

                async def receipts() -> Any:
                    response = await client.get("/v1/receipts", headers=headers)
                    return response.status, response.headers, await response.json(content_type=None)

                assert (await receipts())[0] == 200
                endpoint.mode = "fail"
                for _ in range(20):  # an hour of failed reads: the known key still serves
                    clock.now += 175
                    assert (await receipts())[0] == 200
                    await asyncio.sleep(0.05)  # lets the background read fail
                assert endpoint.reads > 5

                clock.now += 200  # past an hour since the last good read
                status, answer_headers, body = await receipts()
                assert status == 401
                assert answer_headers["Content-Type"].startswith("application/problem+json")
                assert answer_headers["WWW-Authenticate"].startswith('Bearer realm="nir-gateway"')
                assert body["type"] == "urn:nir:problem:invalid-token" and body["status"] == 401

                endpoint.mode = "serve"
                clock.now += 30  # past the back-off: the next request reads, and is let in
                assert (await receipts())[0] == 200
            await keys.close()

    asyncio.run(run())
