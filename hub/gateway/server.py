"""The gateway's HTTP API, its process and its command (`hub gateway`).

| route                        | what                                                        |
|------------------------------|-------------------------------------------------------------|
| `POST /v1/events`            | one event or a batch; 202 lists per event where it went      |
| `GET /v1/events/{eventId}`   | the event's latest outcome (from the caller's receipts)     |
| `GET /v1/receipts`           | the caller's receipts in order from a cursor (long-poll)    |
| `GET /v1/incidents`          | the caller's incidents: its failures grouped by cause       |
| `GET /v1/openapi.json`       | the OpenAPI 3.1 document of this API                        |

`/metrics`, `/health/live` and `/health/ready` are served on NIR_METRICS_HOST:
NIR_GATEWAY_METRICS_PORT, apart from the API (on the API's port when that is 0).

The order that makes an answer true: an event is acknowledged (202, `accepted`) only once the
broker has confirmed it (acks=all, idempotent producer); an event the broker did not confirm is
answered `not-sent` (503 when nothing was sent) and may be posted again. A retried event is
answered `already-received` without being sent again when the gateway can know (it sent the
event and is waiting for its receipt, or a receipt says it arrived); otherwise it is sent again,
and the register, which keys on the event id, writes it once (receipt DUPLICATE).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hub.config import Settings
from hub.errors import safe_traceback
from hub.gateway.incidents import INCIDENTS_PAGE, INCIDENTS_PAGE_MAX, SourceIncidents
from hub.gateway.intake import Checked, Refused, check_avro, check_json, read_events
from hub.gateway.limits import RateLimiter
from hub.gateway.pending import PendingEvents
from hub.gateway.problems import PROBLEM_JSON, Problem
from hub.gateway.receipts import ReceiptLog, decode_cursor, encode_cursor
from hub.gateway.revocations import SourceStates
from hub.gateway.tokens import Caller, SigningKeys, TokenVerifier
from hub.kafka.topics import TopicNames
from hub.ops import metrics
from hub.ops.webserver import add_security_headers, security_headers
from hub.schemas.codec import SchemaCatalog, catalog
from hub.sources import SourceRegistry

log = logging.getLogger(__name__)
access_log = logging.getLogger("hub.gateway.access")

OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"
RECEIPTS_PAGE = 100
RECEIPTS_PAGE_MAX = 1000
STARTING_RETRY_SECONDS = 5
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CALLER = web.AppKey("caller", Caller)


class Gateway:
    def __init__(self, settings: Settings, registry: SourceRegistry, schema_catalog: SchemaCatalog) -> None:
        self.settings = settings
        self.registry = registry
        self.catalog = schema_catalog
        self.names = TopicNames(settings.topic_prefix)
        kafka = settings.kafka_as(settings.kafka_gateway_user)
        self.producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", enable_idempotence=True)
        self.receipts = ReceiptLog(
            kafka,
            self.names,
            [s.id for s in registry],
            schema_catalog,
            kept=settings.gateway_receipts_kept,
            on_receipt=self._receipt_came,
        )
        self.states = SourceStates(kafka, self.names)
        self.keys = SigningKeys.from_settings(settings)
        self.verifier = TokenVerifier(
            self.keys,
            registry,
            issuer=settings.maskinporten_issuer,
            audience=settings.gateway_audience,
            scope=settings.gateway_scope,
        )
        self.limits = RateLimiter(settings.gateway_rate_per_second, settings.gateway_rate_burst)
        # Events this process sent whose receipt has not come yet: (source, event id) -> where.
        self.pending = PendingEvents(settings.gateway_pending_seconds, settings.gateway_pending_max)
        self.incidents = SourceIncidents(
            settings.gateway_database_url,
            dt.timedelta(hours=settings.incident_window_hours),
            password_file=settings.gateway_database_password_file,
        )

    async def start(self) -> None:
        self.keys.start()
        await self.producer.start()
        await self.states.start()
        await self.receipts.start()

    async def stop(self) -> None:
        await self.receipts.stop()
        await self.states.stop()
        await self.producer.stop()  # sends what is buffered first
        await self.keys.close()
        self.incidents.close()

    @property
    def caught_up(self) -> bool:
        """Whether the gateway knows every receipt and every revocation there was when it started."""
        return self.receipts.caught_up and self.states.caught_up

    def _receipt_came(self, source: str, receipt: dict[str, Any]) -> None:
        # Whatever the outcome: a rejected event may be sent again, corrected, under its id.
        if receipt.get("eventId"):
            self.pending.pop((source, receipt["eventId"]))

    # --- the API ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.gateway_max_request_bytes, middlewares=[self._answer_problems]
        )
        app.router.add_post("/v1/events", self.post_events)
        app.router.add_get("/v1/events/{event_id}", self.get_event)
        app.router.add_get("/v1/receipts", self.get_receipts)
        app.router.add_get("/v1/incidents", self.get_incidents)
        app.router.add_get("/v1/openapi.json", self.openapi)
        add_security_headers(app, security_headers(over_tls=bool(self.settings.gateway_tls_cert_file)))
        if not self.settings.gateway_metrics_port:
            self.add_operations(app)
        return app

    async def post_events(self, request: web.Request) -> web.Response:
        caller = await self._admit(request)
        if (
            request.content_length is not None
            and request.content_length > self.settings.gateway_max_request_bytes
        ):
            raise _too_large(self.settings.gateway_max_request_bytes)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(self.settings.gateway_max_request_bytes) from None
        events = read_events(body, request.content_type, self.settings.gateway_max_batch_events)
        source = caller.source.id
        if isinstance(events, bytes):
            checked = [check_avro(events, source, self.catalog)]
        else:
            checked = [check_json(i, e, source, self.catalog) for i, e in enumerate(events)]
        request["events"] = len(checked)
        results = await self._send(source, checked)
        return _events_answer(results)

    async def _send(self, source: str, checked: list[Checked | Refused]) -> list[dict[str, Any]]:
        """Send what passed the checks and is not known to have arrived; each result once the
        broker has answered for it."""
        topic = self.names.registrations(source)
        results: list[dict[str, Any]] = [{} for _ in checked]
        in_flight: list[tuple[Checked, asyncio.Future[Any]]] = []
        first_in_batch: dict[str, int] = {}
        for item in checked:
            if isinstance(item, Refused):
                results[item.index] = _refused(item)
                continue
            earlier = self._arrived(source, item.event_id)
            if earlier is not None or item.event_id in first_in_batch:
                results[item.index] = {
                    "eventId": item.event_id,
                    "status": "already-received",
                    **(earlier or {}),
                }
                continue
            first_in_batch[item.event_id] = item.index
            try:
                in_flight.append((item, await self.producer.send(topic, item.value, key=item.key)))
            except KafkaError as exc:
                results[item.index] = _not_sent(item, exc)
        for item, future in in_flight:
            try:
                sent = await future
            except KafkaError as exc:
                results[item.index] = _not_sent(item, exc)
                continue
            place = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
            self.pending.add((source, item.event_id), place)
            results[item.index] = {"eventId": item.event_id, "status": "accepted", **place}
        for item in checked:  # a repeat within the batch points where its first copy went
            if isinstance(item, Checked) and first_in_batch.get(item.event_id, item.index) != item.index:
                first = results[first_in_batch[item.event_id]]
                results[item.index] |= {
                    k: v for k, v in first.items() if k in ("topic", "partition", "offset")
                }
        for result in results:
            metrics.GATEWAY_EVENTS.labels(result["status"].replace("-", "_")).inc()
            if result["status"] == "refused":
                metrics.GATEWAY_REFUSALS.labels(result["problem"]["type"].rsplit(":", 1)[-1]).inc()
        for i, result in enumerate(results):
            result["index"] = i
        return results

    def _arrived(self, source: str, event_id: str) -> dict[str, Any] | None:
        """Where an event went, if it is known to have arrived: a receipt says so, or this
        process sent it and waits for its receipt."""
        receipt = self.receipts.sources[source].received(event_id)
        if receipt is not None:
            return {"outcome": receipt["outcome"]}
        return self.pending.get((source, event_id))

    async def get_event(self, request: web.Request) -> web.Response:
        caller = await self._admit(request)
        try:
            event_id = str(uuid.UUID(request.match_info["event_id"]))
        except ValueError:
            raise Problem(400, "invalid-event-id", "The event id must be a UUID") from None
        source = caller.source.id
        receipt = self.receipts.sources[source].outcome(event_id)
        if receipt is not None:
            return web.json_response({"eventId": event_id, "outcome": receipt["outcome"], "receipt": receipt})
        sent = self.pending.get((source, event_id))
        if sent is not None:
            return web.json_response({"eventId": event_id, "outcome": "PENDING", "receipt": None, **sent})
        raise Problem(
            404,
            "unknown-event",
            "No receipt for this event yet",
            "an event sent a moment ago gets its receipt within seconds; an event of another source is never shown",
        )

    async def get_receipts(self, request: web.Request) -> web.Response:
        caller = await self._admit(request)
        source = caller.source.id
        query = request.query
        if query.get("source", source) != source:
            raise Problem(403, "forbidden-source", "A caller reads only its own source's receipts")
        after = query.get("after")
        offset = decode_cursor(after, source) if after else 0
        limit = _number(query, "limit", RECEIPTS_PAGE, 1, RECEIPTS_PAGE_MAX)
        wait = _number(query, "wait", 0, 0, self.settings.gateway_poll_max_seconds)
        found, next_offset = await self.receipts.read(source, offset, int(limit), wait)
        return web.json_response({"receipts": found, "cursor": encode_cursor(source, next_offset)})

    async def get_incidents(self, request: web.Request) -> web.Response:
        caller = await self._admit(request)
        source = caller.source.id
        query = request.query
        if query.get("source", source) != source:
            raise Problem(403, "forbidden-source", "A caller reads only its own source's incidents")
        limit = int(_number(query, "limit", INCIDENTS_PAGE, 1, INCIDENTS_PAGE_MAX))
        found = await self.incidents.of(source, limit)
        return web.json_response(
            {"source": source, "windowHours": self.settings.incident_window_hours, "incidents": found}
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=OPENAPI_FILE.read_bytes(), content_type="application/json")

    async def _admit(self, request: web.Request) -> Caller:
        """The verified caller, not revoked, within its rate, once the gateway knows every receipt
        and revocation there was."""
        caller = await self.verifier.caller(request.headers.get("Authorization"))
        request["source"] = caller.source.id
        if not self.states.caught_up:
            # Until then a revoked source cannot be told from another: no one is let in.
            raise _starting("it is reading the sources' revocations")
        revoked = self.states.revoked(caller.source.id)
        if revoked is not None:
            raise Problem(
                403,
                "source-revoked",
                "The source's access has been revoked",
                f"IMDi revoked this source's access at {revoked.since.isoformat()}; ask IMDi to restore it",
            )
        wait = self.limits.take(caller.source.id)
        if wait:
            raise Problem(
                429,
                "rate-limited",
                "Too many requests from this source",
                f"at most {self.settings.gateway_rate_per_second:g} requests a second; wait as Retry-After says",
                headers={"Retry-After": RateLimiter.retry_after(wait)},
            )
        if not self.receipts.caught_up:
            raise _starting("it is reading the receipts")
        return caller

    @web.middleware
    async def _answer_problems(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every refusal as a problem document, counted; a fault as a 500 that tells nothing."""
        request_id = request.headers.get("X-Request-ID", "")
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = str(uuid.uuid4())
        request["request_id"] = request_id
        started = time.monotonic()
        route = (
            request.match_info.route.resource.canonical if request.match_info.route.resource else "unknown"
        )
        try:
            response = await handler(request)
        except Problem as problem:
            metrics.GATEWAY_REFUSALS.labels(problem.slug).inc()
            response = problem.response(request_id)
        except web.HTTPException as exc:  # aiohttp's own: no route, wrong method
            if exc.status < 400:
                raise
            slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status, "bad-request")
            metrics.GATEWAY_REFUSALS.labels(slug).inc()
            response = Problem(
                exc.status, slug, exc.reason, headers={k: v for k, v in exc.headers.items() if k == "Allow"}
            ).response(request_id)
        except Exception as exc:
            log.error("the gateway failed on %s %s: %s", request.method, route, safe_traceback(exc))
            response = Problem(500, "internal", "The gateway failed; the request may be sent again").response(
                request_id
            )
        response.headers["X-Request-ID"] = request_id
        metrics.GATEWAY_REQUESTS.labels(route, request.method, str(response.status)).inc()
        metrics.GATEWAY_REQUEST_SECONDS.labels(route).observe(time.monotonic() - started)
        return response

    # --- operations ------------------------------------------------------------------------

    def add_operations(self, app: web.Application) -> None:
        async def serve_metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def live(request: web.Request) -> web.Response:
            return web.json_response({"status": "live"})

        async def ready(request: web.Request) -> web.Response:
            checks = {
                "receipts": "ok" if self.receipts.caught_up else "reading",
                "revocations": "ok" if self.states.caught_up else "reading",
                "broker": "ok" if self.producer.client.cluster.brokers() else "unavailable",
            }
            ok = all(v == "ok" for v in checks.values())
            return web.json_response(
                {"status": "ready" if ok else "not ready", **checks}, status=200 if ok else 503
            )

        app.router.add_get("/metrics", serve_metrics)
        app.router.add_get("/health/live", live)
        app.router.add_get("/health/ready", ready)


def _refused(item: Refused) -> dict[str, Any]:
    return {"eventId": item.event_id, "status": "refused", "problem": item.problem.document()}


def _not_sent(item: Checked, exc: KafkaError) -> dict[str, Any]:
    log.warning("the broker did not confirm an event: %s", type(exc).__name__)
    problem = Problem(503, "not-sent", "The broker did not confirm the event", "post it again")
    return {"eventId": item.event_id, "status": "not-sent", "problem": problem.document()}


def _events_answer(results: list[dict[str, Any]]) -> web.Response:
    """202 when any event was taken (the results say which); otherwise the refusal itself."""
    taken = [r for r in results if r["status"] in ("accepted", "already-received")]
    if taken:
        headers = {"Location": f"/v1/events/{results[0]['eventId']}"} if len(results) == 1 else {}
        return web.json_response({"results": results}, status=202, headers=headers)
    statuses = {r["problem"]["status"] for r in results}
    status = statuses.pop() if len(statuses) == 1 else 400
    if len(results) == 1:
        document = results[0]["problem"] | {"eventId": results[0]["eventId"], "results": results}
    else:
        document = Problem(
            status, "no-event-taken", "No event of the batch was taken", "see each event's problem"
        ).document()
        document["results"] = results
    return web.Response(
        status=status, text=json.dumps(document, ensure_ascii=False), content_type=PROBLEM_JSON
    )


def _starting(doing: str) -> Problem:
    return Problem(
        503,
        "starting",
        "The gateway is starting",
        f"{doing}; try again shortly",
        headers={"Retry-After": str(STARTING_RETRY_SECONDS)},
    )


def _too_large(limit: int) -> Problem:
    return Problem(
        413, "request-too-large", "The request body is too large", f"send at most {limit} bytes per request"
    )


def _number(query: Any, name: str, default: float, low: float, high: float) -> float:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Problem(
            400,
            "invalid-parameter",
            f"{name} must be a number",
            errors=[{"field": name, "rule": "must be a number"}],
        ) from None
    if not low <= value or value != value:
        raise Problem(
            400,
            "invalid-parameter",
            f"{name} must be at least {low:g}",
            errors=[{"field": name, "rule": f"must be at least {low:g}"}],
        )
    return min(value, high)


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: who (source), what (route, not the path), how it went. No body,
    no query, no token: nothing of an event, so nothing personal."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        match_info = getattr(request, "match_info", None)
        resource = match_info.route.resource if match_info is not None else None
        line = {
            "request_id": request.get("request_id"),
            "method": request.method,
            "route": resource.canonical if resource is not None else None,
            "status": response.status,
            "duration_ms": round(time * 1000, 1),
            "source": request.get("source"),
            "events": request.get("events"),
            "bytes_in": request.content_length,
            "bytes_out": response.body_length,
            "remote": request.remote,
        }
        self.logger.info(json.dumps(line))


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the gateway until `stop` is set (`hub gateway`: on SIGTERM or SIGINT)."""
    gateway = Gateway(
        settings, SourceRegistry.load(settings.sources_file, settings.service_principals), catalog()
    )
    await gateway.start()
    runners = []
    try:
        # Requests in flight get as long to finish as a worker gets to stop (aiohttp's default
        # is a minute, past the supervisor's patience).
        api = web.AppRunner(
            gateway.app(),
            access_log=access_log,
            access_log_class=AccessLogger,
            shutdown_timeout=settings.shutdown_seconds,
        )
        await api.setup()
        runners.append(api)
        await web.TCPSite(
            api, settings.gateway_host, settings.gateway_port, ssl_context=settings.gateway_ssl_context()
        ).start()
        if settings.gateway_metrics_port:
            operations = web.Application()
            gateway.add_operations(operations)
            add_security_headers(operations, security_headers(over_tls=False))
            ops = web.AppRunner(operations, access_log=None, shutdown_timeout=settings.shutdown_seconds)
            await ops.setup()
            runners.append(ops)
            await web.TCPSite(ops, settings.metrics_host, settings.gateway_metrics_port).start()
        if await gateway.states.wait_caught_up(600) and await gateway.receipts.wait_caught_up(600):
            log.info("ready: every source's revocations and receipts read")
        await stop.wait()
    finally:
        for runner in runners:  # stops taking requests, then lets those in flight finish
            with contextlib.suppress(Exception):
                await runner.cleanup()
        await gateway.stop()
