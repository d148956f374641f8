"""``tidekit serve``: an OpenAI-compatible endpoint over any tidekit backend.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (a raw prompt continued, no chat
template), ``POST /v1/responses`` (the text subset), ``GET /v1/models``, ``GET``/``HEAD /health``;
each POST plain JSON or server-sent events with ``"stream": true`` (responses: plain only).
Requests from many clients are decoded together in batches by one scheduler thread
(``_scheduler.py``); a client that disconnects, or a request past ``request_timeout``, leaves the
batch at the next step. Bad requests get a 4xx in OpenAI's error envelope naming the problem,
before any work (``_limits.py``: body size, encoding, JSON; ``_schema.py``: fields).

Where it follows OpenAI: a request without ``temperature`` samples at the server's default
(1.0, OpenAI's; ``tidekit serve --temperature 0`` makes greedy the default) with a fresh seed
unless it sends ``seed``; a stream ends with a chunk carrying ``finish_reason`` (``"length"``
when ``max_tokens`` cut it, ``"stop"`` otherwise) and, with ``stream_options.include_usage``,
a last chunk with no choices and the token counts; ``response_format`` (``json_schema``,
``json_object``) is enforced by constrained decoding where the backend can, refused otherwise.

With ``safety=True`` (``tidekit serve --safety``) a request whose user messages fire the crisis
screen of :mod:`tidekit.safety` gets a reply that carries crisis resources: the fixed paragraph
is appended when the model's reply lacks them (in a stream, as one last content chunk before
the finish chunk), the response carries the header ``X-Tidekit-Safety: crisis`` and a
``tidekit_safety`` field, and a warning with the request id (never the text) is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tidekit.backends import (
    Backend,
    ChatRequest,
    ChatResult,
    GenerationParams,
    ResponseFormat,
)
from tidekit.safety import crisis_suffix, screens_crisis
from tidekit.serve._limits import BadRequest, BodyLimit, error_response, parse_json
from tidekit.serve._openapi import install_openapi, route_docs
from tidekit.serve._scheduler import Job, QueueFull, Scheduler
from tidekit.serve._schema import (
    WireResponseFormat,
)

__all__ = ["create_app", "default_body_limit"]

DISCLAIMER = "tidekit is research software, not therapy; its models are not clinicians."
log = logging.getLogger("tidekit.serve")
M = TypeVar("M", bound=BaseModel)
RETRY_AFTER_S = 1  # what a 429 tells the client to wait


def default_body_limit(context_length: int | None) -> int:
    """Bytes a request body may have: room for a full context of text as escaped JSON (64 bytes
    a token: ~4 characters, up to 6 bytes each as \\u escapes, plus the JSON around messages),
    and never under 1 MiB."""
    return max(2**20, 64 * (context_length or 8192))


def _log_crisis(request_id: str, added: bool) -> None:
    # the request id and the outcome only: the message text is the person's, never logged
    log.warning("crisis screen fired for request %s; crisis resources %s", request_id,
                "appended" if added else "already in the reply")


def _status_for(error: str) -> int:
    """The HTTP status of a request the backend refused: the client's fault (400) or not (502)."""
    client = ("context", "seed", "tokenis", "schema", "response_format", "raw prompt")
    return 400 if any(word in error for word in client) else 502


class _Server:
    """The routes' shared state: the backend's scheduler, the defaults, the guardrail."""

    def __init__(self, backend: Backend, model_name: str, default_max_tokens: int, default_temperature: float,
                 safety: bool, scheduler: Scheduler, request_timeout: float) -> None:
        self.backend, self.model_name, self.safety = backend, model_name, safety
        self.default_max_tokens, self.default_temperature = default_max_tokens, default_temperature
        self.scheduler, self.request_timeout = scheduler, request_timeout
        capabilities = getattr(backend, "capabilities", None)
        self.structured = bool(getattr(capabilities, "structured_output", False))
        self.logprobs = bool(getattr(capabilities, "logprobs", False))

    # ---- request side -------------------------------------------------------------------------
    async def parse(self, request: Any, model: type[M]) -> M:
        data = parse_json(await request.body(), request.headers.get("content-type"))
        try:
            body = model.model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc) from None
        if getattr(body, "model", None) != self.model_name:
            raise BadRequest(f"model {getattr(body, 'model', None)!r} is not served here; this server serves "
                             f"{self.model_name!r} (see GET /v1/models)", status=404, param="model",
                             code="model_not_found")
        return body

    def response_format(self, fmt: WireResponseFormat | None) -> ResponseFormat | None:
        spec = fmt.schema_and_name() if fmt is not None else None
        if spec is None:
            return None
        if not self.structured:
            raise BadRequest("response_format: this backend cannot enforce a JSON schema (it needs the hf backend "
                             "with llguidance); send the request without response_format", param="response_format")
        return ResponseFormat(name=spec[1], json_schema=spec[0])

    def params(self, body: Any, max_tokens: int | None, stops: list[str], choice: int) -> GenerationParams:
        temperature = self.default_temperature if body.temperature is None else body.temperature
        # OpenAI samples afresh on every request without a seed; the decoder would reuse seed 0.
        # With a seed, choice k of n samples from seed + k (n replies, each repeatable)
        if body.seed is not None:
            seed: int | None = body.seed + choice
        else:
            seed = None if temperature == 0 else secrets.randbelow(2**31)
        return GenerationParams(max_new_tokens=max_tokens or self.default_max_tokens, temperature=temperature,
                                top_p=1.0 if body.top_p is None else body.top_p, seed=seed, stop=stops)

    def submit(self, requests: list[ChatRequest], stream: bool, raw: list[str] | None = None) -> Job:
        loop = asyncio.get_running_loop()
        job = Job(requests=requests, loop=loop, events=asyncio.Queue(), stream=stream, raw_prompts=raw,
                  deadline=time.monotonic() + self.request_timeout)
        log.debug("request %s: %d row(s), temperature %s", requests[0].id, len(requests),
                  requests[0].params.temperature)
        try:
            self.scheduler.submit(job)
        except QueueFull as exc:
            raise BadRequest(f"the server is busy: {exc}; retry after {RETRY_AFTER_S} s", status=429,
                             code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        return job

    async def next_event(self, job: Job) -> tuple[str, int | None, Any]:
        """The job's next event, or :class:`BadRequest` (504) once the request timeout passes."""
        try:
            return await asyncio.wait_for(job.events.get(), timeout=max(0.0, job.deadline - time.monotonic()))
        except TimeoutError:
            job.cancel.set()
            raise BadRequest(f"the request took longer than the server's request timeout ({self.request_timeout:g} "
                             "s, tidekit serve --request-timeout)", status=504, code="request_timeout") from None

    async def results(self, job: Job, request: Any) -> list[ChatResult] | None:
        """The job's results (None: the client left), events skipped; errors as :class:`BadRequest`."""
        watcher = asyncio.ensure_future(_watch_disconnect(request, job))
        try:
            while True:
                kind, _, value = await self.next_event(job)
                if kind == "done":
                    _raise_first_error(value, job)
                    return list(value)
                if kind == "failed":
                    raise BadRequest(f"the backend failed: {value}", status=500, code="backend_error")
                if kind == "gone":
                    return None
        finally:
            watcher.cancel()

    def crisis(self, user_texts: Sequence[str]) -> bool:
        return self.safety and screens_crisis(user_texts)

    def guard(self, request_id: str, texts: list[str], crisis: bool) -> tuple[list[str], dict[str, Any] | None]:
        """Replies with crisis resources appended where they lack them (the guardrail fired)."""
        if not crisis:
            return texts, None
        suffixes = [crisis_suffix(t) for t in texts]
        _log_crisis(request_id, any(suffixes))
        return ([t + s for t, s in zip(texts, suffixes, strict=True)],
                {"crisis_screen": True, "resources_added": any(bool(s) for s in suffixes)})


def _invalid(exc: ValidationError) -> BadRequest:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        problems.append(f"{loc or 'body'}: {err['msg']}")
    first = exc.errors()[0]["loc"] if exc.errors() else ()
    return BadRequest("invalid request: " + "; ".join(problems), param=".".join(str(p) for p in first) or None)


def _raise_first_error(results: Sequence[ChatResult], job: Job) -> None:
    for result in results:
        if result.error is not None:
            if result.error.startswith("cancelled") and job.cancelled() and not job.cancel.is_set():
                raise BadRequest("the request took longer than the server's request timeout "
                                 "(tidekit serve --request-timeout)", status=504, code="request_timeout")
            status = _status_for(result.error)
            raise BadRequest(result.error, status=status, param="messages" if status == 400 else None)


async def _watch_disconnect(request: Any, job: Job) -> None:
    """Cancel ``job`` when the client disconnects (the body is read already: the next message
    the server sends is ``http.disconnect``)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel.set()
            job.events.put_nowait(("gone", None, None))
            return
        await asyncio.sleep(0.05)


def create_app(backend: Backend, model_name: str, default_max_tokens: int = 256,
               default_temperature: float = 1.0, safety: bool = False, max_batch: int | None = None,
               max_queue: int = 256, request_timeout: float = 600.0, max_body_bytes: int | None = None) -> Any:
    """A FastAPI app serving ``backend`` under the model name ``model_name``.

    ``default_max_tokens`` and ``default_temperature`` apply to requests that set none;
    ``safety`` turns on the crisis guardrail (module docstring, docs/safety.md); ``max_batch``
    rows are decoded together (default: the backend's ``max_batch_size``), ``max_queue`` requests
    may wait (then 429), ``request_timeout`` seconds a request may take (then 504), and a body
    over ``max_body_bytes`` is refused with 413 (default: :func:`default_body_limit`).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    capabilities = getattr(backend, "capabilities", None)
    batch = max_batch or int(getattr(capabilities, "max_batch_size", 1) or 1)
    scheduler = Scheduler(backend, batch, max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        scheduler.close()

    app = FastAPI(title="tidekit serve", description=DISCLAIMER, lifespan=lifespan)
    server = _Server(backend, model_name, default_max_tokens, default_temperature, safety, scheduler, request_timeout)
    app.state.scheduler = scheduler
    created = int(time.time())

    @app.exception_handler(BadRequest)
    async def _refused(_request: Request, exc: BadRequest) -> Any:
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> Any:
        return error_response(400, "invalid request: " + "; ".join(str(e.get("msg")) for e in exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> Any:
        return error_response(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> Any:
        log.exception("unexpected error")
        return error_response(500, f"internal error: {type(exc).__name__}", code="internal_error")

    @app.api_route("/health", methods=["GET", "HEAD"], **route_docs("health"))
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "queued": scheduler.queued, "running": scheduler.running,
                "max_batch": scheduler.max_batch, "batches": scheduler.batches, "largest_batch": scheduler.largest}

    @app.get("/v1/models", **route_docs("models"))
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "tidekit"}]}

    from tidekit.serve._routes import add_generation_routes

    add_generation_routes(app, server)
    install_openapi(app)
    limit = max_body_bytes or default_body_limit(getattr(capabilities, "context_length", None))
    app.add_middleware(BodyLimit, limit=limit)
    app.state.max_body_bytes = limit
    return app
