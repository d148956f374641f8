"""The ``openai`` backend: any OpenAI-compatible chat server (vLLM, llama.cpp server, Ollama,
OpenAI itself, or ``tidekit serve``), through the official ``openai`` SDK.

Configured by base URL, model name and the environment variable holding the key; requests run
with bounded concurrency; the SDK retries 429/5xx/timeouts with backoff. Loading checks that
the server answers, so a wrong URL fails at once with a clear message.

A request's ``response_format`` is sent as ``{"type": "json_schema", ...}`` (strict) and its
``logprobs`` as ``logprobs``/``top_logprobs``. A server that refuses either (HTTP 400 or 422) is
asked again without it, and not asked with it again; the result then says ``structured=False``
and the caller falls back to reading the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidekit._manifest import ModelIdentity
from tidekit.backends._options import OpenAIConfig
from tidekit.backends._protocol import (
    Capabilities,
    ChatRequest,
    ChatResult,
    TokenLogprob,
)
from tidekit.backends._remote import api_key, run_concurrently
from tidekit.errors import BackendError, MissingDependencyError

__all__ = ["OpenAIBackend"]

_FINISH = {"stop": "stop", "length": "length", "content_filter": "stop", "tool_calls": "stop"}


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server."""

    def __init__(self, config: OpenAIConfig) -> None:
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("the openai backend", "openai", "pip install 'tidekit[api]'") from None
        self.config = config
        self._openai = openai
        key = api_key(config, "OPENAI_API_KEY", required=config.base_url is None)
        self.client = openai.OpenAI(api_key=key, base_url=config.base_url, timeout=config.timeout_s,
                                    max_retries=config.max_retries)
        self._check_reachable()
        self.identity = ModelIdentity(alias=config.model, source=config.base_url or "https://api.openai.com/v1",
                                      role="system")
        self.capabilities = Capabilities(batching=False, max_batch_size=1, concurrency=config.concurrency,
                                         token_counts=True, structured_output=True, logprobs=True)
        # set False once the server refuses the field (threads may race to set it: harmless)
        self._schema_ok = True
        self._logprobs_ok = True

    def _check_reachable(self) -> None:
        where = self.config.base_url or "the OpenAI API"
        try:
            self.client.with_options(max_retries=1, timeout=min(10.0, self.config.timeout_s)).models.list()
        except self._openai.APIConnectionError as exc:
            raise BackendError(f"cannot reach the OpenAI-compatible server at {where} ({exc}); start the server "
                               "or fix base_url (--base-url)") from None
        except self._openai.AuthenticationError:
            raise BackendError(f"{where} rejected the API key; check {self.config.api_key_env or 'OPENAI_API_KEY'}"
                               ) from None
        except self._openai.APIStatusError:
            pass  # some servers lack /models; chat calls will tell

    def _call(self, request: ChatRequest) -> ChatResult:
        p = request.params
        kwargs: dict[str, Any] = {"model": self.config.model, "max_tokens": p.max_new_tokens,
                                  "temperature": p.temperature, "top_p": p.top_p,
                                  "messages": [m.model_dump() for m in request.messages]}
        if p.seed is not None:
            kwargs["seed"] = p.seed
        if p.stop:
            kwargs["stop"] = p.stop
        fmt = request.response_format
        if fmt is not None and self._schema_ok:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": fmt.name, "schema": fmt.json_schema, "strict": True}}
        if request.logprobs and self._logprobs_ok:
            kwargs["logprobs"], kwargs["top_logprobs"] = True, request.logprobs
        response = self._create(kwargs)
        choice = response.choices[0]
        usage = response.usage
        content = getattr(choice.logprobs, "content", None) if choice.logprobs is not None else None
        logprobs = [TokenLogprob(token=t.token, logprob=t.logprob,
                                 top=[(a.token, a.logprob) for a in (t.top_logprobs or [])])
                    for t in content] if content else None
        return ChatResult(id=request.id, text=choice.message.content or "",
                          prompt_tokens=usage.prompt_tokens if usage else None,
                          completion_tokens=usage.completion_tokens if usage else None,
                          finish_reason=_FINISH.get(choice.finish_reason or "stop", "stop"),
                          logprobs=logprobs, structured=None if fmt is None else "response_format" in kwargs)

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """``chat.completions.create``; a refusal (400/422) of response_format, then of logprobs,
        is asked again without that field, which later requests then leave out."""
        while True:
            try:
                return self.client.chat.completions.create(**kwargs)
            except (self._openai.BadRequestError, self._openai.UnprocessableEntityError):
                if "response_format" in kwargs:
                    self._schema_ok = False
                    del kwargs["response_format"]
                elif "logprobs" in kwargs:
                    self._logprobs_ok = False
                    del kwargs["logprobs"], kwargs["top_logprobs"]
                else:
                    raise

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, self._openai.APIStatusError):
            return f"server answered {exc.status_code}: {exc.message}"
        if isinstance(exc, self._openai.APIConnectionError):
            return f"could not reach {self.config.base_url or 'the OpenAI API'} after retries: {exc}"
        return f"{type(exc).__name__}: {exc}"

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return run_concurrently(requests, self._call, self.config.concurrency, self._describe)

    def close(self) -> None:
        self.client.close()
