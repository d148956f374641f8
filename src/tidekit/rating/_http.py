"""ASGI middleware of the rating app: security headers on every response, request bodies capped.

A plain ASGI wrapper (not Starlette's ``BaseHTTPMiddleware``, which costs a task per request):

- every response, whatever produced it (pages, JSON errors, ``/healthz``, static files, 404s),
  gets the security headers it does not already set;
- a body whose declared ``Content-Length`` is over the cap is answered 413 before a byte of it is
  read; a chunked body is counted as it arrives and cut off with 413 at the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyTooLarge", "Guard", "security_headers"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body went over the cap while it was being read."""


def security_headers(https: bool) -> dict[str, str]:
    """The headers every response carries (``https``: also Strict-Transport-Security)."""
    headers = {
        "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                    "frame-ancestors 'none'; base-uri 'none'"),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
                               "microphone=(), payment=(), usb=(), interest-cohort=()"),
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


class Guard:
    """Wraps an ASGI app: adds ``headers`` to every HTTP response (those it lacks), plus
    ``Cache-Control: no-store`` outside ``static_prefix``; caps request bodies at ``max_body``."""

    def __init__(self, app: ASGIApp, headers: dict[str, str], max_body: int, static_prefix: str = "/static/") -> None:
        self.app = app
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.no_store = (b"cache-control", b"no-store")
        self.max_body = max_body
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers if str(scope.get("path", "")).startswith(self.static_prefix) else [*self.headers,
                                                                                                   self.no_store]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                have = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in have)]
            await send(message)

        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(send_with_headers, 400, "Bad Content-Length.")
                return
            if int(declared) > self.max_body:
                await self._refuse(send_with_headers, 413, "The request is too large.")
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, counted, send_with_headers)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send_with_headers, 413, "The request is too large.")

    @staticmethod
    async def _refuse(send: Send, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
