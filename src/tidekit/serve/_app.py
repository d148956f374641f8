"""``tidekit serve``: an OpenAI-compatible chat endpoint over any tidekit backend.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions`` (plain JSON, or server-sent events
with ``"stream": true``), ``GET /health``. Bad requests get a 4xx with an OpenAI-style error
body naming the problem. Requests to a local model run one at a time (the backend holds a
lock); streaming yields text as it is decoded when the backend can stream (``hf``), else the
whole reply as one chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tidekit.backends._protocol import Backend, ChatRequest, GenerationParams
from tidekit.data._generations import Message
from tidekit.serve._schema import ChatCompletionRequest

__all__ = ["create_app"]

DISCLAIMER = "tidekit is research software, not therapy; its models are not clinicians."


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> Any:
    from fastapi.responses import JSONResponse

    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(status_code=status,
                        content={"error": {"message": message, "type": kind, "param": param, "code": code}})


def create_app(backend: Backend, model_name: str, default_max_tokens: int = 256) -> Any:
    """A FastAPI app serving ``backend`` under the model name ``model_name``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse
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
        params = GenerationParams(max_new_tokens=body.max_completion_tokens or body.max_tokens or default_max_tokens,
                                  temperature=body.temperature, top_p=body.top_p, seed=body.seed, stop=stop)
        request = ChatRequest(id=f"chatcmpl-{uuid.uuid4().hex[:24]}", messages=messages, params=params)
        if body.stream:
            return StreamingResponse(_sse(backend, request, model_name), media_type="text/event-stream")
        result = (await run_in_threadpool(backend.generate, [request]))[0]
        if result.error is not None:
            status = 400 if "context" in result.error else 502
            return _error(status, result.error, param="messages" if status == 400 else None)
        usage = {"prompt_tokens": result.prompt_tokens or 0, "completion_tokens": result.completion_tokens or 0,
                 "total_tokens": (result.prompt_tokens or 0) + (result.completion_tokens or 0)}
        return {"id": request.id, "object": "chat.completion", "created": int(time.time()), "model": model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "finish_reason": result.finish_reason or "stop", "logprobs": None}],
                "usage": usage}

    return app


def _sse(backend: Backend, request: ChatRequest, model_name: str) -> Iterator[str]:
    """Server-sent events in the chat.completion.chunk format, ending with ``[DONE]``."""
    created = int(time.time())

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        body = {"id": request.id, "object": "chat.completion.chunk", "created": created, "model": model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    stream = getattr(backend, "stream", None)
    try:
        if stream is not None:
            for piece in stream(request):
                yield chunk({"content": piece})
            finish = "stop"
        else:
            result = backend.generate([request])[0]
            if result.error is not None:
                raise RuntimeError(result.error)
            yield chunk({"content": result.text or ""})
            finish = result.finish_reason or "stop"
    except Exception as exc:  # the status line is sent already: report in-band, as OpenAI does
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
        return
    yield chunk({}, finish)
    yield "data: [DONE]\n\n"
