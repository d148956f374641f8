"""The generating routes of ``tidekit serve``: ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/responses``, plain and streamed, over the shared state of ``_app._Server``.

Each route validates its body (a 4xx before any work), builds one backend row per choice (and,
for completions, per prompt), queues them as one job on the scheduler, and either waits for the
results or streams pieces as they are decoded. A stream first waits for its first event, so a
request the backend refuses (too long a prompt, a seed or schema it cannot take) still gets a
4xx status instead of an error inside a 200 stream; once streaming, an error is reported
in-band, as OpenAI does. A streaming handler that ends early (the client left) cancels its job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request

from tidekit.backends import ChatRequest, ChatResult
from tidekit.data import Message
from tidekit.safety import SAFETY_HEADER
from tidekit.serve import _wire as wire
from tidekit.serve._limits import BadRequest, error_response
from tidekit.serve._openapi import route_docs
from tidekit.serve._schema import ChatCompletionRequest, CompletionRequest, ResponsesRequest

if TYPE_CHECKING:
    from tidekit.serve._app import _Server
    from tidekit.serve._scheduler import Job

__all__ = ["add_generation_routes"]

Chunk = Callable[[int, str, str | None, dict[str, Any] | None], str | None]


def _role(role: str) -> str:
    return "system" if role == "developer" else role


def add_generation_routes(app: Any, server: _Server) -> None:
    from fastapi.responses import JSONResponse

    @app.post("/v1/chat/completions", **route_docs("chat"))
    async def chat(request: Request) -> Any:
        body = await server.parse(request, ChatCompletionRequest)
        messages = [Message(role=_role(m.role), content=m.text()) for m in body.messages]
        fmt = server.response_format(body.response_format)
        if body.logprobs and not server.logprobs:
            raise BadRequest("logprobs: this backend does not return token log-probabilities", param="logprobs")
        top = (body.top_logprobs or 0) if body.logprobs else 0
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        stops = body.stops()
        rows = [ChatRequest(id=f"{rid}/0/{k}", messages=messages, response_format=fmt,
                            params=server.params(body, body.max_completion_tokens or body.max_tokens, stops, k),
                            logprobs=max(top, 1) if body.logprobs else 0) for k in range(body.n)]
        crisis = server.crisis([m.content for m in messages if m.role == "user"])
        headers = {SAFETY_HEADER: "crisis"} if crisis else None
        job = server.submit(rows, stream=body.stream)
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return await _stream(server, job, request, _chat_chunks(rid, server.model_name, include_usage),
                                 rid, crisis, include_usage, headers, "chat.completion.chunk")
        results = await server.results(job, request)
        if results is None:
            return error_response(499, "the client closed the request", code="client_closed")
        texts, info = server.guard(rid, [r.text or "" for r in results], crisis)
        reply = wire.chat_reply(rid, server.model_name, results, texts)
        if not body.logprobs:
            for choice in reply["choices"]:
                choice["logprobs"] = None
        if info is not None:
            reply["tidekit_safety"] = info
        return JSONResponse(reply, headers=headers)

    @app.post("/v1/completions", **route_docs("completions"))
    async def completions(request: Request) -> Any:
        body = await server.parse(request, CompletionRequest)
        if getattr(server.backend, "encode_text", None) is None:
            raise BadRequest("/v1/completions: this backend takes chat messages only (no raw prompt); use "
                             "/v1/chat/completions", param="prompt")
        if body.logprobs is not None and not server.logprobs:
            raise BadRequest("logprobs: this backend does not return token log-probabilities", param="logprobs")
        rid = f"cmpl-{uuid.uuid4().hex[:24]}"
        prompts = body.prompts()
        raw = [p for p in prompts for _ in range(body.n)]
        rows = [ChatRequest(id=f"{rid}/{i // body.n}/{i % body.n}", messages=[Message(role="user", content=p or " ")],
                            params=server.params(body, body.max_tokens, body.stops(), i % body.n),
                            logprobs=max(body.logprobs, 1) if body.logprobs is not None else 0)
                for i, p in enumerate(raw)]
        crisis = server.crisis(prompts)
        headers = {SAFETY_HEADER: "crisis"} if crisis else None
        job = server.submit(rows, stream=body.stream, raw=raw)
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return await _stream(server, job, request, _completion_chunks(rid, server.model_name, include_usage),
                                 rid, crisis, include_usage, headers, "text_completion")
        results = await server.results(job, request)
        if results is None:
            return error_response(499, "the client closed the request", code="client_closed")
        texts, info = server.guard(rid, [r.text or "" for r in results], crisis)
        reply = wire.completion_reply(rid, server.model_name, results, texts)
        if info is not None:
            reply["tidekit_safety"] = info
        return JSONResponse(reply, headers=headers)

    @app.post("/v1/responses", **route_docs("responses"))
    async def responses(request: Request) -> Any:
        body = await server.parse(request, ResponsesRequest)
        if body.stream:
            raise BadRequest("stream: /v1/responses is served whole here (the text subset); send stream false, or "
                             "use /v1/chat/completions to stream", param="stream")
        fmt_wire = body.text.response_format() if body.text is not None else None
        fmt = server.response_format(fmt_wire)
        messages = [Message(role=_role(role), content=text) for role, text in body.messages()]
        rid = uuid.uuid4().hex[:24]
        params = server.params(body, body.max_output_tokens, [], 0)
        row = ChatRequest(id=f"{rid}/0/0", messages=messages, params=params, response_format=fmt)
        crisis = server.crisis([m.content for m in messages if m.role == "user"])
        job = server.submit([row], stream=False)
        results = await server.results(job, request)
        if results is None:
            return error_response(499, "the client closed the request", code="client_closed")
        texts, info = server.guard(rid, [results[0].text or ""], crisis)
        settings = {"temperature": params.temperature, "top_p": params.top_p,
                    "max_output_tokens": params.max_new_tokens}
        reply = wire.responses_reply(rid, server.model_name, results[0], texts[0], settings,
                                     body.text.format if body.text is not None else None)
        if info is not None:
            reply["tidekit_safety"] = info
        return JSONResponse(reply, headers={SAFETY_HEADER: "crisis"} if crisis else None)


def _chat_chunks(rid: str, model: str, include_usage: bool) -> Chunk:
    created = int(time.time())

    def chunk(choice: int, text: str, finish: str | None, extra: dict[str, Any] | None) -> str:
        delta = {"content": text} if finish is None else {}
        if text == "" and finish is None:
            delta = {"role": "assistant", "content": ""}
        return wire.chat_chunk(rid, model, created, choice, delta, finish, include_usage, extra)

    return chunk


def _completion_chunks(rid: str, model: str, include_usage: bool) -> Chunk:
    created = int(time.time())

    def chunk(choice: int, text: str, finish: str | None, extra: dict[str, Any] | None) -> str | None:
        if text == "" and finish is None:
            return None  # completions streams have no role chunk
        return wire.completion_chunk(rid, model, created, choice, text, finish, include_usage, extra)

    return chunk


async def _stream(server: _Server, job: Job, request: Any, chunk: Chunk, rid: str, crisis: bool,
                  include_usage: bool, headers: dict[str, str] | None, kind: str) -> Any:
    """A streaming response for ``job``, once its first event shows the backend took it."""
    from fastapi.responses import StreamingResponse

    from tidekit.serve._app import _raise_first_error, _watch_disconnect

    first = await server.next_event(job)
    if first[0] == "done":
        _raise_first_error(first[2], job)
    if first[0] == "failed":
        raise BadRequest(f"the backend failed: {first[2]}", status=500, code="backend_error")
    import asyncio

    watcher = asyncio.ensure_future(_watch_disconnect(request, job))

    async def events() -> AsyncIterator[str]:
        finished = False
        try:
            async for event in _sse(server, job, first, chunk, rid, crisis, include_usage, kind):
                yield event
            finished = True
        finally:
            watcher.cancel()
            if not finished:
                job.cancel.set()  # the client left (or the server stops): the row leaves its batch

    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _sse(server: _Server, job: Job, first: tuple[str, int | None, Any], chunk: Chunk, rid: str,
               crisis: bool, include_usage: bool, kind: str) -> AsyncIterator[str]:
    """The events of a stream: a role chunk per choice, pieces, the guardrail's paragraph, a
    finish chunk per choice, the usage chunk, ``[DONE]``."""
    n = len(job.requests)
    for k in range(n):
        opening = chunk(k, "", None, None)
        if opening:
            yield opening
    sent = [""] * n
    event = first
    try:
        while event[0] == "piece":
            k = int(event[1] or 0)
            sent[k] += event[2]
            yield chunk(k, event[2], None, None) or ""
            event = await server.next_event(job)
    except BadRequest as exc:  # the request timed out mid-stream
        yield wire.sse({"error": {"message": exc.message, "type": "server_error", "param": None, "code": exc.code}})
        yield wire.sse("[DONE]")
        return
    if event[0] != "done" or any(r.error for r in event[2]):
        message = ("the client left" if event[0] == "gone" else str(event[2]) if event[0] == "failed"
                   else next(r.error for r in event[2] if r.error))
        yield wire.sse({"error": {"message": message, "type": "server_error", "param": None, "code": None}})
        yield wire.sse("[DONE]")
        return
    results: list[ChatResult] = event[2]
    if crisis:
        guarded, _ = server.guard(rid, sent, True)
        for k, (before, after) in enumerate(zip(sent, guarded, strict=True)):
            if after != before:
                yield chunk(k, after[len(before):], None, {"tidekit_safety": {"crisis_screen": True,
                                                                              "resources_added": True}}) or ""
    for k, result in enumerate(results):
        yield chunk(k, "", wire.finish_reason(result), None) or ""
    if include_usage:
        yield wire.usage_chunk(rid, server.model_name, int(time.time()), kind, results)
    yield wire.sse("[DONE]")
