"""The worker's web server as a whole: which of Faust's own views it serves, and the security
headers every answer carries (pages, redirects, 404s, error pages and `/metrics` alike).

What is served on it is registered elsewhere: the support page (`hub.support.web`), metrics and
health (`hub.ops.observability`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from aiohttp import web

# Faust's built-in views answer anyone without signing in: /router/ (the cluster's hosts),
# /table/ (table contents), and with debug /graph/ and the statistics at /. The hub needs none
# of them; "/" is left to Faust's plain {"status": "OK"}.
FAUST_APP_OPTIONS: dict[str, Any] = {
    "web_router_enabled": False,
    "web_tables_enabled": False,
    "web_graph_enabled": False,
    "web_stats_enabled": False,
    "web_metrics_enabled": False,
}

HSTS_SECONDS = 365 * 24 * 3600


def security_headers(*, over_tls: bool, style_hashes: Iterable[str] = ()) -> dict[str, str]:
    """Headers for every answer. The policy allows only the support page's own needs: its
    inline style sheet (by hash), and forms posted back to this server."""
    styles = " ".join(f"'sha256-{h}'" for h in style_hashes) or "'none'"
    headers = {
        "Content-Security-Policy": f"default-src 'none'; style-src {styles}; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        # Support pages show personal data; nothing this server answers is worth caching.
        "Cache-Control": "no-store",
    }
    if over_tls:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"
    return headers


def add_security_headers(web_app: web.Application, headers: dict[str, str]) -> None:
    """Set `headers` on each answer `web_app` sends, however the answer was made. A signal, not
    a middleware: it also sees the 404s and error pages aiohttp makes outside any handler."""

    async def on_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.headers.update(headers)

    web_app.on_response_prepare.append(on_prepare)


def secure_web_server(app: faust.App, headers: dict[str, str]) -> None:
    """Give the Faust app's aiohttp server the headers (before the server starts)."""
    web_app: web.Application = app.web.web_app  # type: ignore[attr-defined]  # Faust's aiohttp driver
    add_security_headers(web_app, headers)
