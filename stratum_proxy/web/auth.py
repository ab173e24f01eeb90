"""Who may talk to the API: the Host and Origin rules, then the bearer token.

In order, for every request:

1. ``Host`` must be an IP literal (with an optional port), ``localhost``, or a
   name in ``api.allowed_hosts``: a web page whose DNS name was re-pointed at
   the proxy (DNS rebinding) sends its own name and is refused (403).
2. An ``Origin`` header, when present, must be this same origin
   (``http://`` or ``https://`` plus the Host header): a page elsewhere cannot
   use the browser as a client (403).  No CORS header is ever sent, so no
   preflight ever succeeds.
3. A token in the query string (``?token=``, ``?access_token=``) is refused
   (401): URLs end up in logs and browser history; use the header.
4. Every path but ``/healthz``, ``/livez`` and the dashboard's page (``/`` and
   ``/static/``: no data in them) needs ``Authorization: Bearer
   <token>`` when a token is required (``tokens.ApiTokens``); ``/metrics``
   also takes ``api.metrics_token``.  401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import hdrs, web

from stratum_proxy.web.tokens import ApiTokens

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/"})
# The dashboard's files hold no data (every number comes from /api/ with the
# token), and a browser cannot attach a header to a page it navigates to.
PUBLIC_PREFIX = "/static/"
METRICS_PATH = "/metrics"
_QUERY_TOKEN_NAMES = ("token", "access_token")


def host_name(host_header: str) -> str | None:
    """The name part of a Host header ('' port-only / junk gives None)."""
    value = host_header.strip()
    if value.startswith("["):  # [v6] or [v6]:port
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name or None
    if value.count(":") > 1:  # a bare IPv6 literal (not strictly valid, but unambiguous)
        return value
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return name or None


def host_allowed(host_header: str, allowed: Iterable[str]) -> bool:
    name = host_name(host_header)
    if name is None:
        return False
    name = name.rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name in {a.rstrip(".").lower() for a in allowed}


def same_origin(origin: str, host_header: str) -> bool:
    origin = origin.strip().lower()
    host = host_header.strip().lower()
    return origin in (f"http://{host}", f"https://{host}")


def bearer(request: web.BaseRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers or None)


def refusal(
    request: web.BaseRequest, tokens: ApiTokens, allowed_hosts: Iterable[str]
) -> web.Response | None:
    """The response refusing ``request``, or None when it may go on."""
    host = request.headers.get(hdrs.HOST)
    # No Host at all is an HTTP/1.0 tool, never a browser; anything else is checked.
    if host is not None and not host_allowed(host, allowed_hosts):
        return _text(403, "Host not allowed; add it to api.allowed_hosts")
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and (host is None or not same_origin(origin, host)):
        return _text(403, "cross-origin request refused")
    if any(name in request.query for name in _QUERY_TOKEN_NAMES):
        return _text(
            401,
            "a token in the URL is refused (URLs are logged); "
            "send it as the header Authorization: Bearer <token>",
            **{hdrs.WWW_AUTHENTICATE: "Bearer"},
        )
    if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIX):
        return None
    if not tokens.allows(bearer(request), metrics=request.path == METRICS_PATH):
        return _text(
            401,
            "this API needs a token: send Authorization: Bearer <token>",
            **{hdrs.WWW_AUTHENTICATE: 'Bearer realm="stratum-proxy"'},
        )
    return None


def auth_middleware(tokens: ApiTokens, allowed_hosts: Iterable[str]) -> Any:
    allowed = tuple(allowed_hosts)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        refused = refusal(request, tokens, allowed)
        if refused is not None:
            return refused
        return await handler(request)

    return middleware
