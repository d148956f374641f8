"""Refusing bad requests before any work: body size, encoding, JSON, and OpenAI's error envelope.

Why a middleware of its own: FastAPI reads the whole body and parses it before a route runs, so
a 20 MB message used to cost its full read, a JSON parse and a tokenisation (28-31 s, 2.5 GB)
before being refused. :class:`BodyLimit` answers 413 from the ``Content-Length`` header alone,
and counts the bytes of a body sent without one (chunked), stopping at the limit; the routes
then parse the body themselves (:func:`parse_json`), so invalid UTF-8, lone surrogates (which
JSON's ``\\ud800`` escapes can smuggle into a Python string; tokenizers raise on them), NaN or
Infinity, nesting deep enough to exhaust the parser and non-object bodies are 400s naming the
problem, in the same envelope as every other error: ``{"error": {"message", "type", "param",
"code"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BadRequest", "BodyLimit", "envelope", "error_response", "parse_json"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
MAX_DEPTH = 64  # JSON nesting a request may have (OpenAI bodies need under 10)


class BadRequest(Exception):
    """A request the server refuses: the status, message and field (``param``) to report."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.code, self.headers = message, status, param, code, headers


def envelope(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error body."""
    kind = ("invalid_request_error" if status < 500 and status != 429 else
            "rate_limit_error" if status == 429 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content=envelope(status, message, param, code), headers=headers)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 before it is read (a
    declared ``Content-Length``) or as soon as the bytes sent pass it (no length declared).

    The body is read here, up to the limit, and handed on whole; later ``receive`` calls go to
    the server (so a handler still hears the client disconnect).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _send_error(send, 400, "the Content-Length header is not a non-negative integer", "content_length")
            return
        if declared is not None and declared > self.limit:
            await _send_error(send, 413, self._too_big(f"{declared} bytes"), "body_too_large")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _send_error(send, 413, self._too_big(f"more than {self.limit} bytes"), "body_too_large")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_big(self, what: str) -> str:
        return (f"the request body has {what}; this server takes at most {self.limit} bytes (tidekit serve "
                "--max-body-bytes). Shorten the conversation.")


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when not declared, -1 when malformed."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 19 else -1
    return None


async def _send_error(send: Send, status: int, message: str, code: str) -> None:
    body = json.dumps(envelope(status, message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def parse_json(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`BadRequest` saying what is wrong with it."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise BadRequest(f"the body must be JSON (Content-Type: application/json), not {kind!r}", status=415,
                         code="unsupported_media_type")
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON object", code="empty_body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON",
                         code="invalid_encoding") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest("the JSON body nests too deeply", code="invalid_json") from None
    except ValueError as exc:  # json.JSONDecodeError, and int strings past Python's digit limit
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(data).__name__}", code="invalid_json")
    _check_strings(data, "", 0)
    return data


def _no_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number; send a finite number", code="invalid_json")


def _check_strings(value: Any, path: str, depth: int) -> None:
    """Refuse lone surrogates (in keys and values) and nesting past :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise BadRequest(f"the JSON body nests deeper than {MAX_DEPTH} levels", param=path or None,
                         code="invalid_json")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_strings(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, f"{path}.{i}" if path else str(i), depth + 1)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(f"{path or 'body'}: the text holds a lone surrogate (U+{ord(text[exc.start]):04X} at "
                         f"character {exc.start}), which is not a character; send valid Unicode",
                         param=path or None, code="invalid_unicode") from None
