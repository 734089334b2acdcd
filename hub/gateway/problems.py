"""Problem documents (RFC 9457): how the gateway says what is wrong, per request or per event.

A problem names its kind (`type`, a stable URN a client can switch on), the HTTP status, and in
`errors` each field and rule that failed. Every text that echoes a caller's input goes through
`hub.domain.redaction`, so no identifier is ever written back or logged in clear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hub.domain.redaction import clean

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:nir:problem:"


@dataclass
class Problem(Exception):
    """A refusal with its RFC 9457 document; `slug` is the stable part of its `type`."""

    status: int
    slug: str
    title: str
    detail: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def document(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = clean(self.detail, 500)
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return body | self.extra

    def response(self, instance: str | None = None) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(self.document(instance), ensure_ascii=False),
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )


def field_errors(problems: list[str]) -> list[dict[str, str]]:
    """The contract's "path: message" problems as `{"field", "rule"}` pairs, cleaned (a field
    name that is not the contract's is the caller's text)."""
    errors = []
    for problem in problems[:50]:
        path, _, rule = problem.partition(": ")
        errors.append({"field": clean(path, 120), "rule": clean(rule, 300)})
    return errors


def unauthorized(detail: str, *, error: str = "invalid_token", scope: str | None = None) -> Problem:
    """401 with the RFC 6750 challenge: the token is missing, invalid, expired or not for this API."""
    challenge = f'Bearer realm="nir-gateway", error="{error}"'
    if scope:
        challenge += f', scope="{scope}"'
    return Problem(
        401,
        "invalid-token",
        "The access token is not valid for this API",
        detail,
        headers={"WWW-Authenticate": challenge},
    )
