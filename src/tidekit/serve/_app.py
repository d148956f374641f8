"""``tidekit serve``: an OpenAI-compatible chat endpoint over any tidekit backend.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions`` (plain JSON, or server-sent events
with ``"stream": true``), ``GET /health``. Bad requests get a 4xx with an OpenAI-style error
body naming the problem. Requests to a local model run one at a time (the backend holds a
lock); streaming yields text as it is decoded when the backend can stream (``hf``), else the
whole reply as one chunk.

Where it follows OpenAI: a request without ``temperature`` samples at the server's default
(1.0, OpenAI's; ``tidekit serve --temperature 0`` makes greedy the default) with a fresh seed
unless it sends ``seed``; a stream ends with a chunk carrying ``finish_reason`` (``"length"``
when ``max_tokens`` cut it, ``"stop"`` otherwise) and, with ``stream_options.include_usage``,
a last chunk with no choices and the token counts.

With ``safety=True`` (``tidekit serve --safety``) a request whose user messages fire the crisis
screen of :mod:`tidekit.safety` gets a reply that carries crisis resources: the fixed paragraph
is appended when the model's reply lacks them (in a stream, as one last content chunk before
the finish chunk), the response carries the header ``X-Tidekit-Safety: crisis`` and a
``tidekit_safety`` field, and a warning with the request id (never the text) is logged.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tidekit.backends._protocol import Backend, ChatRequest, ChatResult, GenerationParams
from tidekit.data._generations import Message
from tidekit.errors import BackendError
from tidekit.safety import SAFETY_HEADER, crisis_suffix, screens_crisis
from tidekit.serve._schema import ChatCompletionRequest

__all__ = ["create_app"]

DISCLAIMER = "tidekit is research software, not therapy; its models are not clinicians."
log = logging.getLogger("tidekit.serve")


def _log_crisis(request_id: str, added: bool) -> None:
    # the request id and the outcome only: the message text is the person's, never logged
    log.warning("crisis screen fired for request %s; crisis resources %s", request_id,
                "appended" if added else "already in the reply")


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> Any:
    from fastapi.responses import JSONResponse

    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(status_code=status,
                        content={"error": {"message": message, "type": kind, "param": param, "code": code}})


def create_app(backend: Backend, model_name: str, default_max_tokens: int = 256,
               default_temperature: float = 1.0, safety: bool = False) -> Any:
    """A FastAPI app serving ``backend`` under the model name ``model_name``.

    ``default_max_tokens`` and ``default_temperature`` apply to requests that set none;
    ``safety`` turns on the crisis guardrail (module docstring, docs/safety.md).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="tidekit serve", description=DISCLAIMER)
    created = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Any:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if p != "body")
            problems.append(f"{loc or 'body'}: {err['msg']}")
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        param = ".".join(str(p) for p in first if p != "body") or None
        return _error(400, "invalid request: " + "; ".join(problems), param=param)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "tidekit"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest) -> Any:
        if body.model != model_name:
            return _error(404, f"model {body.model!r} is not served here; this server serves {model_name!r} "
                               "(see GET /v1/models)", param="model", code="model_not_found")
        try:
            messages = [Message(role="system" if m.role == "developer" else m.role, content=m.text())
                        for m in body.messages]
        except ValueError as exc:
            return _error(400, f"messages: {exc}", param="messages")
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        temperature = default_temperature if body.temperature is None else body.temperature
        # OpenAI samples afresh on every request without a seed; the decoder would reuse seed 0
        seed = body.seed if body.seed is not None or temperature == 0 else secrets.randbelow(2**31)
        params = GenerationParams(max_new_tokens=body.max_completion_tokens or body.max_tokens or default_max_tokens,
                                  temperature=temperature, top_p=body.top_p, seed=seed, stop=stop)
        request = ChatRequest(id=f"chatcmpl-{uuid.uuid4().hex[:24]}", messages=messages, params=params)
        crisis = safety and screens_crisis(m.content for m in messages if m.role == "user")
        headers = {SAFETY_HEADER: "crisis"} if crisis else None
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            events = _sse(backend, request, model_name, include_usage, crisis)
            # run up to the first text piece here, so a request the model cannot take (too long a
            # prompt) still gets a 4xx status instead of an error inside a 200 stream
            first = await run_in_threadpool(_first_event, events)
            if isinstance(first, _Refused):
                return _error(first.status, first.message, param="messages" if first.status == 400 else None)
            return StreamingResponse(_chain(first, events), media_type="text/event-stream", headers=headers)
        result = (await run_in_threadpool(backend.generate, [request]))[0]
        if result.error is not None:
            status = 400 if "context" in result.error else 502
            return _error(status, result.error, param="messages" if status == 400 else None)
        reply: dict[str, Any] = {
            "id": request.id, "object": "chat.completion", "created": int(time.time()), "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": result.finish_reason or "stop", "logprobs": None}],
            "usage": _usage(result)}
        if not crisis:
            return reply
        text = result.text or ""
        suffix = crisis_suffix(text)
        reply["choices"][0]["message"]["content"] = text + suffix
        reply["tidekit_safety"] = {"crisis_screen": True, "resources_added": bool(suffix)}
        _log_crisis(request.id, bool(suffix))
        return JSONResponse(reply, headers=headers)

    return app


def _usage(result: ChatResult) -> dict[str, int]:
    prompt, completion = result.prompt_tokens or 0, result.completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Refused(Exception):
    """The backend refused the request before producing any text (sent as a 4xx/5xx status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _first_event(events: Iterator[str]) -> str | _Refused:
    try:
        return next(events)
    except _Refused as refused:
        return refused


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _sse(backend: Backend, request: ChatRequest, model_name: str, include_usage: bool,
         crisis: bool = False) -> Iterator[str]:
    """Server-sent events in the chat.completion.chunk format, ending with ``[DONE]``.

    With ``crisis`` (the guardrail is on and the screen fired) the streamed text is kept, and
    the crisis paragraph, when the reply lacks resources, goes out as one more content chunk
    (with a ``tidekit_safety`` field) before the chunk carrying ``finish_reason``.

    Raises :class:`_Refused` before yielding anything when the backend rejects the request; an
    error after the first piece is reported in-band, as OpenAI does (the status line is sent).
    """
    created = int(time.time())

    def chunk(delta: dict[str, str], finish: str | None = None, extra: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"id": request.id, "object": "chat.completion.chunk", "created": created,
                                "model": model_name,
                                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if include_usage:
            body["usage"] = None  # OpenAI's shape: null on every chunk but the last
        body.update(extra or {})
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    stream = getattr(backend, "stream", None)
    started = False
    sent: list[str] = []
    try:
        if stream is not None:
            pieces = stream(request)
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as end:
                    result = end.value if isinstance(end.value, ChatResult) else None
                    break
                if not started:
                    yield chunk({"role": "assistant", "content": ""})
                    started = True
                sent.append(piece)
                yield chunk({"content": piece})
        else:
            result = backend.generate([request])[0]
            if result.error is not None:
                raise BackendError(result.error)
    except BackendError as exc:
        if not started:
            raise _Refused(400 if "context" in str(exc) else 502, str(exc)) from None
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
        return
    except Exception as exc:  # the status line is sent already: report in-band, as OpenAI does
        if not started:
            raise _Refused(500, f"{type(exc).__name__}: {exc}") from None
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
        return
    if not started:
        yield chunk({"role": "assistant", "content": ""})
    if stream is None and result is not None and result.text:
        sent.append(result.text)
        yield chunk({"content": result.text})
    if crisis:
        suffix = crisis_suffix("".join(sent))
        if suffix:
            yield chunk({"content": suffix}, extra={"tidekit_safety": {"crisis_screen": True, "resources_added": True}})
        _log_crisis(request.id, bool(suffix))
    yield chunk({}, (result.finish_reason if result is not None else None) or "stop")
    if include_usage:
        usage = _usage(result) if result is not None else None
        body = {"id": request.id, "object": "chat.completion.chunk", "created": created, "model": model_name,
                "choices": [], "usage": usage}
        yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"
